"""Only trusted proxies may tell us who the client is; anything a client writes is ignored."""

from __future__ import annotations

import pytest

from server.security.forwarded import client_address, parse_trusted_proxies
from server.settings import Settings, SettingsError

PROXIES = parse_trusted_proxies(("127.0.0.1", "10.0.0.0/8", "fd00::/8"))


@pytest.mark.parametrize(
    ("peer", "xff", "expected"),
    [
        # no proxy trusted: the peer, whatever the header says
        ("203.0.113.9", ["198.51.100.1"], "203.0.113.9"),
        # a direct client cannot spoof its way out by writing the header itself
        ("203.0.113.9", ["127.0.0.1"], "203.0.113.9"),
        # behind a trusted proxy: the address it vouches for
        ("127.0.0.1", ["198.51.100.1"], "198.51.100.1"),
        # the client prepended a fake hop: the right-most untrusted address wins
        ("127.0.0.1", ["6.6.6.6, 198.51.100.1"], "198.51.100.1"),
        ("127.0.0.1", ["6.6.6.6", "198.51.100.1"], "198.51.100.1"),
        # chains of trusted proxies are walked through
        ("127.0.0.1", ["198.51.100.1, 10.1.2.3"], "198.51.100.1"),
        ("10.9.9.9", ["2001:db8::7, fd00::1"], "2001:db8::7"),
        # a fake trusted hop to the left of the client does not help
        ("127.0.0.1", ["10.0.0.1, 198.51.100.1"], "198.51.100.1"),
        # everything trusted: the left-most hop stands in for the client
        ("127.0.0.1", ["10.0.0.2"], "10.0.0.2"),
        # malformed entries stop the walk at the last trusted hop
        ("127.0.0.1", ["198.51.100.1, not-an-ip"], "127.0.0.1"),
        ("127.0.0.1", ["198.51.100.1, unknown, 10.0.0.3"], "10.0.0.3"),
        # trusted proxy without a header: the proxy itself
        ("127.0.0.1", [], "127.0.0.1"),
        # IPv6 forms: brackets, zone ids, v4-mapped peers
        ("::ffff:127.0.0.1", ["[2001:db8::1]"], "2001:db8::1"),
        ("fd00::5", ["198.51.100.4"], "198.51.100.4"),
        ("fe80::1%eth0", ["198.51.100.4"], "fe80::1"),
        (None, ["198.51.100.4"], None),
    ],
)
def test_the_client_address_is_the_rightmost_hop_no_trusted_proxy_vouches_for(
    peer: str | None, xff: list[str], expected: str | None
) -> None:
    assert client_address(peer, xff, PROXIES) == expected


def test_without_trusted_proxies_the_header_is_never_read() -> None:
    assert client_address("127.0.0.1", ["198.51.100.1"], ()) == "127.0.0.1"


def test_a_header_of_thousands_of_hops_is_read_only_up_to_a_bound() -> None:
    header = ", ".join(["10.0.0.1"] * 5000)
    assert client_address("127.0.0.1", [header], PROXIES) == "10.0.0.1"


@pytest.mark.parametrize("entry", ["10.0.0.0/33", "localhost", "1.2.3", ""])
def test_a_malformed_trusted_proxy_stops_the_start_with_the_setting_named(entry: str) -> None:
    with pytest.raises(SettingsError, match="trusted_proxies"):
        Settings(trusted_proxies=(entry,))

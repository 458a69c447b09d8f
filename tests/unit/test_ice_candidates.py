"""Which of an offer's candidates the connection check may contact, and what its answer shows."""

from __future__ import annotations

import pytest

from server.security.forwarded import Address, parse_address
from server.security.ice_candidates import (
    filter_answer,
    filter_offer,
    has_candidates,
    turn_server_addresses,
)

HEAD = ["v=0", "m=audio 9 UDP/TLS/RTP/SAVPF 111", "a=mid:0"]
TURN = turn_server_addresses(["turn:198.51.100.50:3478?transport=udp", "turns:[2001:db8::50]:5349"])


def cand(address: str, kind: str = "host") -> str:
    return f"a=candidate:1 1 udp 2130706431 {address} 40000 typ {kind}"


def req(*addresses: str) -> frozenset[Address]:
    return frozenset(a for a in map(parse_address, addresses) if a is not None)


def kept(sdp_lines: list[str], requester: frozenset[Address]) -> list[str]:
    sdp = "\r\n".join(HEAD + sdp_lines) + "\r\n"
    out = filter_offer(sdp, requester, TURN).sdp.split("\r\n")
    return [line.split()[4] for line in out if line.startswith("a=candidate:")]


@pytest.mark.parametrize(
    ("candidate", "requester", "allowed"),
    [
        (cand("203.0.113.7"), req("203.0.113.7"), True),
        (cand("203.0.113.7", "srflx"), req("203.0.113.7"), True),
        (cand("198.51.100.99"), req("203.0.113.7"), False),  # someone else's public address
        (cand("10.0.0.1"), req("203.0.113.7"), False),  # RFC 1918
        (cand("192.168.1.10"), req("203.0.113.7"), False),
        (cand("169.254.169.254"), req("203.0.113.7"), False),  # link-local (cloud metadata)
        (cand("127.0.0.1"), req("203.0.113.7"), False),  # loopback
        (cand("0.0.0.0"), req("0.0.0.0"), False),  # unspecified
        (cand("224.0.0.251"), req("224.0.0.251"), False),  # multicast
        (cand("10.0.0.1"), req("10.0.0.1"), True),  # the requester's very own address
        (cand("127.0.0.1"), req("127.0.0.1"), True),  # loopback request, loopback candidate
        (cand("10.0.0.1"), req("127.0.0.1"), False),  # loopback request: loopback only
        (cand("2001:db8::7"), req("2001:db8::7"), True),
        (cand("2001:db8::8"), req("2001:db8::7"), False),
        (cand("fd00::1"), req("2001:db8::7"), False),  # ULA
        (cand("fe80::1"), req("2001:db8::7"), False),  # IPv6 link-local
        (cand("::1"), req("2001:db8::7"), False),
        (cand("ff02::1"), req("ff02::1"), False),
        (cand("::ffff:203.0.113.7"), req("203.0.113.7"), True),  # v4-mapped is the same host
        (cand("a1b2c3d4-0000-4000-8000-000000000000.local"), req("203.0.113.7"), False),
        (cand("198.51.100.50", "relay"), req("203.0.113.7"), True),  # our TURN server
        (cand("2001:db8::50", "relay"), req("203.0.113.7"), True),
        (cand("198.51.100.51", "relay"), req("203.0.113.7"), False),  # not our TURN server
        (cand("198.51.100.50", "host"), req("203.0.113.7"), False),  # TURN only as relay
        ("a=candidate:1 1 udp 1 203.0.113.7", req("203.0.113.7"), False),  # malformed
        (cand("not-an-address"), req("203.0.113.7"), False),
    ],
)
def test_only_the_requesters_own_address_or_our_turn_relay_may_be_contacted(
    candidate: str, requester: frozenset[Address], allowed: bool
) -> None:
    assert bool(kept([candidate], requester)) == allowed


def test_the_end_of_candidates_marker_goes_so_the_browser_can_still_be_discovered() -> None:
    sdp = "\r\n".join([*HEAD, cand("203.0.113.7"), "a=end-of-candidates"]) + "\r\n"
    assert "end-of-candidates" not in filter_offer(sdp, req("203.0.113.7")).sdp


@pytest.mark.parametrize(
    ("lines", "refused"),
    [
        ([cand("198.51.100.99"), cand("224.0.0.1")], True),  # only other hosts: an attack
        ([cand("198.51.100.99", "srflx")], True),
        ([cand("x.local")], False),  # mDNS: the browser's own checks will reach us
        ([cand("192.168.1.10"), cand("198.51.100.99")], False),  # a browser behind NAT
        ([cand("203.0.113.7")], False),
        ([], False),  # nothing named: left to aiortc
    ],
)
def test_an_offer_whose_every_candidate_is_refused_is_refused_whole(
    lines: list[str], refused: bool
) -> None:
    sdp = "\r\n".join(HEAD + lines) + "\r\n"
    assert filter_offer(sdp, req("203.0.113.7"), TURN).refused_entirely is refused


def test_the_answer_lists_only_the_advertised_address() -> None:
    server_side = [
        cand("192.0.2.2"),
        cand("172.17.0.5"),
        cand("fd00::2"),
        cand("192.0.2.2", "srflx"),
    ]
    sdp = "\r\n".join(HEAD + server_side) + "\r\n"
    answer = filter_answer(sdp, parse_address("192.0.2.2"))  # type: ignore[arg-type]
    assert [line.split()[4] for line in answer.splitlines() if "candidate" in line] == [
        "192.0.2.2",
        "192.0.2.2",
    ]
    assert not has_candidates(filter_answer(sdp, parse_address("203.0.113.1")))  # type: ignore[arg-type]


def test_turn_servers_count_only_when_given_as_addresses() -> None:
    assert turn_server_addresses(["turn:turn.example:3478", "stun:198.51.100.1"]) == req(
        "198.51.100.1"
    )

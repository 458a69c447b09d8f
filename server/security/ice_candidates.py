"""Which ICE candidates the connection check's server peer may use (pure).

Every candidate line in a browser's offer is a target aiortc will send STUN to, so an offer
naming a third party's address turns the server into a packet cannon, and one naming
10.0.0.1 or 169.254.169.254 probes the clinic's own network. A candidate survives only when
it is the requester's own address (or one of our TURN servers' relay addresses); whatever the
browser really has, aioice still learns from the browser's own checks (peer-reflexive).
The answer, in turn, lists only the address the client already uses to reach us.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from ipaddress import ip_network
from urllib.parse import urlsplit

from server.security.forwarded import Address, parse_address

_CANDIDATE = "a=candidate:"


@dataclass(frozen=True)
class FilteredOffer:
    """The offer as aiortc may see it, and what was left of its candidates."""

    sdp: str
    named: int
    kept: int
    # Dropped candidates a real browser behind NAT shows (mDNS names, private or link-local
    # host addresses): the browser's own checks still reach us, so the check can still work.
    left_to_discovery: int

    @property
    def refused_entirely(self) -> bool:
        """True when the offer named candidates and not one is usable, here or by discovery
        (an offer naming none is left to aiortc, which refuses what it cannot answer)."""
        return self.named > 0 and self.kept == 0 and self.left_to_discovery == 0


# Where a browser behind NAT has its host addresses (RFC 1918, carrier-grade NAT, ULA,
# link-local); Python's `is_private` would also count documentation ranges.
_LAN = tuple(
    ip_network(net)
    for net in (
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "169.254.0.0/16",
        "fc00::/7",
        "fe80::/10",
    )
)


def _on_a_lan(address: Address) -> bool:
    return any(address.version == net.version and address in net for net in _LAN)


def _never_a_peer(address: Address) -> bool:
    return address.is_multicast or address.is_unspecified


def _fields(line: str) -> tuple[str, str] | None:
    """(address, type) of a candidate line, or None when it is malformed."""
    fields = line[len(_CANDIDATE) :].split()
    if len(fields) < 8 or fields[6] != "typ":
        return None
    return fields[4], fields[7]


def candidate_allowed(
    address: Address,
    kind: str,
    requester: Collection[Address],
    turn_servers: Collection[Address],
) -> bool:
    """May the server send STUN to this candidate of the requester's offer?"""
    if _never_a_peer(address):
        return False
    if kind == "relay" and address in turn_servers:
        return True
    # Private, link-local and loopback targets only when the requester is that very address.
    return address in requester


def filter_offer(
    sdp: str, requester: Collection[Address], turn_servers: Collection[Address] = ()
) -> FilteredOffer:
    """The offer without candidates the server must not contact, and without an
    end-of-candidates marker (so peer-reflexive discovery stays open)."""
    kept_lines: list[str] = []
    named = kept = discovery = 0
    for line in sdp.splitlines():
        if line.startswith("a=end-of-candidates"):
            continue
        if line.startswith(_CANDIDATE):
            named += 1
            fields = _fields(line)
            if fields is None:
                continue
            host, kind = fields
            address = parse_address(host) if not host.lower().endswith(".local") else None
            if address is not None and candidate_allowed(address, kind, requester, turn_servers):
                kept += 1
                kept_lines.append(line)
            elif kind == "host" and (
                host.lower().endswith(".local") or (address is not None and _on_a_lan(address))
            ):
                discovery += 1
            continue
        kept_lines.append(line)
    return FilteredOffer("\r\n".join(kept_lines) + "\r\n", named, kept, discovery)


def filter_answer(sdp: str, advertised: Address) -> str:
    """The answer listing only candidates at `advertised`, the address clients reach us at."""
    kept_lines = []
    for line in sdp.splitlines():
        if line.startswith(_CANDIDATE):
            fields = _fields(line)
            if fields is None or parse_address(fields[0]) != advertised:
                continue
        kept_lines.append(line)
    return "\r\n".join(kept_lines) + "\r\n"


def has_candidates(sdp: str) -> bool:
    """True when the SDP lists at least one candidate."""
    return any(line.startswith(_CANDIDATE) for line in sdp.splitlines())


def turn_server_addresses(turn_urls: Collection[str]) -> frozenset[Address]:
    """The literal IP addresses of our TURN servers (host names are not resolved here)."""
    addresses: set[Address] = set()
    for url in turn_urls:
        rest = url.split(":", 1)[1] if ":" in url else url
        host = urlsplit(f"//{rest}").hostname or ""
        address = parse_address(host)
        if address is not None:
            addresses.add(address)
    return frozenset(addresses)


def is_local(address: Address | None) -> bool:
    """True for a loopback requester: a process on this very machine."""
    return address is not None and address.is_loopback

"""The client's address: the direct peer, or behind trusted proxies the right-most address in
`X-Forwarded-For` that is not itself a trusted proxy (pure; the request edge is
`server.web.identity.client_address`).

Only the hops we trust can vouch for the hop before them: everything left of the first
untrusted address could have been written by the client itself.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

Address = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network
# Headers longer than this are not a real proxy chain; the excess is not read.
MAX_HOPS = 32


def parse_address(text: str) -> Address | None:
    """An IP address from a peer or header entry (`[v6]`, zone ids and v4-mapped v6 handled)."""
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    text = text.split("%", 1)[0]  # a zone id names a local interface, not a host
    try:
        address = ip_address(text)
    except ValueError:
        return None
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@functools.cache
def parse_trusted_proxies(entries: tuple[str, ...]) -> tuple[Network, ...]:
    """Addresses and CIDR ranges (IPv4 or IPv6); ValueError names the first malformed one."""
    networks = []
    for entry in entries:
        try:
            networks.append(ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ValueError(
                f"trusted_proxies: {entry!r} is not an address or CIDR range"
            ) from None
    return tuple(networks)


def _trusted(address: Address, trusted: Sequence[Network]) -> bool:
    return any(address.version == net.version and address in net for net in trusted)


def forwarded_hops(header_values: Iterable[str]) -> list[str]:
    """The X-Forwarded-For entries in order, across repeated headers."""
    hops = [hop for value in header_values for hop in value.split(",")]
    return hops[-MAX_HOPS:]


def client_address(
    peer: str | None, forwarded_for: Iterable[str], trusted: Sequence[Network]
) -> str | None:
    """The address of whoever is asking, as far as trusted hops can vouch for it.

    Walks from the direct peer leftwards through X-Forwarded-For while the current hop is a
    trusted proxy; stops at the first untrusted address (the client) or at a malformed entry
    (then the last trusted hop stands in for the client). None when the peer is unknown.
    """
    current = parse_address(peer) if peer else None
    if current is None:
        return None
    if not trusted:
        return str(current)
    for hop in reversed(forwarded_hops(forwarded_for)):
        if not _trusted(current, trusted):
            break
        parsed = parse_address(hop)
        if parsed is None:
            break
        current = parsed
    return str(current)

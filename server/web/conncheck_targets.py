"""The connection check's network edge: whose candidates the server peer may contact, and
which of its own addresses the answer may show."""

from __future__ import annotations

import functools
from ipaddress import IPv4Address

from aiohttp import web
from aioice.ice import get_host_addresses

from server.errors import AttuneError
from server.keys import SETTINGS
from server.security.forwarded import Address, parse_address
from server.security.ice_candidates import filter_offer, turn_server_addresses
from server.web.identity import client_address

NO_USABLE_CANDIDATES = (
    "The offer names no network address this server may contact. Connect from the browser "
    "you are using, without a proxy, and try again."
)


class UnusableOffer(AttuneError):
    """Every candidate of the offer was refused (not the requester's, not our TURN)."""

    status = 400
    code = "invalid"


@functools.cache
def _this_machine() -> frozenset[Address]:
    """This machine's own addresses: what a process on loopback may name as its own."""
    found = {parse_address(a) for a in get_host_addresses(use_ipv4=True, use_ipv6=True)}
    found |= {parse_address("127.0.0.1"), parse_address("::1")}
    return frozenset(a for a in found if a is not None)


def _received_on(request: web.Request) -> Address | None:
    transport = request.transport
    sockname = transport.get_extra_info("sockname") if transport is not None else None
    if isinstance(sockname, tuple) and sockname and isinstance(sockname[0], str):
        return parse_address(sockname[0])
    return None


def conncheck_targets(request: web.Request, offer_sdp: str) -> tuple[str, Address | None]:
    """The offer with only contactable candidates, and the one address the answer may list
    (None for a requester on this machine, which knows this machine's addresses anyway).

    UnusableOffer when no candidate is left and none could be discovered from the browser."""
    settings = request.app[SETTINGS]
    client = parse_address(client_address(request))
    local = client is not None and client.is_loopback
    requester: frozenset[Address] = frozenset()
    if client is not None:
        requester = _this_machine() | {client} if local else frozenset({client})
    filtered = filter_offer(offer_sdp, requester, turn_server_addresses(settings.turn_urls))
    if filtered.refused_entirely:
        raise UnusableOffer(NO_USABLE_CANDIDATES)
    if local:
        return filtered.sdp, None
    configured = settings.conncheck_advertised_address
    advertise = parse_address(configured) if configured else _received_on(request)
    # Unknown: an address no candidate has, so the answer lists none rather than all.
    return filtered.sdp, advertise or IPv4Address(0)

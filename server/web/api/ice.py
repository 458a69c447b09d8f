"""API: ICE servers for whoever is about to call."""

from __future__ import annotations

import secrets
from typing import Final

from aiohttp import web

from server.core.ice import ice_configuration_for
from server.keys import CLOCK, SETTINGS
from server.web.openapi import Operation


async def ice_servers(request: web.Request) -> web.StreamResponse:
    """ICE servers for whoever is about to call: a signed-in therapist or a client via the link."""
    settings = request.app[SETTINGS]
    config = ice_configuration_for(
        settings, now_unix=int(request.app[CLOCK]().timestamp()), opaque_id=secrets.token_hex(8)
    )
    return web.json_response(config)


OPERATIONS: Final[tuple[Operation, ...]] = (
    Operation(
        "GET",
        "/api/v1/ice",
        ice_servers,
        "ICE servers (STUN, TURN with short-lived credentials), the transport policy and"
        " the credentials' lifetime in seconds (ttlSeconds)",
        "iceServers",
        auth="account_or_client",
        responses={200: ("RTCConfiguration fields", {"type": "object"})},
        tags=["video"],
    ),
)

"""ICE configuration for browsers: STUN, and TURN with short-lived TURN REST credentials (pure)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from server.settings import Settings


@dataclass(frozen=True)
class TurnCredential:
    """TURN REST API credential: the TURN server recomputes the password from the secret."""

    username: str
    password: str
    expires_at_unix: int


def turn_credential(
    secret: str, *, now_unix: int, ttl_seconds: int, opaque_id: str
) -> TurnCredential:
    """username = "<expiry>:<opaque id>", password = base64(HMAC-SHA1(secret, username))."""
    expiry = now_unix + ttl_seconds
    username = f"{expiry}:{opaque_id}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return TurnCredential(username, base64.b64encode(digest).decode("ascii"), expiry)


def ice_configuration(
    *,
    stun_urls: Sequence[str],
    turn_urls: Sequence[str],
    turn_secret: str,
    relay_only: bool,
    now_unix: int,
    ttl_seconds: int,
    opaque_id: str,
) -> dict[str, Any]:
    """The RTCConfiguration fields a browser needs (iceServers, iceTransportPolicy), plus
    `ttlSeconds`: how long the TURN credentials in it live (0 when there are none)."""
    servers: list[dict[str, Any]] = []
    ttl = 0
    if stun_urls:
        servers.append({"urls": list(stun_urls)})
    if turn_urls and turn_secret:
        credential = turn_credential(
            turn_secret, now_unix=now_unix, ttl_seconds=ttl_seconds, opaque_id=opaque_id
        )
        servers.append(
            {
                "urls": list(turn_urls),
                "username": credential.username,
                "credential": credential.password,
            }
        )
        ttl = ttl_seconds
    use_relay = relay_only and bool(turn_urls and turn_secret)
    return {
        "iceServers": servers,
        "iceTransportPolicy": "relay" if use_relay else "all",
        "ttlSeconds": ttl,
    }


def ice_configuration_for(settings: Settings, *, now_unix: int, opaque_id: str) -> dict[str, Any]:
    """The deployment's ICE configuration (the caller supplies a fresh random `opaque_id`)."""
    return ice_configuration(
        stun_urls=settings.stun_urls,
        turn_urls=settings.turn_urls,
        turn_secret=settings.turn_secret,
        relay_only=settings.relay_only,
        now_unix=now_unix,
        ttl_seconds=settings.turn_ttl_seconds,
        opaque_id=opaque_id,
    )

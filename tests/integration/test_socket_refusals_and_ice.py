"""What the session socket tells a page: why it was refused (a close code and words, instead of
an HTTP error the browser cannot read), and the ICE servers with their transport policy in
every `welcome`, so a reconnect needs no second fetch."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient

from server.core.protocol import NO_RECONNECT_CLOSE_CODES, CloseCode
from server.settings import Settings
from tests.integration.test_signaling import _setup

TURN_URL = "turn:127.0.0.1:3478?transport=udp"


@pytest.fixture
def settings(data_dir: Path) -> Settings:
    """A relay-only deployment with a TURN server (credentials live ten minutes)."""
    return Settings(
        data_dir=data_dir,
        stun_urls=("stun:127.0.0.1:3478",),
        turn_urls=(TURN_URL,),
        turn_secret="s3cret",
        turn_ttl_seconds=600,
        relay_only=True,
    )


async def refusal(http: TestClient, session_id: str) -> tuple[int, str]:
    """Open the socket as a browser would; the close code and reason it gets."""
    ws = await http.ws_connect(f"/ws/session/{session_id}")
    async with asyncio.timeout(5):
        msg = await ws.receive()
    assert msg.type == WSMsgType.CLOSE, (msg.type, msg.data)
    return int(msg.data), str(msg.extra)


async def test_a_client_without_telehealth_consent_is_told_why_instead_of_retrying(
    client: TestClient, aiohttp_client: Any
) -> None:
    _, visitor, _ = await _setup(client, aiohttp_client, consent=False)

    code, reason = await refusal(visitor.http, visitor.session_id)

    assert code == CloseCode.CONSENT_REQUIRED == 4412
    assert reason == "Please agree to the telehealth consent first."
    assert code in NO_RECONNECT_CLOSE_CODES


async def test_a_stranger_and_a_wrong_session_are_told_apart_by_close_code(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, _, _ = await _setup(client, aiohttp_client)
    stranger = await aiohttp_client(client.server)

    assert (await refusal(stranger, therapist.session_id))[0] == CloseCode.UNAUTHORIZED
    code, reason = await refusal(client, "0" * 32)
    assert (code, reason) == (CloseCode.NOT_FOUND, "No such session.")
    assert {CloseCode.UNAUTHORIZED, CloseCode.NOT_FOUND} <= NO_RECONNECT_CLOSE_CODES


async def test_an_ended_session_closes_with_session_ended_and_its_reason(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, _, _ = await _setup(client, aiohttp_client)
    await therapist.connect()
    await therapist.send({"type": "end"})
    await therapist.expect("session-ended")

    code, reason = await refusal(client, therapist.session_id)

    assert (code, reason) == (CloseCode.SESSION_ENDED, "This session has ended.")


async def test_a_plain_http_request_to_the_socket_still_gets_the_http_error(
    client: TestClient, aiohttp_client: Any
) -> None:
    _, visitor, _ = await _setup(client, aiohttp_client, consent=False)
    response = await visitor.http.get(f"/ws/session/{visitor.session_id}")
    assert response.status == 403
    assert (await response.json())["error"]["code"] == "consent-required"


async def test_welcome_carries_relay_only_policy_and_fresh_turn_credentials(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, visitor, _ = await _setup(client, aiohttp_client)

    for party in (therapist, visitor):
        welcome = await party.connect()
        assert welcome["ice_transport_policy"] == "relay"
        assert welcome["ice_ttl_seconds"] == 600
        stun, turn = welcome["ice_servers"]
        assert stun == {"urls": ["stun:127.0.0.1:3478"]}
        assert turn["urls"] == [TURN_URL] and turn["username"] and turn["credential"]
    fetched = await (await client.get("/api/v1/ice")).json()
    assert fetched["iceTransportPolicy"] == "relay" and fetched["ttlSeconds"] == 600

"""Screen sharing over the session WebSocket: only the small control messages pass the server
(media goes peer to peer), and a client shares only while the therapist allows it."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient

from tests.integration.test_signaling import Party, _admitted, _setup

SCREEN = "6f1c2a0e-3b5d-4c7e-9f10-2a3b4c5d6e7f"


async def heard_before_pong(party: Party) -> list[str]:
    """Ping, and the types of every message that arrives before the pong (in order)."""
    assert party.ws is not None
    await party.send({"type": "ping"})
    heard: list[str] = []
    async with asyncio.timeout(5):
        while True:
            msg = await party.ws.receive()
            assert msg.type == WSMsgType.TEXT
            kind = json.loads(msg.data)["type"]
            if kind == "pong":
                return heard
            heard.append(kind)


async def test_the_therapist_shares_and_the_client_learns_which_stream_is_the_screen(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, visitor, _ = await _setup(client, aiohttp_client)
    await _admitted(therapist, visitor)
    await therapist.send({"type": "screen-share", "sharing": True, "stream_id": SCREEN})
    assert await visitor.expect("peer-screen") == {
        "type": "peer-screen",
        "role": "therapist",
        "sharing": True,
        "stream_id": SCREEN,
    }
    await therapist.send({"type": "screen-share", "sharing": False})
    assert (await visitor.expect("peer-screen"))["sharing"] is False


async def test_a_client_cannot_share_until_the_therapist_allows_it(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, visitor, _ = await _setup(client, aiohttp_client)
    await _admitted(therapist, visitor)
    start = {"type": "screen-share", "sharing": True, "stream_id": SCREEN, "id": "s1"}
    await visitor.send(start)
    error = await visitor.expect("error")
    assert (error["code"], error["ref"]) == ("screen-share-not-allowed", "s1")
    assert "peer-screen" not in await heard_before_pong(therapist)  # nothing was relayed

    await visitor.send({"type": "screen-share-allow", "allowed": True})
    assert (await visitor.expect("error"))["code"] == "forbidden"  # only the therapist allows

    await therapist.send({"type": "screen-share-allow", "allowed": True})
    assert (await visitor.expect("screen-share-allowed"))["allowed"] is True
    assert (await therapist.expect("screen-share-allowed"))["allowed"] is True
    await visitor.send(start)
    shared = await therapist.expect("peer-screen")
    assert (shared["role"], shared["sharing"], shared["stream_id"]) == ("client", True, SCREEN)

    await therapist.send({"type": "screen-share-allow", "allowed": False})
    assert (await visitor.expect("screen-share-allowed"))["allowed"] is False
    stopped = await therapist.expect("peer-screen")
    assert (stopped["role"], stopped["sharing"]) == ("client", False)


async def test_the_leave_ends_when_the_client_is_sent_back(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, visitor, _ = await _setup(client, aiohttp_client)
    welcome = await _admitted(therapist, visitor)
    await therapist.send({"type": "screen-share-allow", "allowed": True})
    await visitor.expect("screen-share-allowed")
    await therapist.send({"type": "send-back"})
    await visitor.expect("sent-back")
    await visitor.send({"type": "screen-share", "sharing": True, "stream_id": SCREEN})
    assert (await visitor.expect("error"))["code"] == "not-admitted"
    await therapist.send({"type": "admit", "knock_id": welcome["knock_id"]})
    await visitor.expect("admitted")
    await visitor.send({"type": "screen-share", "sharing": True, "stream_id": SCREEN})
    assert (await visitor.expect("error"))["code"] == "screen-share-not-allowed"


async def test_malformed_share_messages_are_refused_and_the_socket_stays_up(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, visitor, _ = await _setup(client, aiohttp_client)
    await _admitted(therapist, visitor)
    for bad in (
        {"type": "screen-share", "sharing": True},
        {"type": "screen-share", "sharing": True, "stream_id": "<script>"},
        {"type": "screen-share-allow", "allowed": "yes"},
    ):
        await therapist.send(bad)
        assert (await therapist.expect("error"))["code"] == "invalid"
    await therapist.send({"type": "ping"})
    await therapist.expect("pong")


async def test_a_waiting_client_cannot_announce_a_share(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, visitor, _ = await _setup(client, aiohttp_client)
    await therapist.connect()
    await visitor.connect()
    await visitor.send({"type": "screen-share", "sharing": True, "stream_id": SCREEN})
    assert (await visitor.expect("error"))["code"] == "not-admitted"
    assert "peer-screen" not in await heard_before_pong(therapist)

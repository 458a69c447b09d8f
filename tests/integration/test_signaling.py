"""The session WebSocket: handshake, waiting room, admission, relay, limits, resume, end."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest
from aiohttp import ClientWebSocketResponse, WSMsgType
from aiohttp.test_utils import TestClient

from server.core.protocol import CloseCode
from server.keys import HUB
from server.realtime import signaling
from server.realtime.bus import RoomOp
from tests.conftest import add_account, sign_in

OFFER = {"kind": "description", "description": {"type": "offer", "sdp": "v=0\r\n"}}


class Party:
    """One side of a call: its HTTP client (cookies) and its WebSocket."""

    def __init__(self, http: TestClient, session_id: str) -> None:
        self.http, self.session_id = http, session_id
        self.ws: ClientWebSocketResponse | None = None
        self.join_token = ""

    async def connect(self, resume: str | None = None) -> dict[str, Any]:
        self.ws = await self.http.ws_connect(f"/ws/session/{self.session_id}")
        hello: dict[str, Any] = {"type": "hello", "version": 1}
        if resume:
            hello["resume"] = resume
        await self.ws.send_json(hello)
        return await self.expect("welcome")

    async def send(self, message: dict[str, Any]) -> None:
        assert self.ws is not None
        await self.ws.send_json(message)

    async def expect(self, kind: str, within: float = 5) -> dict[str, Any]:
        """The next message of this type (others on the way are skipped)."""
        assert self.ws is not None
        async with asyncio.timeout(within):
            while True:
                msg = await self.ws.receive()
                assert msg.type == WSMsgType.TEXT, (msg.type, msg.data, msg.extra)
                data: dict[str, Any] = json.loads(msg.data)
                if data["type"] == kind:
                    return data

    async def closed_with(self, within: float = 5) -> int:
        assert self.ws is not None
        async with asyncio.timeout(within):
            while True:
                msg = await self.ws.receive()
                if msg.type == WSMsgType.CLOSE:  # the code the server sent, as a browser sees it
                    return int(msg.data)
                if msg.type in (WSMsgType.CLOSED, WSMsgType.CLOSING):
                    return int(self.ws.close_code or msg.data or 0)


async def _setup(
    client: TestClient, aiohttp_client: Any, *, consent: bool = True
) -> tuple[Party, Party, str]:
    """A therapist (on `client`) and a client on its own HTTP client, both for one session."""
    await add_account(client.app, "t@example.org")
    csrf = await sign_in(client, "t@example.org")
    headers = {"X-CSRF-Token": csrf}
    created = await (
        await client.post("/api/v1/clients", json={"alias": "J.M."}, headers=headers)
    ).json()
    body = await (
        await client.post(
            "/api/v1/sessions",
            json={"client_id": created["id"], "starts_at": "2026-11-23T09:00:00Z"},
            headers=headers,
        )
    ).json()
    session_id = body["session"]["id"]
    visitor = await aiohttp_client(client.server)
    join_token = body["join_url"].split("/join/")[1]
    await visitor.get("/join/" + join_token)
    if consent:
        page = await (await visitor.get("/visit/consent")).text()
        token = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert token
        await visitor.post(
            "/api/v1/visit/consents",
            headers={"X-CSRF-Token": token.group(1)},
            json={"purpose": "telehealth", "decision": "granted", "notice_version": 1},
        )
    visiting = Party(visitor, session_id)
    visiting.join_token = join_token
    return Party(client, session_id), visiting, csrf


async def test_client_waits_until_admitted_and_only_then_signaling_flows(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, visitor, _ = await _setup(client, aiohttp_client)
    welcome = await therapist.connect()
    assert welcome["role"] == "therapist"
    client_welcome = await visitor.connect()
    assert client_welcome["role"] == "client" and client_welcome["state"] == "waiting"
    assert client_welcome["consents"]["telehealth"] == "granted"
    lobby = await therapist.expect("lobby")
    while not lobby["waiting"]:  # the therapist's first lobby, from before the knock, is empty
        lobby = await therapist.expect("lobby")
    (knock,) = lobby["waiting"]
    assert knock["label"] == "J.M."

    await visitor.send({"type": "relay", "payload": OFFER, "id": "m1"})
    error = await visitor.expect("error")
    assert error["code"] == "not-admitted" and error["ref"] == "m1"
    await therapist.send({"type": "relay", "payload": OFFER})
    assert (await therapist.expect("error"))["code"] in {"not-admitted", "no-peer"}

    await therapist.send({"type": "admit", "knock_id": knock["knock_id"]})
    await visitor.expect("admitted")
    await therapist.expect("peer-joined")
    await visitor.send({"type": "relay", "payload": OFFER})
    relayed = await therapist.expect("signal-relay")
    assert relayed["payload"] == OFFER


async def test_a_client_without_telehealth_consent_cannot_knock(
    client: TestClient, aiohttp_client: Any
) -> None:
    _, visitor, _ = await _setup(client, aiohttp_client, consent=False)
    response = await visitor.http.get(f"/ws/session/{visitor.session_id}")
    assert response.status == 403
    assert (await response.json())["error"]["code"] == "consent-required"


async def test_strangers_and_other_sessions_are_refused(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, _, _ = await _setup(client, aiohttp_client)
    stranger = await aiohttp_client(client.server)
    assert (await stranger.get(f"/ws/session/{therapist.session_id}")).status == 401
    assert (await client.get(f"/ws/session/{'0' * 32}")).status == 404
    cross = await client.get(
        f"/ws/session/{therapist.session_id}", headers={"Origin": "https://evil.example"}
    )
    assert cross.status == 403


async def test_hello_must_come_first_and_bad_frames_get_errors_without_closing(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, _, _ = await _setup(client, aiohttp_client)
    ws = await client.ws_connect(f"/ws/session/{therapist.session_id}")
    await ws.send_json({"type": "ping"})
    assert json.loads((await ws.receive()).data)["code"] == "hello-required"
    assert (await ws.receive()).type in (WSMsgType.CLOSE, WSMsgType.CLOSED)
    assert ws.close_code == 4400

    await therapist.connect()
    for frame, code in (
        ("{not json", "bad-json"),
        ('{"type":"fly"}', "unknown-type"),
        ('{"type":"admit"}', "invalid"),
        ('{"type":"ping","pad":"' + "x" * 70_000 + '"}', "too-large"),
    ):
        assert therapist.ws is not None
        await therapist.ws.send_str(frame)
        assert (await therapist.expect("error"))["code"] == code
    await therapist.ws.send_bytes(b'{"type":"ping"}')  # a binary frame: told, kept
    binary = await therapist.expect("error")
    assert (binary["code"], binary["message"]) == ("invalid", "Send JSON text frames.")
    await therapist.send({"type": "ping", "id": "beat-9"})
    assert (await therapist.expect("pong")).get("ref") == "beat-9"  # still connected, echoed


async def test_frames_beyond_the_hard_limit_close_the_socket(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, _, _ = await _setup(client, aiohttp_client)
    await therapist.connect()
    assert therapist.ws is not None
    await therapist.ws.send_str("x" * 200_000)
    assert await therapist.closed_with() == 1009


async def test_a_flood_is_rate_limited(client: TestClient, aiohttp_client: Any) -> None:
    therapist, _, _ = await _setup(client, aiohttp_client)
    await therapist.connect()
    for _ in range(80):
        await therapist.send({"type": "ping"})
    error = await therapist.expect("error")
    assert error["code"] == "rate-limited"


async def test_clients_cannot_use_therapist_actions(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, visitor, _ = await _setup(client, aiohttp_client)
    await therapist.connect()
    await visitor.connect()
    await visitor.send({"type": "admit", "knock_id": "k1"})
    assert (await visitor.expect("error"))["code"] == "forbidden"
    await visitor.send({"type": "end"})
    assert (await visitor.expect("error"))["code"] == "forbidden"


async def _admitted(therapist: Party, visitor: Party) -> dict[str, Any]:
    await therapist.connect()
    welcome = await visitor.connect()
    await therapist.send({"type": "admit", "knock_id": welcome["knock_id"]})
    await visitor.expect("admitted")
    await therapist.expect("peer-joined")
    return welcome


async def test_deny_closes_the_knock(client: TestClient, aiohttp_client: Any) -> None:
    therapist, visitor, _ = await _setup(client, aiohttp_client)
    await therapist.connect()
    welcome = await visitor.connect()
    await therapist.send({"type": "deny", "knock_id": welcome["knock_id"]})
    await visitor.expect("denied")
    assert await visitor.closed_with() == 4003


async def test_send_back_returns_the_client_to_the_waiting_room(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, visitor, _ = await _setup(client, aiohttp_client)
    await _admitted(therapist, visitor)
    await therapist.send({"type": "send-back"})
    await visitor.expect("sent-back")
    await therapist.expect("peer-left")
    await visitor.send({"type": "relay", "payload": OFFER})
    assert (await visitor.expect("error"))["code"] == "not-admitted"


async def test_a_dropped_client_resumes_into_the_call_without_a_new_link(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, visitor, _ = await _setup(client, aiohttp_client)
    welcome = await _admitted(therapist, visitor)
    assert visitor.ws is not None
    await visitor.ws.close()
    await therapist.expect("peer-left")
    again = await visitor.connect(resume=welcome["resume_token"])
    assert again["state"] == "in-call"
    joined = await therapist.expect("peer-joined")
    assert joined.get("resumed") is True
    await visitor.send({"type": "relay", "payload": OFFER})
    assert (await therapist.expect("signal-relay"))["payload"] == OFFER


async def test_the_room_hears_a_leave_even_when_the_sockets_handler_is_cancelled(
    client: TestClient, aiohttp_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server may cancel the handler of a socket whose peer hung up (aiohttp's test server
    does; so does a shutdown). The leave it was sending still reaches the room: the therapist
    is told that the client left."""
    therapist, visitor, _ = await _setup(client, aiohttp_client)
    await _admitted(therapist, visitor)
    bus = client.app[HUB].bus
    submit = bus.submit

    async def slow_leave(op: RoomOp) -> None:
        if op.kind == "leave":
            await asyncio.sleep(0.5)  # the hang-up cancels the handler meanwhile
        await submit(op)

    monkeypatch.setattr(bus, "submit", slow_leave)
    assert visitor.ws is not None
    await visitor.ws.close()
    assert (await therapist.expect("peer-left"))["role"] == "client"


async def test_ending_closes_both_sides_opens_the_after_checkin_and_kills_the_link(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, visitor, _ = await _setup(client, aiohttp_client)
    await _admitted(therapist, visitor)
    await therapist.send({"type": "end"})
    after = await visitor.expect("checkin-open")
    assert after["kind"] == "after" and after["questionnaire"]["resourceType"] == "Questionnaire"
    await visitor.expect("session-ended")
    await therapist.expect("session-ended")
    assert await visitor.closed_with() == 4004
    fresh = await aiohttp_client(client.server)
    dead = await fresh.get(f"/join/{visitor.join_token}", allow_redirects=False)
    assert dead.status == 404  # the link no longer works
    again = await visitor.http.get(f"/ws/session/{visitor.session_id}")
    assert again.status == 404  # nor does the room
    status = await (await client.get(f"/api/v1/sessions/{therapist.session_id}")).json()
    assert status["status"] == "ended" and status["invite_active"] is False


async def test_withdrawing_telehealth_consent_ends_the_clients_call_at_once(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, visitor, _ = await _setup(client, aiohttp_client)
    await _admitted(therapist, visitor)
    await visitor.send(
        {"type": "consent", "purpose": "telehealth", "decision": "withdrawn", "notice_version": 1}
    )
    changed = await therapist.expect("consent-changed")
    assert changed == {"type": "consent-changed", "purpose": "telehealth", "decision": "withdrawn"}
    ended = await visitor.expect("session-ended")
    assert ended["reason"] == "consent-withdrawn"
    assert await visitor.closed_with() == 4403  # no longer allowed in: FORBIDDEN, final
    await therapist.expect("peer-left")


@pytest.mark.parametrize("signal", ["need-a-moment", "slow-down"])
async def test_client_signals_reach_only_the_therapist(
    client: TestClient, aiohttp_client: Any, signal: str
) -> None:
    therapist, visitor, _ = await _setup(client, aiohttp_client)
    await _admitted(therapist, visitor)
    await visitor.send({"type": "signal", "signal": signal})
    assert (await therapist.expect("client-signal"))["signal"] == signal


async def test_the_dashboard_sees_who_is_waiting_and_who_is_in_the_call(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, visitor, _ = await _setup(client, aiohttp_client)
    assert (await (await client.get("/api/v1/sessions/presence")).json()) == {"items": []}
    await therapist.connect()
    welcome = await visitor.connect()
    (waiting,) = (await (await client.get("/api/v1/sessions/presence")).json())["items"]
    assert waiting == {"session_id": therapist.session_id, "waiting": ["J.M."], "in_call": False}
    await therapist.send({"type": "admit", "knock_id": welcome["knock_id"]})
    await visitor.expect("admitted")
    (in_call,) = (await (await client.get("/api/v1/sessions/presence")).json())["items"]
    assert in_call["waiting"] == [] and in_call["in_call"] is True
    # the client's own cookie cannot ask
    assert (await visitor.http.get("/api/v1/sessions/presence")).status in (401, 403)


async def test_a_quiet_socket_is_pinged_and_one_that_never_answers_is_dropped(
    client: TestClient, aiohttp_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Frames are read without a timeout each; a watchdog per socket pings after
    PING_AFTER_IDLE_S of silence and closes with 4408 after DROP_AFTER_IDLE_S."""
    monkeypatch.setattr(signaling, "PING_AFTER_IDLE_S", 0.3)
    monkeypatch.setattr(signaling, "DROP_AFTER_IDLE_S", 1.2)
    therapist, _visitor, _ = await _setup(client, aiohttp_client)
    ws = await therapist.http.ws_connect(f"/ws/session/{therapist.session_id}", autoping=False)
    await ws.send_json({"type": "hello", "version": 1})
    assert (await ws.receive_json(timeout=5))["type"] == "welcome"
    # Silent: pinged, and an answer (any frame) counts as being heard.
    for _ in range(3):
        while (msg := await ws.receive(timeout=5)).type is WSMsgType.TEXT:
            pass  # the lobby and panel messages that follow the welcome
        assert msg.type is WSMsgType.PING
        await ws.pong(msg.data)
    assert not ws.closed
    # Silent and deaf: dropped with IDLE_TIMEOUT, one ping first.
    started = asyncio.get_running_loop().time()
    assert (await ws.receive(timeout=5)).type is WSMsgType.PING
    closing = await ws.receive(timeout=5)
    assert closing.type is WSMsgType.CLOSE and closing.data == CloseCode.IDLE_TIMEOUT
    assert asyncio.get_running_loop().time() - started >= 1.2 - 0.3 - 0.1

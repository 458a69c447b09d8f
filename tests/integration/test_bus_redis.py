"""Two app processes, one clinic: rooms routed through the real Redis, one shared PostgreSQL.

Each test starts two `create_app`s in this process with the same `redis_url` (a key prefix
of their own, removed afterwards) and the same PostgreSQL database (created per test from a
template migrated once per run, and dropped). Sockets land on either app; the room runs on the
app that owns it.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import asyncpg
import pytest
from aiohttp.test_utils import TestClient
from redis import Redis as BlockingRedis
from redis.asyncio import Redis
from redis.exceptions import RedisError
from yarl import URL

from server.app import create_app
from server.core.protocol import SessionRole
from server.keys import HUB, LIVE, METRICS
from server.realtime.bus import STATE_TTL_MS, ConnRef, RedisBus, RoomOp
from server.settings import Settings
from tests.conftest import FakeClock, migrated_postgres_template
from tests.integration.test_checkins import _grant
from tests.integration.test_live_cues import _send_lagging_frames
from tests.integration.test_signaling import OFFER, Party, _setup

REDIS_URL = "redis://127.0.0.1:6379/0"
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}


def _unavailable(what: str, exc: BaseException) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} must be reachable in CI: {exc}")
    pytest.skip(f"{what} not reachable: {exc}")


@pytest.fixture
async def database_url() -> AsyncIterator[str]:
    try:
        admin = await asyncpg.connect(database="postgres", timeout=5, **PG)  # type: ignore[arg-type]
    except (OSError, asyncpg.PostgresError) as exc:
        _unavailable("PostgreSQL", exc)
    name = f"attune_bus_{secrets.token_hex(6)}"
    template = await asyncio.to_thread(migrated_postgres_template, "postgres@127.0.0.1:5432")
    await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')  # migrated already
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    redis = Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        await redis.ping()
    except (OSError, RedisError) as exc:
        await redis.aclose()
        _unavailable("Redis", exc)
    prefix = f"attune-test-{secrets.token_hex(4)}:"
    try:
        yield prefix
    finally:  # the client is closed whatever happens to the test or the clean-up
        try:
            keys = [key async for key in redis.scan_iter(match=f"{prefix}*")]
            if keys:
                await redis.delete(*keys)
        finally:
            await redis.aclose()


@pytest.fixture
async def two_apps(
    database_url: str, redis_prefix: str, aiohttp_client: Any, tmp_path: Path, clock: FakeClock
) -> tuple[TestClient, TestClient]:
    """App A and app B: one database, one Redis, one keyring (the same data_dir)."""
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        redis_url=REDIS_URL,
        redis_prefix=redis_prefix,
        redis_lease_ms=1500,
        cue_time_scale=0.05,  # rules that watch minutes fire within a few frames
    )
    first = await aiohttp_client(create_app(settings, clock=clock))
    second = await aiohttp_client(create_app(settings, clock=clock))
    return first, second


async def _on(app_client: TestClient, aiohttp_client: Any, party: Party) -> Party:
    """The same person (same cookies) reaching the clinic through another process."""
    other = cast(TestClient, await aiohttp_client(app_client.server))
    jar = {morsel.key: morsel.value for morsel in party.http.session.cookie_jar}
    other.session.cookie_jar.update_cookies(jar, URL(str(other.make_url("/"))))
    moved = Party(other, party.session_id)
    moved.join_token = party.join_token
    return moved


def _bus(app_client: TestClient) -> RedisBus:
    bus = app_client.app[HUB].bus
    assert isinstance(bus, RedisBus)
    return bus


async def _admitted(therapist: Party, visitor: Party) -> tuple[dict[str, Any], dict[str, Any]]:
    """Therapist and client connected; the client knocks and is admitted. Both welcomes."""
    therapist_welcome = await therapist.connect()
    welcome = await visitor.connect()
    lobby = await therapist.expect("lobby")
    while not lobby["waiting"]:
        lobby = await therapist.expect("lobby")
    (knock,) = lobby["waiting"]
    await therapist.send({"type": "admit", "knock_id": knock["knock_id"]})
    await visitor.expect("admitted")
    await therapist.expect("peer-joined")
    return therapist_welcome, welcome


async def _pulse_goes_through(therapist: Party, visitor: Party, key: str) -> None:
    await therapist.send({"type": "checkin-launch", "instrument_id": "pulse"})
    assert (await visitor.expect("checkin-open"))["kind"] == "pulse"
    await visitor.send(
        {
            "type": "checkin-answer",
            "instrument_id": "pulse",
            "idempotency_key": key,
            "answers": {"pulse": 4},
        }
    )
    await visitor.expect("checkin-ack")
    assert (await therapist.expect("checkin-result"))["kind"] == "pulse"


async def test_a_therapist_on_one_process_and_a_client_on_another_share_one_room(
    two_apps: tuple[TestClient, TestClient], aiohttp_client: Any
) -> None:
    first, second = two_apps
    therapist, visitor_first, _ = await _setup(first, aiohttp_client)
    visitor = await _on(second, aiohttp_client, visitor_first)
    await _admitted(therapist, visitor)
    assert visitor.ws is not None
    room_owners = [_bus(c).owns(therapist.session_id) for c in (first, second)]
    assert room_owners == [True, False]  # the therapist came first, so A holds the room

    await visitor.send({"type": "relay", "payload": OFFER})
    assert (await therapist.expect("signal-relay"))["payload"] == OFFER
    await therapist.send({"type": "relay", "payload": OFFER})
    assert (await visitor.expect("signal-relay"))["payload"] == OFFER
    await visitor.send({"type": "signal", "signal": "slow-down"})
    assert (await therapist.expect("client-signal"))["signal"] == "slow-down"
    await _pulse_goes_through(therapist, visitor, "a" * 32)

    await therapist.send({"type": "end"})
    assert (await visitor.expect("session-ended"))["reason"] == "therapist-ended"
    assert await visitor.closed_with() == 4004


async def test_when_the_process_holding_the_room_dies_both_resume_on_another_without_a_knock(
    two_apps: tuple[TestClient, TestClient], aiohttp_client: Any
) -> None:
    first, second = two_apps
    therapist, visitor, _ = await _setup(first, aiohttp_client)
    therapist_welcome = await therapist.connect()
    assert therapist_welcome["resume_token"]
    client_welcome = await visitor.connect()
    lobby = await therapist.expect("lobby")
    while not lobby["waiting"]:
        lobby = await therapist.expect("lobby")
    await therapist.send({"type": "admit", "knock_id": lobby["waiting"][0]["knock_id"]})
    await visitor.expect("admitted")
    await therapist.expect("peer-joined")
    assert _bus(first).owns(therapist.session_id)
    # The admission is told before its state write ends; a ping behind it (actions on a room
    # run one after another) means the call is established in Redis too: "mid-call".
    await therapist.send({"type": "ping"})
    await therapist.expect("pong")

    # A dies: no renewal, no goodbye, its sockets cut without a close frame.
    await _bus(first).vanish()
    for party in (therapist, visitor):
        assert party.ws is not None
        transport = party.ws._response.connection.transport  # type: ignore[union-attr]
        assert transport is not None
        transport.abort()

    # Both come back through B, each with its resume token, within a second.
    therapist_b = await _on(second, aiohttp_client, therapist)
    visitor_b = await _on(second, aiohttp_client, visitor)
    back = await visitor_b.connect(resume=client_welcome["resume_token"])
    assert (back["state"], back["knock_id"], back["resumed"]) == (
        "in-call",
        client_welcome["knock_id"],
        True,
    )
    assert (await visitor_b.expect("admitted"))["resumed"] is True
    assert _bus(second).owns(therapist.session_id)
    therapist_back = await therapist_b.connect(resume=therapist_welcome["resume_token"])
    assert (therapist_back["resumed"], therapist_back["peer"]) == (True, "in-call")
    assert (await therapist_b.expect("lobby"))["waiting"] == []  # no new knock
    joined = await visitor_b.expect("peer-joined")
    assert (joined["role"], joined["resumed"]) == ("therapist", True)

    await therapist_b.send({"type": "relay", "payload": OFFER})
    assert (await visitor_b.expect("signal-relay"))["payload"] == OFFER
    await _pulse_goes_through(therapist_b, visitor_b, "b" * 32)


async def test_a_process_that_stops_gracefully_hands_its_rooms_over(
    two_apps: tuple[TestClient, TestClient], aiohttp_client: Any
) -> None:
    first, second = two_apps
    therapist, visitor_first, _ = await _setup(first, aiohttp_client)
    visitor = await _on(second, aiohttp_client, visitor_first)
    therapist_welcome, client_welcome = await _admitted(therapist, visitor)
    therapist_b = await _on(second, aiohttp_client, therapist)
    assert _bus(first).owns(therapist.session_id)

    await first.server.close()  # SIGTERM-like: sockets closed with GOING_AWAY, rooms saved
    assert await therapist.closed_with() == 1001
    assert not _bus(first).owns(therapist.session_id)

    # the client on B never lost its socket; its next message claims the room on B
    await visitor.send({"type": "ping"})
    await visitor.expect("pong")
    assert _bus(second).owns(therapist.session_id)
    assert client_welcome["knock_id"] == "k1"
    # the therapist's seat was held (a dropped connection), so the resume is quiet
    welcome = await therapist_b.connect(resume=therapist_welcome["resume_token"])
    assert welcome["resumed"] is True
    assert (await visitor.expect("peer-joined"))["resumed"] is True


async def test_a_process_handing_its_rooms_over_claims_no_room_again(
    two_apps: tuple[TestClient, TestClient], aiohttp_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Work that reaches a stopping process after its rooms were handed over (the leave of a
    socket its shutdown just closed) must not claim a room back: the next process would wait
    for that lease to lapse."""
    first, _second = two_apps
    therapist, visitor, _ = await _setup(first, aiohttp_client)
    await _admitted(therapist, visitor)
    bus = _bus(first)
    room = therapist.session_id
    late_leave = RoomOp("leave", ConnRef("late", SessionRole.CLIENT, room, "c"), dropped=True)
    finish_stopping = bus._cancel_tasks

    async def leave_arrives_late() -> None:  # rooms handed over, connections not yet closed
        assert not bus.owns(room)
        await bus.submit(late_leave)
        await finish_stopping()

    monkeypatch.setattr(bus, "_cancel_tasks", leave_arrives_late)
    await bus.stop()
    assert not bus.owns(room)
    probe = Redis.from_url(REDIS_URL)
    try:  # free for the next process to claim at once
        assert await probe.get(bus._owner_key(room)) is None
    finally:
        await probe.aclose()


async def test_a_consent_withdrawn_through_another_process_ends_the_clients_part_live(
    two_apps: tuple[TestClient, TestClient], aiohttp_client: Any
) -> None:
    first, second = two_apps
    therapist, visitor, _ = await _setup(first, aiohttp_client)
    await _admitted(therapist, visitor)
    visitor_b = await _on(second, aiohttp_client, visitor)
    page = await (await visitor_b.http.get("/visit/consent")).text()
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    response = await visitor_b.http.post(
        "/api/v1/visit/consents",
        headers={"X-CSRF-Token": token.group(1)},
        json={"purpose": "telehealth", "decision": "withdrawn", "notice_version": 1},
    )
    assert response.status < 300, await response.text()
    changed = await therapist.expect("consent-changed")
    assert (changed["purpose"], changed["decision"]) == ("telehealth", "withdrawn")
    assert await visitor.closed_with() == 4403  # no longer allowed in (telehealth withdrawn)


async def _until(condition: Any, within: float = 5.0) -> None:
    """Poll an async condition (a lease lapsing in Redis) until true, with a deadline."""
    async with asyncio.timeout(within):
        while True:
            if await condition():
                return
            await asyncio.sleep(0.05)  # Redis tells nobody when a key expires: poll it


async def test_a_process_that_froze_past_its_lease_gives_the_room_up_and_its_sockets_resume(
    two_apps: tuple[TestClient, TestClient], aiohttp_client: Any, redis_prefix: str
) -> None:
    first, second = two_apps
    therapist, visitor_first, _ = await _setup(first, aiohttp_client)
    visitor = await _on(second, aiohttp_client, visitor_first)
    therapist_welcome, _client_welcome = await _admitted(therapist, visitor)
    redis = Redis.from_url(REDIS_URL, decode_responses=True)
    owner_key = f"{redis_prefix}room:{therapist.session_id}:owner"
    try:
        # A freezes (a long pause, or cut off from Redis): its lease and liveness lapse.
        _bus(first).renewing = False
        await _until(lambda: _gone(redis, owner_key))
        # The client's next message, on B, claims the room; A's therapist socket counts as
        # dropped there, so the client is told the therapist is reconnecting.
        await visitor.send({"type": "ping"})
        left = await visitor.expect("peer-left")  # the takeover's news comes before the pong
        assert (left["role"], left["reconnecting"]) == ("therapist", True)
        await visitor.expect("pong")
        assert await redis.get(owner_key) == _bus(second).process_id
        # A wakes up: its renewal fails, so it forgets the room and sends its socket away...
        _bus(first).renewing = True
        assert await therapist.closed_with() == 1001
        assert not _bus(first).owns(therapist.session_id)
        # ...and the therapist resumes (here through B) without disturbing the client.
        therapist_b = await _on(second, aiohttp_client, therapist)
        back = await therapist_b.connect(resume=therapist_welcome["resume_token"])
        assert back["resumed"] is True
        assert (await visitor.expect("peer-joined"))["resumed"] is True
        await _pulse_goes_through(therapist_b, visitor, "c" * 32)
    finally:
        await redis.aclose()


async def test_a_process_whose_event_loop_is_starved_past_its_lease_keeps_its_rooms(
    two_apps: tuple[TestClient, TestClient], aiohttp_client: Any, redis_prefix: str
) -> None:
    first, second = two_apps
    therapist, visitor_first, _ = await _setup(first, aiohttp_client)
    visitor = await _on(second, aiohttp_client, visitor_first)
    await _admitted(therapist, visitor)
    owner_key = f"{redis_prefix}room:{therapist.session_id}:owner"
    holder = _bus(first).process_id
    blocking = BlockingRedis.from_url(REDIS_URL, decode_responses=True)
    try:
        assert blocking.get(owner_key) == holder
        # The loop does nothing else for 2.5 s, longer than the 1.5 s lease (as under a CPU
        # starvation that delays every callback): the lease keeper's thread renews anyway.
        time.sleep(2.5)  # noqa: ASYNC251 - blocking the loop is the point
        assert blocking.get(owner_key) == holder  # read before the loop runs again
        assert blocking.pttl(owner_key) > 0
        assert blocking.exists(f"{redis_prefix}proc:{holder}:alive")
    finally:
        blocking.close()
    # The room did not move: the client's message on B still runs on A, nobody was dropped.
    for party in (visitor, therapist):
        await party.send({"type": "ping"})
        seen = [message["type"] for message in await _until_type(party, "pong")]
        assert "peer-left" not in seen, seen
    assert _bus(first).owns(therapist.session_id)
    assert not _bus(second).owns(therapist.session_id)


async def _gone(redis: Redis, key: str) -> bool:
    return not await redis.exists(key)


async def test_the_cue_engines_prompt_policy_goes_on_after_a_takeover(
    two_apps: tuple[TestClient, TestClient], aiohttp_client: Any
) -> None:
    first, second = two_apps
    therapist, visitor, _ = await _setup(first, aiohttp_client)
    await _grant(visitor, "cue_analysis")
    therapist_welcome, client_welcome = await _admitted(therapist, visitor)
    await _send_lagging_frames(therapist, visitor)
    prompt = (await therapist.expect("prompt"))["prompt"]
    await therapist.send(
        {"type": "prompt-feedback", "prompt_id": prompt["id"], "feedback": "mute-category"}
    )
    await therapist.send({"type": "ping"})
    await therapist.expect("pong")

    await _bus(first).vanish()
    for party in (therapist, visitor):
        assert party.ws is not None
        transport = party.ws._response.connection.transport  # type: ignore[union-attr]
        assert transport is not None
        transport.abort()
    therapist_b = await _on(second, aiohttp_client, therapist)
    visitor_b = await _on(second, aiohttp_client, visitor)
    await visitor_b.connect(resume=client_welcome["resume_token"])
    await therapist_b.connect(resume=therapist_welcome["resume_token"])

    # B knows the prompt A raised (feedback on it is accepted, not "no such prompt")...
    await therapist_b.send(
        {"type": "prompt-feedback", "prompt_id": prompt["id"], "feedback": "helpful", "id": "f1"}
    )
    await therapist_b.send({"type": "ping"})
    answers = await _until_type(therapist_b, "pong")
    assert [m for m in answers if m["type"] == "error"] == []
    # ...and the muted category stays muted while the conversation goes on.
    await _send_lagging_frames(therapist_b, visitor_b, count=12)
    await therapist_b.send({"type": "ping"})
    seen = await _until_type(therapist_b, "pong")
    prompts = [m["prompt"] for m in seen if m["type"] == "prompt"]
    assert [p for p in prompts if p["category"] == prompt["category"]] == []


async def _until_type(party: Party, kind: str, within: float = 5) -> list[dict[str, Any]]:
    """Every message up to and including the next one of type `kind`."""
    assert party.ws is not None
    seen: list[dict[str, Any]] = []
    async with asyncio.timeout(within):
        while not seen or seen[-1]["type"] != kind:
            seen.append(await party.ws.receive_json())
    return seen


async def test_a_safety_answer_sent_through_another_process_reaches_the_therapist_at_once(
    two_apps: tuple[TestClient, TestClient], aiohttp_client: Any
) -> None:
    from tests.integration.test_measures_flow import _visit_csrf, phq9

    first, second = two_apps
    therapist, visitor_first, _ = await _setup(first, aiohttp_client)
    await therapist.connect()  # the room lives on A
    visitor = await _on(second, aiohttp_client, visitor_first)
    answered = await visitor.http.post(
        "/api/v1/visit/measures",
        headers={"X-CSRF-Token": await _visit_csrf(visitor)},
        json={
            "measure_id": "phq9",
            "answers": phq9(0, 0, 0, 0, 0, 0, 0, 0, 2),
            "idempotency_key": "bus-safety-key-000001",
        },
    )
    assert answered.status == 201, await answered.text()
    alert = await therapist.expect("measure-alert")
    assert (alert["label"], alert["measure"]) == ("J.M.", "PHQ-9")


async def test_the_cue_engines_windows_and_talk_totals_go_on_after_a_takeover(
    two_apps: tuple[TestClient, TestClient], aiohttp_client: Any, redis_prefix: str
) -> None:
    first, second = two_apps
    therapist, visitor, _ = await _setup(first, aiohttp_client)
    session_id = therapist.session_id
    await _grant(visitor, "cue_analysis")
    therapist_welcome, client_welcome = await _admitted(therapist, visitor)
    await _send_lagging_frames(therapist, visitor, count=20)  # both talk, over a slow line
    for party in (therapist, visitor):
        await party.send({"type": "ping"})
        await party.expect("pong")
    # A writes its windows with its room's state at most every carry_every_ms (here 250 ms):
    # wait until what is stored is A's engine now, then A dies.
    on_a = first.app[LIVE].cues.windows(session_id)
    redis = Redis.from_url(REDIS_URL, decode_responses=True)
    state_key = f"{redis_prefix}room:{session_id}:state"
    try:
        await _until(lambda: _stored_windows_are(redis, state_key, on_a))
        await _bus(first).vanish()
        stored = json.loads(await redis.get(state_key) or "{}")
    finally:
        await redis.aclose()
    windows_on_a = json.loads(stored["live"]["cues"]["windows"])
    assert windows_on_a == on_a
    pair_on_a = windows_on_a["pairs"][0]  # the one client's engine (docs/cues.md)
    talk_on_a = (pair_on_a["_therapist_talk"]["total"], pair_on_a["_client_talk"]["total"])
    assert sum(talk_on_a) > 0
    assert "J.M." not in json.dumps(stored["live"]["cues"])  # numbers, no words or names

    for party in (therapist, visitor):
        assert party.ws is not None
        transport = party.ws._response.connection.transport  # type: ignore[union-attr]
        assert transport is not None
        transport.abort()
    therapist_b = await _on(second, aiohttp_client, therapist)
    visitor_b = await _on(second, aiohttp_client, visitor)
    await visitor_b.connect(resume=client_welcome["resume_token"])
    await therapist_b.connect(resume=therapist_welcome["resume_token"])
    assert _bus(second).owns(session_id)

    # B's engine goes on from A's: the same windows, talk totals, lag and calibration...
    assert second.app[LIVE].cues.windows(session_id) == windows_on_a
    # ...and keeps counting: new frames land after A's, and add to what A had seen.
    await _send_lagging_frames(therapist_b, visitor_b, count=40)
    for party in (therapist_b, visitor_b):
        await party.send({"type": "ping"})
        await party.expect("pong")
    windows = second.app[LIVE].cues.windows(session_id)
    assert windows is not None
    windows_on_b = windows["pairs"][0]
    # both sides' frames land after A's on the session clock, not at its start again
    assert all(
        b > a for a, b in zip(pair_on_a["_last_seen"], windows_on_b["_last_seen"], strict=True)
    )
    # the baseline period counts on from A's (~10 s of frames there, ~10 s more here): a
    # fresh engine would stand at ~10 s, under A's total plus half of what B saw
    calibrated_on_a = pair_on_a["_calibration_elapsed_ms"]
    assert windows_on_b["_calibration_elapsed_ms"] >= calibrated_on_a + 5_000


async def _stored_windows_are(redis: Redis, key: str, windows: Any) -> bool:
    stored = json.loads(await redis.get(key) or "{}")
    carried = stored.get("live", {}).get("cues", {}).get("windows")
    return carried is not None and json.loads(carried) == windows


async def test_the_knock_cap_of_one_client_cookie_holds_across_processes(
    two_apps: tuple[TestClient, TestClient], aiohttp_client: Any
) -> None:
    first, second = two_apps
    _therapist, visitor, _ = await _setup(first, aiohttp_client)
    visitor_b = await _on(second, aiohttp_client, visitor)
    # two windows on A, one on B: three sockets of one cookie, the most allowed
    for http in (visitor.http, visitor.http, visitor_b.http):
        await Party(http, visitor.session_id).connect()
    # a fourth on B, where only one of them is: the room's owner (A) refuses it
    fourth = Party(visitor_b.http, visitor.session_id)
    fourth.ws = await visitor_b.http.ws_connect(f"/ws/session/{visitor.session_id}")
    await fourth.send({"type": "hello", "version": 1})
    assert (await fourth.expect("error"))["code"] == "too-many-knocks"
    assert await fourth.closed_with() == 4429


async def test_the_dashboard_on_any_process_shows_who_waits_in_a_room_held_by_another(
    two_apps: tuple[TestClient, TestClient], aiohttp_client: Any
) -> None:
    first, second = two_apps
    therapist, visitor, _ = await _setup(first, aiohttp_client)
    await visitor.connect()  # knocks on A, which now holds the room
    assert _bus(first).owns(visitor.session_id)
    dashboard_on_b = await _on(second, aiohttp_client, therapist)
    polled = await (await dashboard_on_b.http.get("/api/v1/sessions/presence")).json()
    assert polled["items"] == [
        {"session_id": visitor.session_id, "waiting": ["J.M."], "in_call": False}
    ]


def _round_trips(app_client: TestClient) -> float:
    """Redis round trips the app's bus has made so far (its metrics histogram's count)."""
    histogram = app_client.app[METRICS].redis_round_trips
    (family,) = histogram.collect()
    return next(s.value for s in family.samples if s.name.endswith("_count"))


async def test_relays_cross_redis_with_one_publish_each_and_rewrite_no_state(
    two_apps: tuple[TestClient, TestClient], aiohttp_client: Any, redis_prefix: str
) -> None:
    """The client on B relays to the therapist on A. B knows A holds the room (for as long
    as A's lease runs): each relay is one PUBLISH, with no owner lookup; A writes no room
    state for a relay or a ping (nothing in it changed), and its renewal keeps the state
    alive. An action that changes the room is written."""
    first, second = two_apps
    therapist, visitor_first, _ = await _setup(first, aiohttp_client)
    visitor = await _on(second, aiohttp_client, visitor_first)
    await _admitted(therapist, visitor)
    session_id = therapist.session_id
    redis = Redis.from_url(REDIS_URL, decode_responses=True)
    state_key = f"{redis_prefix}room:{session_id}:state"
    try:
        await visitor.send({"type": "ping"})
        await visitor.expect("pong")
        stored = await redis.get(state_key)
        assert stored is not None
        trips_a, trips_b = _round_trips(first), _round_trips(second)
        relays = 30
        for _ in range(relays):
            await visitor.send({"type": "relay", "payload": OFFER})
            assert (await therapist.expect("signal-relay"))["payload"] == OFFER
        # B: one PUBLISH a relay (two when each looked the owner up), plus its heartbeats
        assert _round_trips(second) - trips_b < 1.5 * relays
        # A: its renewals only (a state write per relay would be `relays` more)
        assert _round_trips(first) - trips_a < relays / 2
        assert await redis.get(state_key) == stored
        assert await redis.pttl(state_key) > STATE_TTL_MS - 5_000  # renewed, not rewritten

        await therapist.send({"type": "send-back"})  # admission changed: written
        await _until(lambda: _state_differs(redis, state_key, stored))
        room = json.loads(await redis.get(state_key) or "{}")["room"]
        assert not any(slot["admitted"] for slot in room["slots"])
    finally:
        await redis.aclose()


async def test_a_room_held_elsewhere_is_looked_up_once_then_kept_fresh_by_the_renewals(
    two_apps: tuple[TestClient, TestClient],
    aiohttp_client: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """B routes its client's messages to A, which holds the room. Once B knows the owner, its
    renewals (every 0.5 s here) look again at the owners it used, so no message waits for a
    lookup of its own, even across several of A's 1.5 s leases."""
    first, second = two_apps
    therapist, visitor_first, _ = await _setup(first, aiohttp_client)
    visitor = await _on(second, aiohttp_client, visitor_first)
    await _admitted(therapist, visitor)
    bus = _bus(second)
    lookups: list[str] = []
    look_up = bus._look_up_owner

    async def counted(session_id: str) -> tuple[str | None, int]:
        lookups.append(session_id)
        return await look_up(session_id)

    monkeypatch.setattr(bus, "_look_up_owner", counted)
    for _ in range(20):  # 4 s: more than two leases
        await visitor.send({"type": "ping"})
        await visitor.expect("pong")
        await asyncio.sleep(0.2)
    assert len(lookups) <= 1, lookups  # a lookup per lease would be 2 or 3
    assert _bus(first).owns(therapist.session_id)


async def _state_differs(redis: Redis, key: str, before: str) -> bool:
    return await redis.get(key) != before

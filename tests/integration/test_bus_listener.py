"""The bus's listener on the real Redis: what another process publishes on a bus's channel is
read, handed to its rooms in the order it was published, one room's failure or slowness never
stops another's work, and the subscription comes back when its connection is killed.

Each test runs one `RedisBus` (as `open_bus` makes it) bound to a hub and a room runner that
only record what reaches them; a second Redis client plays the other processes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from server.core.protocol import SessionRole
from server.realtime.bus import Change, ConnRef, RedisBus, RoomOp, _Action, open_bus
from server.settings import Settings
from tests.integration.test_bus_redis import (
    REDIS_URL,
    redis_prefix,  # noqa: F401 - a fixture
)

DEADLINE_S = 10.0


class _Room:
    def to_state(self) -> dict[str, Any]:
        return {}


class _Rooms:
    """Every room is held in memory: its state is written as an empty one."""

    def get(self, session_id: str) -> _Room:
        return _Room()


class _Hub:
    def __init__(self) -> None:
        self.rooms = _Rooms()
        self.room_clients: dict[str, str] = {}
        self.delivered: list[tuple[str, str]] = []

    def deliver_text(self, conn_id: str, text: str) -> None:
        self.delivered.append((conn_id, text))


class _Runner:
    """Records each message's text per room; "slow" waits a while, "boom" raises."""

    def __init__(self) -> None:
        self.ran: dict[str, list[str]] = {}

    async def run(self, op: RoomOp) -> Change:
        if op.text == "slow":
            await asyncio.sleep(0.3)
        self.ran.setdefault(op.ref.session_id, []).append(op.text)
        if op.text == "boom":
            raise RuntimeError("a room action broke")
        return Change.NONE

    async def adopt(self, session_id: str, client_id: str, live: Any) -> None:
        return None

    def snapshot(self, session_id: str) -> dict[str, Any]:
        return {}


class _Bus:
    """A started bus, what reached it, and a client of the same Redis to publish with."""

    def __init__(self, bus: RedisBus, hub: _Hub, runner: _Runner, redis: Redis) -> None:
        self.bus, self.hub, self.runner, self.redis = bus, hub, runner, redis

    def message(self, session_id: str, text: str) -> str:
        """A client's frame for a room, as a socket on another process forwards it."""
        ref = ConnRef(f"elsewhere.{session_id}", SessionRole.CLIENT, session_id, "c1")
        op = RoomOp("message", ref, text=text, message_type="features")
        return self.bus._encode(_Action(op=op))

    async def publish(self, messages: list[str]) -> list[int]:
        """All in one pipeline, as another process's publish loop sends a burst; the number of
        listeners each reached."""
        channel = self.bus._channel(self.bus.process_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            for message in messages:
                pipe.publish(channel, message)
            answers: list[int] = await pipe.execute()
        return answers


@pytest.fixture
async def bus(redis_prefix: str, tmp_path: Path) -> AsyncIterator[_Bus]:  # noqa: F811
    settings = Settings(data_dir=tmp_path / "data", redis_url=REDIS_URL, redis_prefix=redis_prefix)
    redis_bus = open_bus(settings)
    assert isinstance(redis_bus, RedisBus)
    hub, runner = _Hub(), _Runner()
    redis_bus.bind(hub, runner, {})  # type: ignore[arg-type]
    await redis_bus.start()
    redis = Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        yield _Bus(redis_bus, hub, runner, redis)
    finally:
        await redis_bus.stop()
        await redis.aclose()


async def _until(check: Callable[[], bool | Awaitable[bool]], what: str) -> None:
    deadline = asyncio.get_running_loop().time() + DEADLINE_S
    while True:
        answer = check()
        if not isinstance(answer, bool):
            answer = await answer
        if answer:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {DEADLINE_S} s: {what}")
        await asyncio.sleep(0.02)


def _ran(bus: _Bus, count: int) -> Callable[[], bool]:
    return lambda: sum(map(len, bus.runner.ran.values())) >= count


async def test_forwarded_actions_for_one_room_run_in_the_order_published_even_when_one_waits(
    bus: _Bus,
) -> None:
    """Rooms nobody holds yet: the first action of each claims its room (round trips to Redis)
    and the first of all waits inside the room; every later one queues behind it, in order."""
    rooms = [f"room-{n}" for n in range(20)]
    texts = ["slow", *(f"m{i}" for i in range(8))]
    await bus.publish([bus.message(room, text) for text in texts for room in rooms])
    await _until(_ran(bus, len(rooms) * len(texts)), "every action ran")
    assert bus.runner.ran == {room: texts for room in rooms}


async def test_an_action_that_raises_does_not_stop_its_rooms_later_actions(
    bus: _Bus, caplog: pytest.LogCaptureFixture
) -> None:
    texts = ["a", "boom", "b", "boom", "c"]
    with caplog.at_level(logging.ERROR, logger="attune.bus"):
        await bus.publish([bus.message("room", text) for text in texts])
        await _until(_ran(bus, len(texts)), "every action ran")
    assert bus.runner.ran == {"room": texts}
    failed = [r for r in caplog.records if r.getMessage() == "a forwarded action failed"]
    assert len(failed) == 2
    assert all(r.exc_info and isinstance(r.exc_info[1], RuntimeError) for r in failed)


async def test_a_large_message_and_many_small_ones_in_one_burst_are_all_handled(
    bus: _Bus,
) -> None:
    large = "x" * 60_000
    conn_id = f"{bus.bus.process_id}.socket"
    effects = [f'S{conn_id}\n{{"type":"pong","n":{n}}}' for n in range(500)]
    burst = [bus.message("room", large), *effects, bus.message("room", "after")]
    burst += [bus.message(f"room-{n}", "small") for n in range(300)]
    assert await bus.publish(burst) == [1] * len(burst)  # each reached one listener: ours
    await _until(_ran(bus, 302), "every action ran")
    await _until(lambda: len(bus.hub.delivered) == 500, "every effect was delivered")
    assert bus.runner.ran["room"] == [large, "after"]
    assert bus.hub.delivered == [(conn_id, e.split("\n", 1)[1]) for e in effects]


async def test_the_listener_subscribes_again_after_its_connection_is_killed(
    bus: _Bus, caplog: pytest.LogCaptureFixture
) -> None:
    """Only our own subscription is killed (by its address): other clients of this Redis go on."""
    pubsub = bus.bus._pubsub
    assert pubsub is not None and pubsub.connection is not None
    writer = pubsub.connection._writer
    assert writer is not None
    host, port = writer.get_extra_info("sockname")[:2]
    with caplog.at_level(logging.WARNING, logger="attune.bus"):
        assert await bus.redis.client_kill_filter(_type="pubsub", addr=f"{host}:{port}") == 1
        await _until(lambda: bus.bus._pubsub is not pubsub, "the old subscription was dropped")
        await _until(lambda: bus.bus._listening, "subscribed again")
    assert "subscribed again after losing Redis" in caplog.messages
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]  # an outage, no trace
    assert await bus.publish([bus.message("room", "again")]) == [1]  # the owner is alive
    await _until(_ran(bus, 1), "the message after the kill ran")
    assert bus.runner.ran == {"room": ["again"]}


async def test_a_burst_for_one_room_runs_on_a_handful_of_tasks_not_one_a_message(
    bus: _Bus,
) -> None:
    """One task drains a room's mailbox while it is not empty (before, each forwarded action
    had a task of its own). Every task the loop creates meanwhile is counted."""
    loop = asyncio.get_running_loop()
    created = 0
    factory = loop.get_task_factory()

    def counting(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> Any:
        nonlocal created
        created += 1
        if factory is not None:
            return factory(loop, coro, **kwargs)
        return asyncio.Task(coro, loop=loop, **kwargs)

    messages = 400
    await bus.publish([bus.message("room", "warm-up")])  # the room is claimed and loaded
    await _until(_ran(bus, 1), "the first action ran")
    loop.set_task_factory(counting)
    try:
        await bus.publish([bus.message("room", f"m{i}") for i in range(messages)])
        await _until(_ran(bus, 1 + messages), "every action ran")
    finally:
        loop.set_task_factory(factory)
    assert bus.runner.ran["room"] == ["warm-up", *(f"m{i}" for i in range(messages))]
    assert created <= messages / 20, created


async def test_stopping_the_bus_drops_the_actions_still_waiting_for_their_room(
    bus: _Bus,
) -> None:
    """A room stuck in an action holds its later ones; stopping cancels it and they never run
    (as spawned tasks were cancelled before), and no mailbox is left behind."""
    stuck = asyncio.Event()
    run = bus.runner.run

    async def stuck_on_first(op: RoomOp) -> Change:
        if op.text == "first":
            stuck.set()
            await asyncio.Event().wait()  # until cancelled
        return await run(op)

    bus.runner.run = stuck_on_first  # type: ignore[method-assign]
    await bus.publish([bus.message("room", text) for text in ("first", "second", "third")])
    await asyncio.wait_for(stuck.wait(), DEADLINE_S)
    await asyncio.wait_for(bus.bus.stop(), DEADLINE_S)
    assert bus.runner.ran == {}
    assert bus.bus._mailboxes == {}
    assert not [task for task in bus.bus._background if not task.done()]

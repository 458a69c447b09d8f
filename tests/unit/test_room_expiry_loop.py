"""The serving loop's expiry pass: once a second, rooms whose held places ran out are released
(and written by the bus), the others left alone, and with thousands of rooms the pass lets
other work run between shares instead of holding the event loop for all of them at once."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from server.core.protocol import SessionRole
from server.core.room_registry import RoomRegistry
from server.realtime import signaling
from server.realtime.bus import LocalBus
from server.realtime.hub import Hub


class RecordingBus(LocalBus):
    """The local bus, remembering which rooms it was told changed."""

    def __init__(self) -> None:
        super().__init__()
        self.changed_rooms: list[str] = []

    def changed(self, session_id: str) -> None:
        self.changed_rooms.append(session_id)


def _hub_with_rooms(count: int, held_from: int, *, grace_ms: int) -> Hub:
    """`count` rooms, each with a therapist in the call; in rooms `held_from` and above the
    admitted client dropped (their place is held for `grace_ms`)."""
    hub = Hub(bus=RecordingBus())
    tokens = itertools.count()
    hub.rooms = RoomRegistry(
        new_token=lambda: f"resume-token-{next(tokens):08d}", resume_grace_ms=grace_ms
    )
    now_ms = signaling._now_ms()
    for i in range(count):
        hub.rooms.join(f"s{i}", f"t{i}", SessionRole.THERAPIST, "Dr. R.", now_ms)
        hub.rooms.join(f"s{i}", f"c{i}", SessionRole.CLIENT, "J.M.", now_ms)
        room = hub.rooms.get(f"s{i}")
        assert room is not None
        knock = room.knock_of(f"c{i}")
        assert knock is not None
        room.admit(f"t{i}", knock.knock_id)
        if i >= held_from:
            hub.rooms.leave(f"s{i}", f"c{i}", now_ms, dropped=True)
    return hub


async def test_rooms_whose_held_places_ran_out_are_released_and_written_and_no_others() -> None:
    hub = _hub_with_rooms(1_200, held_from=1_197, grace_ms=0)
    loop = asyncio.create_task(signaling.expire_rooms_loop(hub))
    try:
        await asyncio.sleep(1.3)  # one pass
    finally:
        loop.cancel()
    bus = hub.bus
    assert isinstance(bus, RecordingBus)
    assert sorted(bus.changed_rooms) == ["s1197", "s1198", "s1199"]
    for i in (1_197, 1_198, 1_199):
        room = hub.rooms.get(f"s{i}")
        assert room is not None and room.next_deadline_ms() is None  # the place is given up
    kept = hub.rooms.get("s0")
    assert kept is not None and kept.in_call("c0")


async def test_a_place_still_in_its_grace_period_is_kept() -> None:
    hub = _hub_with_rooms(3, held_from=2, grace_ms=60_000)
    loop = asyncio.create_task(signaling.expire_rooms_loop(hub))
    try:
        await asyncio.sleep(1.3)
    finally:
        loop.cancel()
    bus = hub.bus
    assert isinstance(bus, RecordingBus) and bus.changed_rooms == []
    room = hub.rooms.get("s2")
    assert room is not None and room.next_deadline_ms() is not None


async def test_the_pass_over_many_rooms_lets_other_work_run_between_shares(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rooms = 3 * signaling._EXPIRY_SHARE
    hub = _hub_with_rooms(rooms, held_from=rooms, grace_ms=0)
    visited: list[str] = []  # rooms looked at, and "tick" whenever another task ran
    original = type(hub.rooms).get

    def get(self: object, session_id: str) -> object:
        visited.append(session_id)
        return original(hub.rooms, session_id)

    monkeypatch.setattr(type(hub.rooms), "get", get)

    async def other_work() -> None:
        while True:
            visited.append("tick")
            await asyncio.sleep(0)

    loop = asyncio.create_task(signaling.expire_rooms_loop(hub))
    await asyncio.sleep(0.9)
    ticker = asyncio.create_task(other_work())
    await asyncio.sleep(0.8)  # the pass starts at 1 s
    loop.cancel()
    ticker.cancel()
    pass_ = visited[visited.index("s0") :]
    looked_at = [v for v in pass_ if v != "tick"]
    assert len(looked_at) >= rooms
    # between the first and the last room of the pass, other work ran at least twice
    last = len(pass_) - 1 - pass_[::-1].index(f"s{rooms - 1}")
    assert pass_[:last].count("tick") >= 2

"""Screen sharing in a room (pure): who may share, who hears of it, and when the leave ends.

The media goes peer to peer; the room only relays "started (as this stream) / stopped" and the
therapist's leave for the client, and refuses a client's start without that leave.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytest

from server.core.protocol import SCREEN_SHARE_CHANGES_PER_MINUTE, ErrorCode, SessionRole
from server.core.rooms import RESUME_GRACE_MS, Effect, Room, RoomError, Send
from tests.unit.test_rooms import T0, new_room, room_in_call, to

THERAPIST, CLIENT = SessionRole.THERAPIST, SessionRole.CLIENT
SCREEN = "6f1c2a0e-3b5d-4c7e-9f10-2a3b4c5d6e7f"
OTHER_SCREEN = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"


def sent(effects: Sequence[Effect], conn: str) -> list[Mapping[str, Any]]:
    """Every message sent to one connection, in order."""
    return [e.message for e in effects if isinstance(e, Send) and e.conn_id == conn]


def refused(action: Callable[[], object]) -> ErrorCode:
    with pytest.raises(RoomError) as caught:
        action()
    return caught.value.code


def allowed_room() -> Room:
    room = room_in_call()
    room.allow_screen_share("t1", True)
    return room


def test_the_therapist_shares_and_the_client_is_told_which_stream_is_the_screen() -> None:
    room = room_in_call()
    effects = room.screen_share("t1", SCREEN, T0)
    assert sent(effects, "c1") == [
        {"type": "peer-screen", "role": "therapist", "sharing": True, "stream_id": SCREEN}
    ]
    assert sent(effects, "t1") == []  # the sharer knows
    stopped = room.screen_share("t1", None, T0 + 1)
    assert sent(stopped, "c1") == [{"type": "peer-screen", "role": "therapist", "sharing": False}]


def test_a_client_cannot_share_before_the_therapist_allows_it() -> None:
    room = room_in_call()
    refusal = refused(lambda: room.screen_share("c1", SCREEN, T0))
    assert refusal is ErrorCode.SCREEN_SHARE_NOT_ALLOWED
    assert room.to_state()["screens"]["client_stream"] is None
    assert room.screen_share("c1", None, T0) == []  # stopping is always accepted


def test_once_allowed_the_client_shares_and_the_therapist_is_told() -> None:
    room = room_in_call()
    allowed = room.allow_screen_share("t1", True)
    assert sent(allowed, "c1") == [{"type": "screen-share-allowed", "allowed": True}]
    assert sent(allowed, "t1") == [{"type": "screen-share-allowed", "allowed": True}]
    effects = room.screen_share("c1", SCREEN, T0)
    assert sent(effects, "t1") == [
        {"type": "peer-screen", "role": "client", "sharing": True, "stream_id": SCREEN}
    ]
    assert sent(effects, "c1") == []


def test_taking_the_leave_back_stops_the_clients_share() -> None:
    room = allowed_room()
    room.screen_share("c1", SCREEN, T0)
    effects = room.allow_screen_share("t1", False)
    assert sent(effects, "c1") == [{"type": "screen-share-allowed", "allowed": False}]
    assert sent(effects, "t1") == [
        {"type": "screen-share-allowed", "allowed": False},
        {"type": "peer-screen", "role": "client", "sharing": False},
    ]
    assert refused(lambda: room.screen_share("c1", SCREEN, T0 + 1)) is (
        ErrorCode.SCREEN_SHARE_NOT_ALLOWED
    )


def test_only_the_therapist_allows_and_only_with_a_client_in_the_call() -> None:
    room = room_in_call()
    assert refused(lambda: room.allow_screen_share("c1", True)) is ErrorCode.FORBIDDEN
    alone = new_room()
    alone.join("t1", THERAPIST, "Dr. Rivera", T0)
    assert refused(lambda: alone.allow_screen_share("t1", True)) is ErrorCode.NO_PEER


def test_a_waiting_client_cannot_share_even_when_the_call_has_the_leave() -> None:
    room = allowed_room()
    room.join("c2", CLIENT, "J.M.", T0)
    assert refused(lambda: room.screen_share("c2", SCREEN, T0)) is ErrorCode.NOT_ADMITTED


@pytest.mark.parametrize(
    "leaves",
    [
        lambda room: room.send_back("t1", T0 + 1),
        lambda room: room.quick_exit("c1"),
        lambda room: (room.leave("c1", T0 + 1), room.expire(T0 + 1 + RESUME_GRACE_MS)),
    ],
    ids=["sent-back", "quick-exit", "slot-released"],
)
def test_the_leave_ends_when_the_client_leaves_the_call(leaves: Callable[[Room], object]) -> None:
    room = allowed_room()
    room.screen_share("c1", SCREEN, T0)
    leaves(room)
    assert room.to_state()["screens"] == {
        "therapist_stream": None,
        "client_stream": None,
        "client_sharer": None,
        "client_may_share": False,
    }
    back = room.join("c9", CLIENT, "J.M.", T0 + 2 + RESUME_GRACE_MS)
    knock = [k for k in room.knocks() if not k.admitted][-1]
    admitted = room.admit("t1", knock.knock_id)
    assert "screen-share-allowed" not in [m["type"] for m in sent(back + admitted, "c9")]
    assert refused(lambda: room.screen_share("c9", SCREEN, T0 + 3 + RESUME_GRACE_MS)) is (
        ErrorCode.SCREEN_SHARE_NOT_ALLOWED
    )


def test_a_new_session_starts_without_the_leave() -> None:
    room = allowed_room()
    assert room.to_state()["screens"]["client_may_share"] is True
    assert new_room().to_state()["screens"]["client_may_share"] is False


def test_saying_again_what_the_room_knows_changes_nothing() -> None:
    room = room_in_call()
    room.screen_share("t1", SCREEN, T0)
    assert room.screen_share("t1", SCREEN, T0 + 1) == []
    assert room.screen_share("c1", None, T0 + 1) == []
    switched = room.screen_share("t1", OTHER_SCREEN, T0 + 2)  # another window, another stream
    assert sent(switched, "c1")[0]["stream_id"] == OTHER_SCREEN


def test_starts_are_bounded_per_minute_but_a_stop_always_goes_through() -> None:
    room = room_in_call()
    for n in range(SCREEN_SHARE_CHANGES_PER_MINUTE):
        room.screen_share("t1", f"stream-{n}", T0 + n)
    assert refused(lambda: room.screen_share("t1", "stream-x", T0 + 100)) is ErrorCode.RATE_LIMITED
    assert to(room.screen_share("t1", None, T0 + 101), "c1") == ["peer-screen"]
    assert to(room.screen_share("t1", "stream-y", T0 + 60_000), "c1") == ["peer-screen"]


def test_a_client_admitted_or_resuming_while_the_therapist_shares_is_told_at_once() -> None:
    room = new_room()
    room.join("t1", THERAPIST, "Dr. Rivera", T0)
    room.screen_share("t1", SCREEN, T0)  # before anyone is in the call
    room.join("c1", CLIENT, "J.M.", T0)
    admitted = room.admit("t1", "k1")
    assert [m["type"] for m in sent(admitted, "c1")] == ["admitted", "peer-screen", "roster"]
    room.allow_screen_share("t1", True)
    room.leave("c1", T0 + 1)  # dropped: the slot is held
    back = room.join("c1b", CLIENT, "J.M.", T0 + 2, resume_token="resume-token-0002")
    assert [m["type"] for m in sent(back, "c1b")] == [
        "welcome",
        "admitted",
        "screen-share-allowed",
        "peer-screen",
        "roster",
    ]


def test_a_therapist_page_that_comes_back_learns_the_clients_share() -> None:
    room = allowed_room()
    room.screen_share("c1", SCREEN, T0)
    room.screen_share("t1", OTHER_SCREEN, T0)
    room.leave("t1", T0 + 1)  # a reload: a goodbye, then a fresh page
    back = room.join("t2", THERAPIST, "Dr. Rivera", T0 + 2)
    assert [m["type"] for m in sent(back, "t2")] == [
        "welcome",
        "lobby",
        "screen-share-allowed",
        "peer-screen",
        "roster",
    ]
    assert sent(back, "t2")[-2]["stream_id"] == SCREEN
    assert room.to_state()["screens"]["therapist_stream"] is None  # the new page shares nothing


def test_sharing_survives_a_takeover_of_the_room() -> None:
    room = allowed_room()
    room.screen_share("c1", SCREEN, T0)
    state = json.loads(json.dumps(room.to_state()))
    rebuilt = Room.from_state(state, new_token=lambda: "resume-token-new")
    assert rebuilt.to_state() == room.to_state()
    assert to(rebuilt.screen_share("c1", None, T0 + 1), "t1") == ["peer-screen"]


def test_a_state_written_before_screen_sharing_still_loads() -> None:
    state = room_in_call().to_state()
    del state["screens"]
    rebuilt = Room.from_state(state, new_token=lambda: "resume-token-new")
    assert rebuilt.to_state()["screens"]["client_may_share"] is False

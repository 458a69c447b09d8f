"""Session rooms: the lobby, admission, relay only inside the call, presence and resume."""

from __future__ import annotations

import itertools
import json
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privacy.consent import ConsentDecision, Purpose
from server.core.protocol import (
    SERVER_MESSAGE_CLASSES,
    THERAPIST_ONLY_SERVER_TYPES,
    WAITING_NOTES_PER_MINUTE,
    CheckinResultMessage,
    ClientSignal,
    ClientSignalMessage,
    CloseCode,
    ConsentChangedMessage,
    EndReason,
    ErrorCode,
    IceCandidate,
    LobbyMessage,
    MeasureAlertMessage,
    PanelStateMessage,
    PromptMessage,
    QuickExitMessage,
    SafetyCheckMessage,
    SessionDescription,
    SessionRole,
    SharedMessage,
    TherapistOnlyMessage,
)
from server.core.room_registry import RoomRegistry
from server.core.rooms import (
    RESUME_GRACE_MS,
    Audience,
    Close,
    Effect,
    Room,
    RoomError,
    Send,
)

THERAPIST, CLIENT = SessionRole.THERAPIST, SessionRole.CLIENT
T0 = 1_750_000_000_000  # epoch ms, passed in: the core has no clock
OFFER = SessionDescription("offer", "v=0\r\ns=-\r\n")
CANDIDATE = IceCandidate("candidate:1 1 udp 2122260223 192.0.2.7 54400 typ host", sdp_mid="0")
ICE = [{"urls": ["stun:stun.example.org:3478"]}]


def token_factory() -> Callable[[], str]:
    counter = itertools.count(1)
    return lambda: f"resume-token-{next(counter):04d}"


def new_room() -> Room:
    return Room("session-1", new_token=token_factory())


def to(effects: Sequence[Effect], conn: str) -> list[str]:
    """The message types sent to one connection, in order."""
    return [e.message["type"] for e in effects if isinstance(e, Send) and e.conn_id == conn]


def the(effects: Sequence[Effect], conn: str, type_name: str) -> Mapping[str, Any]:
    """The one message of this type sent to this connection."""
    found = [
        e.message
        for e in effects
        if isinstance(e, Send) and e.conn_id == conn and e.message["type"] == type_name
    ]
    assert len(found) == 1, f"{conn} got {to(effects, conn)}"
    return found[0]


def closed(effects: Sequence[Effect]) -> dict[str, CloseCode]:
    return {e.conn_id: e.code for e in effects if isinstance(e, Close)}


def waiting_labels(effects: Sequence[Effect], conn: str = "t1") -> list[str]:
    lobbies = [e.message for e in effects if isinstance(e, Send) and e.conn_id == conn]
    last = [m for m in lobbies if m["type"] == "lobby"][-1]
    return [knock["label"] for knock in last["waiting"]]


def refused(action: Callable[[], object]) -> ErrorCode:
    with pytest.raises(RoomError) as caught:
        action()
    return caught.value.code


def room_in_call() -> Room:
    """Therapist t1 connected, client c1 (knock k1) admitted."""
    room = new_room()
    room.join("t1", THERAPIST, "Dr. Rivera", T0)
    room.join("c1", CLIENT, "J.M.", T0)
    room.admit("t1", "k1")
    return room


# --- knocking and the lobby ------------------------------------------------------------


@pytest.mark.parametrize(
    ("therapist_first", "peer"), [(True, "in-call"), (False, "absent")], ids=["present", "absent"]
)
def test_a_client_knocks_and_waits_with_the_therapists_presence(
    therapist_first: bool, peer: str
) -> None:
    room = new_room()
    if therapist_first:
        room.join("t1", THERAPIST, "Dr. Rivera", T0)
    effects = room.join("c1", CLIENT, "J.M.", T0 + 5, ice_servers=ICE)
    welcome = the(effects, "c1", "welcome")
    assert welcome["role"] == "client"
    assert (welcome["state"], welcome["peer"]) == ("waiting", peer)
    assert welcome["knock_id"] == "k1"
    assert welcome["ice_servers"] == ICE
    assert welcome["resume_token"] == (
        "resume-token-0002" if therapist_first else "resume-token-0001"
    )
    assert to(effects, "c1") == ["welcome"]
    assert room.in_call("c1") is False


def test_the_therapist_sees_each_knock_by_label_only() -> None:
    room = new_room()
    room.join("t1", THERAPIST, "Dr. Rivera", T0)
    effects = room.join("c1", CLIENT, "J.M.", T0 + 5)
    assert the(effects, "t1", "lobby")["waiting"] == [
        {
            "knock_id": "k1",
            "label": "J.M.",
            "since_ms": T0 + 5,
            "kind": "client",
            "participant_id": "client",
        }
    ]


def test_a_therapist_arriving_later_finds_the_lobby_in_the_welcome_sequence() -> None:
    room = new_room()
    room.join("c1", CLIENT, "J.M.", T0)
    effects = room.join("t1", THERAPIST, "Dr. Rivera", T0 + 1)
    assert to(effects, "t1") == ["welcome", "lobby", "roster"]
    assert the(effects, "t1", "welcome")["peer"] == "absent"
    assert waiting_labels(effects) == ["J.M."]
    assert the(effects, "c1", "peer-joined")["role"] == "therapist"


def test_a_second_device_is_a_second_knock_never_silently_inside() -> None:
    room = room_in_call()
    effects = room.join("c2", CLIENT, "J.M.", T0 + 9)
    assert the(effects, "c2", "welcome")["state"] == "waiting"
    assert waiting_labels(effects) == ["J.M. (device 2)"]
    assert room.in_call("c2") is False
    assert refused(lambda: room.admit("t1", "k2")) is ErrorCode.CALL_FULL


def test_a_waiting_client_who_leaves_disappears_from_the_lobby() -> None:
    room = new_room()
    room.join("t1", THERAPIST, "Dr. Rivera", T0)
    room.join("c1", CLIENT, "J.M.", T0)
    effects = room.leave("c1", T0 + 1)
    assert the(effects, "t1", "lobby")["waiting"] == []
    rejoin = room.join("c1b", CLIENT, "J.M.", T0 + 2, resume_token="resume-token-0002")
    assert the(rejoin, "c1b", "welcome")["knock_id"] == "k2"


def test_a_waiting_client_who_quick_exits_is_a_safety_notice_not_a_plain_leave() -> None:
    room = new_room()
    room.join("t1", THERAPIST, "Dr. Rivera", T0)
    room.join("c1", CLIENT, "J.M.", T0)
    effects = room.quick_exit("c1")
    assert the(effects, "t1", "quick-exit") == {
        "type": "quick-exit",
        "label": "J.M.",
        "in_call": False,
    }
    assert the(effects, "t1", "lobby")["waiting"] == []
    assert to(effects, "c1") == []
    assert room.role_of("c1") is None
    assert room.leave("c1", T0 + 1) == []  # the socket's close that follows changes nothing


def test_a_client_who_quick_exits_the_call_leaves_no_seat_held_for_resume() -> None:
    room = room_in_call()
    effects = room.quick_exit("c1")
    assert to(effects, "t1") == ["peer-left", "quick-exit", "roster"]
    assert the(effects, "t1", "peer-left")["reconnecting"] is False
    assert the(effects, "t1", "quick-exit")["in_call"] is True
    assert room.knocks() == ()
    assert room.next_deadline_ms() is None
    back = room.join("c1b", CLIENT, "J.M.", T0 + 2, resume_token="resume-token-0002")
    assert the(back, "c1b", "welcome")["state"] == "waiting"  # no way back in by resume


def test_a_note_reaches_only_the_clients_still_waiting_and_only_a_few_a_minute() -> None:
    room = room_in_call()
    room.join("c2", CLIENT, "A.B.", T0)
    effects = room.waiting_note("t1", "Running five minutes late", T0)
    assert [e.conn_id for e in effects] == ["c2"]
    assert the(effects, "c2", "therapist-note") == {
        "type": "therapist-note",
        "text": "Running five minutes late",
    }
    for n in range(1, WAITING_NOTES_PER_MINUTE):
        room.waiting_note("t1", "Still a moment", T0 + n)
    assert refused(lambda: room.waiting_note("t1", "Again", T0 + 10)) is ErrorCode.RATE_LIMITED
    assert room.waiting_note("t1", "Now", T0 + 60_001)  # a minute later, one more
    assert refused(lambda: room.waiting_note("c2", "Hi", T0 + 60_002)) is ErrorCode.FORBIDDEN


def test_a_note_with_nobody_waiting_is_refused() -> None:
    room = room_in_call()
    assert refused(lambda: room.waiting_note("t1", "Hello", T0)) is ErrorCode.NO_SUCH_KNOCK


def test_the_therapist_cannot_quick_exit_for_a_client() -> None:
    room = room_in_call()
    assert room.quick_exit("t1") == []
    assert room.in_call("c1")


# --- admit, deny, send back ------------------------------------------------------------


def test_admitting_tells_both_sides_and_empties_the_lobby() -> None:
    room = new_room()
    room.join("t1", THERAPIST, "Dr. Rivera", T0)
    room.join("c1", CLIENT, "J.M.", T0)
    effects = room.admit("t1", "k1")
    assert the(effects, "c1", "admitted") == {"type": "admitted", "resumed": False}
    assert the(effects, "t1", "peer-joined") == {
        "type": "peer-joined",
        "role": "client",
        "label": "J.M.",
        "resumed": False,
        "peer_id": "client",
        "kind": "client",
    }
    assert the(effects, "t1", "lobby")["waiting"] == []
    assert room.in_call("c1") and room.admitted_conn_id == "c1"


@pytest.mark.parametrize("action", ["admit", "deny"])
def test_admit_and_deny_need_a_knock_that_is_waiting(action: str) -> None:
    room = room_in_call()
    act = getattr(room, action)
    assert refused(lambda: act("t1", "k9")) is ErrorCode.NO_SUCH_KNOCK
    assert refused(lambda: act("t1", "k1")) is ErrorCode.NO_SUCH_KNOCK  # k1 is in the call


def test_denying_tells_the_client_closes_it_and_updates_the_lobby() -> None:
    room = new_room()
    room.join("t1", THERAPIST, "Dr. Rivera", T0)
    room.join("c1", CLIENT, "J.M.", T0)
    effects = room.deny("t1", "k1")
    assert to(effects, "c1") == ["denied"]
    assert closed(effects) == {"c1": CloseCode.DENIED}
    assert the(effects, "t1", "lobby")["waiting"] == []
    assert room.leave("c1", T0 + 1) == []
    assert room.role_of("c1") is None


def test_sending_back_returns_the_client_to_the_lobby() -> None:
    room = room_in_call()
    effects = room.send_back("t1", T0 + 60_000)
    assert to(effects, "c1") == ["sent-back"]
    assert the(effects, "t1", "peer-left") == {
        "type": "peer-left",
        "role": "client",
        "reconnecting": False,
        "peer_id": "client",
        "kind": "client",
        "label": "J.M.",
    }
    assert [k["knock_id"] for k in the(effects, "t1", "lobby")["waiting"]] == ["k1"]
    assert the(effects, "t1", "lobby")["waiting"][0]["since_ms"] == T0 + 60_000
    assert room.in_call("c1") is False
    assert refused(lambda: room.relay("c1", OFFER)) is ErrorCode.NOT_ADMITTED
    assert refused(lambda: room.send_back("t1", T0)) is ErrorCode.NO_PEER


@pytest.mark.parametrize(
    "act",
    [
        lambda room: room.admit("c1", "k2"),
        lambda room: room.deny("c1", "k2"),
        lambda room: room.send_back("c1", T0),
        lambda room: room.end("c1"),
        lambda room: room.admit("gone", "k2"),
    ],
    ids=["admit", "deny", "send-back", "end", "unknown-connection"],
)
def test_only_the_therapist_runs_the_room(act: Callable[[Room], object]) -> None:
    room = room_in_call()
    room.join("c2", CLIENT, "J.M.", T0)
    assert refused(lambda: act(room)) is ErrorCode.FORBIDDEN
    assert room.in_call("c1") and not room.ended


# --- relay -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sender", "code"),
    [("c1", ErrorCode.NOT_ADMITTED), ("t1", ErrorCode.NO_PEER)],
    ids=["client-to-therapist", "therapist-to-client"],
)
def test_nothing_is_relayed_to_or_from_the_lobby(sender: str, code: ErrorCode) -> None:
    room = new_room()
    room.join("t1", THERAPIST, "Dr. Rivera", T0)
    room.join("c1", CLIENT, "J.M.", T0)
    assert refused(lambda: room.relay(sender, OFFER)) is code


@pytest.mark.parametrize(
    ("sender", "receiver", "payload"),
    [("t1", "c1", OFFER), ("c1", "t1", CANDIDATE)],
    ids=["offer-to-client", "candidate-to-therapist"],
)
def test_inside_the_call_signaling_reaches_only_the_other_party(
    sender: str, receiver: str, payload: SessionDescription | IceCandidate
) -> None:
    room = room_in_call()
    room.join("c2", CLIENT, "J.M.", T0)  # a second device waiting must not overhear
    effects = room.relay(sender, payload)
    sender_peer = "therapist" if sender == "t1" else "client"
    assert effects == [
        Send(
            receiver,
            {"type": "signal-relay", "payload": payload.to_json(), "from": sender_peer},
        ),
    ]


def test_an_admitted_client_cannot_relay_while_the_therapist_is_away() -> None:
    room = room_in_call()
    room.leave("t1", T0 + 1)
    assert refused(lambda: room.relay("c1", CANDIDATE)) is ErrorCode.NO_PEER


# --- presence, tabs and resume -----------------------------------------------------------


def test_a_second_therapist_tab_replaces_the_first() -> None:
    room = room_in_call()
    effects = room.join("t2", THERAPIST, "Dr. Rivera", T0 + 10)
    assert effects[0] == Close("t1", CloseCode.REPLACED, "opened in another tab")
    assert to(effects, "t2") == ["welcome", "lobby", "roster"]
    assert the(effects, "t2", "welcome")["peer"] == "in-call"
    assert the(effects, "c1", "peer-joined")["resumed"] is False  # a new tab: renegotiate
    assert room.leave("t1", T0 + 11) == []  # the replaced tab's goodbye changes nothing
    assert room.therapist_conn_id == "t2"
    assert to(room.relay("c1", CANDIDATE), "t2") == ["signal-relay"]


def test_the_therapist_leaving_is_announced_to_every_client() -> None:
    room = room_in_call()
    room.join("c2", CLIENT, "J.M.", T0)
    effects = room.leave("t1", T0 + 1)
    assert to(effects, "c2") == ["peer-left"]  # waiting: no roster, that is the call's
    assert to(effects, "c1") == ["peer-left", "roster"]
    assert room.in_call("c1")  # the client stays admitted while the therapist reconnects
    back = room.join("t2", THERAPIST, "Dr. Rivera", T0 + 2)
    assert the(back, "t2", "welcome")["peer"] == "in-call"


def test_an_admitted_client_who_drops_holds_a_resumable_slot() -> None:
    room = room_in_call()
    effects = room.leave("c1", T0 + 100)
    assert the(effects, "t1", "peer-left") == {
        "type": "peer-left",
        "role": "client",
        "reconnecting": True,
        "peer_id": "client",
        "kind": "client",
        "label": "J.M.",
    }
    assert the(effects, "t1", "roster")["people"][1]["present"] is False
    assert room.next_deadline_ms() == T0 + 100 + RESUME_GRACE_MS
    welcome_of_therapist = room.join("t2", THERAPIST, "Dr. Rivera", T0 + 200)
    assert the(welcome_of_therapist, "t2", "welcome")["peer"] == "reconnecting"


def test_resuming_within_the_grace_period_returns_straight_into_the_call() -> None:
    room = room_in_call()
    room.leave("c1", T0 + 100)
    effects = room.join(
        "c1b", CLIENT, "J.M.", T0 + 100 + RESUME_GRACE_MS - 1, resume_token="resume-token-0002"
    )
    welcome = the(effects, "c1b", "welcome")
    assert (welcome["state"], welcome["knock_id"]) == ("in-call", "k1")
    assert welcome["resume_token"] == "resume-token-0003"  # a token resumes once
    assert the(effects, "c1b", "admitted")["resumed"] is True
    assert the(effects, "t1", "peer-joined")["resumed"] is True
    assert room.admitted_conn_id == "c1b"
    assert room.next_deadline_ms() is None
    assert to(room.relay("t1", OFFER), "c1b") == ["signal-relay"]


def test_a_used_resume_token_does_not_work_twice() -> None:
    room = room_in_call()
    room.leave("c1", T0)
    room.join("c1b", CLIENT, "J.M.", T0 + 1, resume_token="resume-token-0002")
    effects = room.join("c1c", CLIENT, "J.M.", T0 + 2, resume_token="resume-token-0002")
    assert the(effects, "c1c", "welcome")["state"] == "waiting"
    assert waiting_labels(effects) == ["J.M. (device 2)"]


def test_resuming_while_the_old_connection_lingers_closes_the_old_one() -> None:
    room = room_in_call()
    effects = room.join("c1b", CLIENT, "J.M.", T0 + 5, resume_token="resume-token-0002")
    assert closed(effects) == {"c1": CloseCode.RESUMED_ELSEWHERE}
    assert to(effects, "c1b") == ["welcome", "admitted", "roster"]
    assert room.leave("c1", T0 + 6) == []  # the stale connection's goodbye changes nothing
    assert room.admitted_conn_id == "c1b"


@pytest.mark.parametrize("sweep", [True, False], ids=["timer-swept", "not-yet-swept"])
def test_after_the_grace_period_a_rejoin_is_a_new_knock(sweep: bool) -> None:
    room = room_in_call()
    room.leave("c1", T0)
    deadline = T0 + RESUME_GRACE_MS
    if sweep:
        expired = room.expire(deadline)
        assert the(expired, "t1", "peer-left")["reconnecting"] is False
        assert room.next_deadline_ms() is None
    effects = room.join("c1b", CLIENT, "J.M.", deadline, resume_token="resume-token-0002")
    assert the(effects, "c1b", "welcome")["state"] == "waiting"
    assert to(effects, "t1")[-1] == "lobby"
    assert waiting_labels(effects) == ["J.M."]
    assert room.admitted_conn_id is None


def test_expire_before_the_deadline_changes_nothing() -> None:
    room = room_in_call()
    room.leave("c1", T0)
    assert room.expire(T0 + RESUME_GRACE_MS - 1) == []
    assert room.next_deadline_ms() == T0 + RESUME_GRACE_MS


def test_admitting_another_knock_releases_a_held_slot() -> None:
    room = room_in_call()
    room.leave("c1", T0)
    room.join("c2", CLIENT, "J.M.", T0 + 1)
    effects = room.admit("t1", "k2")
    assert to(effects, "c2") == ["admitted", "roster"]
    late = room.join("c1b", CLIENT, "J.M.", T0 + 2, resume_token="resume-token-0002")
    assert the(late, "c1b", "welcome")["state"] == "waiting"


def test_sending_back_a_dropped_client_releases_its_slot() -> None:
    room = room_in_call()
    room.leave("c1", T0)
    effects = room.send_back("t1", T0 + 1)
    assert to(effects, "t1") == ["peer-left", "roster"]
    assert room.next_deadline_ms() is None


# --- the end -----------------------------------------------------------------------------


def test_ending_tells_everyone_and_closes_every_connection() -> None:
    room = room_in_call()
    room.join("c2", CLIENT, "J.M.", T0)
    effects = room.end("t1")
    for conn in ("t1", "c1", "c2"):
        assert the(effects, conn, "session-ended")["reason"] == "therapist-ended"
    assert closed(effects) == dict.fromkeys(("t1", "c1", "c2"), CloseCode.SESSION_ENDED)
    assert room.ended and room.is_empty
    assert room.terminate(EndReason.THERAPIST_ENDED) == []


def test_joining_an_ended_room_is_told_so_and_closed() -> None:
    room = room_in_call()
    room.terminate(EndReason.CONSENT_WITHDRAWN)
    effects = room.join("c9", CLIENT, "J.M.", T0)
    assert the(effects, "c9", "session-ended")["reason"] == "consent-withdrawn"
    assert closed(effects) == {"c9": CloseCode.SESSION_ENDED}


# --- addressing messages built elsewhere -------------------------------------------------


@pytest.mark.parametrize(
    ("audience", "receivers"),
    [
        (Audience.THERAPIST, ["t1"]),
        (Audience.ADMITTED_CLIENT, ["c1"]),
        (Audience.CLIENTS, ["c1", "c2"]),
        (Audience.CALL, ["t1", "c1"]),
        (Audience.EVERYONE, ["t1", "c1", "c2"]),
    ],
    ids=lambda v: str(v),
)
def test_deliver_addresses_an_audience(audience: Audience, receivers: list[str]) -> None:
    room = room_in_call()
    room.join("c2", CLIENT, "J.M.", T0)
    message = ConsentChangedMessage(
        purpose=Purpose.CUE_ANALYSIS, decision=ConsentDecision.WITHDRAWN
    )
    effects = room.deliver(message, audience)
    assert [e.conn_id for e in effects] == receivers
    assert all(
        isinstance(e, Send)
        and e.message
        == {"type": "consent-changed", "purpose": "cue_analysis", "decision": "withdrawn"}
        for e in effects
    )


THERAPIST_ONLY_EXAMPLES = [
    LobbyMessage(waiting=()),
    CheckinResultMessage(instrument_id="pulse", kind="pulse", scores={"pulse": 2}, alerts=()),
    PromptMessage(prompt={"id": "p-1", "text": "Consider checking in."}),
    ClientSignalMessage(signal=ClientSignal.SLOW_DOWN),
    PanelStateMessage(checkins=(), prompts=(), signals=({"signal": "slow-down", "at_ms": 1},)),
    QuickExitMessage(label="J.M.", in_call=True),
    SafetyCheckMessage(
        check={
            "location": "At home",
            "private": False,
            "contact_name": "Anna",
            "contact_phone": "112",
            "code_word": "",
            "submitted_at_ms": 1,
        }
    ),
    MeasureAlertMessage(
        alert_id="a" * 32,
        label="J.M.",
        measure="PHQ-9",
        reason="On the PHQ-9, the client reported thoughts of self-harm.",
        repair="Ask about safety today.",
    ),
]


def test_the_examples_cover_every_therapist_only_type() -> None:
    assert {m.TYPE for m in THERAPIST_ONLY_EXAMPLES} == THERAPIST_ONLY_SERVER_TYPES


@pytest.mark.parametrize("audience", list(Audience), ids=str)
@pytest.mark.parametrize("message", THERAPIST_ONLY_EXAMPLES, ids=lambda m: m.TYPE)
def test_a_therapist_only_message_cannot_be_addressed_to_a_client(
    message: TherapistOnlyMessage, audience: Audience
) -> None:
    room = room_in_call()
    untyped = cast(Any, message)  # what a type checker would refuse, arriving anyway
    with pytest.raises(TypeError, match="therapist only"):
        room.deliver(untyped, audience)


def test_deliver_takes_only_shared_messages_and_therapist_only_ones_are_not_shared() -> None:
    assert typing.get_type_hints(Room.deliver)["message"] is SharedMessage
    therapist_only = [c for c in SERVER_MESSAGE_CLASSES if issubclass(c, TherapistOnlyMessage)]
    assert {c.TYPE for c in therapist_only} == THERAPIST_ONLY_SERVER_TYPES
    assert not [c for c in therapist_only if issubclass(c, SharedMessage)]
    shared = [c for c in SERVER_MESSAGE_CLASSES if c not in therapist_only]
    assert all(issubclass(c, SharedMessage) for c in shared)


def test_an_untyped_message_cannot_be_delivered() -> None:
    room = room_in_call()
    untyped = cast(Any, {"type": "consent-changed", "purpose": "cue_analysis"})
    with pytest.raises(TypeError, match="SharedMessage"):
        room.deliver(untyped, Audience.EVERYONE)


def test_deliver_to_therapist_sends_a_therapist_only_message_to_the_therapist_alone() -> None:
    room = room_in_call()
    effects = room.deliver_to_therapist(ClientSignalMessage(signal=ClientSignal.SLOW_DOWN))
    assert effects == [Send("t1", {"type": "client-signal", "signal": "slow-down"})]
    room.leave("t1", T0)
    assert room.deliver_to_therapist(ClientSignalMessage(signal=ClientSignal.CONFUSED)) == []


# --- the registry ------------------------------------------------------------------------


def test_the_registry_creates_rooms_on_first_join_and_drops_them_when_empty() -> None:
    rooms = RoomRegistry(new_token=token_factory())
    rooms.join("s1", "t1", THERAPIST, "Dr. Rivera", T0)
    rooms.join("s2", "c1", CLIENT, "A.B.", T0)
    assert len(rooms) == 2
    assert rooms.leave("s2", "c1", T0) == []  # nobody to tell
    assert "s2" not in rooms
    assert rooms.leave("s2", "c1", T0) == []  # twice is harmless
    rooms.leave("s1", "t1", T0)
    assert len(rooms) == 0


def test_a_held_slot_keeps_its_room_until_the_grace_period_is_over() -> None:
    rooms = RoomRegistry(new_token=token_factory(), resume_grace_ms=1000)
    rooms.join("s1", "t1", THERAPIST, "Dr. Rivera", T0)
    rooms.join("s1", "c1", CLIENT, "J.M.", T0)
    room = rooms.get("s1")
    assert room is not None
    room.admit("t1", "k1")
    rooms.leave("s1", "t1", T0)
    rooms.leave("s1", "c1", T0)
    assert "s1" in rooms
    assert rooms.next_deadline_ms() == T0 + 1000
    assert rooms.expire(T0 + 1000) == []  # the therapist is gone too: nobody to tell
    assert "s1" not in rooms
    assert rooms.next_deadline_ms() is None


def test_an_ended_room_is_dropped_once_its_connections_say_goodbye() -> None:
    rooms = RoomRegistry(new_token=token_factory())
    rooms.join("s1", "t1", THERAPIST, "Dr. Rivera", T0)
    room = rooms.get("s1")
    assert room is not None
    room.end("t1")
    assert rooms.leave("s1", "t1", T0) == []
    assert "s1" not in rooms


def test_the_registry_terminates_a_session_for_a_system_reason() -> None:
    rooms = RoomRegistry(new_token=token_factory())
    rooms.join("s1", "t1", THERAPIST, "Dr. Rivera", T0)
    effects = rooms.terminate("s1", EndReason.LINK_EXPIRED)
    assert the(effects, "t1", "session-ended")["reason"] == "link-expired"
    assert "s1" not in rooms
    assert rooms.terminate("s1", EndReason.LINK_EXPIRED) == []


# --- invariants under any sequence of events ---------------------------------------------

CONNS = ("t1", "t2", "c1", "c2", "c3")
THE_THERAPIST = "therapist"  # resolved to whichever tab is the therapist's right now
BY_THERAPIST = (THE_THERAPIST, THE_THERAPIST, THE_THERAPIST, "c1")
ACTIONS: dict[str, tuple[str, ...]] = {
    "join": CONNS,
    "resume": CONNS,
    "leave": CONNS,
    "relay": (*CONNS, THE_THERAPIST),
    "expire": CONNS,
    "admit": BY_THERAPIST,
    "deny": BY_THERAPIST,
    "send_back": BY_THERAPIST,
    "end": BY_THERAPIST,
    "quick_exit": CONNS,
    "share": (*CONNS, THE_THERAPIST),
    "allow_share": BY_THERAPIST,
}
WEIGHTED = ["join", "join", "admit", "admit", "relay", "relay", *ACTIONS]
events = st.lists(
    st.sampled_from(WEIGHTED).flatmap(
        lambda action: st.tuples(
            st.just(action), st.sampled_from(ACTIONS[action]), st.integers(1, 3)
        )
    ),
    max_size=30,
)


@settings(max_examples=150, deadline=None)
@given(events)
def test_room_invariants_hold_for_any_sequence_of_events(
    script: list[tuple[str, str, int]],
) -> None:
    room = new_room()
    now = T0
    live: set[str] = set()
    opening = [("join", "t1", 1), ("join", "c1", 1), ("join", "c2", 1)]
    for action, who, n in opening + script:
        now += 7_000 * n
        conn = (room.therapist_conn_id or "t1") if who == THE_THERAPIST else who
        role = THERAPIST if conn.startswith("t") else CLIENT
        knocks = room.knocks()
        knock_id = knocks[n % len(knocks)].knock_id if knocks else "k1"
        in_call_before = {c for c in live if room.in_call(c)}
        try:
            if action in ("join", "resume"):
                if conn in live:
                    continue
                token = f"resume-token-{n:04d}" if action == "resume" else None
                effects = room.join(conn, role, "J.M.", now, resume_token=token)
                live.add(conn)
            elif action == "leave":
                effects = room.leave(conn, now, dropped=n % 2 == 0)
                live.discard(conn)
            elif action in ("admit", "deny"):
                effects = getattr(room, action)(conn, knock_id)
            elif action == "send_back":
                effects = room.send_back(conn, now)
            elif action == "relay":
                effects = room.relay(conn, CANDIDATE)
                sender_in_call = conn in in_call_before
                assert sender_in_call
                assert all(e.conn_id in in_call_before for e in effects)
            elif action == "expire":
                effects = room.expire(now)
            elif action == "quick_exit":
                effects = room.quick_exit(conn)
                if room.role_of(conn) is None:
                    live.discard(conn)
            elif action == "share":
                effects = room.screen_share(conn, None if n == 3 else f"screen-{n}", now)
                assert conn in in_call_before
            elif action == "allow_share":
                effects = room.allow_screen_share(conn, n != 2)
            else:
                effects = room.end(conn)
        except RoomError:
            continue
        for effect in effects:
            if isinstance(effect, Close):
                live.discard(effect.conn_id)
                assert room.role_of(effect.conn_id) is None
            elif room.role_of(effect.conn_id) is CLIENT:
                assert effect.message["type"] not in THERAPIST_ONLY_SERVER_TYPES
        assert sum(knock.admitted for knock in room.knocks()) <= 1
        assert {c for c in live if room.role_of(c) is not None} == live
        therapists = [c for c in live if room.role_of(c) is THERAPIST]
        assert len(therapists) <= 1
        screens = room.to_state()["screens"]
        # a client's share stands only while the therapist allows it, and only in the call
        assert screens["client_stream"] is None or screens["client_may_share"]
        assert not screens["client_may_share"] or any(k.admitted for k in room.knocks())
        # whoever takes the room over next sees exactly this room
        state = room.to_state()
        room = Room.from_state(json.loads(json.dumps(state)), new_token=room._new_token)
        assert room.to_state() == state


# --- the therapist resumes too ---------------------------------------------------------


def test_a_therapist_whose_connection_drops_keeps_the_seat_and_the_call_goes_on() -> None:
    room = room_in_call()
    effects = room.leave("t1", T0 + 1, dropped=True)
    assert the(effects, "c1", "peer-left") == {
        "type": "peer-left",
        "role": "therapist",
        "reconnecting": True,
        "peer_id": "therapist",
        "kind": "therapist",
        "label": "Dr. Rivera",
    }
    assert [p["present"] for p in the(effects, "c1", "roster")["people"]] == [False, True]
    assert room.in_call("c1")
    assert room.next_deadline_ms() == T0 + 1 + RESUME_GRACE_MS
    back = room.join("t2", THERAPIST, "Dr. Rivera", T0 + 2, resume_token="resume-token-0001")
    welcome = the(back, "t2", "welcome")
    assert (welcome["resumed"], welcome["peer"]) == (True, "in-call")
    assert welcome["resume_token"] == "resume-token-0003"  # a token resumes once
    assert the(back, "c1", "peer-joined")["resumed"] is True  # the client keeps its call
    assert to(back, "t2") == ["welcome", "lobby", "roster"]
    assert room.next_deadline_ms() is None
    assert to(room.relay("c1", CANDIDATE), "t2") == ["signal-relay"]


def test_a_therapist_who_says_goodbye_leaves_at_once() -> None:
    room = room_in_call()
    effects = room.leave("t1", T0 + 1)
    assert the(effects, "c1", "peer-left")["reconnecting"] is False
    back = room.join("t2", THERAPIST, "Dr. Rivera", T0 + 2, resume_token="resume-token-0001")
    assert the(back, "t2", "welcome")["resumed"] is False
    assert the(back, "c1", "peer-joined")["resumed"] is False


def test_a_held_therapist_seat_runs_out_after_the_grace_period() -> None:
    room = room_in_call()
    room.leave("t1", T0, dropped=True)
    expired = room.expire(T0 + RESUME_GRACE_MS)
    assert the(expired, "c1", "peer-left")["reconnecting"] is False
    late = room.join(
        "t2", THERAPIST, "Dr. Rivera", T0 + RESUME_GRACE_MS + 1, resume_token="resume-token-0001"
    )
    assert the(late, "t2", "welcome")["resumed"] is False


def test_a_therapist_resuming_while_the_old_connection_lingers_closes_the_old_one() -> None:
    room = room_in_call()
    effects = room.join("t2", THERAPIST, "Dr. Rivera", T0 + 5, resume_token="resume-token-0001")
    assert closed(effects) == {"t1": CloseCode.RESUMED_ELSEWHERE}
    assert room.leave("t1", T0 + 6) == []
    assert room.therapist_conn_id == "t2"


# --- state round trip (a room outlives the process that held it) -------------------------


def _rooms_in_every_state() -> list[Room]:
    empty_waiting = new_room()
    empty_waiting.join("c1", CLIENT, "J.M.", T0)
    lobby = new_room()
    lobby.join("t1", THERAPIST, "Dr. Rivera", T0)
    lobby.join("c1", CLIENT, "J.M.", T0 + 1)
    lobby.join("c2", CLIENT, "J.M.", T0 + 2)
    held_client = room_in_call()
    held_client.join("c2", CLIENT, "J.M.", T0 + 3)
    held_client.leave("c1", T0 + 4)
    held_therapist = room_in_call()
    held_therapist.leave("t1", T0 + 5, dropped=True)
    ended = room_in_call()
    ended.terminate(EndReason.CONSENT_WITHDRAWN)
    return [empty_waiting, lobby, room_in_call(), held_client, held_therapist, ended]


@pytest.mark.parametrize("index", range(6))
def test_a_room_rebuilt_from_its_state_has_the_same_state(index: int) -> None:
    room = _rooms_in_every_state()[index]
    state = json.loads(json.dumps(room.to_state()))  # it travels as JSON
    rebuilt = Room.from_state(state, new_token=token_factory())
    assert rebuilt.to_state() == room.to_state()
    assert rebuilt.knocks() == room.knocks()
    assert rebuilt.conn_ids == room.conn_ids
    assert rebuilt.next_deadline_ms() == room.next_deadline_ms()


def test_a_rebuilt_room_resumes_admits_and_relays_like_the_original() -> None:
    room = room_in_call()
    room.join("c2", CLIENT, "J.M.", T0 + 1)
    room.leave("c1", T0 + 2)
    rebuilt = Room.from_state(room.to_state(), new_token=lambda: "resume-token-new")
    back = rebuilt.join("c1b", CLIENT, "J.M.", T0 + 3, resume_token="resume-token-0002")
    assert the(back, "c1b", "welcome")["resumed"] is True
    assert to(back, "t1") == ["peer-joined", "roster"]
    assert to(rebuilt.relay("t1", OFFER), "c1b") == ["signal-relay"]
    assert refused(lambda: rebuilt.admit("t1", "k2")) is ErrorCode.CALL_FULL
    knock = rebuilt.join("c3", CLIENT, "J.M.", T0 + 4)
    assert the(knock, "c3", "welcome")["knock_id"] == "k3"  # knock ids keep counting


@pytest.mark.parametrize(
    "state",
    [{}, {"v": 99}, {"v": 1, "session_id": "s", "therapist": None, "slots": "x"}],
    ids=["empty", "future-version", "slots-not-a-list"],
)
def test_a_state_that_is_not_a_room_is_refused(state: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Room.from_state(state, new_token=token_factory())

"""A room for several people (issue #15): the therapist and up to three others, each a client
or a guest, admitted one by one, each pair relaying to each other by peer id, and everyone in
the call told who is in it (`roster`)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from server.core.participants import PersonKind
from server.core.protocol import CloseCode, EndReason, ErrorCode, SessionRole
from server.core.room_seats import Person
from server.core.rooms import Audience, Effect, Room, Send
from tests.unit.test_rooms import (
    CANDIDATE,
    OFFER,
    T0,
    closed,
    refused,
    the,
    to,
    token_factory,
)

THERAPIST, CLIENT = SessionRole.THERAPIST, SessionRole.CLIENT
SAM = Person("p-sam", PersonKind.CLIENT, "client-sam")
ALEX = Person("p-alex", PersonKind.CLIENT, "client-alex")
INTERPRETER = Person("p-int", PersonKind.GUEST)
RIVER = Person("p-river", PersonKind.CLIENT, "client-river")


def join(room: Room, conn: str, person: Person, label: str, at: int = T0) -> list[Effect]:
    return room.join(conn, CLIENT, label, at, person=person)


def full_room(max_people: int = 4) -> Room:
    """Therapist t1; Sam (s1, k1), Alex (a1, k2) and the interpreter (i1, k3), admitted in
    that order."""
    room = Room("session-1", new_token=token_factory(), max_people=max_people)
    room.join("t1", THERAPIST, "Dr. Rivera", T0)
    join(room, "s1", SAM, "Sam")
    join(room, "a1", ALEX, "Alex")
    join(room, "i1", INTERPRETER, "Interpreter")
    for knock in ("k1", "k2", "k3"):
        room.admit("t1", knock)
    return room


def people(effects: Sequence[Effect], conn: str) -> list[tuple[str, str, int, bool]]:
    """The last roster a connection got, as (peer id, kind, order, present)."""
    roster = the_last(effects, conn, "roster")
    return [(p["peer_id"], p["kind"], p["order"], p["present"]) for p in roster["people"]]


def the_last(effects: Sequence[Effect], conn: str, type_name: str) -> Mapping[str, Any]:
    found = [
        e.message
        for e in effects
        if isinstance(e, Send) and e.conn_id == conn and e.message["type"] == type_name
    ]
    assert found, f"{conn} got no {type_name}"
    return found[-1]


# --- admission ---------------------------------------------------------------------------


def test_each_person_is_admitted_separately_and_everyone_in_the_call_hears_the_roster() -> None:
    room = Room("session-1", new_token=token_factory())
    room.join("t1", THERAPIST, "Dr. Rivera", T0)
    join(room, "s1", SAM, "Sam")
    join(room, "i1", INTERPRETER, "Interpreter")
    first = room.admit("t1", "k1")
    assert people(first, "s1") == [
        ("therapist", "therapist", 0, True),
        ("p-sam", "client", 1, True),
    ]
    assert to(first, "i1") == []  # waiting: nothing of the call reaches them
    second = room.admit("t1", "k2")
    expected = [
        ("therapist", "therapist", 0, True),
        ("p-sam", "client", 1, True),
        ("p-int", "guest", 2, True),
    ]
    assert people(second, "t1") == people(second, "s1") == people(second, "i1") == expected


def test_the_newcomer_is_announced_to_everyone_already_in_the_call_by_peer_id() -> None:
    room = Room("session-1", new_token=token_factory())
    room.join("t1", THERAPIST, "Dr. Rivera", T0)
    join(room, "s1", SAM, "Sam")
    join(room, "i1", INTERPRETER, "Interpreter")
    room.admit("t1", "k1")
    effects = room.admit("t1", "k2")
    joined = {"peer_id": "p-int", "kind": "guest", "label": "Interpreter", "resumed": False}
    for conn in ("t1", "s1"):
        assert the(effects, conn, "peer-joined") == {
            "type": "peer-joined",
            "role": "client",
            **joined,
        }
    assert to(effects, "i1") == ["admitted", "roster"]  # the newcomer learns it from roster


def test_the_lobby_says_whose_knock_it_is_and_what_kind_of_person() -> None:
    room = Room("session-1", new_token=token_factory())
    room.join("t1", THERAPIST, "Dr. Rivera", T0)
    join(room, "s1", SAM, "Sam")
    effects = join(room, "i1", INTERPRETER, "Interpreter", T0 + 5)
    waiting = the(effects, "t1", "lobby")["waiting"]
    assert [(k["label"], k["kind"], k["participant_id"]) for k in waiting] == [
        ("Sam", "client", "p-sam"),
        ("Interpreter", "guest", "p-int"),
    ]


def test_each_welcome_names_its_own_peer_id() -> None:
    room = Room("session-1", new_token=token_factory())
    therapist = room.join("t1", THERAPIST, "Dr. Rivera", T0)
    guest = join(room, "i1", INTERPRETER, "Interpreter")
    assert the(therapist, "t1", "welcome")["peer_id"] == "therapist"
    assert the(guest, "i1", "welcome")["peer_id"] == "p-int"


def test_a_call_holds_at_most_max_people_the_therapist_included() -> None:
    room = full_room()
    join(room, "r1", RIVER, "River")
    assert refused(lambda: room.admit("t1", "k4")) is ErrorCode.CALL_FULL
    small = Room("session-2", new_token=token_factory(), max_people=2)
    small.join("t1", THERAPIST, "Dr. Rivera", T0)
    join(small, "s1", SAM, "Sam")
    join(small, "a1", ALEX, "Alex")
    small.admit("t1", "k1")
    assert refused(lambda: small.admit("t1", "k2")) is ErrorCode.CALL_FULL


def test_a_place_held_for_someone_else_counts_toward_the_limit() -> None:
    room = full_room()
    room.leave("a1", T0 + 1)  # Alex dropped: the place is held
    join(room, "r1", RIVER, "River")
    assert refused(lambda: room.admit("t1", "k4")) is ErrorCode.CALL_FULL


def test_one_person_has_one_device_in_the_call() -> None:
    room = full_room()
    join(room, "s2", SAM, "Sam", T0 + 1)
    assert refused(lambda: room.admit("t1", "k4")) is ErrorCode.CALL_FULL
    room.leave("s1", T0 + 2)  # held: admitting the new device releases it
    effects = room.admit("t1", "k4")
    assert to(effects, "s2") == ["admitted", "roster"]
    assert [p[0] for p in people(effects, "t1")] == ["therapist", "p-alex", "p-int", "p-sam"]


def test_a_second_device_is_numbered_per_person() -> None:
    room = full_room()
    effects = join(room, "a2", ALEX, "Alex")
    assert [k["label"] for k in the(effects, "t1", "lobby")["waiting"]] == ["Alex (device 2)"]


# --- addressed relay ---------------------------------------------------------------------


def test_a_relay_goes_to_the_person_it_names_and_says_who_sent_it() -> None:
    room = full_room()
    effects = room.relay("s1", OFFER, to="p-int")
    assert [e.conn_id for e in effects] == ["i1"]
    assert the(effects, "i1", "signal-relay") == {
        "type": "signal-relay",
        "payload": OFFER.to_json(),
        "from": "p-sam",
    }
    back = room.relay("i1", CANDIDATE, to="p-sam")
    assert the(back, "s1", "signal-relay")["from"] == "p-int"


def test_with_more_than_two_people_a_relay_must_say_to_whom() -> None:
    room = full_room()
    assert refused(lambda: room.relay("t1", OFFER)) is ErrorCode.INVALID


@pytest.mark.parametrize(
    ("sender", "target", "code"),
    [
        ("t1", "p-nobody", ErrorCode.NO_PEER),
        ("t1", "p-river", ErrorCode.NO_PEER),  # waiting, not in the call
        ("s1", "p-sam", ErrorCode.INVALID),  # yourself
        ("r1", "therapist", ErrorCode.NOT_ADMITTED),  # from the waiting room
    ],
    ids=["unknown", "waiting", "self", "from-waiting"],
)
def test_a_relay_reaches_only_someone_else_in_the_call(
    sender: str, target: str, code: ErrorCode
) -> None:
    room = full_room()
    join(room, "r1", RIVER, "River")
    assert refused(lambda: room.relay(sender, OFFER, to=target)) is code


def test_a_relay_to_someone_whose_place_is_held_finds_nobody_there() -> None:
    room = full_room()
    room.leave("a1", T0 + 1)
    assert refused(lambda: room.relay("s1", OFFER, to="p-alex")) is ErrorCode.NO_PEER


def test_the_clients_keep_relaying_to_each_other_while_the_therapist_is_away() -> None:
    room = full_room()
    effects = room.leave("t1", T0 + 1, dropped=True)
    for conn in ("s1", "a1", "i1"):
        assert the(effects, conn, "peer-left")["peer_id"] == "therapist"
        assert people(effects, conn)[0] == ("therapist", "therapist", 0, False)
    assert to(room.relay("s1", CANDIDATE, to="p-alex"), "a1") == ["signal-relay"]


# --- leaving, holding, resuming ----------------------------------------------------------


def test_one_person_dropping_is_told_to_the_others_and_resuming_keeps_their_order() -> None:
    room = full_room()
    dropped = room.leave("s1", T0 + 1)
    for conn in ("t1", "a1", "i1"):
        assert the(dropped, conn, "peer-left") == {
            "type": "peer-left",
            "role": "client",
            "reconnecting": True,
            "peer_id": "p-sam",
            "kind": "client",
            "label": "Sam",
        }
        assert people(dropped, conn)[1] == ("p-sam", "client", 1, False)
    back = room.join("s1b", CLIENT, "Sam", T0 + 2, resume_token="resume-token-0002", person=SAM)
    assert the(back, "a1", "peer-joined")["resumed"] is True
    assert people(back, "s1b")[1] == ("p-sam", "client", 1, True)


def test_a_resume_token_returns_only_its_own_person() -> None:
    room = full_room()
    room.leave("s1", T0 + 1)
    wrong = room.join("x1", CLIENT, "Alex", T0 + 2, resume_token="resume-token-0002", person=ALEX)
    assert the(wrong, "x1", "welcome")["state"] == "waiting"


def test_a_held_place_running_out_leaves_the_others_in_the_call() -> None:
    room = full_room()
    room.leave("a1", T0)
    expired = room.expire(T0 + 60_000)
    assert the(expired, "s1", "peer-left")["reconnecting"] is False
    assert [p[0] for p in people(expired, "s1")] == ["therapist", "p-sam", "p-int"]


def test_sending_back_names_whom_when_several_are_in_the_call() -> None:
    room = full_room()
    assert refused(lambda: room.send_back("t1", T0 + 1)) is ErrorCode.INVALID
    assert refused(lambda: room.send_back("t1", T0 + 1, "p-nobody")) is ErrorCode.NO_PEER
    effects = room.send_back("t1", T0 + 1, "p-alex")
    assert to(effects, "a1") == ["sent-back"]
    assert the(effects, "s1", "peer-left")["peer_id"] == "p-alex"
    assert [p[0] for p in people(effects, "i1")] == ["therapist", "p-sam", "p-int"]
    again = room.admit("t1", "k2")
    assert people(again, "a1")[-1] == ("p-alex", "client", 4, True)  # a new, higher order


def test_one_client_quick_exiting_leaves_only_that_client() -> None:
    room = full_room()
    effects = room.quick_exit("s1")
    assert the(effects, "t1", "quick-exit") == {
        "type": "quick-exit",
        "label": "Sam",
        "in_call": True,
    }
    assert the(effects, "a1", "peer-left")["peer_id"] == "p-sam"
    assert room.in_call("a1") and room.in_call("i1")
    assert [p[0] for p in people(effects, "i1")] == ["therapist", "p-alex", "p-int"]


def test_one_persons_part_ends_alone_every_device_of_theirs_closed() -> None:
    room = full_room()
    join(room, "s2", SAM, "Sam")  # a second device of Sam's, waiting
    why = "consent-withdrawn"
    effects = room.remove_person("p-sam", EndReason.CONSENT_WITHDRAWN, CloseCode.FORBIDDEN, why)
    assert closed(effects) == {"s1": CloseCode.FORBIDDEN, "s2": CloseCode.FORBIDDEN}
    assert the(effects, "s1", "session-ended")["reason"] == "consent-withdrawn"
    for conn in ("t1", "a1", "i1"):
        assert the(effects, conn, "peer-left")["peer_id"] == "p-sam"
        assert [p[0] for p in people(effects, conn)] == ["therapist", "p-alex", "p-int"]
    assert the(effects, "t1", "lobby")["waiting"] == []
    assert room.role_of("s1") is None and room.role_of("s2") is None
    assert not room.ended and room.in_call("a1")


# --- audiences and guests ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("audience", "conns"),
    [
        (Audience.THERAPIST, ["t1"]),
        (Audience.ADMITTED_CLIENT, ["s1", "a1"]),
        (Audience.CLIENTS, ["s1", "a1", "r1"]),
        (Audience.CALL, ["t1", "s1", "a1"]),
        (Audience.IN_CALL, ["t1", "s1", "a1", "i1"]),
        (Audience.EVERYONE, ["t1", "s1", "a1", "i1", "r1", "g2"]),
    ],
)
def test_a_guest_is_in_the_call_but_never_in_an_audience_of_clients(
    audience: Audience, conns: list[str]
) -> None:
    room = full_room()
    join(room, "r1", RIVER, "River")  # a client waiting
    join(room, "g2", Person("p-guardian", PersonKind.GUEST), "Guardian")  # a guest waiting
    effects = room.deliver(room.roster(), audience)
    assert sorted(e.conn_id for e in effects) == sorted(conns)


def test_a_guest_never_shares_a_screen() -> None:
    room = full_room()
    room.allow_screen_share("t1", True)
    assert refused(lambda: room.screen_share("i1", "stream-1", T0)) is ErrorCode.FORBIDDEN


def test_one_client_shares_at_a_time_and_everyone_else_in_the_call_sees_it() -> None:
    room = full_room()
    room.allow_screen_share("t1", True)
    effects = room.screen_share("s1", "stream-1", T0)
    assert sorted(e.conn_id for e in effects) == ["a1", "i1", "t1"]
    refusal = refused(lambda: room.screen_share("a1", "stream-2", T0))
    assert refusal is ErrorCode.SCREEN_SHARE_NOT_ALLOWED
    assert room.screen_share("a1", None, T0) == []  # stopping what you do not share: nothing


def test_the_room_finds_a_person_by_whose_consents_they_are() -> None:
    room = full_room()
    assert room.people_of_client("client-alex") == {"p-alex"}  # a client: their record
    assert room.people_of_client("p-int") == {"p-int"}  # a guest: their own participant id
    assert room.people_of_client("p-sam") == set()  # a client is not found by peer id
    assert room.people_of_client("client-nobody") == set()


def test_a_message_about_one_person_reaches_every_device_of_theirs_and_nobody_else() -> None:
    room = full_room()
    join(room, "s2", SAM, "Sam")  # Sam's second device, waiting
    effects = room.deliver_to_people(room.roster(), {"p-sam"})
    assert sorted(e.conn_id for e in effects) == ["s1", "s2"]


# --- a takeover of a room of four ---------------------------------------------------------


def test_a_room_of_four_survives_a_takeover_with_orders_places_and_people() -> None:
    room = full_room()
    room.leave("i1", T0 + 1)  # the interpreter's place is held
    room.allow_screen_share("t1", True)
    room.screen_share("a1", "stream-1", T0 + 2)
    state = json.loads(json.dumps(room.to_state()))  # it travels as JSON
    rebuilt = Room.from_state(state, new_token=lambda: "resume-token-new")
    assert rebuilt.to_state() == room.to_state()
    assert rebuilt.roster() == room.roster()
    assert rebuilt.max_people == 4
    assert the(rebuilt.relay("t1", OFFER, to="p-alex"), "a1", "signal-relay")["from"] == (
        "therapist"
    )
    back = rebuilt.join(
        "i1b", CLIENT, "Interpreter", T0 + 3, resume_token="resume-token-0004", person=INTERPRETER
    )
    assert people(back, "t1")[-1] == ("p-int", "guest", 3, True)
    join(rebuilt, "r1", RIVER, "River")
    assert refused(lambda: rebuilt.admit("t1", "k4")) is ErrorCode.CALL_FULL


def test_a_state_written_before_several_people_is_one_clients_room() -> None:
    state: dict[str, Any] = {
        "v": 1,
        "session_id": "session-1",
        "therapist": {
            "conn_id": "t1",
            "label": "Dr. Rivera",
            "resume_token": "resume-token-0001",
            "held_until_ms": None,
        },
        "slots": [
            {
                "knock_id": "k1",
                "label": "J.M.",
                "device": 1,
                "since_ms": T0,
                "resume_token": "resume-token-0002",
                "conn_id": "c1",
                "admitted": True,
                "held_until_ms": None,
            }
        ],
        "knocks_issued": 1,
        "ended": None,
        "screens": {"therapist_stream": None, "client_stream": "s", "client_may_share": True},
    }
    room = Room.from_state(state, new_token=token_factory())
    assert [(p.peer_id, p.order) for p in room.roster().people] == [("therapist", 0), ("client", 1)]
    assert to(room.relay("t1", OFFER), "c1") == ["signal-relay"]  # two people: no `to` needed
    assert room.to_state()["screens"]["client_sharer"] == "client"

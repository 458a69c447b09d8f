"""What travels between processes on the bus: connection descriptors and room actions."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from privacy.consent import ConsentChanged, ConsentDecision, Purpose
from server.core.models import Account, Role
from server.core.participants import THERAPIST_PEER_ID, PersonKind
from server.core.protocol import SessionRole
from server.realtime.bus import (
    ConnRef,
    LocalBus,
    RoomOp,
    consent_event,
    consent_event_json,
    process_of,
)

THERAPIST = Account(
    id="a1",
    email="t@example.org",
    role=Role.THERAPIST,
    disabled=False,
    created_at=datetime(2026, 11, 23, 9, 0, tzinfo=UTC),
)


GUEST = PersonKind.GUEST


def travelled(data: object) -> object:
    return json.loads(json.dumps(data))


@pytest.mark.parametrize(
    "ref",
    [
        ConnRef("p1.abc", SessionRole.THERAPIST, "s1", "c1", THERAPIST),
        ConnRef("p2.def", SessionRole.CLIENT, "s1", "c1"),
        ConnRef("p2.ghi", SessionRole.CLIENT, "s1", "c2", participant_id="pa2"),
        ConnRef("p3.jkl", SessionRole.CLIENT, "s1", "c1", participant_id="g1", kind=GUEST),
    ],
    ids=["therapist", "client", "second-client", "guest"],
)
def test_a_connection_descriptor_arrives_as_it_left(ref: ConnRef) -> None:
    assert ConnRef.from_json(travelled(ref.to_json())) == ref  # type: ignore[arg-type]


def test_a_connection_names_its_person_the_therapist_by_the_fixed_peer_id() -> None:
    therapist = ConnRef("p1.abc", SessionRole.THERAPIST, "s1", "c1", THERAPIST)
    client = ConnRef("p2.def", SessionRole.CLIENT, "s1", "c1", participant_id="pa1")
    assert (therapist.kind, therapist.peer_id) == (PersonKind.THERAPIST, THERAPIST_PEER_ID)
    assert (client.kind, client.peer_id) == (PersonKind.CLIENT, "pa1")


@pytest.mark.parametrize(
    ("role", "kind"),
    [(SessionRole.THERAPIST, PersonKind.GUEST), (SessionRole.CLIENT, PersonKind.THERAPIST)],
)
def test_a_connection_cannot_be_a_person_its_role_rules_out(
    role: SessionRole, kind: PersonKind
) -> None:
    with pytest.raises(ValueError, match="cannot be"):
        ConnRef("p1.abc", role, "s1", "c1", participant_id="x", kind=kind)


def test_a_room_action_arrives_as_it_left_without_its_parsed_message() -> None:
    op = RoomOp(
        "join",
        ConnRef("p1.abc", SessionRole.CLIENT, "s1", "c1"),
        label="J.M.",
        resume="tok",
        ice_servers=({"urls": ["stun:x"]},),
        consents={"telehealth": "granted"},
        parsed=object(),
    )
    back = RoomOp.from_json(travelled(op.to_json()))  # type: ignore[arg-type]
    assert back.parsed is None
    assert back == replace(op, parsed=None)


def test_a_connection_id_names_the_process_holding_its_socket() -> None:
    assert process_of("3fa2b1c0d9e8.0011223344556677") == "3fa2b1c0d9e8"
    assert process_of("0011223344556677") == ""  # one process: no process part


def test_a_consent_change_travels_without_anything_but_its_facts() -> None:
    event = ConsentChanged(
        "c1", Purpose.CUE_ANALYSIS, ConsentDecision.WITHDRAWN, datetime(2026, 11, 23, tzinfo=UTC)
    )
    payload = consent_event_json(event)
    assert set(payload) == {"client_id", "purpose", "decision", "at"}
    assert consent_event(travelled(payload)) == event  # type: ignore[arg-type]


def test_the_local_bus_hands_a_broadcast_to_this_process_at_once() -> None:
    bus = LocalBus()
    seen: list[object] = []
    bus.on_control("consent", seen.append)
    bus.broadcast("consent", {"x": 1})
    bus.broadcast("other", {"y": 2})  # nobody listens: nothing happens
    assert seen == [{"x": 1}]
    assert bus.owns("any-session")

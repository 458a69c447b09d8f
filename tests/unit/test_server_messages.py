"""Typed server→client messages: built from their classes, checked when built, sent as JSON."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from privacy.consent import ConsentState, Purpose
from server.core.participants import PersonKind
from server.core.protocol import (
    SERVER_MESSAGE_CLASSES,
    THERAPIST_ONLY_SERVER_TYPES,
    ErrorCode,
    ErrorMessage,
    IceCandidate,
    LobbyEntry,
    LobbyMessage,
    PanelStateMessage,
    PeerLeftMessage,
    Presence,
    ProtocolError,
    QuickExitMessage,
    RosterEntry,
    RosterMessage,
    SafetyCheckMessage,
    ServerMessage,
    SessionDescription,
    SessionEndedMessage,
    SessionRole,
    SignalRelayMessage,
    WelcomeMessage,
    server_message,
)

TOKEN = "resume-token-0001"
SAFETY_CHECK: dict[str, Any] = {
    "location": "At home",
    "private": False,
    "contact_name": "Anna",
    "contact_phone": "+49 171 5551234",
    "code_word": "",
    "submitted_at_ms": 1764840000000,
}

PEER: dict[str, Any] = {"peer_id": "pa1", "kind": "client", "label": "J.M."}

BUILT = [
    pytest.param(
        WelcomeMessage(
            role=SessionRole.CLIENT,
            session_id="s1",
            peer_id="pa1",
            state=Presence.WAITING,
            peer=Presence.ABSENT,
            ice_servers=({"urls": ["stun:stun.example.org"]},),
            consents={Purpose.TELEHEALTH: ConsentState.GRANTED},
            knock_id="k1",
            resume_token=TOKEN,
        ),
        {
            "type": "welcome",
            "role": "client",
            "session_id": "s1",
            "peer_id": "pa1",
            "version": 1,
            "state": "waiting",
            "peer": "absent",
            "ice_servers": [{"urls": ["stun:stun.example.org"]}],
            "ice_transport_policy": "all",
            "ice_ttl_seconds": 0,
            "consents": {"telehealth": "granted"},
            "knock_id": "k1",
            "resume_token": TOKEN,
            "resumed": False,
        },
        id="welcome",
    ),
    pytest.param(
        LobbyMessage(
            waiting=(
                LobbyEntry(knock_id="k1", label="J.M.", since_ms=5),
                LobbyEntry(
                    knock_id="k2",
                    label="Interpreter",
                    since_ms=6,
                    kind=PersonKind.GUEST,
                    participant_id="g1",
                ),
            )
        ),
        {
            "type": "lobby",
            "waiting": [
                {
                    "knock_id": "k1",
                    "label": "J.M.",
                    "since_ms": 5,
                    "kind": "client",
                    "participant_id": "client",
                },
                {
                    "knock_id": "k2",
                    "label": "Interpreter",
                    "since_ms": 6,
                    "kind": "guest",
                    "participant_id": "g1",
                },
            ],
        },
        id="lobby",
    ),
    pytest.param(
        RosterMessage(
            people=(
                RosterEntry(
                    peer_id="therapist",
                    kind=PersonKind.THERAPIST,
                    label="Dr. K",
                    order=0,
                    present=True,
                ),
                RosterEntry(peer_id="g1", kind=PersonKind.GUEST, label="I", order=1, present=False),
            )
        ),
        {
            "type": "roster",
            "people": [
                {
                    "peer_id": "therapist",
                    "kind": "therapist",
                    "label": "Dr. K",
                    "order": 0,
                    "present": True,
                },
                {"peer_id": "g1", "kind": "guest", "label": "I", "order": 1, "present": False},
            ],
        },
        id="roster",
    ),
    pytest.param(
        SignalRelayMessage(payload=IceCandidate("", sdp_mid="0"), from_="therapist"),
        {
            "type": "signal-relay",
            "payload": {"kind": "candidate", "candidate": {"candidate": "", "sdpMid": "0"}},
            "from": "therapist",
        },
        id="signal-relay",
    ),
    pytest.param(
        SafetyCheckMessage(check=SAFETY_CHECK),
        {"type": "safety-check", "check": SAFETY_CHECK},
        id="safety-check",
    ),
    pytest.param(
        PanelStateMessage(checkins=(), prompts=(), signals=(), safety=SAFETY_CHECK),
        {
            "type": "panel-state",
            "checkins": [],
            "prompts": [],
            "signals": [],
            "safety_alerts": [],
            "safety": SAFETY_CHECK,
        },
        id="panel-state-with-safety",
    ),
    pytest.param(
        ErrorMessage(code=ErrorCode.NO_PEER, message="nobody there"),
        {"type": "error", "code": "no-peer", "message": "nobody there"},
        id="error-without-ref",
    ),
]


@pytest.mark.parametrize(("message", "expected"), BUILT)
def test_a_typed_message_becomes_the_documented_json(
    message: ServerMessage, expected: dict[str, Any]
) -> None:
    assert message.to_json() == expected
    assert next(iter(message.to_json())) == "type"


@pytest.mark.parametrize(("message", "expected"), BUILT)
def test_the_compatibility_builder_gives_the_same_json_from_plain_values(
    message: ServerMessage, expected: dict[str, Any]
) -> None:
    fields = {name: value for name, value in expected.items() if name != "type"}
    assert server_message(expected["type"], **fields) == message.to_json()


def test_plain_values_are_stored_as_their_enum_members_and_payload_classes() -> None:
    left = {"peer_id": "pa1", "label": "J.M."}
    message = server_message("peer-left", role="client", reconnecting=False, kind="client", **left)
    assert (
        message
        == PeerLeftMessage(
            role=SessionRole.CLIENT, reconnecting=False, kind=PersonKind.CLIENT, **left
        ).to_json()
    )
    typed = PeerLeftMessage(role="client", reconnecting=False, kind="guest", **left)  # type: ignore[arg-type]
    assert typed.role is SessionRole.CLIENT and typed.kind is PersonKind.GUEST
    relay = SignalRelayMessage(
        payload={"kind": "description", "description": {"type": "offer", "sdp": "v=0"}},
        from_="pa1",
    )  # type: ignore[arg-type]
    assert relay.payload == SessionDescription("offer", "v=0")


def test_a_message_is_frozen_and_slotted() -> None:
    message = SessionEndedMessage(reason="link-expired")  # type: ignore[arg-type]
    with pytest.raises(dataclasses.FrozenInstanceError):
        message.reason = "therapist-ended"  # type: ignore[misc,assignment]
    assert not hasattr(message, "__dict__")


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda: ErrorMessage(code="oops", message="x"), id="unknown-code"),
        pytest.param(lambda: ErrorMessage(code=ErrorCode.INVALID, message="x" * 501), id="long"),
        pytest.param(
            lambda: PeerLeftMessage(role="admin", reconnecting=True, **PEER), id="bad-role"
        ),
        pytest.param(
            lambda: PeerLeftMessage(role="client", reconnecting=1, **PEER), id="not-a-bool"
        ),
        pytest.param(
            lambda: PeerLeftMessage(role="client", reconnecting=True, **{**PEER, "peer_id": "a b"}),
            id="peer-id-with-a-space",
        ),
        pytest.param(
            lambda: SignalRelayMessage(payload=IceCandidate(""), from_="x" * 65),
            id="relay-from-too-long",
        ),
        pytest.param(
            lambda: RosterMessage(
                people=(
                    {"peer_id": "a", "kind": "client", "label": "A", "order": 1, "present": True},
                    {"peer_id": "b", "kind": "guest", "label": "B", "order": 1, "present": True},
                )
            ),
            id="roster-with-two-people-of-one-order",
        ),
        pytest.param(
            lambda: RosterMessage(
                people=(
                    {"peer_id": "a", "kind": "client", "label": "A", "order": 1, "present": True},
                    {"peer_id": "a", "kind": "client", "label": "A", "order": 2, "present": True},
                )
            ),
            id="roster-with-one-person-twice",
        ),
        pytest.param(lambda: QuickExitMessage(label="x" * 129, in_call=True), id="long-label"),
        pytest.param(
            lambda: SafetyCheckMessage(check={**SAFETY_CHECK, "location": "x" * 201}),
            id="safety-place-too-long",
        ),
        pytest.param(
            lambda: SafetyCheckMessage(check={**SAFETY_CHECK, "latitude": 52.52}),
            id="safety-check-with-coordinates",
        ),
        pytest.param(
            lambda: PanelStateMessage(
                checkins=(), prompts=(), signals=(), safety={**SAFETY_CHECK, "private": "no"}
            ),
            id="panel-safety-private-not-a-bool",
        ),
        pytest.param(
            lambda: LobbyMessage(
                waiting=({"knock_id": "k1", "label": "x", "since_ms": 1, "ip": "192.0.2.1"},)
            ),
            id="lobby-leaks-ip",
        ),
        pytest.param(
            lambda: WelcomeMessage(
                role=SessionRole.CLIENT,
                session_id="s1",
                peer_id="pa1",
                state=Presence.WAITING,
                peer=Presence.ABSENT,
                ice_servers=(),
                consents={},
            ),
            id="client-welcome-without-knock",
        ),
    ],
)
def test_a_malformed_typed_message_is_a_programming_error(build: Any) -> None:
    with pytest.raises(ValueError, match="server message"):
        build()


def test_a_bad_lobby_entry_is_refused_when_it_is_built() -> None:
    with pytest.raises(ProtocolError, match="since_ms"):
        LobbyEntry(knock_id="k1", label="J.M.", since_ms=-1)


def test_the_therapist_only_types_are_the_seven_the_protocol_names() -> None:
    therapist_only = {
        "lobby",
        "quick-exit",
        "measure-alert",
        "checkin-result",
        "prompt",
        "client-signal",
        "safety-check",
        "panel-state",
    }
    assert therapist_only == THERAPIST_ONLY_SERVER_TYPES
    assert len({cls.TYPE for cls in SERVER_MESSAGE_CLASSES}) == len(SERVER_MESSAGE_CLASSES)

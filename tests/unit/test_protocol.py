"""The session WebSocket protocol: what a client may send, what it gets back, who may say what."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privacy.consent import ConsentDecision, Purpose
from server.core.cues.features import parse_features
from server.core.goals import GoalStatus
from server.core.protocol import (
    CALL_ONLY_TYPES,
    CLIENT_MESSAGE_TYPES,
    MAX_CANDIDATE_BYTES,
    MAX_FEATURES_BYTES,
    MAX_FRAME_BYTES,
    MAX_SDP_BYTES,
    PROTOCOL_VERSION,
    RATE_LIMIT_BURST,
    RATE_LIMIT_PER_SECOND,
    ROLE_ALLOWED,
    SERVER_MESSAGE_TYPES,
    THERAPIST_ONLY_SERVER_TYPES,
    Admit,
    CheckinAnswer,
    CheckinLaunch,
    ClientMessage,
    ClientSignal,
    Consent,
    Deny,
    End,
    ErrorCode,
    Features,
    GoalAdd,
    GoalEdit,
    GoalStatusMessage,
    Hello,
    IceCandidate,
    Leave,
    LeaveReason,
    Ping,
    PromptFeedback,
    PromptFeedbackMessage,
    ProtocolError,
    RateLimiter,
    Relay,
    ScreenShare,
    ScreenShareAllow,
    SendBack,
    SessionDescription,
    SessionRole,
    Signal,
    WaitingNote,
    check_role,
    check_version,
    parse_client_message,
    parse_relay_payload,
    server_message,
)
from server.core.protocol.relay import read_relay_payload

TOKEN = "resume-token-0001"
KEY = "answer-key-000001"
STREAM = "6f1c2a0e-3b5d-4c7e-9f10-2a3b4c5d6e7f"  # a MediaStream id as Chromium makes them
SDP = "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
CANDIDATE = "candidate:842163049 1 udp 1677729535 192.0.2.10 46154 typ srflx raddr 0.0.0.0 rport 0"
FEATURES = {
    "type": "features",
    "role": "client",
    "t_ms": 61_000,
    "window_ms": 1000,
    "voiced": [[60_200, 60_700]],
    "level_dbfs": -31.5,
    "motion": 2.5,
}


def frame(**fields: Any) -> str:
    return json.dumps(fields)


def parse(**fields: Any) -> ClientMessage:
    return parse_client_message(frame(**fields))


def refusal(text: str) -> ProtocolError:
    with pytest.raises(ProtocolError) as caught:
        parse_client_message(text)
    return caught.value


# --- what a client may send --------------------------------------------------------------

VALID = [
    pytest.param({"type": "hello", "version": 1}, Hello(1), id="hello"),
    pytest.param(
        {"type": "hello", "version": 1, "resume": TOKEN}, Hello(1, TOKEN), id="hello-resume"
    ),
    pytest.param({"type": "hello", "version": 1, "resume": None}, Hello(1), id="hello-null-resume"),
    pytest.param({"type": "admit", "knock_id": "k1"}, Admit("k1"), id="admit"),
    pytest.param({"type": "deny", "knock_id": "k2", "id": "m7"}, Deny("k2", "m7"), id="deny"),
    pytest.param({"type": "send-back"}, SendBack(), id="send-back"),
    pytest.param(
        {
            "type": "relay",
            "payload": {"kind": "description", "description": {"type": "offer", "sdp": SDP}},
        },
        Relay(SessionDescription("offer", SDP)),
        id="relay-offer",
    ),
    pytest.param(
        {
            "type": "relay",
            "payload": {"kind": "description", "description": {"type": "rollback", "sdp": ""}},
        },
        Relay(SessionDescription("rollback", "")),
        id="relay-rollback",
    ),
    pytest.param(
        {
            "type": "relay",
            "payload": {
                "kind": "candidate",
                "candidate": {"candidate": CANDIDATE, "sdpMid": "0", "sdpMLineIndex": 0},
            },
        },
        Relay(IceCandidate(CANDIDATE, "0", 0)),
        id="relay-candidate",
    ),
    pytest.param(
        {"type": "relay", "payload": {"kind": "candidate", "candidate": {"candidate": ""}}},
        Relay(IceCandidate("")),
        id="relay-end-of-candidates",
    ),
    pytest.param(
        {
            "type": "checkin-answer",
            "instrument_id": "after",
            "answers": {"bond": 9, "note": "Less homework please", "technology": None},
            "idempotency_key": KEY,
        },
        CheckinAnswer(
            "after", {"bond": 9, "note": "Less homework please", "technology": None}, KEY
        ),
        id="checkin-answer",
    ),
    pytest.param(
        {"type": "checkin-launch", "instrument_id": "pulse"}, CheckinLaunch("pulse"), id="launch"
    ),
    pytest.param(
        {"type": "signal", "signal": "need-a-moment"},
        Signal(ClientSignal.NEED_A_MOMENT),
        id="signal",
    ),
    pytest.param(
        {
            "type": "consent",
            "purpose": "cue_analysis",
            "decision": "withdrawn",
            "notice_version": 1,
        },
        Consent(Purpose.CUE_ANALYSIS, ConsentDecision.WITHDRAWN, 1),
        id="consent",
    ),
    pytest.param(
        {"type": "prompt-feedback", "prompt_id": "p-3", "feedback": "helpful"},
        PromptFeedbackMessage("p-3", PromptFeedback.HELPFUL),
        id="feedback-helpful",
    ),
    pytest.param(
        {
            "type": "prompt-feedback",
            "prompt_id": "p-3",
            "feedback": "snooze-category",
            "minutes": 15,
        },
        PromptFeedbackMessage("p-3", PromptFeedback.SNOOZE_CATEGORY, 15),
        id="feedback-snooze",
    ),
    pytest.param({"type": "end"}, End(), id="end"),
    pytest.param(
        {"type": "waiting-note", "text": "Running five minutes late"},
        WaitingNote("Running five minutes late"),
        id="waiting-note",
    ),
    pytest.param(
        {"type": "leave", "reason": "quick-exit"}, Leave(LeaveReason.QUICK_EXIT), id="leave"
    ),
    pytest.param(
        {"type": "screen-share", "sharing": True, "stream_id": STREAM},
        ScreenShare(True, STREAM),
        id="screen-share-start",
    ),
    pytest.param(
        {"type": "screen-share", "sharing": True, "stream_id": "{" + STREAM + "}"},
        ScreenShare(True, "{" + STREAM + "}"),
        id="screen-share-firefox-stream-id",
    ),
    pytest.param({"type": "screen-share", "sharing": False}, ScreenShare(False), id="screen-stop"),
    pytest.param(
        {"type": "screen-share-allow", "allowed": True},
        ScreenShareAllow(True),
        id="screen-share-allow",
    ),
    pytest.param({"type": "goal-add", "text": "Sing again"}, GoalAdd("Sing again"), id="goal-add"),
    pytest.param(
        {"type": "goal-edit", "goal_id": "3f0c9a7e5b2d4c1e8a6f0b9d7c5e3a1f", "text": "Sing"},
        GoalEdit("3f0c9a7e5b2d4c1e8a6f0b9d7c5e3a1f", "Sing"),
        id="goal-edit",
    ),
    pytest.param(
        {"type": "goal-status", "goal_id": "3f0c9a7e5b2d4c1e8a6f0b9d7c5e3a1f", "status": "reached"},
        GoalStatusMessage("3f0c9a7e5b2d4c1e8a6f0b9d7c5e3a1f", GoalStatus.REACHED),
        id="goal-status",
    ),
    pytest.param({"type": "ping", "id": "beat-1"}, Ping("beat-1"), id="ping"),
]


@pytest.mark.parametrize(("raw", "expected"), VALID)
def test_a_well_formed_message_parses_to_its_typed_form(
    raw: dict[str, Any], expected: ClientMessage
) -> None:
    assert parse(**raw) == expected


def test_every_client_type_has_a_valid_example_here() -> None:
    examples = {cast(ClientMessage, param.values[1]).TYPE for param in VALID} | {Features.TYPE}
    assert examples == CLIENT_MESSAGE_TYPES


def test_features_keeps_the_body_for_the_cue_module_and_drops_only_the_id() -> None:
    message = parse(**FEATURES, id="f-61")
    assert message == Features(FEATURES, "f-61")
    assert isinstance(message, Features)
    assert parse_features(message.body).t_ms == 61_000


def test_features_frames_are_bounded_more_tightly_than_other_frames() -> None:
    bulky = frame(**FEATURES, padding="x" * MAX_FEATURES_BYTES)
    assert len(bulky) < MAX_FRAME_BYTES
    assert refusal(bulky).code is ErrorCode.TOO_LARGE


REFUSED = [
    pytest.param("x" * (MAX_FRAME_BYTES + 1), ErrorCode.TOO_LARGE, "limited", id="too-many-chars"),
    pytest.param(
        '{"type": "ping", "pad": "' + "é" * (MAX_FRAME_BYTES // 2) + '"}',
        ErrorCode.TOO_LARGE,
        "limited",
        id="too-many-utf8-bytes",
    ),
    pytest.param("{not json", ErrorCode.BAD_JSON, "JSON", id="not-json"),
    pytest.param('{"type": "ping", "type": "end"}', ErrorCode.BAD_JSON, "duplicate", id="dup-key"),
    pytest.param('{"type": "hello", "version": NaN}', ErrorCode.BAD_JSON, "NaN", id="nan"),
    pytest.param("[" * 20_000 + "]" * 20_000, ErrorCode.BAD_JSON, "JSON", id="deep-nesting"),
    pytest.param('["ping"]', ErrorCode.INVALID, "object", id="array"),
    pytest.param('"ping"', ErrorCode.INVALID, "object", id="string"),
    pytest.param("{}", ErrorCode.INVALID, "type", id="no-type"),
    pytest.param(frame(type=7), ErrorCode.INVALID, "type", id="numeric-type"),
    pytest.param(frame(type="shout"), ErrorCode.UNKNOWN_TYPE, "shout", id="unknown-type"),
    pytest.param(frame(type="welcome"), ErrorCode.UNKNOWN_TYPE, "welcome", id="server-type"),
    pytest.param(frame(type="ping", id=""), ErrorCode.INVALID, "id", id="empty-id"),
    pytest.param(frame(type="ping", id="x" * 65), ErrorCode.INVALID, "id", id="long-id"),
    pytest.param(frame(type="ping", id=5), ErrorCode.INVALID, "id", id="numeric-id"),
    pytest.param(frame(type="ping", extra=1), ErrorCode.INVALID, "extra", id="extra-field"),
    pytest.param(frame(type="hello"), ErrorCode.INVALID, "version", id="hello-no-version"),
    pytest.param(frame(type="hello", version="1"), ErrorCode.INVALID, "integer", id="str-version"),
    pytest.param(
        frame(type="hello", version=True), ErrorCode.INVALID, "integer", id="bool-version"
    ),
    pytest.param(
        frame(type="hello", version=1.0), ErrorCode.INVALID, "integer", id="float-version"
    ),
    pytest.param(
        frame(type="hello", version=1, resume="short"),
        ErrorCode.INVALID,
        "resume",
        id="short-token",
    ),
    pytest.param(frame(type="admit"), ErrorCode.INVALID, "knock_id", id="admit-no-knock"),
    pytest.param(
        frame(type="waiting-note", text="   "), ErrorCode.INVALID, "text", id="blank-note"
    ),
    pytest.param(
        frame(type="waiting-note", text="x" * 201), ErrorCode.INVALID, "text", id="long-note"
    ),
    pytest.param(
        frame(type="admit", knock_id="k 1"), ErrorCode.INVALID, "knock_id", id="bad-knock"
    ),
    pytest.param(frame(type="goal-add", text=" \n "), ErrorCode.INVALID, "text", id="blank-goal"),
    pytest.param(frame(type="goal-add", text="x" * 201), ErrorCode.INVALID, "text", id="long-goal"),
    pytest.param(
        frame(type="goal-edit", goal_id="../x", text="a"),
        ErrorCode.INVALID,
        "goal_id",
        id="bad-goal-id",
    ),
    pytest.param(
        frame(type="goal-status", goal_id="3f0c9a7e5b2d4c1e8a6f0b9d7c5e3a1f", status="done"),
        ErrorCode.INVALID,
        "status",
        id="bad-goal-status",
    ),
    pytest.param(frame(type="relay"), ErrorCode.INVALID, "payload", id="relay-no-payload"),
    pytest.param(
        frame(type="relay", payload={"kind": "media", "data": "x"}),
        ErrorCode.INVALID,
        "kind",
        id="relay-kind",
    ),
    pytest.param(
        frame(
            type="relay",
            payload={
                "kind": "description",
                "description": {"type": "offer", "sdp": "x" * (MAX_SDP_BYTES + 1)},
            },
        ),
        ErrorCode.INVALID,
        "sdp",
        id="sdp-too-long",
    ),
    pytest.param(
        frame(
            type="relay",
            payload={"kind": "description", "description": {"type": "offer", "sdp": ""}},
        ),
        ErrorCode.INVALID,
        "empty",
        id="empty-offer",
    ),
    pytest.param(
        frame(
            type="relay",
            payload={"kind": "description", "description": {"type": "hello", "sdp": SDP}},
        ),
        ErrorCode.INVALID,
        "type",
        id="description-type",
    ),
    pytest.param(
        frame(
            type="relay",
            payload={
                "kind": "candidate",
                "candidate": {"candidate": "c" * (MAX_CANDIDATE_BYTES + 1), "sdpMid": "0"},
            },
        ),
        ErrorCode.INVALID,
        "candidate",
        id="candidate-too-long",
    ),
    pytest.param(
        frame(type="relay", payload={"kind": "candidate", "candidate": {"candidate": CANDIDATE}}),
        ErrorCode.INVALID,
        "sdpMid",
        id="candidate-without-mid",
    ),
    pytest.param(
        frame(
            type="relay",
            payload={"kind": "candidate", "candidate": {"candidate": "", "ip": "192.0.2.1"}},
        ),
        ErrorCode.INVALID,
        "ip",
        id="candidate-extra-field",
    ),
    pytest.param(
        frame(type="checkin-answer", instrument_id="after", answers={}, idempotency_key="short"),
        ErrorCode.INVALID,
        "idempotency_key",
        id="short-key",
    ),
    pytest.param(
        frame(type="checkin-answer", instrument_id="after", answers={}, idempotency_key="k" * 65),
        ErrorCode.INVALID,
        "idempotency_key",
        id="long-key",
    ),
    pytest.param(
        frame(
            type="checkin-answer",
            instrument_id="after",
            answers={},
            idempotency_key="key with spaces!",
        ),
        ErrorCode.INVALID,
        "idempotency_key",
        id="key-charset",
    ),
    pytest.param(
        frame(type="checkin-answer", instrument_id="after", answers=[9], idempotency_key=KEY),
        ErrorCode.INVALID,
        "answers",
        id="answers-array",
    ),
    pytest.param(
        frame(
            type="checkin-answer", instrument_id="after", answers={"bond": [9]}, idempotency_key=KEY
        ),
        ErrorCode.INVALID,
        "bond",
        id="answer-array-value",
    ),
    pytest.param(
        frame(
            type="checkin-answer",
            instrument_id="after",
            answers={"bond": True},
            idempotency_key=KEY,
        ),
        ErrorCode.INVALID,
        "bond",
        id="answer-bool-value",
    ),
    pytest.param(
        frame(type="checkin-answer", instrument_id="../after", answers={}, idempotency_key=KEY),
        ErrorCode.INVALID,
        "instrument_id",
        id="instrument-path",
    ),
    pytest.param(
        frame(type="signal", signal="panic"), ErrorCode.INVALID, "signal", id="unknown-signal"
    ),
    pytest.param(
        frame(type="consent", purpose="research", decision="granted", notice_version=1),
        ErrorCode.INVALID,
        "purpose",
        id="research-not-offered",
    ),
    pytest.param(
        frame(type="consent", purpose="cue_analysis", decision="maybe", notice_version=1),
        ErrorCode.INVALID,
        "decision",
        id="consent-decision",
    ),
    pytest.param(
        frame(type="consent", purpose="cue_analysis", decision="granted", notice_version=0),
        ErrorCode.INVALID,
        "notice_version",
        id="notice-version-0",
    ),
    pytest.param(
        frame(type="prompt-feedback", prompt_id="p-1", feedback="snooze-category"),
        ErrorCode.INVALID,
        "minutes",
        id="snooze-without-minutes",
    ),
    pytest.param(
        frame(type="prompt-feedback", prompt_id="p-1", feedback="snooze-category", minutes=61),
        ErrorCode.INVALID,
        "minutes",
        id="snooze-too-long",
    ),
    pytest.param(
        frame(type="prompt-feedback", prompt_id="p-1", feedback="helpful", minutes=5),
        ErrorCode.INVALID,
        "minutes",
        id="minutes-without-snooze",
    ),
    pytest.param(
        frame(type="prompt-feedback", prompt_id="p-1", feedback="dismiss"),
        ErrorCode.INVALID,
        "feedback",
        id="unknown-feedback",
    ),
    pytest.param(
        frame(type="screen-share", sharing=True),
        ErrorCode.INVALID,
        "stream_id",
        id="share-without-stream",
    ),
    pytest.param(
        frame(type="screen-share", sharing=False, stream_id=STREAM),
        ErrorCode.INVALID,
        "stream_id",
        id="stop-with-stream",
    ),
    pytest.param(
        frame(type="screen-share", sharing=True, stream_id="a b"),
        ErrorCode.INVALID,
        "stream_id",
        id="stream-id-charset",
    ),
    pytest.param(
        frame(type="screen-share", sharing=True, stream_id="s" * 65),
        ErrorCode.INVALID,
        "stream_id",
        id="stream-id-too-long",
    ),
    pytest.param(
        frame(type="screen-share", sharing="yes", stream_id=STREAM),
        ErrorCode.INVALID,
        "sharing",
        id="sharing-not-boolean",
    ),
    pytest.param(
        frame(type="screen-share-allow"), ErrorCode.INVALID, "allowed", id="allow-no-answer"
    ),
    pytest.param(
        frame(type="screen-share-allow", allowed=1),
        ErrorCode.INVALID,
        "allowed",
        id="allow-not-boolean",
    ),
]


@pytest.mark.parametrize(("text", "code", "hint"), REFUSED)
def test_a_malformed_frame_is_refused_with_a_code_and_a_reason(
    text: str, code: ErrorCode, hint: str
) -> None:
    error = refusal(text)
    assert error.code is code
    assert hint in error.message


def test_an_error_echoes_the_offending_message_id_as_ref() -> None:
    error = refusal(frame(type="admit", id="m-42"))
    assert error.to_message() == {
        "type": "error",
        "code": "invalid",
        "message": "admit: missing field 'knock_id'",
        "ref": "m-42",
    }
    assert refusal(frame(type="nope", id="m-43")).to_message()["ref"] == "m-43"
    assert "ref" not in refusal(frame(type="nope")).to_message()


def test_the_frame_limit_can_be_tightened_by_the_caller() -> None:
    text = frame(type="ping")
    assert parse_client_message(text, max_bytes=len(text)) == Ping()
    with pytest.raises(ProtocolError) as caught:
        parse_client_message(text, max_bytes=len(text) - 1)
    assert caught.value.code is ErrorCode.TOO_LARGE


def test_a_checkin_answer_with_too_many_items_is_refused() -> None:
    answers = {f"item-{i}": 1 for i in range(101)}
    error = refusal(
        frame(type="checkin-answer", instrument_id="after", answers=answers, idempotency_key=KEY)
    )
    assert error.code is ErrorCode.INVALID


@pytest.mark.parametrize(
    "payload",
    [
        SessionDescription("answer", SDP),
        IceCandidate(CANDIDATE, sdp_mid="0", sdp_mline_index=0, username_fragment="a1B2"),
        IceCandidate(""),
    ],
    ids=["description", "candidate", "end-of-candidates"],
)
def test_a_relayed_payload_survives_the_round_trip(
    payload: SessionDescription | IceCandidate,
) -> None:
    assert parse_relay_payload(payload.to_json()) == payload


def _outcome(parse: Any, raw: Any) -> object:
    try:
        return parse(raw)
    except ProtocolError as exc:
        return (exc.code, str(exc))


_ABSENT = object()
_CANDIDATE_FIELD_VALUES: dict[str, list[Any]] = {  # each at and past its bounds, or mistyped
    "candidate": ["", CANDIDATE, "c" * 1024, "c" * 1025, "é" * 512, "é" * 513, 7, None],
    "sdpMid": [None, "0", "m" * 64, "m" * 65, 0, True],
    "sdpMLineIndex": [None, 0, 1023, 1024, -1, True, 1.0, "0"],
    "usernameFragment": [None, "u", "u" * 256, "u" * 257, 1],
    "ip": ["192.0.2.1"],
}


def _candidate_payloads() -> Iterator[Any]:
    """Every combination of those values (each field also left out), and wrong wrappers."""
    names = list(_CANDIDATE_FIELD_VALUES)
    for values in itertools.product(*([_ABSENT, *_CANDIDATE_FIELD_VALUES[n]] for n in names)):
        init = {n: v for n, v in zip(names, values, strict=True) if v is not _ABSENT}
        yield {"kind": "candidate", "candidate": init}
    init = {"candidate": CANDIDATE, "sdpMid": "0"}
    yield from (
        {"kind": "candidate", "candidate": init, "extra": 1},
        {"kind": "description", "candidate": init},
        {"kind": 1, "candidate": init},
        {"candidate": init},
        {"kind": "candidate", "candidate": [init]},
        [init],
        None,
    )


def test_the_candidate_fast_path_accepts_and_refuses_exactly_what_the_field_reader_does() -> None:
    payloads = list(_candidate_payloads())
    accepted = 0
    for payload in payloads:
        outcome = _outcome(parse_relay_payload, payload)
        assert outcome == _outcome(read_relay_payload, payload), payload
        accepted += isinstance(outcome, IceCandidate)
    assert 0 < accepted < len(payloads)  # both sides of the line are exercised


# --- the handshake and who may say what ------------------------------------------------


def test_only_this_servers_protocol_version_is_accepted() -> None:
    check_version(Hello(PROTOCOL_VERSION))
    with pytest.raises(ProtocolError) as caught:
        check_version(Hello(PROTOCOL_VERSION + 1, id="h"))
    assert (caught.value.code, caught.value.ref) == (ErrorCode.UNSUPPORTED_VERSION, "h")


@pytest.mark.parametrize(
    ("role", "type_name", "allowed"),
    [
        (SessionRole.CLIENT, "admit", False),
        (SessionRole.CLIENT, "deny", False),
        (SessionRole.CLIENT, "send-back", False),
        (SessionRole.CLIENT, "end", False),
        (SessionRole.CLIENT, "checkin-launch", False),
        (SessionRole.CLIENT, "prompt-feedback", False),
        (SessionRole.CLIENT, "signal", True),
        (SessionRole.CLIENT, "checkin-answer", True),
        (SessionRole.CLIENT, "consent", True),
        (SessionRole.THERAPIST, "signal", False),
        (SessionRole.THERAPIST, "checkin-answer", False),
        (SessionRole.THERAPIST, "consent", False),
        (SessionRole.THERAPIST, "admit", True),
        (SessionRole.THERAPIST, "end", True),
        (SessionRole.THERAPIST, "features", True),
        (SessionRole.CLIENT, "features", True),
        (SessionRole.THERAPIST, "relay", True),
        (SessionRole.CLIENT, "relay", True),
        (SessionRole.THERAPIST, "screen-share", True),
        (SessionRole.CLIENT, "screen-share", True),  # the room checks the therapist's leave
        (SessionRole.THERAPIST, "screen-share-allow", True),
        (SessionRole.CLIENT, "screen-share-allow", False),
    ],
    ids=lambda v: str(v),
)
def test_each_role_may_send_only_its_own_messages(
    role: SessionRole, type_name: str, allowed: bool
) -> None:
    assert (type_name in ROLE_ALLOWED[role]) is allowed


def test_role_tables_name_only_known_types_and_cover_every_type() -> None:
    assert set(ROLE_ALLOWED) == set(SessionRole)
    assert set().union(*ROLE_ALLOWED.values()) == CLIENT_MESSAGE_TYPES
    assert CALL_ONLY_TYPES <= CLIENT_MESSAGE_TYPES
    assert THERAPIST_ONLY_SERVER_TYPES <= SERVER_MESSAGE_TYPES


def test_check_role_refuses_with_forbidden_and_echoes_the_id() -> None:
    check_role(SessionRole.THERAPIST, Admit("k1"))
    with pytest.raises(ProtocolError) as caught:
        check_role(SessionRole.CLIENT, Admit("k1", id="a-1"))
    assert (caught.value.code, caught.value.ref) == (ErrorCode.FORBIDDEN, "a-1")


# --- what the server sends -------------------------------------------------------------

WELL_FORMED_SERVER = [
    pytest.param(
        "lobby",
        {
            "waiting": [
                {
                    "knock_id": "k1",
                    "label": "J.M.",
                    "since_ms": 5,
                    "kind": "guest",
                    "participant_id": "pa2",
                }
            ]
        },
        id="lobby",
    ),
    pytest.param(
        "roster",
        {
            "people": [
                {
                    "peer_id": "therapist",
                    "kind": "therapist",
                    "label": "T",
                    "order": 0,
                    "present": True,
                },
                {"peer_id": "pa1", "kind": "client", "label": "J.M.", "order": 2, "present": False},
            ]
        },
        id="roster",
    ),
    pytest.param(
        "signal-relay",
        {"payload": {"kind": "candidate", "candidate": {"candidate": ""}}, "from": "pa1"},
        id="signal-relay",
    ),
    pytest.param("admitted", {"resumed": False}, id="admitted"),
    pytest.param("denied", {}, id="denied"),
    pytest.param(
        "peer-left",
        {"role": "client", "reconnecting": True, "peer_id": "pa1", "kind": "client", "label": "S"},
        id="peer-left",
    ),
    pytest.param(
        "peer-joined",
        {"role": "client", "resumed": False, "peer_id": "g1", "kind": "guest", "label": "Interp"},
        id="peer-joined",
    ),
    pytest.param("checkin-open", {"instrument_id": "pulse", "kind": "pulse"}, id="checkin-open"),
    pytest.param(
        "checkin-result",
        {"instrument_id": "pulse", "kind": "pulse", "scores": {"pulse": 2}, "alerts": []},
        id="checkin-result",
    ),
    pytest.param("checkin-ack", {"idempotency_key": KEY, "ref": "c-1"}, id="checkin-ack"),
    pytest.param("prompt", {"prompt": {"id": "p-1", "text": "Consider checking in."}}, id="prompt"),
    pytest.param("client-signal", {"signal": ClientSignal.SLOW_DOWN}, id="client-signal"),
    pytest.param(
        "consent-changed", {"purpose": "cue_analysis", "decision": "withdrawn"}, id="consent"
    ),
    pytest.param("pong", {"ref": None}, id="pong"),
    pytest.param(
        "peer-screen",
        {"role": "therapist", "sharing": True, "stream_id": STREAM},
        id="peer-screen",
    ),
    pytest.param("peer-screen", {"role": "client", "sharing": False}, id="peer-screen-stopped"),
    pytest.param("screen-share-allowed", {"allowed": False}, id="screen-share-allowed"),
]


@pytest.mark.parametrize(("type_name", "fields"), WELL_FORMED_SERVER)
def test_server_messages_are_built_with_plain_values(
    type_name: str, fields: dict[str, Any]
) -> None:
    message = server_message(type_name, **fields)
    assert message["type"] == type_name
    assert json.loads(json.dumps(message)) == message
    assert all(value is not None for value in message.values())


MALFORMED_SERVER = [
    pytest.param("hello", {"version": 1}, id="client-type"),
    pytest.param("admitted", {}, id="missing-field"),
    pytest.param("denied", {"why": "no"}, id="extra-field"),
    pytest.param(
        "peer-left",
        {"role": "admin", "reconnecting": False, "peer_id": "t", "kind": "client", "label": "S"},
        id="bad-role",
    ),
    pytest.param(
        "peer-left",
        {"role": "client", "reconnecting": False, "peer_id": "t", "kind": "admin", "label": "S"},
        id="bad-kind",
    ),
    pytest.param(
        "roster",
        {"people": [{"peer_id": "a", "kind": "client", "label": "A", "order": -1, "present": 1}]},
        id="roster-bad-entry",
    ),
    pytest.param(
        "lobby",
        {"waiting": [{"knock_id": "k1", "label": "J.M.", "since_ms": 5, "kind": "therapist"}]},
        id="lobby-knock-of-the-therapist",
    ),
    pytest.param(
        "lobby",
        {"waiting": [{"knock_id": "k1", "label": "J.M.", "since_ms": 5, "ip": "192.0.2.1"}]},
        id="lobby-leaks-ip",
    ),
    pytest.param(
        "lobby",
        {"waiting": [{"knock_id": "k1", "label": "J.M.", "since_ms": 5, "user_agent": "x"}]},
        id="lobby-leaks-user-agent",
    ),
    pytest.param(
        "welcome",
        {
            "role": "therapist",
            "session_id": "s1",
            "version": PROTOCOL_VERSION,
            "state": "in-call",
            "peer": "absent",
            "ice_servers": [],
            "consents": {},
            "resume_token": "not a token!",
        },
        id="therapist-welcome-with-a-malformed-resume-token",
    ),
    pytest.param(
        "welcome",
        {
            "role": "client",
            "session_id": "s1",
            "version": PROTOCOL_VERSION,
            "state": "waiting",
            "peer": "absent",
            "ice_servers": [{"username": "u"}],
            "consents": {},
            "knock_id": "k1",
            "resume_token": TOKEN,
        },
        id="ice-server-without-urls",
    ),
    pytest.param("error", {"code": "oops", "message": "x"}, id="unknown-error-code"),
    pytest.param("session-ended", {"reason": "bored"}, id="unknown-end-reason"),
    pytest.param("checkin-open", {"instrument_id": "pulse", "kind": "mid"}, id="unknown-kind"),
    pytest.param(
        "signal-relay", {"payload": {"kind": "media", "data": "x"}}, id="relay-not-signaling"
    ),
    pytest.param("peer-screen", {"role": "client", "sharing": True}, id="sharing-without-stream"),
    pytest.param(
        "peer-screen",
        {"role": "client", "sharing": False, "stream_id": STREAM},
        id="stopped-with-stream",
    ),
]


@pytest.mark.parametrize(("type_name", "fields"), MALFORMED_SERVER)
def test_a_malformed_server_message_is_a_programming_error(
    type_name: str, fields: dict[str, Any]
) -> None:
    with pytest.raises(ValueError, match=type_name):
        server_message(type_name, **fields)


# --- rate limit ------------------------------------------------------------------------


def test_the_rate_limit_allows_a_burst_then_the_sustained_rate() -> None:
    limiter = RateLimiter(now_ms=0)
    assert [limiter.allow(0) for _ in range(RATE_LIMIT_BURST + 1)] == [True] * RATE_LIMIT_BURST + [
        False
    ]
    per_message_ms = 1000 // RATE_LIMIT_PER_SECOND
    assert limiter.allow(per_message_ms - 1) is False
    assert limiter.allow(per_message_ms) is True
    assert limiter.allow(per_message_ms) is False


def test_the_rate_limit_refills_to_the_burst_and_no_further() -> None:
    limiter = RateLimiter(now_ms=0, per_second=10, burst=3)
    assert all(limiter.allow(0) for _ in range(3))
    allowed_after_an_hour = sum(limiter.allow(3_600_000) for _ in range(10))
    assert allowed_after_an_hour == 3


# --- robustness --------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
envelopes = st.fixed_dictionaries(
    {"type": st.sampled_from(sorted(CLIENT_MESSAGE_TYPES))},
    optional={
        "id": st.text(max_size=8),
        "knock_id": json_values,
        "payload": json_values,
        "answers": json_values,
        "version": json_values,
        "minutes": json_values,
    },
)


@settings(max_examples=150, deadline=None)
@given(st.one_of(json_values, envelopes))
def test_any_json_either_parses_or_is_refused_with_a_protocol_error(value: Any) -> None:
    try:
        message = parse_client_message(json.dumps(value))
    except ProtocolError as error:
        assert error.code in set(ErrorCode)
    else:
        assert message.TYPE in CLIENT_MESSAGE_TYPES

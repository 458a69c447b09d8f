"""Client→server messages: their dataclasses, the parser, and who may send what.

Every frame is a JSON object with a ``"type"``; ``parse_client_message`` turns a text frame
into one of the frozen dataclasses below or raises ``ProtocolError`` naming what is wrong.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar, Final, NoReturn

from privacy.consent import OFFERED_PURPOSES, ConsentDecision, Purpose
from server.core.goals import GoalStatus
from server.core.participants import PersonKind
from server.core.protocol.codes import (
    MAX_ANSWER_INT,
    MAX_ANSWER_TEXT_CHARS,
    MAX_ANSWERS,
    MAX_FEATURES_BYTES,
    MAX_FRAME_BYTES,
    MAX_GOAL_TEXT_CHARS,
    MAX_WAITING_NOTE_CHARS,
    PROTOCOL_VERSION,
    SNOOZE_MINUTES_RANGE,
    ClientSignal,
    ErrorCode,
    LeaveReason,
    PromptFeedback,
    ProtocolError,
    SessionRole,
)
from server.core.protocol.fields import (
    IDEMPOTENCY_KEY,
    INSTRUMENT_ID,
    KNOCK_ID,
    LANGUAGE_CODE,
    MESSAGE_ID,
    PEER_ID,
    STREAM_ID,
    TOKEN,
    Fields,
    describe,
    invalid,
    utf8_len,
)
from server.core.protocol.relay import RelayPayload, parse_relay_payload


@dataclass(frozen=True, slots=True)
class Hello:
    """The versioned handshake: the first message on every connection."""

    TYPE: ClassVar[str] = "hello"
    version: int
    resume: str | None = None  # the resume token from an earlier `welcome`
    id: str | None = None

    @classmethod
    def from_fields(cls, f: Fields, id: str | None) -> Hello:
        """Read the fields of a `hello`."""
        return cls(f.integer("version", 1, 2**31 - 1), f.optional_text("resume", TOKEN, 128), id)


@dataclass(frozen=True, slots=True)
class Admit:
    """The therapist lets a waiting knock into the call."""

    TYPE: ClassVar[str] = "admit"
    knock_id: str
    id: str | None = None

    @classmethod
    def from_fields(cls, f: Fields, id: str | None) -> Admit:
        """Read the fields of an `admit`."""
        return cls(f.text("knock_id", KNOCK_ID), id)


@dataclass(frozen=True, slots=True)
class Deny:
    """The therapist turns a waiting knock away."""

    TYPE: ClassVar[str] = "deny"
    knock_id: str
    id: str | None = None

    @classmethod
    def from_fields(cls, f: Fields, id: str | None) -> Deny:
        """Read the fields of a `deny`."""
        return cls(f.text("knock_id", KNOCK_ID), id)


@dataclass(frozen=True, slots=True)
class SendBack:
    """The therapist returns a person in the call to the waiting room: `peer_id` names them
    (it may be left out while only one person besides the therapist is in the call)."""

    TYPE: ClassVar[str] = "send-back"
    id: str | None = None
    peer_id: str | None = None

    @classmethod
    def from_fields(cls, f: Fields, id: str | None) -> SendBack:
        """Read the fields of a `send-back`."""
        return cls(id, f.optional_text("peer_id", PEER_ID))


@dataclass(frozen=True, slots=True)
class Relay:
    """SDP or ICE for another person in the call: `to` names them (a peer id); it may be
    left out only while the call has exactly two people."""

    TYPE: ClassVar[str] = "relay"
    payload: RelayPayload
    id: str | None = None
    to: str | None = None

    @classmethod
    def from_fields(cls, f: Fields, id: str | None) -> Relay:
        """Read the fields of a `relay`."""
        return cls(parse_relay_payload(f.mapping("payload")), id, f.optional_text("to", PEER_ID))


def _answers(raw: Mapping[str, Any]) -> Mapping[str, int | str | None]:
    if len(raw) > MAX_ANSWERS:
        invalid(f"checkin-answer.answers: at most {MAX_ANSWERS} items")
    answers: dict[str, int | str | None] = {}
    for link_id, value in raw.items():
        if not 1 <= len(link_id) <= 64:
            invalid("checkin-answer.answers: an item id has 1..64 characters")
        if isinstance(value, str):
            if len(value) > MAX_ANSWER_TEXT_CHARS:
                invalid(f"checkin-answer.answers.{link_id}: at most {MAX_ANSWER_TEXT_CHARS} chars")
        elif value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            invalid(f"checkin-answer.answers.{link_id}: expected an integer, a string or null")
        elif isinstance(value, int) and abs(value) > MAX_ANSWER_INT:
            invalid(f"checkin-answer.answers.{link_id}: out of range")
        answers[link_id] = value
    return MappingProxyType(answers)


@dataclass(frozen=True, slots=True)
class CheckinAnswer:
    """The client's answers to a check-in; acked only after the durable write."""

    TYPE: ClassVar[str] = "checkin-answer"
    instrument_id: str
    answers: Mapping[str, int | str | None]  # {linkId: value}; null or absent = skipped
    idempotency_key: str
    id: str | None = None
    language: str | None = None  # the language the form was read in; absent: the instrument's

    @classmethod
    def from_fields(cls, f: Fields, id: str | None) -> CheckinAnswer:
        """Read the fields of a `checkin-answer`."""
        return cls(
            f.text("instrument_id", INSTRUMENT_ID),
            _answers(f.mapping("answers")),
            f.text("idempotency_key", IDEMPOTENCY_KEY),
            id,
            f.optional_text("language", LANGUAGE_CODE, 16),
        )


@dataclass(frozen=True, slots=True)
class CheckinLaunch:
    """The therapist opens a one-tap check-in (the pulse) on the client's screen."""

    TYPE: ClassVar[str] = "checkin-launch"
    instrument_id: str
    id: str | None = None

    @classmethod
    def from_fields(cls, f: Fields, id: str | None) -> CheckinLaunch:
        """Read the fields of a `checkin-launch`."""
        return cls(f.text("instrument_id", INSTRUMENT_ID), id)


@dataclass(frozen=True, slots=True)
class Features:
    """A cue-feature summary; only the envelope is checked here, the cue module checks the body."""

    TYPE: ClassVar[str] = "features"
    body: Mapping[str, Any]  # the whole message minus `id`, as `parse_features` expects it
    id: str | None = None


@dataclass(frozen=True, slots=True)
class Signal:
    """A nonverbal signal button the client pressed."""

    TYPE: ClassVar[str] = "signal"
    signal: ClientSignal
    id: str | None = None

    @classmethod
    def from_fields(cls, f: Fields, id: str | None) -> Signal:
        """Read the fields of a `signal`."""
        return cls(f.choice("signal", tuple(ClientSignal)), id)


@dataclass(frozen=True, slots=True)
class Consent:
    """The client grants or withdraws a purpose from inside the session."""

    TYPE: ClassVar[str] = "consent"
    purpose: Purpose
    decision: ConsentDecision
    notice_version: int
    id: str | None = None

    @classmethod
    def from_fields(cls, f: Fields, id: str | None) -> Consent:
        """Read the fields of a `consent`."""
        return cls(
            f.choice("purpose", OFFERED_PURPOSES),
            f.choice("decision", tuple(ConsentDecision)),
            f.integer("notice_version", 1, 1_000_000),
            id,
        )


@dataclass(frozen=True, slots=True)
class PromptFeedbackMessage:
    """The therapist's answer to a cue prompt: helpful, not now, mute or snooze its category."""

    TYPE: ClassVar[str] = "prompt-feedback"
    prompt_id: str
    feedback: PromptFeedback
    minutes: int | None = None  # only with snooze-category
    id: str | None = None

    @classmethod
    def from_fields(cls, f: Fields, id: str | None) -> PromptFeedbackMessage:
        """Read the fields of a `prompt-feedback`."""
        prompt_id = f.text("prompt_id", MESSAGE_ID)
        feedback = f.choice("feedback", tuple(PromptFeedback))
        minutes = f.optional_integer("minutes", *SNOOZE_MINUTES_RANGE)
        snoozing = feedback is PromptFeedback.SNOOZE_CATEGORY
        if snoozing and minutes is None:
            invalid("prompt-feedback: snooze-category needs minutes")
        if not snoozing and minutes is not None:
            invalid("prompt-feedback.minutes: only with snooze-category")
        return cls(prompt_id, feedback, minutes, id)


@dataclass(frozen=True, slots=True)
class End:
    """The therapist ends the session for everyone."""

    TYPE: ClassVar[str] = "end"
    id: str | None = None

    @classmethod
    def from_fields(cls, f: Fields, id: str | None) -> End:
        """Read the (no) fields of an `end`."""
        return cls(id)


@dataclass(frozen=True, slots=True)
class WaitingNote:
    """The therapist's short note to whoever is waiting ("running five minutes late")."""

    TYPE: ClassVar[str] = "waiting-note"
    text: str
    id: str | None = None

    @classmethod
    def from_fields(cls, f: Fields, id: str | None) -> WaitingNote:
        """Read the fields of a `waiting-note`: 1..MAX_WAITING_NOTE_CHARS characters."""
        text = f.text("text", max_chars=MAX_WAITING_NOTE_CHARS)
        if not text.strip():
            invalid("waiting-note.text: write something")
        return cls(text, id)


@dataclass(frozen=True, slots=True)
class Leave:
    """A client leaves at once; `quick-exit` tells the therapist it was a quick exit."""

    TYPE: ClassVar[str] = "leave"
    reason: LeaveReason
    id: str | None = None

    @classmethod
    def from_fields(cls, f: Fields, id: str | None) -> Leave:
        """Read the fields of a `leave`."""
        return cls(f.choice("reason", tuple(LeaveReason)), id)


GOAL_ID: Final = re.compile(r"[0-9a-f]{32}")


def _goal_text(f: Fields, where: str) -> str:
    text = f.text("text", max_chars=MAX_GOAL_TEXT_CHARS)
    if not text.strip():
        invalid(f"{where}.text: write a few words")
    return text


@dataclass(frozen=True, slots=True)
class GoalAdd:
    """Either party in the call adds a shared goal, in the client's own words."""

    TYPE: ClassVar[str] = "goal-add"
    text: str
    id: str | None = None

    @classmethod
    def from_fields(cls, f: Fields, id: str | None) -> GoalAdd:
        """Read the fields of a `goal-add`."""
        return cls(_goal_text(f, "goal-add"), id)


@dataclass(frozen=True, slots=True)
class GoalEdit:
    """Either party in the call rewords a shared goal."""

    TYPE: ClassVar[str] = "goal-edit"
    goal_id: str
    text: str
    id: str | None = None

    @classmethod
    def from_fields(cls, f: Fields, id: str | None) -> GoalEdit:
        """Read the fields of a `goal-edit`."""
        return cls(f.text("goal_id", GOAL_ID), _goal_text(f, "goal-edit"), id)


@dataclass(frozen=True, slots=True)
class GoalStatusMessage:
    """Either party in the call marks a goal reached or dropped, or makes it active again."""

    TYPE: ClassVar[str] = "goal-status"
    goal_id: str
    status: GoalStatus
    id: str | None = None

    @classmethod
    def from_fields(cls, f: Fields, id: str | None) -> GoalStatusMessage:
        """Read the fields of a `goal-status`."""
        return cls(f.text("goal_id", GOAL_ID), f.choice("status", tuple(GoalStatus)), id)


@dataclass(frozen=True, slots=True)
class ScreenShare:
    """This side started (with the shared MediaStream's id) or stopped sharing its screen."""

    TYPE: ClassVar[str] = "screen-share"
    sharing: bool
    stream_id: str | None = None  # required while sharing, absent when stopping
    id: str | None = None

    @classmethod
    def from_fields(cls, f: Fields, id: str | None) -> ScreenShare:
        """Read the fields of a `screen-share`: a stream id exactly when sharing."""
        sharing = f.boolean("sharing")
        stream_id = f.optional_text("stream_id", STREAM_ID)
        if sharing and stream_id is None:
            invalid("screen-share.stream_id: required while sharing")
        if not sharing and stream_id is not None:
            invalid("screen-share.stream_id: only while sharing")
        return cls(sharing, stream_id, id)


@dataclass(frozen=True, slots=True)
class ScreenShareAllow:
    """The therapist lets the client in the call share a screen, or takes that back."""

    TYPE: ClassVar[str] = "screen-share-allow"
    allowed: bool
    id: str | None = None

    @classmethod
    def from_fields(cls, f: Fields, id: str | None) -> ScreenShareAllow:
        """Read the fields of a `screen-share-allow`."""
        return cls(f.boolean("allowed"), id)


@dataclass(frozen=True, slots=True)
class Ping:
    """A keep-alive; the server answers `pong`."""

    TYPE: ClassVar[str] = "ping"
    id: str | None = None

    @classmethod
    def from_fields(cls, f: Fields, id: str | None) -> Ping:
        """Read the (no) fields of a `ping`."""
        return cls(id)


ClientMessage = (
    Hello
    | Admit
    | Deny
    | SendBack
    | Relay
    | CheckinAnswer
    | CheckinLaunch
    | Features
    | Signal
    | Consent
    | PromptFeedbackMessage
    | End
    | WaitingNote
    | Leave
    | ScreenShare
    | ScreenShareAllow
    | GoalAdd
    | GoalEdit
    | GoalStatusMessage
    | Ping
)

CLIENT_MESSAGE_CLASSES: Final[tuple[type[ClientMessage], ...]] = (
    Hello,
    Admit,
    Deny,
    SendBack,
    Relay,
    CheckinAnswer,
    CheckinLaunch,
    Features,
    Signal,
    Consent,
    PromptFeedbackMessage,
    End,
    WaitingNote,
    Leave,
    ScreenShare,
    ScreenShareAllow,
    GoalAdd,
    GoalEdit,
    GoalStatusMessage,
    Ping,
)
"""Every client→server message class, in the order docs/protocol.md lists them."""

_FieldParser = Callable[[Fields, str | None], ClientMessage]
_CLIENT_PARSERS: Final[Mapping[str, _FieldParser]] = MappingProxyType(
    {
        Hello.TYPE: Hello.from_fields,
        Admit.TYPE: Admit.from_fields,
        Deny.TYPE: Deny.from_fields,
        SendBack.TYPE: SendBack.from_fields,
        Relay.TYPE: Relay.from_fields,
        CheckinAnswer.TYPE: CheckinAnswer.from_fields,
        CheckinLaunch.TYPE: CheckinLaunch.from_fields,
        Signal.TYPE: Signal.from_fields,
        Consent.TYPE: Consent.from_fields,
        PromptFeedbackMessage.TYPE: PromptFeedbackMessage.from_fields,
        End.TYPE: End.from_fields,
        WaitingNote.TYPE: WaitingNote.from_fields,
        Leave.TYPE: Leave.from_fields,
        ScreenShare.TYPE: ScreenShare.from_fields,
        ScreenShareAllow.TYPE: ScreenShareAllow.from_fields,
        GoalAdd.TYPE: GoalAdd.from_fields,
        GoalEdit.TYPE: GoalEdit.from_fields,
        GoalStatusMessage.TYPE: GoalStatusMessage.from_fields,
        Ping.TYPE: Ping.from_fields,
    }
)

CLIENT_MESSAGE_TYPES: Final = frozenset({*_CLIENT_PARSERS, Features.TYPE})

_GOALS: Final = frozenset({GoalAdd.TYPE, GoalEdit.TYPE, GoalStatusMessage.TYPE})
_BOTH: Final = (
    frozenset({Hello.TYPE, Relay.TYPE, Features.TYPE, ScreenShare.TYPE, Ping.TYPE}) | _GOALS
)
ROLE_ALLOWED: Final[Mapping[SessionRole, frozenset[str]]] = MappingProxyType(
    {
        SessionRole.THERAPIST: _BOTH
        | {
            Admit.TYPE,
            Deny.TYPE,
            SendBack.TYPE,
            CheckinLaunch.TYPE,
            PromptFeedbackMessage.TYPE,
            End.TYPE,
            WaitingNote.TYPE,
            ScreenShareAllow.TYPE,
        },
        SessionRole.CLIENT: _BOTH | {CheckinAnswer.TYPE, Signal.TYPE, Consent.TYPE, Leave.TYPE},
    }
)
"""Which client→server types each role may send; anything else gets `forbidden`."""

CALL_ONLY_TYPES: Final = (
    frozenset({Relay.TYPE, Features.TYPE, Signal.TYPE, ScreenShare.TYPE}) | _GOALS
)
"""Types a client may send only once admitted (a waiting client gets `not-admitted`)."""


GUEST_ALLOWED: Final = frozenset({Hello.TYPE, Relay.TYPE, Leave.TYPE, Ping.TYPE})
"""What a guest (an interpreter, a guardian) may send: a guest joins the call and nothing
else; check-ins, features, signals, consents, goals and screen sharing are a client's."""


def check_kind(kind: PersonKind, message: ClientMessage) -> None:
    """Raise `forbidden` if this kind of person may not send this message (a guest: only
    GUEST_ALLOWED; `check_role` decides the rest)."""
    if kind is PersonKind.GUEST and message.TYPE not in GUEST_ALLOWED:
        raise ProtocolError(
            ErrorCode.FORBIDDEN, f"a guest may not send {message.TYPE!r}", ref=message.id
        )


def check_role(role: SessionRole, message: ClientMessage) -> None:
    """Raise `forbidden` if this role may not send this message."""
    if message.TYPE not in ROLE_ALLOWED[role]:
        raise ProtocolError(
            ErrorCode.FORBIDDEN, f"a {role} may not send {message.TYPE!r}", ref=message.id
        )


def check_version(hello: Hello) -> None:
    """Raise `unsupported-version` unless the client speaks this server's protocol version."""
    if hello.version != PROTOCOL_VERSION:
        raise ProtocolError(
            ErrorCode.UNSUPPORTED_VERSION,
            f"this server speaks protocol version {PROTOCOL_VERSION}, not {hello.version}",
            ref=hello.id,
        )


def _no_constants(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise ValueError("duplicate key in object")
    return obj


# Built once: json.loads with these arguments builds a decoder per call (~1 µs a frame).
_DECODER: Final = json.JSONDecoder(parse_constant=_no_constants, object_pairs_hook=_unique_keys)


def parse_client_message(text: str, *, max_bytes: int = MAX_FRAME_BYTES) -> ClientMessage:
    """Parse one client→server text frame; raise ProtocolError naming what is wrong."""
    if len(text) > max_bytes or (len(text) * 4 > max_bytes and utf8_len(text) > max_bytes):
        raise ProtocolError(ErrorCode.TOO_LARGE, f"frames are limited to {max_bytes} bytes")
    try:
        obj = _DECODER.decode(text)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(ErrorCode.BAD_JSON, f"not valid JSON: {exc}"[:200]) from None
    if not isinstance(obj, dict):
        raise ProtocolError(ErrorCode.INVALID, f"a message is a JSON object, not {describe(obj)}")
    message_id = obj.get("id")
    if message_id is not None and not (
        isinstance(message_id, str) and MESSAGE_ID.fullmatch(message_id)
    ):
        raise ProtocolError(ErrorCode.INVALID, f"id: does not match {MESSAGE_ID.pattern}")
    type_name = obj.get("type")
    if not isinstance(type_name, str):
        raise ProtocolError(ErrorCode.INVALID, "missing string field 'type'", ref=message_id)
    try:
        if type_name == Features.TYPE:  # about nine frames in ten: the short path
            if len(text) * 4 > MAX_FEATURES_BYTES and utf8_len(text) > MAX_FEATURES_BYTES:
                raise ProtocolError(
                    ErrorCode.TOO_LARGE,
                    f"features frames are limited to {MAX_FEATURES_BYTES} bytes",
                )
            obj.pop("id", None)  # the body is the rest; `obj` is ours alone
            return Features(MappingProxyType(obj), message_id)
        parse = _CLIENT_PARSERS.get(type_name)
        if parse is None:
            raise ProtocolError(ErrorCode.UNKNOWN_TYPE, f"unknown message type {type_name[:64]!r}")
        fields = Fields(obj, type_name)
        message = parse(fields, message_id)
        fields.done()
        return message
    except ProtocolError as exc:
        exc.ref = message_id
        raise

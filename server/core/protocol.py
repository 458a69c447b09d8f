"""The session WebSocket protocol (pure): message types, their schemas, limits and roles.

Every frame is a JSON object with a ``"type"``. Client→server frames are parsed into frozen
dataclasses by ``parse_client_message``; server→client frames are built by
``server_message``, which checks their shape so the WebSocket edge never hand-writes dicts.
``docs/protocol.md`` documents every type; a test keeps the two in step.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from types import MappingProxyType
from typing import Any, ClassVar, Final, Literal, NoReturn, TypeVar

from privacy.consent import OFFERED_PURPOSES, ConsentDecision, ConsentState, Purpose
from server.core.checkins.instruments import KINDS

PROTOCOL_VERSION: Final = 1
MAX_FRAME_BYTES: Final = 64 * 1024  # larger frames get a `too-large` error
HARD_FRAME_LIMIT_BYTES: Final = 128 * 1024  # the edge's read limit: larger frames close (1009)
MAX_SDP_BYTES: Final = 32 * 1024
MAX_CANDIDATE_BYTES: Final = 1024
MAX_FEATURES_BYTES: Final = 8 * 1024  # a features frame arrives ~1/s; a summary is < 2 KiB
MAX_ANSWERS: Final = 100
MAX_ANSWER_TEXT_CHARS: Final = 10_000
MAX_ANSWER_INT: Final = 1_000_000
MAX_ERROR_MESSAGE_CHARS: Final = 500
RATE_LIMIT_PER_SECOND: Final = 20
RATE_LIMIT_BURST: Final = 40
HELLO_TIMEOUT_S: Final = 10
PING_AFTER_IDLE_S: Final = 20
DROP_AFTER_IDLE_S: Final = 45
SNOOZE_MINUTES_RANGE: Final = (1, 60)

_MESSAGE_ID: Final = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_TOKEN: Final = re.compile(r"[A-Za-z0-9_-]{16,128}")
_KNOCK_ID: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")
_IDEMPOTENCY_KEY: Final = re.compile(r"[A-Za-z0-9_-]{16,64}")
_INSTRUMENT_ID: Final = re.compile(r"[A-Za-z0-9\-.]{1,64}")  # a FHIR id


class SessionRole(StrEnum):
    """Which side of a therapy session a connection speaks for."""

    THERAPIST = "therapist"
    CLIENT = "client"


class Presence(StrEnum):
    """Where a party stands relative to the call, as `welcome` reports it."""

    ABSENT = "absent"
    WAITING = "waiting"  # a client knock in the lobby
    IN_CALL = "in-call"  # the therapist, or the admitted client
    RECONNECTING = "reconnecting"  # the admitted client dropped; its slot is held for resume


class ClientSignal(StrEnum):
    """The client's discreet nonverbal signal buttons."""

    NEED_A_MOMENT = "need-a-moment"
    THAT_LANDED = "that-landed"
    CONFUSED = "confused"
    SLOW_DOWN = "slow-down"
    HARD_TO_HEAR_SEE = "hard-to-hear-see"


class PromptFeedback(StrEnum):
    """The therapist's answer to a cue prompt."""

    HELPFUL = "helpful"
    NOT_NOW = "not-now"
    MUTE_CATEGORY = "mute-category"
    SNOOZE_CATEGORY = "snooze-category"


class EndReason(StrEnum):
    """Why a session ended, as `session-ended` reports it."""

    THERAPIST_ENDED = "therapist-ended"
    CONSENT_WITHDRAWN = "consent-withdrawn"  # the client withdrew telehealth consent
    LINK_EXPIRED = "link-expired"  # the session's time window and grace period are over


class ErrorCode(StrEnum):
    """The `code` of an `error` message; only a failed handshake also closes the connection."""

    TOO_LARGE = "too-large"
    BAD_JSON = "bad-json"
    UNKNOWN_TYPE = "unknown-type"
    INVALID = "invalid"
    HELLO_REQUIRED = "hello-required"
    UNSUPPORTED_VERSION = "unsupported-version"
    FORBIDDEN = "forbidden"
    NOT_ADMITTED = "not-admitted"
    NO_PEER = "no-peer"
    NO_SUCH_KNOCK = "no-such-knock"
    CALL_FULL = "call-full"
    CONSENT_REQUIRED = "consent-required"
    RATE_LIMITED = "rate-limited"
    INTERNAL = "internal"


class CloseCode(IntEnum):
    """WebSocket close codes the server uses; clients must not auto-reconnect after 4001–4004."""

    GOING_AWAY = 1001  # server shutdown or restart: reconnect and resume
    MESSAGE_TOO_BIG = 1009  # a frame above HARD_FRAME_LIMIT_BYTES
    REPLACED = 4001  # the therapist opened the session in another tab
    RESUMED_ELSEWHERE = 4002  # a newer connection resumed this client's slot
    DENIED = 4003  # the therapist did not admit this knock
    SESSION_ENDED = 4004
    HANDSHAKE_FAILED = 4400  # no `hello` in time, or an unsupported version
    UNAUTHORIZED = 4401  # the sign-in or the invite link is no longer valid
    IDLE_TIMEOUT = 4408  # nothing heard for DROP_AFTER_IDLE_S: reconnect and resume


NO_RECONNECT_CLOSE_CODES: Final = frozenset(
    {
        CloseCode.REPLACED,
        CloseCode.RESUMED_ELSEWHERE,
        CloseCode.DENIED,
        CloseCode.SESSION_ENDED,
        CloseCode.HANDSHAKE_FAILED,  # reconnecting cannot fix these two either
        CloseCode.UNAUTHORIZED,
    }
)
"""After these a client shows the reason and stays closed; after any other it reconnects."""


class ProtocolError(Exception):
    """A message the server refuses; it answers with an `error` and keeps the connection."""

    def __init__(self, code: ErrorCode, message: str, *, ref: str | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.ref = ref

    def to_message(self, ref: str | None = None) -> dict[str, Any]:
        """The `error` message for this refusal, echoing the offending message's id."""
        return server_message(
            "error",
            code=self.code,
            message=self.message[:MAX_ERROR_MESSAGE_CHARS],
            ref=ref or self.ref,
        )


def _invalid(message: str) -> NoReturn:
    raise ProtocolError(ErrorCode.INVALID, message)


_E = TypeVar("_E", bound=StrEnum)


class _Fields:
    """Reads a message's fields one by one; `done()` refuses any field nobody read."""

    def __init__(
        self, obj: Mapping[str, Any], where: str, *, implicit: tuple[str, ...] = ("type", "id")
    ) -> None:
        self._obj = obj
        self.where = where
        self._read: set[str] = set(implicit)

    def _take(self, name: str) -> Any:
        self._read.add(name)
        return self._obj.get(name)

    def _missing(self, name: str) -> NoReturn:
        _invalid(f"{self.where}: missing field {name!r}")

    def _wrong(self, name: str, expected: str, value: Any) -> NoReturn:
        _invalid(f"{self.where}.{name}: expected {expected}, got {_describe(value)}")

    def text(self, name: str, pattern: re.Pattern[str] | None = None, max_chars: int = 64) -> str:
        """A required string, optionally matching `pattern`, at most `max_chars` long."""
        value = self._take(name)
        if value is None:
            self._missing(name)
        return self._check_text(name, value, pattern, max_chars)

    def optional_text(
        self, name: str, pattern: re.Pattern[str] | None = None, max_chars: int = 64
    ) -> str | None:
        """A string that may be omitted or null."""
        value = self._take(name)
        return None if value is None else self._check_text(name, value, pattern, max_chars)

    def _check_text(
        self, name: str, value: Any, pattern: re.Pattern[str] | None, max_chars: int
    ) -> str:
        if not isinstance(value, str):
            self._wrong(name, "a string", value)
        if len(value) > max_chars:
            _invalid(f"{self.where}.{name}: at most {max_chars} characters")
        if pattern is not None and not pattern.fullmatch(value):
            _invalid(f"{self.where}.{name}: does not match {pattern.pattern}")
        return value

    def integer(self, name: str, low: int, high: int) -> int:
        """A required integer in [low, high] (booleans and floats are refused)."""
        value = self._take(name)
        if value is None:
            self._missing(name)
        return self._check_integer(name, value, low, high)

    def optional_integer(self, name: str, low: int, high: int) -> int | None:
        """An integer that may be omitted or null."""
        value = self._take(name)
        return None if value is None else self._check_integer(name, value, low, high)

    def _check_integer(self, name: str, value: Any, low: int, high: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            self._wrong(name, "an integer", value)
        if not low <= value <= high:
            _invalid(f"{self.where}.{name}: expected {low}..{high}, got {value}")
        return value

    def boolean(self, name: str) -> bool:
        """A required true or false."""
        value = self._take(name)
        if value is None:
            self._missing(name)
        if not isinstance(value, bool):
            self._wrong(name, "true or false", value)
        return value

    def choice(self, name: str, allowed: Sequence[_E]) -> _E:
        """A required string that must be one of `allowed` (returned as its enum member)."""
        value = self._take(name)
        if value is None:
            self._missing(name)
        for member in allowed:
            if value == member.value:
                return member
        self._wrong(name, "one of " + ", ".join(m.value for m in allowed), value)

    def mapping(self, name: str) -> Mapping[str, Any]:
        """A required JSON object."""
        value = self._take(name)
        if value is None:
            self._missing(name)
        if not isinstance(value, Mapping):
            self._wrong(name, "an object", value)
        return value

    def optional_mapping(self, name: str) -> Mapping[str, Any] | None:
        """A JSON object that may be omitted or null."""
        value = self._take(name)
        if value is not None and not isinstance(value, Mapping):
            self._wrong(name, "an object", value)
        return value

    def array(self, name: str, max_items: int) -> Sequence[Any]:
        """A required JSON array of at most `max_items` entries."""
        value = self._take(name)
        if value is None:
            self._missing(name)
        if not isinstance(value, list | tuple):
            self._wrong(name, "an array", value)
        if len(value) > max_items:
            _invalid(f"{self.where}.{name}: at most {max_items} entries")
        return value

    def done(self) -> None:
        """Refuse fields the schema does not name."""
        extra = set(self._obj) - self._read
        if extra:
            _invalid(f"{self.where}: unknown field(s) {', '.join(sorted(map(str, extra)))}")


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, str | int | float):
        return repr(value)[:40]
    return type(value).__name__


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8"))


# --- signaling payloads ----------------------------------------------------------------

DescriptionType = Literal["offer", "answer", "pranswer", "rollback"]
_DESCRIPTION_TYPES: Final[tuple[DescriptionType, ...]] = ("offer", "answer", "pranswer", "rollback")


@dataclass(frozen=True, slots=True)
class SessionDescription:
    """An SDP offer or answer, relayed opaquely (only its size and kind are checked)."""

    type: DescriptionType
    sdp: str

    def __post_init__(self) -> None:
        if self.type not in _DESCRIPTION_TYPES:
            _invalid(f"description.type: expected one of {', '.join(_DESCRIPTION_TYPES)}")
        if _utf8_len(self.sdp) > MAX_SDP_BYTES:
            _invalid(f"description.sdp: at most {MAX_SDP_BYTES} bytes")
        if not self.sdp and self.type != "rollback":
            _invalid("description.sdp: empty (only a rollback has no SDP)")

    def to_json(self) -> dict[str, Any]:
        """The relay payload as the peer receives it."""
        return {"kind": "description", "description": {"type": self.type, "sdp": self.sdp}}


@dataclass(frozen=True, slots=True)
class IceCandidate:
    """A trickled ICE candidate (RTCIceCandidateInit); an empty candidate ends the trickle."""

    candidate: str
    sdp_mid: str | None = None
    sdp_mline_index: int | None = None
    username_fragment: str | None = None

    def __post_init__(self) -> None:
        if _utf8_len(self.candidate) > MAX_CANDIDATE_BYTES:
            _invalid(f"candidate.candidate: at most {MAX_CANDIDATE_BYTES} bytes")
        if self.candidate and self.sdp_mid is None and self.sdp_mline_index is None:
            _invalid("candidate: needs sdpMid or sdpMLineIndex")

    def to_json(self) -> dict[str, Any]:
        """The relay payload as the peer receives it (null members left out)."""
        init: dict[str, Any] = {"candidate": self.candidate}
        if self.sdp_mid is not None:
            init["sdpMid"] = self.sdp_mid
        if self.sdp_mline_index is not None:
            init["sdpMLineIndex"] = self.sdp_mline_index
        if self.username_fragment is not None:
            init["usernameFragment"] = self.username_fragment
        return {"kind": "candidate", "candidate": init}


RelayPayload = SessionDescription | IceCandidate


def parse_relay_payload(raw: Any) -> RelayPayload:
    """Validate a `relay` payload: a description or a candidate, nothing else."""
    if not isinstance(raw, Mapping):
        _invalid(f"relay.payload: expected an object, got {_describe(raw)}")
    outer = _Fields(raw, "relay.payload", implicit=())
    kind = outer.text("kind", max_chars=16)
    if kind == "description":
        inner = _Fields(outer.mapping("description"), "description", implicit=())
        description_type = inner.text("type", max_chars=16)
        sdp = inner.text("sdp", max_chars=MAX_SDP_BYTES)
        inner.done()
        outer.done()
        if description_type not in _DESCRIPTION_TYPES:
            _invalid(f"description.type: expected one of {', '.join(_DESCRIPTION_TYPES)}")
        return SessionDescription(description_type, sdp)
    if kind == "candidate":
        inner = _Fields(outer.mapping("candidate"), "candidate", implicit=())
        candidate = IceCandidate(
            candidate=inner.text("candidate", max_chars=MAX_CANDIDATE_BYTES),
            sdp_mid=inner.optional_text("sdpMid", max_chars=64),
            sdp_mline_index=inner.optional_integer("sdpMLineIndex", 0, 1023),
            username_fragment=inner.optional_text("usernameFragment", max_chars=256),
        )
        inner.done()
        outer.done()
        return candidate
    _invalid("relay.payload.kind: expected 'description' or 'candidate'")


# --- client → server messages ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hello:
    """The versioned handshake: the first message on every connection."""

    TYPE: ClassVar[str] = "hello"
    version: int
    resume: str | None = None  # the resume token from an earlier `welcome`
    id: str | None = None

    @classmethod
    def from_fields(cls, f: _Fields, id: str | None) -> Hello:
        """Read the fields of a `hello`."""
        return cls(f.integer("version", 1, 2**31 - 1), f.optional_text("resume", _TOKEN, 128), id)


@dataclass(frozen=True, slots=True)
class Admit:
    """The therapist lets a waiting knock into the call."""

    TYPE: ClassVar[str] = "admit"
    knock_id: str
    id: str | None = None

    @classmethod
    def from_fields(cls, f: _Fields, id: str | None) -> Admit:
        """Read the fields of an `admit`."""
        return cls(f.text("knock_id", _KNOCK_ID), id)


@dataclass(frozen=True, slots=True)
class Deny:
    """The therapist turns a waiting knock away."""

    TYPE: ClassVar[str] = "deny"
    knock_id: str
    id: str | None = None

    @classmethod
    def from_fields(cls, f: _Fields, id: str | None) -> Deny:
        """Read the fields of a `deny`."""
        return cls(f.text("knock_id", _KNOCK_ID), id)


@dataclass(frozen=True, slots=True)
class SendBack:
    """The therapist returns the admitted client to the waiting room."""

    TYPE: ClassVar[str] = "send-back"
    id: str | None = None

    @classmethod
    def from_fields(cls, f: _Fields, id: str | None) -> SendBack:
        """Read the (no) fields of a `send-back`."""
        return cls(id)


@dataclass(frozen=True, slots=True)
class Relay:
    """SDP or ICE for the other party in the call."""

    TYPE: ClassVar[str] = "relay"
    payload: RelayPayload
    id: str | None = None

    @classmethod
    def from_fields(cls, f: _Fields, id: str | None) -> Relay:
        """Read the fields of a `relay`."""
        return cls(parse_relay_payload(f.mapping("payload")), id)


def _answers(raw: Mapping[str, Any]) -> Mapping[str, int | str | None]:
    if len(raw) > MAX_ANSWERS:
        _invalid(f"checkin-answer.answers: at most {MAX_ANSWERS} items")
    answers: dict[str, int | str | None] = {}
    for link_id, value in raw.items():
        if not 1 <= len(link_id) <= 64:
            _invalid("checkin-answer.answers: an item id has 1..64 characters")
        if isinstance(value, str):
            if len(value) > MAX_ANSWER_TEXT_CHARS:
                _invalid(f"checkin-answer.answers.{link_id}: at most {MAX_ANSWER_TEXT_CHARS} chars")
        elif value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            _invalid(f"checkin-answer.answers.{link_id}: expected an integer, a string or null")
        elif isinstance(value, int) and abs(value) > MAX_ANSWER_INT:
            _invalid(f"checkin-answer.answers.{link_id}: out of range")
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

    @classmethod
    def from_fields(cls, f: _Fields, id: str | None) -> CheckinAnswer:
        """Read the fields of a `checkin-answer`."""
        return cls(
            f.text("instrument_id", _INSTRUMENT_ID),
            _answers(f.mapping("answers")),
            f.text("idempotency_key", _IDEMPOTENCY_KEY),
            id,
        )


@dataclass(frozen=True, slots=True)
class CheckinLaunch:
    """The therapist opens a one-tap check-in (the pulse) on the client's screen."""

    TYPE: ClassVar[str] = "checkin-launch"
    instrument_id: str
    id: str | None = None

    @classmethod
    def from_fields(cls, f: _Fields, id: str | None) -> CheckinLaunch:
        """Read the fields of a `checkin-launch`."""
        return cls(f.text("instrument_id", _INSTRUMENT_ID), id)


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
    def from_fields(cls, f: _Fields, id: str | None) -> Signal:
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
    def from_fields(cls, f: _Fields, id: str | None) -> Consent:
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
    def from_fields(cls, f: _Fields, id: str | None) -> PromptFeedbackMessage:
        """Read the fields of a `prompt-feedback`."""
        prompt_id = f.text("prompt_id", _MESSAGE_ID)
        feedback = f.choice("feedback", tuple(PromptFeedback))
        minutes = f.optional_integer("minutes", *SNOOZE_MINUTES_RANGE)
        snoozing = feedback is PromptFeedback.SNOOZE_CATEGORY
        if snoozing and minutes is None:
            _invalid("prompt-feedback: snooze-category needs minutes")
        if not snoozing and minutes is not None:
            _invalid("prompt-feedback.minutes: only with snooze-category")
        return cls(prompt_id, feedback, minutes, id)


@dataclass(frozen=True, slots=True)
class End:
    """The therapist ends the session for everyone."""

    TYPE: ClassVar[str] = "end"
    id: str | None = None

    @classmethod
    def from_fields(cls, f: _Fields, id: str | None) -> End:
        """Read the (no) fields of an `end`."""
        return cls(id)


@dataclass(frozen=True, slots=True)
class Ping:
    """A keep-alive; the server answers `pong`."""

    TYPE: ClassVar[str] = "ping"
    id: str | None = None

    @classmethod
    def from_fields(cls, f: _Fields, id: str | None) -> Ping:
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
    | Ping
)

_FieldParser = Callable[[_Fields, str | None], ClientMessage]
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
        Ping.TYPE: Ping.from_fields,
    }
)

CLIENT_MESSAGE_TYPES: Final = frozenset({*_CLIENT_PARSERS, Features.TYPE})

_BOTH: Final = frozenset({Hello.TYPE, Relay.TYPE, Features.TYPE, Ping.TYPE})
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
        },
        SessionRole.CLIENT: _BOTH | {CheckinAnswer.TYPE, Signal.TYPE, Consent.TYPE},
    }
)
"""Which client→server types each role may send; anything else gets `forbidden`."""

CALL_ONLY_TYPES: Final = frozenset({Relay.TYPE, Features.TYPE, Signal.TYPE})
"""Types a client may send only once admitted (a waiting client gets `not-admitted`)."""


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


def parse_client_message(text: str, *, max_bytes: int = MAX_FRAME_BYTES) -> ClientMessage:
    """Parse one client→server text frame; raise ProtocolError naming what is wrong."""
    if len(text) > max_bytes or (len(text) * 4 > max_bytes and _utf8_len(text) > max_bytes):
        raise ProtocolError(ErrorCode.TOO_LARGE, f"frames are limited to {max_bytes} bytes")
    try:
        obj = json.loads(text, parse_constant=_no_constants, object_pairs_hook=_unique_keys)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(ErrorCode.BAD_JSON, f"not valid JSON: {exc}"[:200]) from None
    if not isinstance(obj, dict):
        raise ProtocolError(ErrorCode.INVALID, f"a message is a JSON object, not {_describe(obj)}")
    message_id = obj.get("id")
    if message_id is not None and not (
        isinstance(message_id, str) and _MESSAGE_ID.fullmatch(message_id)
    ):
        raise ProtocolError(ErrorCode.INVALID, f"id: does not match {_MESSAGE_ID.pattern}")
    type_name = obj.get("type")
    if not isinstance(type_name, str):
        raise ProtocolError(ErrorCode.INVALID, "missing string field 'type'", ref=message_id)
    try:
        if type_name == Features.TYPE:
            if _utf8_len(text) > MAX_FEATURES_BYTES:
                raise ProtocolError(
                    ErrorCode.TOO_LARGE,
                    f"features frames are limited to {MAX_FEATURES_BYTES} bytes",
                )
            return Features(
                MappingProxyType({k: v for k, v in obj.items() if k != "id"}), message_id
            )
        parse = _CLIENT_PARSERS.get(type_name)
        if parse is None:
            raise ProtocolError(ErrorCode.UNKNOWN_TYPE, f"unknown message type {type_name[:64]!r}")
        fields = _Fields(obj, type_name)
        message = parse(fields, message_id)
        fields.done()
        return message
    except ProtocolError as exc:
        exc.ref = message_id
        raise


# --- server → client messages ----------------------------------------------------------


def _ice_servers(f: _Fields) -> None:
    for server in f.array("ice_servers", 16):
        if not isinstance(server, Mapping) or "urls" not in server:
            _invalid("welcome.ice_servers: each entry is an object with `urls`")


_PURPOSE_VALUES: Final = frozenset(p.value for p in Purpose)
_CONSENT_STATE_VALUES: Final = frozenset(s.value for s in ConsentState)


def _consents(f: _Fields) -> None:
    for purpose, state in f.mapping("consents").items():
        if purpose not in _PURPOSE_VALUES or state not in _CONSENT_STATE_VALUES:
            _invalid(f"welcome.consents: {purpose!r}: {state!r} is not a purpose and its state")


def _welcome(f: _Fields) -> None:
    role = f.choice("role", tuple(SessionRole))
    f.text("session_id", max_chars=128)
    f.integer("version", PROTOCOL_VERSION, PROTOCOL_VERSION)
    f.choice("state", (Presence.WAITING, Presence.IN_CALL))
    f.choice("peer", (Presence.ABSENT, Presence.IN_CALL, Presence.RECONNECTING))
    _ice_servers(f)
    _consents(f)
    if role is SessionRole.CLIENT:
        f.text("knock_id", _KNOCK_ID)
        f.text("resume_token", _TOKEN, 128)


def _lobby(f: _Fields) -> None:
    for knock in f.array("waiting", 1000):
        if not isinstance(knock, Mapping):
            _invalid("lobby.waiting: each entry is {knock_id, label, since_ms}")
        entry = _Fields(knock, "lobby.waiting[]", implicit=())
        entry.text("knock_id", _KNOCK_ID)
        entry.text("label", max_chars=128)
        entry.integer("since_ms", 0, 2**53)
        entry.done()


def _admitted(f: _Fields) -> None:
    f.boolean("resumed")


def _nothing(f: _Fields) -> None:
    """A message with no fields besides its type."""


def _peer_joined(f: _Fields) -> None:
    f.choice("role", tuple(SessionRole))
    f.text("label", max_chars=128)
    f.boolean("resumed")


def _peer_left(f: _Fields) -> None:
    f.choice("role", tuple(SessionRole))
    f.boolean("reconnecting")


def _signal_relay(f: _Fields) -> None:
    parse_relay_payload(f.mapping("payload"))


def _instrument_and_kind(f: _Fields) -> None:
    f.text("instrument_id", _INSTRUMENT_ID)
    kind = f.text("kind", max_chars=16)
    if kind not in KINDS:
        _invalid(f"{f.where}.kind: expected one of {', '.join(KINDS)}")


def _checkin_open(f: _Fields) -> None:
    _instrument_and_kind(f)
    f.optional_mapping("questionnaire")


def _checkin_result(f: _Fields) -> None:
    _instrument_and_kind(f)
    f.mapping("scores")
    f.array("alerts", 100)


def _checkin_ack(f: _Fields) -> None:
    f.text("idempotency_key", _IDEMPOTENCY_KEY)
    f.optional_text("ref", _MESSAGE_ID)


def _prompt(f: _Fields) -> None:
    prompt = f.mapping("prompt")
    if not isinstance(prompt.get("id"), str) or not isinstance(prompt.get("text"), str):
        _invalid("prompt.prompt: needs a string id and text")


def _client_signal(f: _Fields) -> None:
    f.choice("signal", tuple(ClientSignal))


def _consent_changed(f: _Fields) -> None:
    f.choice("purpose", tuple(Purpose))
    f.choice("decision", tuple(ConsentDecision))


def _session_ended(f: _Fields) -> None:
    f.choice("reason", tuple(EndReason))


def _pong(f: _Fields) -> None:
    f.optional_text("ref", _MESSAGE_ID)


def _error(f: _Fields) -> None:
    f.choice("code", tuple(ErrorCode))
    f.text("message", max_chars=MAX_ERROR_MESSAGE_CHARS)
    f.optional_text("ref", _MESSAGE_ID)


_SERVER_SCHEMAS: Final[Mapping[str, Callable[[_Fields], None]]] = MappingProxyType(
    {
        "welcome": _welcome,
        "lobby": _lobby,
        "admitted": _admitted,
        "sent-back": _nothing,
        "denied": _nothing,
        "peer-joined": _peer_joined,
        "peer-left": _peer_left,
        "signal-relay": _signal_relay,
        "checkin-open": _checkin_open,
        "checkin-result": _checkin_result,
        "checkin-ack": _checkin_ack,
        "prompt": _prompt,
        "client-signal": _client_signal,
        "consent-changed": _consent_changed,
        "session-ended": _session_ended,
        "pong": _pong,
        "error": _error,
    }
)

SERVER_MESSAGE_TYPES: Final = frozenset(_SERVER_SCHEMAS)

THERAPIST_ONLY_SERVER_TYPES: Final = frozenset(
    {"lobby", "checkin-result", "prompt", "client-signal"}
)
"""Server→client types that must never reach a client connection."""


def server_message(type: str, **fields: Any) -> dict[str, Any]:
    """Build a server→client message, checking its shape; None-valued fields are left out."""
    schema = _SERVER_SCHEMAS.get(type)
    if schema is None:
        raise ValueError(f"unknown server message type {type!r}")
    message: dict[str, Any] = {"type": type}
    for name, value in fields.items():
        if value is not None:
            message[name] = value.value if isinstance(value, StrEnum) else value
    # Server messages echo a client's id as `ref`, never carry an `id` of their own.
    checked = _Fields(message, type, implicit=("type",))
    try:
        schema(checked)
        checked.done()
    except ProtocolError as exc:
        raise ValueError(f"server message {type!r}: {exc.message}") from None
    return message


class RateLimiter:
    """A token bucket per connection: `per_second` messages sustained, `burst` at once."""

    __slots__ = ("_burst", "_per_ms", "_tokens", "_updated_ms")

    def __init__(
        self, now_ms: int, *, per_second: int = RATE_LIMIT_PER_SECOND, burst: int = RATE_LIMIT_BURST
    ) -> None:
        self._per_ms = per_second / 1000
        self._burst = float(burst)
        self._tokens = float(burst)
        self._updated_ms = now_ms

    def allow(self, now_ms: int) -> bool:
        """Spend one token if there is one; False means answer `rate-limited` and drop it."""
        elapsed = max(0, now_ms - self._updated_ms)
        self._tokens = min(self._burst, self._tokens + elapsed * self._per_ms)
        self._updated_ms = max(self._updated_ms, now_ms)
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

"""Server→client messages: one frozen dataclass per type, and who may receive it.

A message is built with its class (``AdmittedMessage(resumed=False)``), checks its own
fields in ``__post_init__`` (a malformed message is a programming error: ``ValueError``),
and becomes JSON with ``to_json()``, which leaves out None-valued optional fields and names
a field after a Python keyword without its underscore (``from_`` is ``from``).
Therapist-only messages derive from ``TherapistOnlyMessage``, every other from
``SharedMessage``; ``server.core.rooms`` addresses only a ``SharedMessage`` to clients, so
a checker rejects the mistake before it runs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType
from typing import Annotated, Any, ClassVar, Final, Literal

from privacy.consent import ConsentDecision, ConsentState, Purpose
from server.core.checkins.instruments import KINDS, InstrumentKind
from server.core.participants import PersonKind
from server.core.protocol.codes import (
    MAX_ERROR_MESSAGE_CHARS,
    MAX_GOAL_TEXT_CHARS,
    MAX_GOALS_LISTED,
    MAX_ICE_TTL_SECONDS,
    MAX_WAITING_NOTE_CHARS,
    PROTOCOL_VERSION,
    ClientSignal,
    EndReason,
    ErrorCode,
    IceTransportPolicy,
    Presence,
    ProtocolError,
    SessionRole,
)
from server.core.protocol.fields import (
    IDEMPOTENCY_KEY,
    INSTRUMENT_ID,
    KNOCK_ID,
    MESSAGE_ID,
    PEER_ID,
    STREAM_ID,
    TOKEN,
    Fields,
    invalid,
)
from server.core.protocol.relay import (
    IceCandidate,
    RelayPayload,
    SessionDescription,
    parse_relay_payload,
)
from server.core.safety import (
    MAX_CODE_WORD_CHARS,
    MAX_CONTACT_NAME_CHARS,
    MAX_LOCATION_CHARS,
    MAX_PHONE_CHARS,
)


@dataclass(frozen=True, slots=True)
class JsType:
    """The JavaScript type of a field whose Python type is looser than its documented shape."""

    text: str


IceServers = Annotated[
    Sequence[Mapping[str, Any]],
    JsType("Array<{urls: string | Array<string>, username?: string, credential?: string}>"),
]
CuePrompt = Annotated[
    Mapping[str, Any],
    JsType(
        "{id: string, category: string, t_ms: number, severity: string, text: string,"
        " reasons: Array<Record<string, unknown>>}"
    ),
]
SharedGoals = Annotated[
    Sequence[Mapping[str, Any]],
    JsType(
        "Array<{id: string, text: string, status: 'active' | 'reached' | 'dropped',"
        " updated_by: 'therapist' | 'client', updated_at_ms: number}>"
    ),
]
CheckinAlerts = Annotated[
    Sequence[Mapping[str, Any]],
    JsType(
        "Array<{code: string, category: string, severity: string, reason: string,"
        " repair: string, items: Array<string>}>"
    ),
]


def _plain(value: Any) -> Any:
    """A JSON-ready copy: enums as their values, typed parts as their JSON."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, SessionDescription | IceCandidate | LobbyEntry | RosterEntry):
        return value.to_json()
    if isinstance(value, Mapping):
        return {_plain(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


class ServerMessage:
    """A server→client message; subclasses are frozen dataclasses whose fields are the JSON's."""

    __slots__ = ()
    TYPE: ClassVar[str]
    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]

    def __post_init__(self) -> None:
        fields = Fields(self._present(), self.TYPE, implicit=())
        try:
            self._check(fields)
            fields.done()
        except ProtocolError as exc:
            raise ValueError(f"server message {self.TYPE!r}: {exc.message}") from None

    def _check(self, f: Fields) -> None:
        """Check the fields the way the protocol documents them (no fields: nothing to do)."""

    def _normalise(self, name: str, value: object) -> None:
        """Store a checked field in its typed form (an enum member, a payload dataclass)."""
        object.__setattr__(self, name, value)

    def _present(self) -> dict[str, Any]:
        found = ((f.name, getattr(self, f.name)) for f in dataclasses.fields(self))
        return {name: value for name, value in found if value is not None}

    def to_json(self) -> dict[str, Any]:
        """The message as sent: `type` first, None-valued optional fields left out."""
        return {"type": self.TYPE, **{wire_name(k): _plain(v) for k, v in self._present().items()}}


def wire_name(field_name: str) -> str:
    """A field's name in JSON: a Python keyword's trailing underscore goes (`from_` → `from`)."""
    return field_name[:-1] if field_name.endswith("_") else field_name


class SharedMessage(ServerMessage):
    """A message any connection in the room may receive."""

    __slots__ = ()


class TherapistOnlyMessage(ServerMessage):
    """A message for the therapist's connection only; it must never reach a client."""

    __slots__ = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class LobbyEntry:
    """One knock in the therapist's waiting list: never an IP address or a user agent."""

    knock_id: str
    label: str
    since_ms: int  # Unix time in ms when it started waiting
    kind: PersonKind = PersonKind.CLIENT  # a client or a guest (never the therapist)
    participant_id: str = "client"  # the person behind the knock (their peer id once in)

    def __post_init__(self) -> None:
        f = Fields(dataclasses.asdict(self), "lobby.waiting[]", implicit=())
        f.text("knock_id", KNOCK_ID)
        f.text("label", max_chars=128)
        f.integer("since_ms", 0, 2**53)
        kind = f.choice("kind", (PersonKind.CLIENT, PersonKind.GUEST))
        object.__setattr__(self, "kind", kind)
        f.text("participant_id", PEER_ID)

    @classmethod
    def from_json(cls, raw: object) -> LobbyEntry:
        """An entry given as `{knock_id, label, since_ms, kind, participant_id}`, nothing else."""
        if isinstance(raw, LobbyEntry):
            return raw
        if not isinstance(raw, Mapping):
            invalid(
                "lobby.waiting: each entry is {knock_id, label, since_ms, kind, participant_id}"
            )
        f = Fields(raw, "lobby.waiting[]", implicit=())
        entry = cls(
            knock_id=f.raw("knock_id"),
            label=f.raw("label"),
            since_ms=f.raw("since_ms"),
            kind=f.raw("kind"),
            participant_id=f.raw("participant_id"),
        )
        f.done()
        return entry

    def to_json(self) -> dict[str, Any]:
        """The entry as the therapist's page receives it."""
        return {
            "knock_id": self.knock_id,
            "label": self.label,
            "since_ms": self.since_ms,
            "kind": self.kind.value,
            "participant_id": self.participant_id,
        }


@dataclass(frozen=True, slots=True)
class RosterEntry:
    """One person in the call, as `roster` lists them."""

    peer_id: str  # "therapist", or the participant id
    kind: PersonKind
    label: str
    order: int  # admission order: the therapist 0, then rising (unique in the call)
    present: bool  # False while a dropped person's place is held for resume

    def __post_init__(self) -> None:
        f = Fields(dataclasses.asdict(self), "roster.people[]", implicit=())
        f.text("peer_id", PEER_ID)
        object.__setattr__(self, "kind", f.choice("kind", tuple(PersonKind)))
        f.text("label", max_chars=128)
        f.integer("order", 0, 2**31)
        f.boolean("present")

    @classmethod
    def from_json(cls, raw: object) -> RosterEntry:
        """An entry given as `{peer_id, kind, label, order, present}` and nothing else."""
        if isinstance(raw, RosterEntry):
            return raw
        if not isinstance(raw, Mapping):
            invalid("roster.people: each entry is {peer_id, kind, label, order, present}")
        f = Fields(raw, "roster.people[]", implicit=())
        names = ("peer_id", "kind", "label", "order", "present")
        entry = cls(**{name: f.raw(name) for name in names})
        f.done()
        return entry

    def to_json(self) -> dict[str, Any]:
        """The entry as every page in the call receives it."""
        return {
            "peer_id": self.peer_id,
            "kind": self.kind.value,
            "label": self.label,
            "order": self.order,
            "present": self.present,
        }


def consent_states(raw: Mapping[str, str]) -> Mapping[Purpose, ConsentState]:
    """`{purpose: state}` as stored, checked and typed for `welcome.consents`."""
    states: dict[Purpose, ConsentState] = {}
    purposes = {p.value: p for p in Purpose}
    known = {s.value: s for s in ConsentState}
    for purpose, state in raw.items():
        if purpose not in purposes or state not in known:
            invalid(f"welcome.consents: {purpose!r}: {state!r} is not a purpose and its state")
        states[purposes[purpose]] = known[state]
    return MappingProxyType(states)


@dataclass(frozen=True, slots=True, kw_only=True)
class WelcomeMessage(SharedMessage):
    """The answer to `hello`: role, where each party stands, ICE servers, consents."""

    TYPE: ClassVar[str] = "welcome"
    role: SessionRole
    session_id: str
    peer_id: str  # yours: "therapist", or your participant id (as `roster` names you)
    version: int = PROTOCOL_VERSION
    state: Literal[Presence.WAITING, Presence.IN_CALL]
    peer: Literal[Presence.ABSENT, Presence.IN_CALL, Presence.RECONNECTING]
    ice_servers: IceServers
    consents: Mapping[Purpose, ConsentState]
    # relay: only TURN relays (the client's address stays hidden); with the servers above, a
    # reconnect needs no second fetch of /api/v1/ice
    ice_transport_policy: IceTransportPolicy = IceTransportPolicy.ALL
    ice_ttl_seconds: int = 0  # lifetime of the TURN credentials above; 0: none to refresh
    knock_id: str | None = None  # clients only
    resume_token: str | None = None  # hello.resume with it returns to this place (once)
    resumed: bool = False  # True when hello.resume returned to a held place: keep the call

    def _check(self, f: Fields) -> None:
        role = f.choice("role", tuple(SessionRole))
        self._normalise("role", role)
        f.text("session_id", max_chars=128)
        f.text("peer_id", PEER_ID)
        f.integer("version", PROTOCOL_VERSION, PROTOCOL_VERSION)
        self._normalise("state", f.choice("state", (Presence.WAITING, Presence.IN_CALL)))
        peer = f.choice("peer", (Presence.ABSENT, Presence.IN_CALL, Presence.RECONNECTING))
        self._normalise("peer", peer)
        ice_servers = f.array("ice_servers", 16)
        if not all(isinstance(s, Mapping) and "urls" in s for s in ice_servers):
            invalid("welcome.ice_servers: each entry is an object with `urls`")
        policy = f.choice("ice_transport_policy", tuple(IceTransportPolicy))
        self._normalise("ice_transport_policy", policy)
        f.integer("ice_ttl_seconds", 0, MAX_ICE_TTL_SECONDS)
        self._normalise("consents", consent_states(f.mapping("consents")))
        f.boolean("resumed")
        if role is SessionRole.CLIENT:
            f.text("knock_id", KNOCK_ID)
            f.text("resume_token", TOKEN, 128)
        else:
            f.optional_text("resume_token", TOKEN, 128)


@dataclass(frozen=True, slots=True, kw_only=True)
class LobbyMessage(TherapistOnlyMessage):
    """The whole waiting list, in order of arrival."""

    TYPE: ClassVar[str] = "lobby"
    waiting: Sequence[LobbyEntry]

    def _check(self, f: Fields) -> None:
        entries = f.array("waiting", 1000)
        self._normalise("waiting", tuple(LobbyEntry.from_json(entry) for entry in entries))


@dataclass(frozen=True, slots=True, kw_only=True)
class RosterMessage(SharedMessage):
    """Everyone in the call (the therapist and each admitted person), in admission order:
    every page builds its mesh from it. Sent whenever who is in the call, or present, changes."""

    TYPE: ClassVar[str] = "roster"
    people: Sequence[RosterEntry]

    def _check(self, f: Fields) -> None:
        entries = tuple(RosterEntry.from_json(entry) for entry in f.array("people", 16))
        if len({e.peer_id for e in entries}) != len(entries):
            invalid("roster.people: each peer_id once")
        if len({e.order for e in entries}) != len(entries):
            invalid("roster.people: each order once")
        self._normalise("people", entries)


@dataclass(frozen=True, slots=True, kw_only=True)
class AdmittedMessage(SharedMessage):
    """To a client: you are in the call."""

    TYPE: ClassVar[str] = "admitted"
    resumed: bool

    def _check(self, f: Fields) -> None:
        f.boolean("resumed")


@dataclass(frozen=True, slots=True, kw_only=True)
class SentBackMessage(SharedMessage):
    """To a client: the therapist returned you to the waiting room."""

    TYPE: ClassVar[str] = "sent-back"


@dataclass(frozen=True, slots=True, kw_only=True)
class DeniedMessage(SharedMessage):
    """To a client: the therapist did not admit this device."""

    TYPE: ClassVar[str] = "denied"


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerJoinedMessage(SharedMessage):
    """Someone's connection in the call is new (or resumed)."""

    TYPE: ClassVar[str] = "peer-joined"
    role: SessionRole
    label: str
    resumed: bool
    peer_id: str  # who: "therapist", or a participant id
    kind: PersonKind

    def _check(self, f: Fields) -> None:
        self._normalise("role", f.choice("role", tuple(SessionRole)))
        f.text("label", max_chars=128)
        f.boolean("resumed")
        f.text("peer_id", PEER_ID)
        self._normalise("kind", f.choice("kind", tuple(PersonKind)))


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerLeftMessage(SharedMessage):
    """Someone left the call, or dropped and may come back."""

    TYPE: ClassVar[str] = "peer-left"
    role: SessionRole
    reconnecting: bool
    peer_id: str  # who: "therapist", or a participant id
    kind: PersonKind
    label: str

    def _check(self, f: Fields) -> None:
        self._normalise("role", f.choice("role", tuple(SessionRole)))
        f.boolean("reconnecting")
        f.text("peer_id", PEER_ID)
        self._normalise("kind", f.choice("kind", tuple(PersonKind)))
        f.text("label", max_chars=128)


@dataclass(frozen=True, slots=True, kw_only=True)
class TherapistNoteMessage(SharedMessage):
    """To a waiting client: the therapist's short note (relayed, never stored)."""

    TYPE: ClassVar[str] = "therapist-note"
    text: str

    def _check(self, f: Fields) -> None:
        f.text("text", max_chars=MAX_WAITING_NOTE_CHARS)


@dataclass(frozen=True, slots=True, kw_only=True)
class QuickExitMessage(TherapistOnlyMessage):
    """A safety signal: a client left with the quick exit (not a dropped connection)."""

    TYPE: ClassVar[str] = "quick-exit"
    label: str  # the client's alias, as in the lobby and `peer-joined`
    in_call: bool  # whether they were in the call (else: in the waiting room)

    def _check(self, f: Fields) -> None:
        f.text("label", max_chars=128)
        f.boolean("in_call")


@dataclass(frozen=True, slots=True, kw_only=True)
class MeasureAlertMessage(TherapistOnlyMessage):
    """A safety alert from an outcome measure (PHQ-9 item 9 above "Not at all"), at once."""

    TYPE: ClassVar[str] = "measure-alert"
    alert_id: str
    label: str  # the client's alias
    measure: str  # the measure's title, e.g. "PHQ-9"
    reason: str  # names the question, never the answer given
    repair: str

    def _check(self, f: Fields) -> None:
        f.text("alert_id", MESSAGE_ID)
        f.text("label", max_chars=128)
        f.text("measure", max_chars=64)
        f.text("reason", max_chars=500)
        f.text("repair", max_chars=500)


@dataclass(frozen=True, slots=True, kw_only=True)
class SignalRelayMessage(SharedMessage):
    """Another person's SDP or ICE, as validated, and who sent it."""

    TYPE: ClassVar[str] = "signal-relay"
    payload: RelayPayload
    from_: str  # the sender's peer id (`from` in JSON)

    def _check(self, f: Fields) -> None:
        f.text("from_", PEER_ID)
        if not isinstance(f.raw("payload"), SessionDescription | IceCandidate):
            self._normalise("payload", parse_relay_payload(f.mapping("payload")))


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerScreenMessage(SharedMessage):
    """The other party in the call started sharing its screen (the track whose stream has
    this id is the screen, not the camera) or stopped."""

    TYPE: ClassVar[str] = "peer-screen"
    role: SessionRole  # who shares
    sharing: bool
    stream_id: str | None = None  # while sharing

    def _check(self, f: Fields) -> None:
        self._normalise("role", f.choice("role", tuple(SessionRole)))
        sharing = f.boolean("sharing")
        stream_id = f.optional_text("stream_id", STREAM_ID)
        if sharing is (stream_id is None):
            invalid("peer-screen.stream_id: exactly while sharing")


@dataclass(frozen=True, slots=True, kw_only=True)
class ScreenShareAllowedMessage(SharedMessage):
    """To the call: whether the therapist lets the client share a screen (off by default)."""

    TYPE: ClassVar[str] = "screen-share-allowed"
    allowed: bool

    def _check(self, f: Fields) -> None:
        f.boolean("allowed")


def _instrument_and_kind(message: ServerMessage, f: Fields) -> None:
    f.text("instrument_id", INSTRUMENT_ID)
    kind = f.text("kind", max_chars=16)
    if kind not in KINDS:
        invalid(f"{message.TYPE}.kind: expected one of {', '.join(KINDS)}")


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckinOpenMessage(SharedMessage):
    """To a client: show a check-in form."""

    TYPE: ClassVar[str] = "checkin-open"
    instrument_id: str
    kind: InstrumentKind
    questionnaire: Mapping[str, Any] | None = None  # FHIR Questionnaire-shaped

    def _check(self, f: Fields) -> None:
        _instrument_and_kind(self, f)
        f.optional_mapping("questionnaire")


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckinResultMessage(TherapistOnlyMessage):
    """A client's check-in scored, with any alerts."""

    TYPE: ClassVar[str] = "checkin-result"
    instrument_id: str
    kind: InstrumentKind
    scores: Mapping[str, Any]
    alerts: CheckinAlerts

    def _check(self, f: Fields) -> None:
        _instrument_and_kind(self, f)
        f.mapping("scores")
        f.array("alerts", 100)


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckinAckMessage(SharedMessage):
    """To a client: the answers with this idempotency key are durably stored."""

    TYPE: ClassVar[str] = "checkin-ack"
    idempotency_key: str
    ref: str | None = None

    def _check(self, f: Fields) -> None:
        f.text("idempotency_key", IDEMPOTENCY_KEY)
        f.optional_text("ref", MESSAGE_ID)


@dataclass(frozen=True, slots=True, kw_only=True)
class PromptMessage(TherapistOnlyMessage):
    """A cue prompt for the therapist's private side panel."""

    TYPE: ClassVar[str] = "prompt"
    prompt: CuePrompt

    def _check(self, f: Fields) -> None:
        prompt = f.mapping("prompt")
        if not isinstance(prompt.get("id"), str) or not isinstance(prompt.get("text"), str):
            invalid("prompt.prompt: needs a string id and text")


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientSignalMessage(TherapistOnlyMessage):
    """The client pressed a nonverbal signal button."""

    TYPE: ClassVar[str] = "client-signal"
    signal: ClientSignal

    def _check(self, f: Fields) -> None:
        self._normalise("signal", f.choice("signal", tuple(ClientSignal)))


SafetyCheckAnswers = Annotated[
    Mapping[str, Any],
    JsType(
        "{location: string, private: boolean, contact_name: string, contact_phone: string,"
        " code_word: string, submitted_at_ms: number}"
    ),
]
_SAFETY_TEXT_FIELDS: Final = {
    "location": MAX_LOCATION_CHARS,
    "contact_name": MAX_CONTACT_NAME_CHARS,
    "contact_phone": MAX_PHONE_CHARS,
    "code_word": MAX_CODE_WORD_CHARS,
}


def _check_safety_answers(where: str, answers: Mapping[str, Any]) -> None:
    """The shape of a safety check as the therapist's page receives it."""
    f = Fields(answers, where, implicit=())
    for name, max_chars in _SAFETY_TEXT_FIELDS.items():
        f.text(name, max_chars=max_chars)
    f.boolean("private")
    f.integer("submitted_at_ms", 0, 2**53)
    f.done()


@dataclass(frozen=True, slots=True, kw_only=True)
class SafetyCheckMessage(TherapistOnlyMessage):
    """The client answered the safety check before the waiting room (or answered it again)."""

    TYPE: ClassVar[str] = "safety-check"
    check: SafetyCheckAnswers

    def _check(self, f: Fields) -> None:
        _check_safety_answers("safety-check.check", f.mapping("check"))


PanelCheckins = Annotated[
    Sequence[Mapping[str, Any]],
    JsType(
        'Array<{instrument_id: string, kind: "before" | "pulse" | "after",'
        " scores: Record<string, any>, alerts: Array<{code: string, category: string,"
        " severity: string, reason: string, repair: string, items: Array<string>}>}>"
    ),
]
PanelSignals = Annotated[
    Sequence[Mapping[str, Any]],
    JsType(
        'Array<{signal: "need-a-moment" | "that-landed" | "confused" |'
        ' "slow-down" | "hard-to-hear-see", at_ms: number}>'
    ),
]
PanelPrompts = Annotated[
    Sequence[Mapping[str, Any]],
    JsType(
        "Array<{id: string, category: string, t_ms: number, severity: string, text: string,"
        " reasons: Array<Record<string, unknown>>}>"
    ),
]
PanelSafetyAlerts = Annotated[
    Sequence[Mapping[str, Any]],
    JsType(
        "Array<{alert_id: string, label: string, measure: string, reason: string, repair: string}>"
    ),
]
MAX_PANEL_ITEMS: Final = 200


@dataclass(frozen=True, slots=True, kw_only=True)
class PanelStateMessage(TherapistOnlyMessage):
    """The private panel so far (check-ins, prompts, signals, oldest first), sent to the
    therapist after each `welcome`, so a reload or a second tab rebuilds it."""

    TYPE: ClassVar[str] = "panel-state"
    checkins: PanelCheckins
    prompts: PanelPrompts
    signals: PanelSignals
    safety: SafetyCheckAnswers | None = None  # this session's safety check, if answered
    safety_alerts: PanelSafetyAlerts = ()

    def _check(self, f: Fields) -> None:
        for name in ("checkins", "prompts", "signals", "safety_alerts"):
            entries = f.array(name, MAX_PANEL_ITEMS)
            if not all(isinstance(entry, Mapping) for entry in entries):
                invalid(f"panel-state.{name}: every entry must be an object")
        safety = f.optional_mapping("safety")
        if safety is not None:
            _check_safety_answers("panel-state.safety", safety)


_GOAL_STATUSES: Final = ("active", "reached", "dropped")


@dataclass(frozen=True, slots=True, kw_only=True)
class GoalsMessage(SharedMessage):
    """To the therapist and the client in the call: the client's shared goals as they stand
    now (after every change, and after joining), so both screens show the same list."""

    TYPE: ClassVar[str] = "goals"
    goals: SharedGoals

    def _check(self, f: Fields) -> None:
        for entry in f.array("goals", MAX_GOALS_LISTED):
            if not isinstance(entry, Mapping):
                invalid("goals.goals: every entry must be an object")
            g = Fields(entry, "goals.goals[]", implicit=())
            g.text("id", max_chars=32)
            g.text("text", max_chars=MAX_GOAL_TEXT_CHARS)
            if g.raw("status") not in _GOAL_STATUSES:
                invalid("goals.goals[].status: active, reached or dropped")
            if g.raw("updated_by") not in tuple(SessionRole):
                invalid("goals.goals[].updated_by: therapist or client")
            g.integer("updated_at_ms", 0, 2**53)
            g.done()


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsentChangedMessage(SharedMessage):
    """A consent was granted or withdrawn, and takes effect now."""

    TYPE: ClassVar[str] = "consent-changed"
    purpose: Purpose
    decision: ConsentDecision

    def _check(self, f: Fields) -> None:
        self._normalise("purpose", f.choice("purpose", tuple(Purpose)))
        self._normalise("decision", f.choice("decision", tuple(ConsentDecision)))


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionEndedMessage(SharedMessage):
    """The session is over; close 4004 follows."""

    TYPE: ClassVar[str] = "session-ended"
    reason: EndReason

    def _check(self, f: Fields) -> None:
        self._normalise("reason", f.choice("reason", tuple(EndReason)))


@dataclass(frozen=True, slots=True, kw_only=True)
class PongMessage(SharedMessage):
    """The answer to `ping`."""

    TYPE: ClassVar[str] = "pong"
    ref: str | None = None

    def _check(self, f: Fields) -> None:
        f.optional_text("ref", MESSAGE_ID)


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorMessage(SharedMessage):
    """A refused message; the connection stays up."""

    TYPE: ClassVar[str] = "error"
    code: ErrorCode
    message: str
    ref: str | None = None

    def _check(self, f: Fields) -> None:
        self._normalise("code", f.choice("code", tuple(ErrorCode)))
        f.text("message", max_chars=MAX_ERROR_MESSAGE_CHARS)
        f.optional_text("ref", MESSAGE_ID)


SERVER_MESSAGE_CLASSES: Final[tuple[type[ServerMessage], ...]] = (
    WelcomeMessage,
    LobbyMessage,
    RosterMessage,
    AdmittedMessage,
    SentBackMessage,
    DeniedMessage,
    TherapistNoteMessage,
    PeerJoinedMessage,
    PeerLeftMessage,
    QuickExitMessage,
    MeasureAlertMessage,
    SignalRelayMessage,
    PeerScreenMessage,
    ScreenShareAllowedMessage,
    CheckinOpenMessage,
    CheckinResultMessage,
    CheckinAckMessage,
    PromptMessage,
    ClientSignalMessage,
    SafetyCheckMessage,
    PanelStateMessage,
    GoalsMessage,
    ConsentChangedMessage,
    SessionEndedMessage,
    PongMessage,
    ErrorMessage,
)
"""Every server→client message class, in the order docs/protocol.md lists them."""

_BY_TYPE: Final[Mapping[str, type[ServerMessage]]] = MappingProxyType(
    {cls.TYPE: cls for cls in SERVER_MESSAGE_CLASSES}
)

SERVER_MESSAGE_TYPES: Final = frozenset(_BY_TYPE)

THERAPIST_ONLY_SERVER_TYPES: Final = frozenset(
    cls.TYPE for cls in SERVER_MESSAGE_CLASSES if issubclass(cls, TherapistOnlyMessage)
)
"""Server→client types that must never reach a client connection."""


def server_message(type: str, **fields: Any) -> dict[str, Any]:
    """Build a server→client message by type name (compatibility: prefer the classes).

    None-valued fields are left out; a malformed message raises ValueError.
    """
    cls = _BY_TYPE.get(type)
    if cls is None:
        raise ValueError(f"unknown server message type {type!r}")
    present = _python_fields(cls, {k: v for k, v in fields.items() if v is not None})
    try:
        message = cls(**present)
    except TypeError as exc:  # a missing or unknown field
        raise ValueError(f"server message {type!r}: {exc}") from None
    return message.to_json()


def _python_fields(cls: type[ServerMessage], fields: Mapping[str, Any]) -> dict[str, Any]:
    """Fields by their Python names (`from` → `from_`, see `wire_name`)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {(f"{k}_" if f"{k}_" in names else k): value for k, value in fields.items()}


def parse_server_message(data: Mapping[str, Any]) -> ServerMessage:
    """The typed message a `to_json()` gave (ValueError for anything else): for messages that
    travel between processes before they reach a socket."""
    cls = _BY_TYPE.get(str(data.get("type")))
    if cls is None:
        raise ValueError(f"unknown server message type {data.get('type')!r}")
    fields = _python_fields(cls, {name: value for name, value in data.items() if name != "type"})
    try:
        return cls(**fields)
    except TypeError as exc:
        raise ValueError(f"server message {cls.TYPE!r}: {exc}") from None

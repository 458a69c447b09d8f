"""Session rooms (pure): lobby, admission, signaling relay and presence for one therapy session.

A `Room` knows its participants only as connection ids and returns *effects* — `Send` and
`Close` — instead of doing I/O, so the WebSocket loop (or a broker between processes) carries
them out. Every client connection is a *knock*: it waits in the lobby until the therapist
admits it, and at most one knock is in the call at a time. An admitted client whose connection
drops keeps its slot for a grace period; a `join` with its resume token returns straight into
the call. Refusals raise `RoomError`, which the edge turns into an `error` message.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final, Literal

from privacy.consent import ConsentState, Purpose
from server.core.protocol import (
    SCREEN_SHARE_CHANGES_PER_MINUTE,
    WAITING_NOTES_PER_MINUTE,
    AdmittedMessage,
    CloseCode,
    DeniedMessage,
    EndReason,
    ErrorCode,
    IceTransportPolicy,
    LobbyEntry,
    LobbyMessage,
    PeerJoinedMessage,
    PeerLeftMessage,
    PeerScreenMessage,
    Presence,
    ProtocolError,
    QuickExitMessage,
    RelayPayload,
    ScreenShareAllowedMessage,
    SentBackMessage,
    ServerMessage,
    SessionEndedMessage,
    SessionRole,
    SharedMessage,
    SignalRelayMessage,
    TherapistNoteMessage,
    TherapistOnlyMessage,
    WelcomeMessage,
    consent_states,
)

RESUME_GRACE_MS: Final = 60_000
"""How long an admitted client's slot (or a dropped therapist's seat) waits for its connection."""

STATE_VERSION: Final = 1
"""The version of `Room.to_state()`; `Room.from_state` refuses any other."""

REASON_REPLACED: Final = "opened in another tab"
REASON_RESUMED_ELSEWHERE: Final = "resumed on another connection"
REASON_DENIED: Final = "the therapist did not admit this device"
REASON_SESSION_ENDED: Final = "the session has ended"


@dataclass(frozen=True, slots=True)
class Send:
    """Deliver `message` (a server→client message) on connection `conn_id`."""

    conn_id: str
    message: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Close:
    """Close connection `conn_id` with a WebSocket close code and a reason for the user."""

    conn_id: str
    code: CloseCode
    reason: str


Effect = Send | Close


class RoomError(ProtocolError):
    """An action the room refuses (wrong role, nobody to relay to, call full, ...)."""


class Audience(StrEnum):
    """Who in a room a shared message is for (see `Room.deliver`)."""

    THERAPIST = "therapist"
    ADMITTED_CLIENT = "admitted-client"  # the client in the call, if connected
    CLIENTS = "clients"  # every connected client: the one in the call and those waiting
    CALL = "call"  # the therapist and the admitted client
    EVERYONE = "everyone"


@dataclass(frozen=True, slots=True)
class Knock:
    """A client device as the room sees it: waiting, in the call, or held for resume."""

    knock_id: str
    label: str  # the alias, plus "(device N)" for a second concurrent device
    since_ms: int  # when it started waiting (or was sent back)
    admitted: bool
    connected: bool  # False while an admitted client's slot is held for resume


@dataclass(slots=True)
class _Slot:
    knock_id: str
    label: str
    device: int
    since_ms: int
    resume_token: str
    conn_id: str | None  # None: the connection dropped and the slot is held
    admitted: bool = False
    held_until_ms: int | None = None

    def view(self) -> Knock:
        return Knock(
            self.knock_id, self.label, self.since_ms, self.admitted, self.conn_id is not None
        )


@dataclass(frozen=True, slots=True)
class _Greeting:
    """What every `welcome` of one join carries besides the room's state."""

    ice_servers: tuple[Mapping[str, Any], ...]
    consents: Mapping[Purpose, ConsentState]
    ice_transport_policy: IceTransportPolicy = IceTransportPolicy.ALL
    ice_ttl_seconds: int = 0


@dataclass(slots=True)
class _Therapist:
    conn_id: str | None  # None: the connection dropped and the seat is held for resume
    label: str
    resume_token: str
    held_until_ms: int | None = None


@dataclass(slots=True)
class _Screens:
    """Screen sharing in the call: which stream each side shares (None: not sharing), and
    whether the therapist lets the client in the call share (off until allowed, and off
    again whenever that client leaves the call)."""

    therapist_stream: str | None = None
    client_stream: str | None = None
    client_may_share: bool = False

    def client_left_call(self) -> None:
        self.client_stream = None
        self.client_may_share = False


class Room:
    """One therapy session's live state: who is connected, waiting, in the call or held."""

    def __init__(
        self,
        session_id: str,
        *,
        new_token: Callable[[], str],
        resume_grace_ms: int = RESUME_GRACE_MS,
    ) -> None:
        self.session_id = session_id
        self._new_token = new_token
        self._grace_ms = resume_grace_ms
        self._therapist: _Therapist | None = None
        self._slots: dict[str, _Slot] = {}  # by knock id, in order of arrival
        self._knock_of: dict[str, str] = {}  # client conn id -> knock id
        self._knocks_issued = 0
        self._ended_because: EndReason | None = None
        self._notes_sent_ms: list[int] = []  # live only: a new owner starts the count afresh
        self._screens = _Screens()
        self._screen_starts_ms: list[int] = []  # live only, like the notes' count

    # --- queries ---------------------------------------------------------------------

    @property
    def ended(self) -> bool:
        """True once the session was ended; every later join is told so and closed."""
        return self._ended_because is not None

    @property
    def is_empty(self) -> bool:
        """True when nobody is connected and no slot is held: the registry may drop it."""
        return self._therapist is None and not self._slots

    @property
    def therapist_conn_id(self) -> str | None:
        """The therapist's live connection, if any (None while the seat is held for resume)."""
        return self._therapist.conn_id if self._therapist else None

    @property
    def conn_ids(self) -> list[str]:
        """Every live connection in the room, the therapist's first."""
        therapist = self.therapist_conn_id
        return ([therapist] if therapist is not None else []) + self._client_conns()

    @property
    def client_conn_ids(self) -> list[str]:
        """Every live client connection, waiting or in the call."""
        return self._client_conns()

    @property
    def admitted_conn_id(self) -> str | None:
        """The admitted client's live connection (None while absent or held for resume)."""
        slot = self._admitted_slot()
        return slot.conn_id if slot else None

    def role_of(self, conn_id: str) -> SessionRole | None:
        """Which side this connection speaks for, or None if it is not in the room."""
        if self.therapist_conn_id == conn_id:
            return SessionRole.THERAPIST
        return SessionRole.CLIENT if conn_id in self._knock_of else None

    def in_call(self, conn_id: str) -> bool:
        """True for the therapist's connection and the admitted client's, False otherwise."""
        return conn_id in (self.therapist_conn_id, self.admitted_conn_id)

    def knock_of(self, conn_id: str) -> Knock | None:
        """The knock behind a client connection."""
        knock_id = self._knock_of.get(conn_id)
        return self._slots[knock_id].view() if knock_id else None

    def knocks(self) -> tuple[Knock, ...]:
        """Every client slot: waiting, in the call, or held."""
        return tuple(slot.view() for slot in self._slots.values())

    def next_deadline_ms(self) -> int | None:
        """When `expire` next has work to do (a held slot runs out), or None."""
        deadlines = [s.held_until_ms for s in self._slots.values() if s.held_until_ms is not None]
        if self._therapist is not None and self._therapist.held_until_ms is not None:
            deadlines.append(self._therapist.held_until_ms)
        return min(deadlines, default=None)

    # --- connections -----------------------------------------------------------------

    def join(
        self,
        conn_id: str,
        role: SessionRole,
        label: str,
        now_ms: int,
        *,
        resume_token: str | None = None,
        ice_servers: Sequence[Mapping[str, Any]] = (),
        ice_transport_policy: IceTransportPolicy = IceTransportPolicy.ALL,
        ice_ttl_seconds: int = 0,
        consents: Mapping[str, str] | None = None,
    ) -> list[Effect]:
        """A connection finished its handshake: greet it and tell the others.

        `label` is the therapist's display name or the client's alias; ICE servers, their
        transport policy and credential lifetime, and consent states are passed through to
        the `welcome`.
        """
        if self.role_of(conn_id) is not None:
            raise ValueError(f"connection {conn_id!r} already joined room {self.session_id!r}")
        if self._ended_because is not None:
            return [
                self._send(conn_id, SessionEndedMessage(reason=self._ended_because)),
                Close(conn_id, CloseCode.SESSION_ENDED, REASON_SESSION_ENDED),
            ]
        greeting = _Greeting(
            tuple(ice_servers),
            consent_states(consents or {}),
            ice_transport_policy,
            ice_ttl_seconds,
        )
        effects = self.expire(now_ms)  # a token whose grace ran out must not resume
        if role is SessionRole.THERAPIST:
            seat = self._therapist
            if seat is not None and resume_token and _same(seat.resume_token, resume_token):
                return effects + self._resume_therapist(seat, conn_id, greeting)
            return effects + self._join_therapist(conn_id, label, greeting)
        slot = self._resumable(resume_token)
        if slot is None:
            return effects + self._knock(conn_id, label, now_ms, greeting)
        return effects + self._resume(slot, conn_id, greeting)

    def leave(self, conn_id: str, now_ms: int, *, dropped: bool = False) -> list[Effect]:
        """A connection closed; unknown (already replaced or closed) connections are ignored.

        `dropped`: the therapist's connection ended without a goodbye (network, a process
        dying): the seat is held for resume and the clients are told the therapist is
        reconnecting, so their calls go on. A client's admitted slot is always held.
        """
        if self._therapist is not None and self._therapist.conn_id == conn_id:
            if dropped:
                self._therapist.conn_id = None
                self._therapist.held_until_ms = now_ms + self._grace_ms
                return self.deliver(
                    PeerLeftMessage(role=SessionRole.THERAPIST, reconnecting=True),
                    Audience.CLIENTS,
                )
            self._therapist = None
            self._screens.therapist_stream = None
            return self.deliver(
                PeerLeftMessage(role=SessionRole.THERAPIST, reconnecting=False), Audience.CLIENTS
            )
        knock_id = self._knock_of.pop(conn_id, None)
        if knock_id is None:
            return []
        slot = self._slots[knock_id]
        if not slot.admitted:
            del self._slots[knock_id]
            return self._lobby_update()
        slot.conn_id = None
        slot.held_until_ms = now_ms + self._grace_ms
        return self.deliver_to_therapist(
            PeerLeftMessage(role=SessionRole.CLIENT, reconnecting=True)
        )

    def expire(self, now_ms: int) -> list[Effect]:
        """Release held slots whose grace period is over; a later rejoin is a new knock."""
        effects: list[Effect] = []
        seat = self._therapist
        if seat is not None and seat.held_until_ms is not None and seat.held_until_ms <= now_ms:
            self._therapist = None
            self._screens.therapist_stream = None
            effects += self.deliver(
                PeerLeftMessage(role=SessionRole.THERAPIST, reconnecting=False), Audience.CLIENTS
            )
        for slot in list(self._slots.values()):
            if slot.held_until_ms is not None and slot.held_until_ms <= now_ms:
                del self._slots[slot.knock_id]
                self._screens.client_left_call()
                effects += self.deliver_to_therapist(
                    PeerLeftMessage(role=SessionRole.CLIENT, reconnecting=False)
                )
        return effects

    # --- therapist actions -----------------------------------------------------------

    def admit(self, conn_id: str, knock_id: str) -> list[Effect]:
        """Let a waiting knock into the call; refused while another client is connected in it.

        A slot merely held for a dropped client does not block: admitting someone else
        releases it (the therapist chose), and its resume token stops working.
        """
        therapist = self._require_therapist(conn_id)
        slot = self._waiting_slot(knock_id)
        current = self._admitted_slot()
        if current is not None and current.conn_id is not None:
            raise RoomError(
                ErrorCode.CALL_FULL, f"{current.label} is in the call; send them back first"
            )
        if current is not None:
            del self._slots[current.knock_id]
        self._screens.client_left_call()
        slot.admitted = True
        assert slot.conn_id is not None  # waiting slots are always connected
        assert therapist.conn_id is not None  # _require_therapist found it by its connection
        return [
            self._send(slot.conn_id, AdmittedMessage(resumed=False)),
            *self._screens_for_client(slot.conn_id),
            self._send(
                therapist.conn_id,
                PeerJoinedMessage(role=SessionRole.CLIENT, label=slot.label, resumed=False),
            ),
            *self._lobby_update(),
        ]

    def deny(self, conn_id: str, knock_id: str) -> list[Effect]:
        """Turn a waiting knock away: it is told, closed, and gone from the lobby."""
        self._require_therapist(conn_id)
        slot = self._waiting_slot(knock_id)
        assert slot.conn_id is not None
        del self._slots[knock_id]
        del self._knock_of[slot.conn_id]
        return [
            self._send(slot.conn_id, DeniedMessage()),
            Close(slot.conn_id, CloseCode.DENIED, REASON_DENIED),
            *self._lobby_update(),
        ]

    def send_back(self, conn_id: str, now_ms: int) -> list[Effect]:
        """Return the admitted client to the waiting room (a held slot is released instead)."""
        self._require_therapist(conn_id)
        slot = self._admitted_slot()
        if slot is None:
            raise RoomError(ErrorCode.NO_PEER, "no client is in the call")
        peer_left = PeerLeftMessage(role=SessionRole.CLIENT, reconnecting=False)
        self._screens.client_left_call()
        if slot.conn_id is None:
            del self._slots[slot.knock_id]
            return self.deliver_to_therapist(peer_left)
        slot.admitted = False
        slot.since_ms = now_ms
        return [
            self._send(slot.conn_id, SentBackMessage()),
            *self.deliver_to_therapist(peer_left),
            *self._lobby_update(),
        ]

    def waiting_note(self, conn_id: str, text: str, now_ms: int) -> list[Effect]:
        """The therapist's short note to every client still waiting (relayed, never stored);
        at most WAITING_NOTES_PER_MINUTE a minute."""
        self._require_therapist(conn_id)
        waiting = [s.conn_id for s in self._slots.values() if not s.admitted and s.conn_id]
        if not waiting:
            raise RoomError(ErrorCode.NO_SUCH_KNOCK, "nobody is waiting")
        recent = [at for at in self._notes_sent_ms if now_ms - at < 60_000]
        if len(recent) >= WAITING_NOTES_PER_MINUTE:
            raise RoomError(
                ErrorCode.RATE_LIMITED, "a few notes a minute at most; try again shortly"
            )
        self._notes_sent_ms = [*recent, now_ms]
        note = TherapistNoteMessage(text=text)
        return [self._send(conn, note) for conn in waiting]

    def quick_exit(self, conn_id: str) -> list[Effect]:
        """A client left with the quick exit: its place goes at once (nothing is held for
        resume) and the therapist gets the safety notice rather than "reconnecting"."""
        knock_id = self._knock_of.pop(conn_id, None)
        if knock_id is None:
            return []
        slot = self._slots.pop(knock_id)
        notice = QuickExitMessage(label=slot.label, in_call=slot.admitted)
        if slot.admitted:
            self._screens.client_left_call()
            return [
                *self.deliver_to_therapist(
                    PeerLeftMessage(role=SessionRole.CLIENT, reconnecting=False)
                ),
                *self.deliver_to_therapist(notice),
            ]
        return [*self.deliver_to_therapist(notice), *self._lobby_update()]

    def end(self, conn_id: str) -> list[Effect]:
        """The therapist ends the session for everyone."""
        self._require_therapist(conn_id)
        return self.terminate(EndReason.THERAPIST_ENDED)

    def terminate(self, reason: EndReason) -> list[Effect]:
        """End the session for a system reason: everyone is told and closed (idempotent)."""
        if self._ended_because is not None:
            return []
        message = SessionEndedMessage(reason=reason).to_json()
        conns = [c for c in (self.therapist_conn_id,) if c is not None] + self._client_conns()
        self._ended_because = reason
        self._therapist = None
        self._screens = _Screens()
        self._slots.clear()
        self._knock_of.clear()
        effects: list[Effect] = []
        for conn in conns:
            effects += [
                Send(conn, message),
                Close(conn, CloseCode.SESSION_ENDED, REASON_SESSION_ENDED),
            ]
        return effects

    # --- messages between the parties ------------------------------------------------

    def relay(self, conn_id: str, payload: RelayPayload) -> list[Effect]:
        """Forward SDP or ICE to the other party, only while both are in the call."""
        role = self._require_member(conn_id)
        if role is SessionRole.CLIENT and not self.in_call(conn_id):
            raise RoomError(
                ErrorCode.NOT_ADMITTED, "you are in the waiting room; nothing is relayed yet"
            )
        target = self.admitted_conn_id if role is SessionRole.THERAPIST else self.therapist_conn_id
        if target is None:
            raise RoomError(ErrorCode.NO_PEER, "nobody is on the other side of the call")
        return [self._send(target, SignalRelayMessage(payload=payload))]

    def allow_screen_share(self, conn_id: str, allowed: bool) -> list[Effect]:
        """The therapist lets the client in the call share a screen, or takes it back (which
        stops a share in progress: the therapist is told it stopped, the client's page stops
        it when it hears `screen-share-allowed` false). Both sides hear the new setting."""
        self._require_therapist(conn_id)
        if self._admitted_slot() is None:
            raise RoomError(ErrorCode.NO_PEER, "no client is in the call")
        self._screens.client_may_share = allowed
        effects = self.deliver(ScreenShareAllowedMessage(allowed=allowed), Audience.CALL)
        if not allowed and self._screens.client_stream is not None:
            self._screens.client_stream = None
            effects += self.deliver_to_therapist(
                PeerScreenMessage(role=SessionRole.CLIENT, sharing=False)
            )
        return effects

    def screen_share(self, conn_id: str, stream_id: str | None, now_ms: int) -> list[Effect]:
        """A side in the call starts sharing its screen as the stream `stream_id`, or stops
        (None); the other side is told. A client may start only while the therapist allows
        it; stopping is always accepted; saying again what the room knows changes nothing.
        At most SCREEN_SHARE_CHANGES_PER_MINUTE starts a minute per room."""
        role = self._require_member(conn_id)
        if not self.in_call(conn_id):
            raise RoomError(ErrorCode.NOT_ADMITTED, "you are in the waiting room")
        screens = self._screens
        therapist = role is SessionRole.THERAPIST
        if not therapist and stream_id is not None and not screens.client_may_share:
            raise RoomError(
                ErrorCode.SCREEN_SHARE_NOT_ALLOWED,
                "the therapist has not allowed screen sharing",
            )
        if (screens.therapist_stream if therapist else screens.client_stream) == stream_id:
            return []
        if stream_id is not None:
            recent = [at for at in self._screen_starts_ms if now_ms - at < 60_000]
            if len(recent) >= SCREEN_SHARE_CHANGES_PER_MINUTE:
                raise RoomError(ErrorCode.RATE_LIMITED, "screen sharing started too often")
            self._screen_starts_ms = [*recent, now_ms]
        if therapist:
            screens.therapist_stream = stream_id
        else:
            screens.client_stream = stream_id
        message = PeerScreenMessage(role=role, sharing=stream_id is not None, stream_id=stream_id)
        if therapist:
            admitted = self.admitted_conn_id
            return [self._send(admitted, message)] if admitted is not None else []
        return self.deliver_to_therapist(message)

    def deliver(self, message: SharedMessage, audience: Audience) -> list[Effect]:
        """Address a message any party may see (consent changes, check-in forms) to an audience.

        Only a `SharedMessage` is accepted, so a type checker refuses a therapist-only message
        here; the check below stops one that arrives untyped.
        """
        if isinstance(message, TherapistOnlyMessage):
            raise TypeError(
                f"{message.TYPE!r} is for the therapist only, not {audience}; "
                "use deliver_to_therapist"
            )
        if not isinstance(message, SharedMessage):
            raise TypeError(f"deliver takes a SharedMessage, not {type(message).__name__}")
        therapist = [c for c in (self.therapist_conn_id,) if c is not None]
        admitted = [c for c in (self.admitted_conn_id,) if c is not None]
        conns = {
            Audience.THERAPIST: therapist,
            Audience.ADMITTED_CLIENT: admitted,
            Audience.CLIENTS: self._client_conns(),
            Audience.CALL: therapist + admitted,
            Audience.EVERYONE: therapist + self._client_conns(),
        }[audience]
        payload = message.to_json()
        return [Send(conn, payload) for conn in conns]

    def deliver_to_therapist(self, message: ServerMessage) -> list[Effect]:
        """Send any message, therapist-only ones included, to the therapist if connected."""
        conn_id = self.therapist_conn_id
        return [Send(conn_id, message.to_json())] if conn_id is not None else []

    # --- internals -------------------------------------------------------------------

    def _join_therapist(self, conn_id: str, label: str, greeting: _Greeting) -> list[Effect]:
        effects: list[Effect] = []
        old = self.therapist_conn_id
        if old is not None:
            effects.append(Close(old, CloseCode.REPLACED, REASON_REPLACED))
        self._therapist = _Therapist(conn_id, label, self._new_token())
        self._screens.therapist_stream = None  # a new page shares nothing yet
        joined = PeerJoinedMessage(role=SessionRole.THERAPIST, label=label, resumed=False)
        effects += self._therapist_welcome(self._therapist, greeting, resumed=False)
        effects += self.deliver(joined, Audience.CLIENTS)
        return effects

    def _resume_therapist(
        self, seat: _Therapist, conn_id: str, greeting: _Greeting
    ) -> list[Effect]:
        """The therapist's connection came back with its token: the call goes on undisturbed."""
        effects: list[Effect] = []
        if seat.conn_id is not None:  # the old connection has not noticed it is dead yet
            effects.append(
                Close(seat.conn_id, CloseCode.RESUMED_ELSEWHERE, REASON_RESUMED_ELSEWHERE)
            )
        seat.conn_id = conn_id
        seat.held_until_ms = None
        seat.resume_token = self._new_token()  # a token resumes once
        joined = PeerJoinedMessage(role=SessionRole.THERAPIST, label=seat.label, resumed=True)
        effects += self._therapist_welcome(seat, greeting, resumed=True)
        effects += self.deliver(joined, Audience.CLIENTS)
        return effects

    def _therapist_welcome(
        self, seat: _Therapist, greeting: _Greeting, *, resumed: bool
    ) -> list[Effect]:
        assert seat.conn_id is not None
        welcome = WelcomeMessage(
            role=SessionRole.THERAPIST,
            session_id=self.session_id,
            state=Presence.IN_CALL,
            peer=self._client_presence(),
            ice_servers=greeting.ice_servers,
            ice_transport_policy=greeting.ice_transport_policy,
            ice_ttl_seconds=greeting.ice_ttl_seconds,
            consents=greeting.consents,
            resume_token=seat.resume_token,
            resumed=resumed,
        )
        return [
            self._send(seat.conn_id, welcome),
            *self.deliver_to_therapist(self._lobby_message()),
            *self._screens_for(seat.conn_id, SessionRole.CLIENT),
        ]

    def _knock(self, conn_id: str, alias: str, now_ms: int, greeting: _Greeting) -> list[Effect]:
        self._knocks_issued += 1
        taken = {slot.device for slot in self._slots.values()}
        device = next(n for n in range(1, len(taken) + 2) if n not in taken)
        slot = _Slot(
            knock_id=f"k{self._knocks_issued}",
            label=alias if device == 1 else f"{alias} (device {device})",
            device=device,
            since_ms=now_ms,
            resume_token=self._new_token(),
            conn_id=conn_id,
        )
        self._slots[slot.knock_id] = slot
        self._knock_of[conn_id] = slot.knock_id
        return [self._send(conn_id, self._client_welcome(slot, greeting)), *self._lobby_update()]

    def _resume(self, slot: _Slot, conn_id: str, greeting: _Greeting) -> list[Effect]:
        effects: list[Effect] = []
        if slot.conn_id is not None:  # the old connection has not noticed it is dead yet
            del self._knock_of[slot.conn_id]
            effects.append(
                Close(slot.conn_id, CloseCode.RESUMED_ELSEWHERE, REASON_RESUMED_ELSEWHERE)
            )
        slot.conn_id = conn_id
        slot.held_until_ms = None
        slot.resume_token = self._new_token()  # a token resumes once
        self._knock_of[conn_id] = slot.knock_id
        effects.append(self._send(conn_id, self._client_welcome(slot, greeting, resumed=True)))
        if slot.admitted:
            effects.append(self._send(conn_id, AdmittedMessage(resumed=True)))
            effects += self._screens_for_client(conn_id)
            effects += self.deliver_to_therapist(
                PeerJoinedMessage(role=SessionRole.CLIENT, label=slot.label, resumed=True)
            )
        return effects

    def _screens_for(self, conn_id: str, sharer: SessionRole) -> list[Effect]:
        """Screen sharing as it stands, for a connection that (re)joins the call: the other
        side's share, and whether the client may share (only what is on: off is the default)."""
        screens = self._screens
        stream = screens.client_stream if sharer is SessionRole.CLIENT else screens.therapist_stream
        effects: list[Effect] = []
        if screens.client_may_share:
            effects.append(self._send(conn_id, ScreenShareAllowedMessage(allowed=True)))
        if stream is not None:
            share = PeerScreenMessage(role=sharer, sharing=True, stream_id=stream)
            effects.append(self._send(conn_id, share))
        return effects

    def _screens_for_client(self, conn_id: str) -> list[Effect]:
        return self._screens_for(conn_id, SessionRole.THERAPIST)

    def _resumable(self, token: str | None) -> _Slot | None:
        if not token:
            return None
        for slot in self._slots.values():
            if _same(slot.resume_token, token):
                return slot
        return None

    def _client_welcome(
        self, slot: _Slot, greeting: _Greeting, *, resumed: bool = False
    ) -> WelcomeMessage:
        return WelcomeMessage(
            role=SessionRole.CLIENT,
            session_id=self.session_id,
            state=Presence.IN_CALL if slot.admitted else Presence.WAITING,
            peer=Presence.IN_CALL if self._therapist else Presence.ABSENT,
            ice_servers=greeting.ice_servers,
            ice_transport_policy=greeting.ice_transport_policy,
            ice_ttl_seconds=greeting.ice_ttl_seconds,
            consents=greeting.consents,
            knock_id=slot.knock_id,
            resume_token=slot.resume_token,
            resumed=resumed,
        )

    def _client_presence(
        self,
    ) -> Literal[Presence.ABSENT, Presence.IN_CALL, Presence.RECONNECTING]:
        slot = self._admitted_slot()
        if slot is None:
            return Presence.ABSENT
        return Presence.IN_CALL if slot.conn_id is not None else Presence.RECONNECTING

    def _admitted_slot(self) -> _Slot | None:
        return next((slot for slot in self._slots.values() if slot.admitted), None)

    def _waiting_slot(self, knock_id: str) -> _Slot:
        slot = self._slots.get(knock_id)
        if slot is None or slot.admitted:
            raise RoomError(ErrorCode.NO_SUCH_KNOCK, f"nobody is waiting as {knock_id!r}")
        return slot

    def _client_conns(self) -> list[str]:
        return list(self._knock_of)

    def _require_member(self, conn_id: str) -> SessionRole:
        role = self.role_of(conn_id)
        if role is None:
            raise RoomError(ErrorCode.FORBIDDEN, "this connection is no longer in the session")
        return role

    def _require_therapist(self, conn_id: str) -> _Therapist:
        if self._require_member(conn_id) is not SessionRole.THERAPIST:
            raise RoomError(ErrorCode.FORBIDDEN, "only the therapist may do this")
        assert self._therapist is not None
        return self._therapist

    # --- state, for a room that outlives the process holding it ----------------------

    def to_state(self) -> dict[str, Any]:
        """Everything the room knows, as plain JSON data (see `from_state`)."""
        seat = self._therapist
        return {
            "v": STATE_VERSION,
            "session_id": self.session_id,
            "therapist": None
            if seat is None
            else {
                "conn_id": seat.conn_id,
                "label": seat.label,
                "resume_token": seat.resume_token,
                "held_until_ms": seat.held_until_ms,
            },
            "slots": [
                {
                    "knock_id": s.knock_id,
                    "label": s.label,
                    "device": s.device,
                    "since_ms": s.since_ms,
                    "resume_token": s.resume_token,
                    "conn_id": s.conn_id,
                    "admitted": s.admitted,
                    "held_until_ms": s.held_until_ms,
                }
                for s in self._slots.values()
            ],
            "knocks_issued": self._knocks_issued,
            "ended": None if self._ended_because is None else self._ended_because.value,
            "screens": {
                "therapist_stream": self._screens.therapist_stream,
                "client_stream": self._screens.client_stream,
                "client_may_share": self._screens.client_may_share,
            },
        }

    @classmethod
    def from_state(
        cls,
        state: Mapping[str, Any],
        *,
        new_token: Callable[[], str],
        resume_grace_ms: int = RESUME_GRACE_MS,
    ) -> Room:
        """The room `to_state` described; ValueError for anything else."""
        try:
            if state["v"] != STATE_VERSION:
                raise ValueError(f"room state version {state['v']!r} is not {STATE_VERSION}")
            room = cls(
                str(state["session_id"]), new_token=new_token, resume_grace_ms=resume_grace_ms
            )
            seat = state["therapist"]
            if seat is not None:
                room._therapist = _Therapist(
                    _opt_str(seat["conn_id"]),
                    str(seat["label"]),
                    str(seat["resume_token"]),
                    _opt_int(seat["held_until_ms"]),
                )
            for s in state["slots"]:
                slot = _Slot(
                    knock_id=str(s["knock_id"]),
                    label=str(s["label"]),
                    device=int(s["device"]),
                    since_ms=int(s["since_ms"]),
                    resume_token=str(s["resume_token"]),
                    conn_id=_opt_str(s["conn_id"]),
                    admitted=bool(s["admitted"]),
                    held_until_ms=_opt_int(s["held_until_ms"]),
                )
                room._slots[slot.knock_id] = slot
                if slot.conn_id is not None:
                    room._knock_of[slot.conn_id] = slot.knock_id
            room._knocks_issued = int(state["knocks_issued"])
            screens = state.get("screens") or {}  # absent in states written before sharing
            room._screens = _Screens(
                _opt_str(screens.get("therapist_stream")),
                _opt_str(screens.get("client_stream")),
                bool(screens.get("client_may_share", False)),
            )
            ended = state["ended"]
            room._ended_because = None if ended is None else EndReason(ended)
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a room state: {exc!r}") from None
        return room

    def _lobby_message(self) -> LobbyMessage:
        waiting = tuple(
            LobbyEntry(knock_id=s.knock_id, label=s.label, since_ms=s.since_ms)
            for s in self._slots.values()
            if not s.admitted
        )
        return LobbyMessage(waiting=waiting)

    def _lobby_update(self) -> list[Effect]:
        return self.deliver_to_therapist(self._lobby_message())

    @staticmethod
    def _send(conn_id: str, message: SharedMessage) -> Send:
        """One shared message to one connection, whichever side it is."""
        return Send(conn_id, message.to_json())


def _same(token: str, offered: str) -> bool:
    """Compare resume tokens in constant time."""
    return hmac.compare_digest(token.encode(), offered.encode())


def _opt_str(value: object) -> str | None:
    return None if value is None else str(value)


def _opt_int(value: object) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int):
        raise TypeError(f"expected an integer, not {value!r}")
    return value


class RoomRegistry:
    """Rooms by session id: created on first join, dropped as soon as they are empty."""

    def __init__(
        self, *, new_token: Callable[[], str], resume_grace_ms: int = RESUME_GRACE_MS
    ) -> None:
        self._new_token = new_token
        self._grace_ms = resume_grace_ms
        self._rooms: dict[str, Room] = {}

    def __len__(self) -> int:
        return len(self._rooms)

    def __contains__(self, session_id: object) -> bool:
        return session_id in self._rooms

    def __iter__(self) -> Iterator[Room]:
        return iter(list(self._rooms.values()))

    def get(self, session_id: str) -> Room | None:
        """The live room of a session, if anyone is (or was just) in it."""
        return self._rooms.get(session_id)

    def adopt(self, room: Room) -> None:
        """Hold a room rebuilt elsewhere (`Room.from_state`): this process took it over."""
        self._rooms[room.session_id] = room

    def forget(self, session_id: str) -> None:
        """Stop holding a room (another process holds it now); nobody is told."""
        self._rooms.pop(session_id, None)

    def join(
        self,
        session_id: str,
        conn_id: str,
        role: SessionRole,
        label: str,
        now_ms: int,
        *,
        resume_token: str | None = None,
        ice_servers: Sequence[Mapping[str, Any]] = (),
        ice_transport_policy: IceTransportPolicy = IceTransportPolicy.ALL,
        ice_ttl_seconds: int = 0,
        consents: Mapping[str, str] | None = None,
    ) -> list[Effect]:
        """Join the session's room, creating it on first use (see `Room.join`)."""
        room = self._rooms.get(session_id)
        if room is None:
            room = Room(session_id, new_token=self._new_token, resume_grace_ms=self._grace_ms)
            self._rooms[session_id] = room
        effects = room.join(
            conn_id,
            role,
            label,
            now_ms,
            resume_token=resume_token,
            ice_servers=ice_servers,
            ice_transport_policy=ice_transport_policy,
            ice_ttl_seconds=ice_ttl_seconds,
            consents=consents,
        )
        self._drop_if_empty(room)
        return effects

    def leave(
        self, session_id: str, conn_id: str, now_ms: int, *, dropped: bool = False
    ) -> list[Effect]:
        """A connection closed (see `Room.leave`); the room goes when nothing is left."""
        room = self._rooms.get(session_id)
        if room is None:
            return []
        effects = room.leave(conn_id, now_ms, dropped=dropped)
        self._drop_if_empty(room)
        return effects

    def terminate(self, session_id: str, reason: EndReason) -> list[Effect]:
        """End a session for a system reason (consent withdrawn, link expired) and drop it."""
        room = self._rooms.pop(session_id, None)
        return room.terminate(reason) if room else []

    def expire(self, now_ms: int) -> list[Effect]:
        """Release every held slot past its grace period; drop rooms left empty."""
        effects: list[Effect] = []
        for room in list(self._rooms.values()):
            effects += room.expire(now_ms)
            self._drop_if_empty(room)
        return effects

    def next_deadline_ms(self) -> int | None:
        """When `expire` next has work to do, or None."""
        deadlines = [
            deadline
            for room in self._rooms.values()
            if (deadline := room.next_deadline_ms()) is not None
        ]
        return min(deadlines, default=None)

    def _drop_if_empty(self, room: Room) -> None:
        if room.is_empty and self._rooms.get(room.session_id) is room:
            del self._rooms[room.session_id]

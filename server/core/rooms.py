"""Session rooms (pure): lobby, admission, signaling relay and presence for one therapy session.

A `Room` knows its people only as connection ids and returns *effects* — `Send` and `Close` —
instead of doing I/O, so the WebSocket loop (or a broker between processes) carries them out.
The therapist has a seat; every other connection is a *knock* of a person (a client or a
guest, `server.core.room_seats.Person`): it waits in the lobby until the therapist admits it.
Up to `max_people` people are in the call, the therapist included, each person with one
knock in it; a relay goes from one person in the call to another (`to`, a peer id), and
everyone in the call hears a `roster` whenever who is in it changes. An admitted knock whose
connection drops keeps its place for a grace period; a `join` with its resume token returns
straight into the call. Refusals raise `RoomError`, which the edge turns into an `error`.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from privacy.consent import ConsentState, Purpose
from server.core.participants import DEFAULT_MAX_PEOPLE, THERAPIST_PEER_ID, PersonKind
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
    PeerScreenMessage,
    Presence,
    QuickExitMessage,
    RelayPayload,
    RosterMessage,
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
from server.core.room_effects import Audience, Close, Effect, RoomError, Send
from server.core.room_seats import (
    SOLE_CLIENT,
    Knock,
    Person,
    Screens,
    Slot,
    TherapistSeat,
    opt_int,
    opt_str,
    slot_from_state,
)

__all__ = [
    "RESUME_GRACE_MS",
    "Audience",
    "Close",
    "Effect",
    "Knock",
    "Person",
    "Room",
    "RoomError",
    "Send",
]

RESUME_GRACE_MS: Final = 60_000
"""How long an admitted person's place (or a dropped therapist's seat) waits for its
connection."""

STATE_VERSION: Final = 2
"""The version of `Room.to_state()`; `Room.from_state` reads it and version 1 (one client)."""

REASON_REPLACED: Final = "opened in another tab"
REASON_RESUMED_ELSEWHERE: Final = "resumed on another connection"
REASON_DENIED: Final = "the therapist did not admit this device"
REASON_SESSION_ENDED: Final = "the session has ended"


@dataclass(frozen=True, slots=True)
class _Greeting:
    """What every `welcome` of one join carries besides the room's state."""

    ice_servers: tuple[Mapping[str, Any], ...]
    consents: Mapping[Purpose, ConsentState]
    ice_transport_policy: IceTransportPolicy = IceTransportPolicy.ALL
    ice_ttl_seconds: int = 0


class Room:
    """One therapy session's live state: who is connected, waiting, in the call or held."""

    def __init__(
        self,
        session_id: str,
        *,
        new_token: Callable[[], str],
        resume_grace_ms: int = RESUME_GRACE_MS,
        max_people: int = DEFAULT_MAX_PEOPLE,
    ) -> None:
        if max_people < 2:
            raise ValueError("a call needs room for at least two people")
        self.session_id = session_id
        self.max_people = max_people
        self._new_token = new_token
        self._grace_ms = resume_grace_ms
        self._therapist: TherapistSeat | None = None
        self._slots: dict[str, Slot] = {}  # by knock id, in order of arrival
        self._knock_of: dict[str, str] = {}  # client conn id -> knock id
        self._knocks_issued = 0
        self._admissions = 0  # the last admission order given
        self._ended_because: EndReason | None = None
        self._notes_sent_ms: list[int] = []  # live only: a new owner starts the count afresh
        self._screens = Screens()
        self._screen_starts_ms: list[int] = []  # live only, like the notes' count

    # --- queries ---------------------------------------------------------------------

    @property
    def ended(self) -> bool:
        """True once the session was ended; every later join is told so and closed."""
        return self._ended_because is not None

    @property
    def is_empty(self) -> bool:
        """True when nobody is connected and no place is held: the registry may drop it."""
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
        """Every live connection but the therapist's (clients and guests), waiting or in the
        call."""
        return self._client_conns()

    @property
    def admitted_conn_id(self) -> str | None:
        """The live connection of the person admitted first of those in the call and
        connected, or None (a one-client call's client)."""
        conns = self.admitted_conn_ids
        return conns[0] if conns else None

    @property
    def admitted_conn_ids(self) -> list[str]:
        """The live connections of everyone admitted (clients and guests), in admission
        order; a place held for resume has none."""
        return [s.conn_id for s in self._admitted_slots() if s.conn_id is not None]

    def role_of(self, conn_id: str) -> SessionRole | None:
        """Which side this connection speaks for, or None if it is not in the room."""
        if self.therapist_conn_id == conn_id:
            return SessionRole.THERAPIST
        return SessionRole.CLIENT if conn_id in self._knock_of else None

    def in_call(self, conn_id: str) -> bool:
        """True for the therapist's connection and every admitted person's, False otherwise."""
        if conn_id == self.therapist_conn_id:
            return True
        knock_id = self._knock_of.get(conn_id)
        return knock_id is not None and self._slots[knock_id].admitted

    def peer_id_of(self, conn_id: str) -> str | None:
        """The peer id of the person behind a connection ("therapist", a participant id)."""
        if conn_id == self.therapist_conn_id:
            return THERAPIST_PEER_ID
        knock_id = self._knock_of.get(conn_id)
        return self._slots[knock_id].person.peer_id if knock_id is not None else None

    def knock_of(self, conn_id: str) -> Knock | None:
        """The knock behind a client or guest connection."""
        knock_id = self._knock_of.get(conn_id)
        return self._slots[knock_id].view() if knock_id else None

    def conn_of_knock(self, knock_id: str) -> str | None:
        """The live connection of a knock (None: no such knock, or held for resume)."""
        slot = self._slots.get(knock_id)
        return slot.conn_id if slot is not None else None

    def knocks(self) -> tuple[Knock, ...]:
        """Every knock: waiting, in the call, or held."""
        return tuple(slot.view() for slot in self._slots.values())

    def roster(self) -> RosterMessage:
        """Everyone in the call, the therapist first, then in admission order."""
        people = [self._therapist.roster_entry()] if self._therapist is not None else []
        people += [slot.roster_entry() for slot in self._admitted_slots()]
        return RosterMessage(people=tuple(people))

    def people_of_client(self, subject: str) -> set[str]:
        """The peer ids of a consent subject's knocks: a client's by their client record, a
        guest's by their participant id (a guest's consents are their own)."""
        return {s.person.peer_id for s in self._slots.values() if s.person.is_subject(subject)}

    def next_deadline_ms(self) -> int | None:
        """When `expire` next has work to do (a held place runs out), or None."""
        # Asked of every room once a second: no list built when nothing is held
        soonest = self._therapist.held_until_ms if self._therapist is not None else None
        for slot in self._slots.values():
            held = slot.held_until_ms
            if held is not None and (soonest is None or held < soonest):
                soonest = held
        return soonest

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
        person: Person | None = None,
    ) -> list[Effect]:
        """A connection finished its handshake: greet it and tell the others.

        `label` is the therapist's display name or the person's alias or label; `person` says
        who a client-side connection is (None: the session's sole client); ICE servers, their
        transport policy and credential lifetime, and consent states go into the `welcome`.
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
        who = person if person is not None else SOLE_CLIENT
        slot = self._resumable(resume_token, who)
        if slot is None:
            return effects + self._knock(conn_id, label, who, now_ms, greeting)
        return effects + self._resume(slot, conn_id, greeting)

    def leave(self, conn_id: str, now_ms: int, *, dropped: bool = False) -> list[Effect]:
        """A connection closed; unknown (already replaced or closed) connections are ignored.

        `dropped`: the therapist's connection ended without a goodbye (network, a process
        dying): the seat is held for resume and the others are told the therapist is
        reconnecting, so their calls go on. An admitted person's place is always held.
        """
        seat = self._therapist
        if seat is not None and seat.conn_id == conn_id:
            if dropped:
                seat.conn_id = None
                seat.held_until_ms = now_ms + self._grace_ms
                return [
                    *self._to_people(seat.left(reconnecting=True)),
                    *self._roster_update(),
                ]
            self._therapist = None
            self._screens.therapist_stream = None
            return [
                *self._to_people(seat.left(reconnecting=False)),
                *self._roster_update(),
            ]
        knock_id = self._knock_of.pop(conn_id, None)
        if knock_id is None:
            return []
        slot = self._slots[knock_id]
        if not slot.admitted:
            del self._slots[knock_id]
            return self._lobby_update()
        slot.conn_id = None
        slot.held_until_ms = now_ms + self._grace_ms
        return [*self._tell_call(slot.left(reconnecting=True)), *self._roster_update()]

    def expire(self, now_ms: int) -> list[Effect]:
        """Release held places whose grace period is over; a later rejoin is a new knock."""
        effects: list[Effect] = []
        seat = self._therapist
        if seat is not None and seat.held_until_ms is not None and seat.held_until_ms <= now_ms:
            self._therapist = None
            self._screens.therapist_stream = None
            effects += self._to_people(seat.left(reconnecting=False))
            effects += self._roster_update()
        for slot in list(self._slots.values()):
            if slot.held_until_ms is not None and slot.held_until_ms <= now_ms:
                effects += self._release(slot)
                effects += self._tell_call(slot.left(reconnecting=False))
                effects += self._roster_update()
        return effects

    # --- therapist actions -----------------------------------------------------------

    def admit(self, conn_id: str, knock_id: str) -> list[Effect]:
        """Let a waiting knock into the call: refused while the same person is connected in
        it on another device, or when the call already has `max_people` people.

        A place merely held for the same person's dropped device does not block: admitting
        this device releases it (the therapist chose), and its resume token stops working.
        """
        self._require_therapist(conn_id)
        slot = self._waiting_slot(knock_id)
        current = self._admitted_of(slot.person.peer_id)
        if current is not None and current.conn_id is not None:
            raise RoomError(
                ErrorCode.CALL_FULL, f"{current.label} is in the call; send them back first"
            )
        if current is not None:
            self._release(current)
        elif len(self._admitted_slots()) + 1 >= self.max_people:
            raise RoomError(
                ErrorCode.CALL_FULL,
                f"the call is full: at most {self.max_people} people, the therapist included",
            )
        self._admissions += 1
        slot.admitted = True
        slot.order = self._admissions
        assert slot.conn_id is not None  # waiting slots are always connected
        return [
            self._send(slot.conn_id, AdmittedMessage(resumed=False)),
            *self._screens_for(slot.conn_id, slot.person.peer_id),
            *self._tell_call(slot.joined(resumed=False), but=slot.conn_id),
            *self._lobby_update(),
            *self._roster_update(),
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

    def send_back(self, conn_id: str, now_ms: int, peer_id: str | None = None) -> list[Effect]:
        """Return a person in the call to the waiting room (a held place is released
        instead). `peer_id` names them; without it the call must have exactly one person
        besides the therapist."""
        self._require_therapist(conn_id)
        slot = self._sent_back_slot(peer_id)
        peer_left = slot.left(reconnecting=False)
        if slot.conn_id is None:
            return [*self._release(slot), *self._tell_call(peer_left), *self._roster_update()]
        slot.admitted = False
        slot.order = None
        slot.since_ms = now_ms
        self._screens.person_left_call(slot.person.peer_id, self._clients_in_call())
        return [
            self._send(slot.conn_id, SentBackMessage()),
            *self._tell_call(peer_left),
            *self._lobby_update(),
            *self._roster_update(),
        ]

    def waiting_note(self, conn_id: str, text: str, now_ms: int) -> list[Effect]:
        """The therapist's short note to everyone still waiting (relayed, never stored); at
        most WAITING_NOTES_PER_MINUTE a minute."""
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
        """A person left with the quick exit: their place goes at once (nothing is held for
        resume), the others in the call go on, and the therapist gets the safety notice
        rather than "reconnecting"."""
        knock_id = self._knock_of.get(conn_id)
        if knock_id is None:
            return []
        slot = self._slots[knock_id]
        notice = QuickExitMessage(label=slot.label, in_call=slot.admitted)
        effects = self._release(slot)
        if slot.admitted:
            return [
                *effects,
                *self._tell_call(slot.left(reconnecting=False)),
                *self.deliver_to_therapist(notice),
                *self._roster_update(),
            ]
        return [*effects, *self.deliver_to_therapist(notice), *self._lobby_update()]

    def remove_person(
        self, peer_id: str, reason: EndReason, code: CloseCode, why: str
    ) -> list[Effect]:
        """One person's part of the session ends (their telehealth consent withdrawn, their
        place removed): each of their connections is told and closed with `code`, and must
        not come back; everyone else in the call goes on and hears `peer-left` and `roster`."""
        slots = [s for s in self._slots.values() if s.person.peer_id == peer_id]
        ended = SessionEndedMessage(reason=reason)
        effects: list[Effect] = []
        for slot in slots:
            if slot.conn_id is not None:
                effects += [self._send(slot.conn_id, ended), Close(slot.conn_id, code, why)]
            self._release(slot)
        admitted = [s for s in slots if s.admitted]
        if admitted:
            effects += self._tell_call(admitted[0].left(reconnecting=False))
            effects += self._roster_update()
        if len(admitted) < len(slots):
            effects += self._lobby_update()
        return effects

    def end(self, conn_id: str) -> list[Effect]:
        """The therapist ends the session for everyone."""
        self._require_therapist(conn_id)
        return self.terminate(EndReason.THERAPIST_ENDED)

    def terminate(self, reason: EndReason) -> list[Effect]:
        """End the session for a system reason: everyone is told and closed (idempotent)."""
        if self._ended_because is not None:
            return []
        message = SessionEndedMessage(reason=reason).to_json()
        conns = self.conn_ids
        self._ended_because = reason
        self._therapist = None
        self._screens = Screens()
        self._slots.clear()
        self._knock_of.clear()
        effects: list[Effect] = []
        for conn in conns:
            effects += [
                Send(conn, message),
                Close(conn, CloseCode.SESSION_ENDED, REASON_SESSION_ENDED),
            ]
        return effects

    # --- messages between the people in the call -------------------------------------

    def relay(self, conn_id: str, payload: RelayPayload, to: str | None = None) -> list[Effect]:
        """Forward SDP or ICE from one person in the call to another: `to` names them (a
        peer id); without it the call must have exactly two people."""
        self._require_member(conn_id)
        sender = self.peer_id_of(conn_id)
        if sender is None or not self.in_call(conn_id):
            raise RoomError(
                ErrorCode.NOT_ADMITTED, "you are in the waiting room; nothing is relayed yet"
            )
        people = self._call_conns()
        if to is None:
            others = [conn for peer, conn in people.items() if peer != sender]
            if len(others) > 1:
                raise RoomError(
                    ErrorCode.INVALID,
                    f"{len(people)} people are in the call: say who the relay is `to`",
                )
            target = others[0] if others else None
        elif to == sender:
            raise RoomError(ErrorCode.INVALID, "relay.to: that is you")
        elif to not in people:
            raise RoomError(ErrorCode.NO_PEER, f"nobody named {to!r} is in the call")
        else:
            target = people[to]
        if target is None:
            raise RoomError(ErrorCode.NO_PEER, "nobody is on the other side of the call")
        return [self._send(target, SignalRelayMessage(payload=payload, from_=sender))]

    def allow_screen_share(self, conn_id: str, allowed: bool) -> list[Effect]:
        """The therapist lets the clients in the call share a screen, or takes it back (which
        stops a share in progress: the others are told it stopped, the sharer's page stops it
        when it hears `screen-share-allowed` false). The therapist and clients hear it."""
        self._require_therapist(conn_id)
        if not self._clients_in_call():
            raise RoomError(ErrorCode.NO_PEER, "no client is in the call")
        screens = self._screens
        screens.client_may_share = allowed
        effects = self.deliver(ScreenShareAllowedMessage(allowed=allowed), Audience.CALL)
        sharer = screens.client_sharer
        if not allowed and sharer is not None:
            screens.client_stream = None
            screens.client_sharer = None
            role = SessionRole.CLIENT
            stopped = PeerScreenMessage(role=role, sharing=False)
            effects += self._tell_call(stopped, but=self._call_conns().get(sharer))
        return effects

    def screen_share(self, conn_id: str, stream_id: str | None, now_ms: int) -> list[Effect]:
        """A person in the call starts sharing a screen as the stream `stream_id`, or stops
        (None); the others in the call are told. A client may start only while the therapist
        allows it and no other client shares; a guest never shares; stopping is always
        accepted; saying again what the room knows changes nothing. At most
        SCREEN_SHARE_CHANGES_PER_MINUTE starts a minute per room."""
        role = self._require_member(conn_id)
        if not self.in_call(conn_id):
            raise RoomError(ErrorCode.NOT_ADMITTED, "you are in the waiting room")
        screens = self._screens
        therapist = role is SessionRole.THERAPIST
        peer_id = self.peer_id_of(conn_id)
        knock = self.knock_of(conn_id)
        if knock is not None and knock.kind is PersonKind.GUEST:
            raise RoomError(ErrorCode.FORBIDDEN, "a guest may not share a screen")
        if not therapist and stream_id is not None:
            if not screens.client_may_share:
                raise RoomError(
                    ErrorCode.SCREEN_SHARE_NOT_ALLOWED,
                    "the therapist has not allowed screen sharing",
                )
            if screens.client_sharer not in (None, peer_id):
                raise RoomError(
                    ErrorCode.SCREEN_SHARE_NOT_ALLOWED, "someone else is sharing a screen"
                )
        if therapist:
            current = screens.therapist_stream
        else:
            current = screens.client_stream if screens.client_sharer == peer_id else None
        if current == stream_id:
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
            screens.client_sharer = None if stream_id is None else peer_id
        message = PeerScreenMessage(role=role, sharing=stream_id is not None, stream_id=stream_id)
        return self._tell_call(message, but=conn_id)

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
        therapist: list[str | None] = [self.therapist_conn_id]
        clients: list[str | None] = [s.conn_id for s in self._slots.values() if _client_conn(s)]
        admitted_clients: list[str | None] = [
            s.conn_id for s in self._admitted_slots() if _client_conn(s)
        ]
        conns: list[str | None] = {
            Audience.THERAPIST: therapist,
            Audience.ADMITTED_CLIENT: admitted_clients,
            Audience.CLIENTS: clients,
            Audience.CALL: therapist + admitted_clients,
            Audience.IN_CALL: [*therapist, *self.admitted_conn_ids],
            Audience.EVERYONE: [*therapist, *self._client_conns()],
        }[audience]
        payload = message.to_json()
        return [Send(conn, payload) for conn in conns if conn is not None]

    def deliver_to_people(self, message: SharedMessage, peer_ids: Collection[str]) -> list[Effect]:
        """A shared message to every connection of these people, waiting or in the call (a
        person's own consent change: never to the others)."""
        payload = message.to_json()
        return [
            Send(slot.conn_id, payload)
            for slot in self._slots.values()
            if slot.conn_id is not None and slot.person.peer_id in peer_ids
        ]

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
        seat = self._therapist = TherapistSeat(conn_id, label, self._new_token())
        self._screens.therapist_stream = None  # a new page shares nothing yet
        effects += self._therapist_welcome(seat, greeting, resumed=False)
        effects += self._to_people(seat.joined(resumed=False))
        effects += self._roster_update()
        return effects

    def _resume_therapist(
        self, seat: TherapistSeat, conn_id: str, greeting: _Greeting
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
        effects += self._therapist_welcome(seat, greeting, resumed=True)
        effects += self._to_people(seat.joined(resumed=True))
        effects += self._roster_update()
        return effects

    def _therapist_welcome(
        self, seat: TherapistSeat, greeting: _Greeting, *, resumed: bool
    ) -> list[Effect]:
        assert seat.conn_id is not None
        welcome = WelcomeMessage(
            role=SessionRole.THERAPIST,
            session_id=self.session_id,
            peer_id=THERAPIST_PEER_ID,
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
            *self._screens_for(seat.conn_id, THERAPIST_PEER_ID),
        ]

    def _knock(
        self, conn_id: str, alias: str, person: Person, now_ms: int, greeting: _Greeting
    ) -> list[Effect]:
        self._knocks_issued += 1
        taken = {s.device for s in self._slots.values() if s.person.peer_id == person.peer_id}
        device = next(n for n in range(1, len(taken) + 2) if n not in taken)
        slot = Slot(
            knock_id=f"k{self._knocks_issued}",
            label=alias if device == 1 else f"{alias} (device {device})",
            device=device,
            since_ms=now_ms,
            resume_token=self._new_token(),
            conn_id=conn_id,
            person=person,
        )
        self._slots[slot.knock_id] = slot
        self._knock_of[conn_id] = slot.knock_id
        return [self._send(conn_id, self._client_welcome(slot, greeting)), *self._lobby_update()]

    def _resume(self, slot: Slot, conn_id: str, greeting: _Greeting) -> list[Effect]:
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
            effects += self._screens_for(conn_id, slot.person.peer_id)
            effects += self._tell_call(slot.joined(resumed=True), but=conn_id)
            effects += self._roster_update()
        return effects

    def _release(self, slot: Slot) -> list[Effect]:
        """Forget a knock (its connection, if any, is no longer the room's); no one is told."""
        del self._slots[slot.knock_id]
        if slot.conn_id is not None:
            self._knock_of.pop(slot.conn_id, None)
        if slot.admitted:
            self._screens.person_left_call(slot.person.peer_id, self._clients_in_call())
        return []

    def _screens_for(self, conn_id: str, peer_id: str) -> list[Effect]:
        """Screen sharing as it stands, for a connection that (re)joins the call: whether
        clients may share (only when on: off is the default), and the others' shares."""
        screens = self._screens
        effects: list[Effect] = []
        if screens.client_may_share:
            effects.append(self._send(conn_id, ScreenShareAllowedMessage(allowed=True)))
        shares = [
            (SessionRole.THERAPIST, THERAPIST_PEER_ID, screens.therapist_stream),
            (SessionRole.CLIENT, screens.client_sharer, screens.client_stream),
        ]
        for role, sharer, stream in shares:
            if stream is not None and sharer != peer_id:
                share = PeerScreenMessage(role=role, sharing=True, stream_id=stream)
                effects.append(self._send(conn_id, share))
        return effects

    def _resumable(self, token: str | None, person: Person) -> Slot | None:
        if not token:
            return None
        for slot in self._slots.values():
            if slot.person.peer_id == person.peer_id and _same(slot.resume_token, token):
                return slot
        return None

    def _client_welcome(
        self, slot: Slot, greeting: _Greeting, *, resumed: bool = False
    ) -> WelcomeMessage:
        return WelcomeMessage(
            role=SessionRole.CLIENT,
            session_id=self.session_id,
            peer_id=slot.person.peer_id,
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
        """For the therapist's welcome: someone is in the call, only held, or nobody."""
        admitted = self._admitted_slots()
        if not admitted:
            return Presence.ABSENT
        if any(s.conn_id is not None for s in admitted):
            return Presence.IN_CALL
        return Presence.RECONNECTING

    def _admitted_slots(self) -> list[Slot]:
        """Everyone admitted (connected or held), in admission order."""
        admitted = [slot for slot in self._slots.values() if slot.admitted]
        return sorted(admitted, key=lambda slot: slot.order or 0)

    def _admitted_of(self, peer_id: str) -> Slot | None:
        return next((s for s in self._admitted_slots() if s.person.peer_id == peer_id), None)

    def _clients_in_call(self) -> bool:
        return any(s.person.kind is PersonKind.CLIENT for s in self._admitted_slots())

    def _call_conns(self) -> dict[str, str | None]:
        """Everyone in the call by peer id, with their live connection (None while held)."""
        people: dict[str, str | None] = {}
        if self._therapist is not None:
            people[THERAPIST_PEER_ID] = self._therapist.conn_id
        for slot in self._admitted_slots():
            people[slot.person.peer_id] = slot.conn_id
        return people

    def _sent_back_slot(self, peer_id: str | None) -> Slot:
        admitted = self._admitted_slots()
        if peer_id is not None:
            slot = self._admitted_of(peer_id)
            if slot is None:
                raise RoomError(ErrorCode.NO_PEER, f"nobody named {peer_id!r} is in the call")
            return slot
        if not admitted:
            raise RoomError(ErrorCode.NO_PEER, "no client is in the call")
        if len(admitted) > 1:
            raise RoomError(
                ErrorCode.INVALID, "several people are in the call: say whom (`peer_id`)"
            )
        return admitted[0]

    def _waiting_slot(self, knock_id: str) -> Slot:
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

    def _require_therapist(self, conn_id: str) -> TherapistSeat:
        if self._require_member(conn_id) is not SessionRole.THERAPIST:
            raise RoomError(ErrorCode.FORBIDDEN, "only the therapist may do this")
        assert self._therapist is not None
        return self._therapist

    # --- who hears what --------------------------------------------------------------

    def _to_people(self, message: SharedMessage) -> list[Effect]:
        """To every connection but the therapist's: waiting or in the call, guests too."""
        payload = message.to_json()
        return [Send(conn, payload) for conn in self._client_conns()]

    def _tell_call(self, message: SharedMessage, *, but: str | None = None) -> list[Effect]:
        """To everyone connected in the call (guests too), except `but`."""
        return [e for e in self.deliver(message, Audience.IN_CALL) if e.conn_id != but]

    def _roster_update(self) -> list[Effect]:
        return self.deliver(self.roster(), Audience.IN_CALL)

    # --- state, for a room that outlives the process holding it ----------------------

    def to_state(self) -> dict[str, Any]:
        """Everything the room knows, as plain JSON data (see `from_state`)."""
        seat = self._therapist
        return {
            "v": STATE_VERSION,
            "session_id": self.session_id,
            "max_people": self.max_people,
            "therapist": None
            if seat is None
            else {
                "conn_id": seat.conn_id,
                "label": seat.label,
                "resume_token": seat.resume_token,
                "held_until_ms": seat.held_until_ms,
            },
            "slots": [slot.to_state() for slot in self._slots.values()],
            "knocks_issued": self._knocks_issued,
            "admissions": self._admissions,
            "ended": None if self._ended_because is None else self._ended_because.value,
            "screens": {
                "therapist_stream": self._screens.therapist_stream,
                "client_stream": self._screens.client_stream,
                "client_sharer": self._screens.client_sharer,
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
        """The room `to_state` described (or a version 1 state: one client); ValueError for
        anything else."""
        try:
            if state["v"] not in (1, STATE_VERSION):
                raise ValueError(f"room state version {state['v']!r} is not {STATE_VERSION}")
            room = cls(
                str(state["session_id"]),
                new_token=new_token,
                resume_grace_ms=resume_grace_ms,
                max_people=int(state.get("max_people", DEFAULT_MAX_PEOPLE)),
            )
            seat = state["therapist"]
            if seat is not None:
                room._therapist = TherapistSeat(
                    opt_str(seat["conn_id"]),
                    str(seat["label"]),
                    str(seat["resume_token"]),
                    opt_int(seat["held_until_ms"]),
                )
            for raw in state["slots"]:
                slot = slot_from_state(raw)
                room._slots[slot.knock_id] = slot
                if slot.conn_id is not None:
                    room._knock_of[slot.conn_id] = slot.knock_id
            room._knocks_issued = int(state["knocks_issued"])
            orders = [s.order for s in room._slots.values() if s.order is not None]
            room._admissions = int(state.get("admissions", max(orders, default=0)))
            screens = state.get("screens") or {}  # absent in states written before sharing
            client_stream = opt_str(screens.get("client_stream"))
            sharer = opt_str(screens.get("client_sharer"))
            if client_stream is not None and sharer is None:  # a version 1 state's one client
                sharer = next((s.person.peer_id for s in room._admitted_slots()), None)
            room._screens = Screens(
                opt_str(screens.get("therapist_stream")),
                client_stream,
                sharer,
                bool(screens.get("client_may_share", False)),
            )
            ended = state["ended"]
            room._ended_because = None if ended is None else EndReason(ended)
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a room state: {exc!r}") from None
        return room

    def _lobby_message(self) -> LobbyMessage:
        waiting = tuple(
            LobbyEntry(
                knock_id=s.knock_id,
                label=s.label,
                since_ms=s.since_ms,
                kind=s.person.kind,
                participant_id=s.person.peer_id,
            )
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


def _client_conn(slot: Slot) -> bool:
    """A connected client's knock (never a guest's)."""
    return slot.conn_id is not None and slot.person.kind is PersonKind.CLIENT


def _same(token: str, offered: str) -> bool:
    """Compare resume tokens in constant time."""
    return hmac.compare_digest(token.encode(), offered.encode())

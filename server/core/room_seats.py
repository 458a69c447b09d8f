"""The places in a live room (pure): the therapist's seat and the knocks of the others.

A *knock* is one device of one person (a client or a guest) in the waiting room, in the call,
or held for resume after its connection dropped. Each person has at most one knock in the
call; its *order* is when it was admitted (the therapist's is 0), which decides each pair's
roles in the mesh (docs/protocol.md, "Verifying a group call"). `server.core.rooms` keeps
the rules; this module keeps the places and their plain-data form for a room's takeover.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from server.core.participants import THERAPIST_PEER_ID, PersonKind
from server.core.protocol import PeerJoinedMessage, PeerLeftMessage, RosterEntry, SessionRole

SOLE_CLIENT_PEER_ID: Final = "client"
"""The peer id of a client connection that names no participant (a one-client room)."""

THERAPIST_ORDER: Final = 0


@dataclass(frozen=True, slots=True)
class Person:
    """Who a client-side connection speaks for: a client or a guest of the session."""

    peer_id: str  # the participant id
    kind: PersonKind  # CLIENT or GUEST
    client_id: str | None = None  # a client's record (to find it again); None for a guest

    def __post_init__(self) -> None:
        if self.kind is PersonKind.THERAPIST:
            raise ValueError("the therapist has a seat, not a knock")
        if self.peer_id == THERAPIST_PEER_ID:
            raise ValueError(f"{THERAPIST_PEER_ID!r} is the therapist's peer id")

    def is_subject(self, subject: str) -> bool:
        """Whether `subject` (whose consent records) is this person: a client's record, or a
        guest's own participant id."""
        if self.kind is PersonKind.GUEST:
            return self.peer_id == subject
        return self.client_id == subject


SOLE_CLIENT: Final = Person(SOLE_CLIENT_PEER_ID, PersonKind.CLIENT)


@dataclass(frozen=True, slots=True)
class Knock:
    """A device as the room sees it: waiting, in the call, or held for resume."""

    knock_id: str
    label: str  # the alias, plus "(device N)" for a second concurrent device
    since_ms: int  # when it started waiting (or was sent back)
    admitted: bool
    connected: bool  # False while an admitted knock is held for resume
    peer_id: str = SOLE_CLIENT_PEER_ID
    kind: PersonKind = PersonKind.CLIENT


@dataclass(slots=True)
class Slot:
    """One knock's place, with what only the room may know (its resume token)."""

    knock_id: str
    label: str
    device: int
    since_ms: int
    resume_token: str
    conn_id: str | None  # None: the connection dropped and the slot is held
    person: Person = SOLE_CLIENT
    admitted: bool = False
    order: int | None = None  # admission order while admitted
    held_until_ms: int | None = None

    def view(self) -> Knock:
        """The slot as a caller outside the room may see it."""
        return Knock(
            self.knock_id,
            self.label,
            self.since_ms,
            self.admitted,
            self.conn_id is not None,
            self.person.peer_id,
            self.person.kind,
        )

    def joined(self, *, resumed: bool) -> PeerJoinedMessage:
        """`peer-joined` for this person."""
        person = self.person
        return PeerJoinedMessage(
            role=SessionRole.CLIENT,
            label=self.label,
            resumed=resumed,
            peer_id=person.peer_id,
            kind=person.kind,
        )

    def left(self, *, reconnecting: bool) -> PeerLeftMessage:
        """`peer-left` for this person."""
        person = self.person
        return PeerLeftMessage(
            role=SessionRole.CLIENT,
            reconnecting=reconnecting,
            peer_id=person.peer_id,
            kind=person.kind,
            label=self.label,
        )

    def roster_entry(self) -> RosterEntry:
        """This person as `roster` names them (only for an admitted slot)."""
        assert self.order is not None
        return RosterEntry(
            peer_id=self.person.peer_id,
            kind=self.person.kind,
            label=self.label,
            order=self.order,
            present=self.conn_id is not None,
        )

    def to_state(self) -> dict[str, Any]:
        """Plain JSON data (see `slot_from_state`)."""
        return {
            "knock_id": self.knock_id,
            "label": self.label,
            "device": self.device,
            "since_ms": self.since_ms,
            "resume_token": self.resume_token,
            "conn_id": self.conn_id,
            "admitted": self.admitted,
            "held_until_ms": self.held_until_ms,
            "peer_id": self.person.peer_id,
            "kind": self.person.kind.value,
            "client_id": self.person.client_id,
            "order": self.order,
        }


def slot_from_state(s: Mapping[str, Any]) -> Slot:
    """The slot `Slot.to_state` described (states written before #15 are the sole client's,
    admitted as order 1); KeyError, TypeError or ValueError for anything else."""
    admitted = bool(s["admitted"])
    person = Person(
        str(s.get("peer_id", SOLE_CLIENT_PEER_ID)),
        PersonKind(s.get("kind", PersonKind.CLIENT)),
        opt_str(s.get("client_id")),
    )
    order = opt_int(s.get("order"))
    return Slot(
        knock_id=str(s["knock_id"]),
        label=str(s["label"]),
        device=int(s["device"]),
        since_ms=int(s["since_ms"]),
        resume_token=str(s["resume_token"]),
        conn_id=opt_str(s["conn_id"]),
        person=person,
        admitted=admitted,
        order=(order if order is not None else 1) if admitted else None,
        held_until_ms=opt_int(s["held_until_ms"]),
    )


@dataclass(slots=True)
class TherapistSeat:
    """The therapist's place: one at a time, held for resume when its connection drops."""

    conn_id: str | None  # None: the connection dropped and the seat is held for resume
    label: str
    resume_token: str
    held_until_ms: int | None = None

    def joined(self, *, resumed: bool) -> PeerJoinedMessage:
        """`peer-joined` for the therapist."""
        return PeerJoinedMessage(
            role=SessionRole.THERAPIST,
            label=self.label,
            resumed=resumed,
            peer_id=THERAPIST_PEER_ID,
            kind=PersonKind.THERAPIST,
        )

    def left(self, *, reconnecting: bool) -> PeerLeftMessage:
        """`peer-left` for the therapist."""
        return PeerLeftMessage(
            role=SessionRole.THERAPIST,
            reconnecting=reconnecting,
            peer_id=THERAPIST_PEER_ID,
            kind=PersonKind.THERAPIST,
            label=self.label,
        )

    def roster_entry(self) -> RosterEntry:
        """The therapist as `roster` names them: always order 0."""
        return RosterEntry(
            peer_id=THERAPIST_PEER_ID,
            kind=PersonKind.THERAPIST,
            label=self.label,
            order=THERAPIST_ORDER,
            present=self.conn_id is not None,
        )


@dataclass(slots=True)
class Screens:
    """Screen sharing in the call: which stream the therapist and at most one client share
    (None: nobody), and whether the therapist lets the clients in the call share (off until
    allowed, and off again once no client is left in the call)."""

    therapist_stream: str | None = None
    client_stream: str | None = None
    client_sharer: str | None = None  # the peer id of the client sharing `client_stream`
    client_may_share: bool = False

    def person_left_call(self, peer_id: str, clients_left: bool) -> None:
        """A person left the call: their share ends; without clients the leave ends too."""
        if self.client_sharer == peer_id:
            self.client_stream = None
            self.client_sharer = None
        if not clients_left:
            self.client_stream = None
            self.client_sharer = None
            self.client_may_share = False


def opt_str(value: object) -> str | None:
    """None, or the value as a string."""
    return None if value is None else str(value)


def opt_int(value: object) -> int | None:
    """None, or the value if it is an integer (TypeError otherwise)."""
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"expected an integer, not {value!r}")
    return value

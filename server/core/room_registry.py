"""Rooms by session id (pure): one process's live rooms, created on first join and dropped as
soon as nothing is left in them (see `server.core.rooms.Room`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from server.core.participants import DEFAULT_MAX_PEOPLE
from server.core.protocol import CloseCode, EndReason, IceTransportPolicy, SessionRole
from server.core.room_seats import Person
from server.core.rooms import RESUME_GRACE_MS, Effect, Room


class RoomRegistry:
    """Rooms by session id: created on first join, dropped as soon as they are empty."""

    def __init__(
        self,
        *,
        new_token: Callable[[], str],
        resume_grace_ms: int = RESUME_GRACE_MS,
        max_people: int = DEFAULT_MAX_PEOPLE,
    ) -> None:
        self._new_token = new_token
        self._grace_ms = resume_grace_ms
        self.max_people = max_people
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
        person: Person | None = None,
    ) -> list[Effect]:
        """Join the session's room, creating it on first use (see `Room.join`)."""
        room = self._rooms.get(session_id)
        if room is None:
            room = Room(
                session_id,
                new_token=self._new_token,
                resume_grace_ms=self._grace_ms,
                max_people=self.max_people,
            )
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
            person=person,
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

    def remove_person(
        self, session_id: str, peer_id: str, reason: EndReason, code: CloseCode, why: str
    ) -> list[Effect]:
        """End one person's part of a session (see `Room.remove_person`)."""
        room = self._rooms.get(session_id)
        if room is None:
            return []
        effects = room.remove_person(peer_id, reason, code, why)
        self._drop_if_empty(room)
        return effects

    def expire(self, now_ms: int) -> list[Effect]:
        """Release every held place past its grace period; drop rooms left empty."""
        effects: list[Effect] = []
        for room in list(self._rooms.values()):
            effects += self.expire_room(room.session_id, now_ms)
        return effects

    def expire_room(self, session_id: str, now_ms: int) -> list[Effect]:
        """`expire` for one room (the serving loop visits rooms a share at a time)."""
        room = self._rooms.get(session_id)
        if room is None:
            return []
        effects = room.expire(now_ms)
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

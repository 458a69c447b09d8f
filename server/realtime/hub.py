"""The room hub: live connections, one writer queue each, and the effects the room core asks for.

The room core (server.core.rooms) decides; this module only delivers. Other tasks never write
to a socket: they queue messages, and each connection's writer task sends them in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from aiohttp import web

from server.core.closing import Closing
from server.core.models import Account
from server.core.participants import DEFAULT_MAX_PEOPLE, PersonKind
from server.core.protocol import (
    AccessEnd,
    CloseCode,
    EndReason,
    ServerMessage,
    SessionRole,
    SharedMessage,
    parse_server_message,
)
from server.core.room_registry import RoomRegistry
from server.core.rooms import Audience, Close, Effect, Room, Send
from server.realtime.bus import Bus, ConnRef, LocalBus, new_token

log = logging.getLogger("attune.realtime")
_QUEUE_LIMIT = 256  # a peer that cannot keep up is dropped rather than buffered without bound


@dataclass(frozen=True)
class Timed:
    """A queued message that carries when its cause was received (relay latency, in metrics)."""

    message: dict[str, Any]
    received_at: float  # time.monotonic()


Outgoing = dict[str, Any] | str | tuple[int, str] | Timed
"""A message (a dict, or its JSON text as another process encoded it), a close, or a timed
message."""


@dataclass(eq=False)
class Connection:
    """One WebSocket: who it is, where it is, and its outgoing queue."""

    conn_id: str
    ws: web.WebSocketResponse
    role: SessionRole
    session_id: str
    client_id: str
    account: Account | None = None  # the therapist's account; None for a client
    sign_in_id: str | None = None  # the therapist's sign-in it was opened with (access_ref)
    client_access_id: str | None = None  # the client cookie it was opened with (access_ref)
    another_device: bool = False  # that cookie waits as "another device" until admitted
    # Set synchronously when access ends: nothing more is read, processed or sent but the close.
    revoked: bool = False
    revoked_with: tuple[CloseCode, str] | None = None  # the close that revocation queued
    outbox: asyncio.Queue[Outgoing] = field(default_factory=lambda: asyncio.Queue(_QUEUE_LIMIT))
    writer: asyncio.Task[None] | None = None
    closer: asyncio.Task[bool] | None = None

    async def write_loop(self, written: Callable[[float], None] = lambda _s: None) -> None:
        """Send queued messages in order; a queued (code, reason) closes the socket.
        `written` hears how long after its receipt each Timed message went out."""
        while True:
            item = await self.outbox.get()
            if isinstance(item, tuple):
                code, reason = item
                await self.ws.close(code=code, message=reason.encode()[:120])
                return
            if self.ws.closed:
                return
            try:
                if isinstance(item, Timed):
                    await self.ws.send_json(item.message)
                    written(time.monotonic() - item.received_at)
                elif isinstance(item, str):
                    await self.ws.send_str(item)
                else:
                    await self.ws.send_json(item)
            except (ConnectionResetError, RuntimeError):
                return

    def queue(self, message: SharedMessage) -> None:
        """Queue a message for this connection alone (answers to its own requests)."""
        self.put(message.to_json())

    def put(self, item: Outgoing) -> None:
        """Queue without waiting; a full queue means a stuck peer, which is closed."""
        if self.revoked:
            return  # only the close queued by `revoke` still leaves
        try:
            self.outbox.put_nowait(item)
        except asyncio.QueueFull:
            if self.closer is not None:
                return  # already closing: one log line per connection
            log.warning("closing a connection whose outbox is full")
            if self.writer is not None:
                self.writer.cancel()
            self.closer = asyncio.ensure_future(self.ws.close(code=CloseCode.GOING_AWAY))

    def revoke(self, code: CloseCode, reason: str, *, keep_queued: bool = False) -> None:
        """End this connection's rights now (synchronously): what is queued is dropped (unless
        `keep_queued`, e.g. the `session-ended` just queued), the close goes out next, and the
        read loop processes nothing more."""
        if self.revoked:
            return
        self.revoked = True
        self.revoked_with = (code, reason)
        if not keep_queued or self.outbox.full():
            while not self.outbox.empty():
                self.outbox.get_nowait()
        self.outbox.put_nowait((int(code), reason))


class Hub:
    """Live connections of this process by id, the rooms it holds, and the `LiveRooms`.

    Which process holds a room is the bus's business (server.realtime.bus): with the local bus
    every room is here; with Redis, `rooms` holds only the rooms this process owns, an effect
    for a connection on another process travels there, and a LiveRooms call for a room held
    elsewhere is carried to its owner.
    """

    def __init__(
        self,
        bus: Bus | None = None,
        relay_written: Callable[[float], None] = lambda _s: None,
        max_people: int = DEFAULT_MAX_PEOPLE,
    ) -> None:
        self.bus: Bus = bus if bus is not None else LocalBus()
        self.rooms = RoomRegistry(new_token=new_token, max_people=max_people)
        # session id -> its primary client's id, for owned rooms (each person's own: the room)
        self.room_clients: dict[str, str] = {}
        # connections of the rooms this process owns, as their owner sees them (any process)
        self.conn_refs: dict[str, ConnRef] = {}
        self._connections: dict[str, Connection] = {}
        self._relay_written = relay_written

    def connection_count(self) -> int:
        """Open connections in this process (a metrics gauge)."""
        return len(self._connections)

    def new_conn_id(self) -> str:
        """A fresh connection id, naming this process when there are several."""
        process = self.bus.process_id
        return f"{process}.{secrets.token_hex(8)}" if process else secrets.token_hex(8)

    def add(self, connection: Connection) -> None:
        """Track a connection and start its writer."""
        self._connections[connection.conn_id] = connection
        connection.writer = asyncio.create_task(connection.write_loop(self._relay_written))

    def connection(self, conn_id: str | None) -> Connection | None:
        """A live connection of this process by id."""
        return None if conn_id is None else self._connections.get(conn_id)

    def remove(self, conn_id: str) -> None:
        """Forget a connection (its writer ends with the socket)."""
        connection = self._connections.pop(conn_id, None)
        if connection is not None and connection.writer is not None:
            connection.writer.cancel()

    def holds(self, conn_id: str) -> bool:
        """Whether the connection's socket is open in this process."""
        return conn_id in self._connections

    def execute(self, effects: Iterable[Effect], *, received_at: float | None = None) -> None:
        """Carry out what the room core decided, here or on the process holding the socket;
        `received_at` (monotonic) times this process's sends for the relay latency metric."""
        for effect in effects:
            connection = self._connections.get(effect.conn_id)
            if connection is None:
                self.bus.forward_effect(effect)
            elif isinstance(effect, Send):
                message = dict(effect.message)
                connection.put(message if received_at is None else Timed(message, received_at))
            elif isinstance(effect, Close):
                connection.put((int(effect.code), effect.reason))

    def deliver_text(self, conn_id: str, text: str) -> None:
        """A message another process encoded, for a socket of this process (if still open)."""
        connection = self._connections.get(conn_id)
        if connection is not None:
            connection.put(text)

    def send(self, conn_id: str, message: SharedMessage) -> None:
        """One message to one connection, wherever its socket is (answers to its requests).

        Only a `SharedMessage`: a connection id does not say whose it is, so a therapist-only
        message goes through `deliver_to_therapist` (a type checker refuses it here, and so
        does the check below when one arrives untyped)."""
        if not isinstance(message, SharedMessage):
            raise TypeError(f"{message.TYPE!r} is not a shared message; use deliver_to_therapist")
        self.execute([Send(conn_id, message.to_json())])

    def close_session_connections(self, session_id: str, code: CloseCode, reason: str) -> None:
        """Close this process's sockets of a session (they reconnect and resume)."""
        for connection in list(self._connections.values()):
            if connection.session_id == session_id:
                connection.put((int(code), reason))

    def connections_of_client_access(self, client_access_id: str) -> int:
        """How many sockets of this process were opened with this client cookie."""
        return sum(
            1
            for c in list(self._connections.values())
            if c.client_access_id == client_access_id and not c.revoked
        )

    # --- LiveRooms: what live operations (server.services.live_session) ask of rooms ---

    def deliver(self, session_id: str, message: SharedMessage, audience: Audience) -> None:
        """Send a shared message to an audience of the session's room, if it is live."""
        room = self.rooms.get(session_id)
        if room is not None:
            self.execute(room.deliver(message, audience))
            self.bus.changed(session_id)  # the live operations' state may have moved
        else:
            self.bus.forward_live(
                session_id, "deliver", {"message": message.to_json(), "audience": audience.value}
            )

    def deliver_to_therapist(self, session_id: str, message: ServerMessage) -> None:
        """Send a message to the session's therapist only, if connected."""
        room = self.rooms.get(session_id)
        if room is not None:
            self.execute(room.deliver_to_therapist(message))
            self.bus.changed(session_id)  # a prompt raised, a check-in stored: state moved
        else:
            self.bus.forward_live(
                session_id, "deliver_to_therapist", {"message": message.to_json()}
            )

    def deliver_to_client(self, session_id: str, client_id: str, message: SharedMessage) -> None:
        """Send a message about one person to the therapist and to that person's own
        connections only (a client by record, a guest by participant id)."""
        room = self.rooms.get(session_id)
        if room is None:
            args = {"client_id": client_id, "message": message.to_json()}
            self.bus.forward_live(session_id, "deliver_to_client", args)
            return
        people = room.people_of_client(client_id)
        self.execute(room.deliver(message, Audience.THERAPIST))
        self.execute(room.deliver_to_people(message, people))
        self.bus.changed(session_id)

    def has_admitted_client(self, session_id: str) -> bool:
        """Whether a client (not only a guest) is in the call now (asked by actions that run
        on the owner)."""
        room = self.rooms.get(session_id)
        return room is not None and any(
            k.admitted and k.connected and k.kind is PersonKind.CLIENT for k in room.knocks()
        )

    async def therapist_in_room(self, session_id: str) -> bool:
        """Whether the session's therapist has a live connection in its room, wherever the room
        is held (a seat held for a dropped connection's resume does not count)."""
        room = self.rooms.get(session_id)
        if room is None:
            state = (await self.bus.room_states([session_id])).get(session_id)
            if state is None:
                return False
            room = Room.from_state(state, new_token=new_token)
        return room.therapist_conn_id is not None

    def terminate(self, session_id: str, reason: EndReason) -> None:
        """Tell everyone in a session it is over and close their sockets."""
        if self.rooms.get(session_id) is not None:
            self.execute(self.rooms.terminate(session_id, reason))
            self.bus.changed(session_id)  # gone: its state is removed
        else:
            self.bus.forward_live(session_id, "terminate", {"reason": reason.value})

    def end_client_part(
        self, session_id: str, reason: EndReason, client_id: str | None = None
    ) -> None:
        """End the part of one client (`client_id`) in a session, or of everyone but the
        therapist (None): each of their connections is told, closed, and must not rejoin;
        the others' call goes on. Without telehealth consent a person may not stay: 4403."""
        room = self.rooms.get(session_id)
        if room is None:
            args = {"reason": reason.value, "client_id": client_id}
            self.bus.forward_live(session_id, "end_client_part", args)
            return
        if client_id is not None:
            people = room.people_of_client(client_id)
        else:
            people = {k.peer_id for k in room.knocks()}
        for peer_id in sorted(people):
            self.end_person(session_id, peer_id, reason)

    def end_person(self, session_id: str, peer_id: str, reason: EndReason) -> None:
        """End one person's part of a session (by peer id): their connections are told and
        closed (4403 when their consent was withdrawn), the others hear `peer-left`."""
        room = self.rooms.get(session_id)
        if room is None:
            args = {"reason": reason.value, "peer_id": peer_id}
            self.bus.forward_live(session_id, "end_person", args)
            return
        if reason is EndReason.CONSENT_WITHDRAWN:
            code, why = CloseCode.FORBIDDEN, AccessEnd.CONSENT_WITHDRAWN.value
        else:
            code, why = CloseCode.SESSION_ENDED, str(reason)
        theirs = [
            conn_id for conn_id in room.client_conn_ids if room.peer_id_of(conn_id) == peer_id
        ]
        self.execute(self.rooms.remove_person(session_id, peer_id, reason, code, why))
        self.bus.changed(session_id)
        for conn_id in theirs:
            connection = self._connections.get(conn_id)
            if connection is not None:  # nothing it sends from now on is processed
                connection.revoke(code, why, keep_queued=True)

    def close_connections(self, closing: Closing) -> None:
        """Close every matching socket of every process: this process's at once (marked
        revoked before this returns), the others' through the bus's control channel."""
        self.close_local_connections(closing)
        self.bus.broadcast(
            "close-connections", {"origin": self.bus.process_id, **closing.to_json()}
        )

    def on_close_connections(self, payload: Mapping[str, Any]) -> None:
        """Another process ended some access: close this process's matching sockets."""
        if payload.get("origin") == self.bus.process_id:
            return  # done at once where the call was made
        self.close_local_connections(Closing.from_json(payload))

    def close_local_connections(self, closing: Closing) -> None:
        """Close every local socket that matches, at once: each is marked revoked before this
        returns, so a message it already sent is not processed."""
        for connection in list(self._connections.values()):
            if closing.matches(
                account_id=connection.account.id if connection.account is not None else None,
                sign_in_id=connection.sign_in_id,
                client_access_id=connection.client_access_id,
                session_id=connection.session_id,
                role=connection.role,
            ):
                connection.revoke(closing.code, closing.reason)

    def presence(self, session_id: str) -> tuple[tuple[str, ...], bool]:
        """Who is waiting (labels) and whether a client is in the call, in a room this
        process holds."""
        room = self.rooms.get(session_id)
        return ((), False) if room is None else _presence_in(room)

    async def presence_of(
        self, session_ids: Sequence[str]
    ) -> dict[str, tuple[tuple[str, ...], bool]]:
        """`presence` of each session, wherever its room is held (the dashboard): rooms held
        here from memory, the others from the state their owners last wrote (one round trip)."""
        found = {s: self.presence(s) for s in session_ids if self.rooms.get(s) is not None}
        elsewhere = [s for s in session_ids if s not in found]
        for session_id, state in (await self.bus.room_states(elsewhere)).items():
            found[session_id] = _presence_in(Room.from_state(state, new_token=new_token))
        return {s: found.get(s, ((), False)) for s in session_ids}

    def live_sessions_of_client(self, client_id: str) -> set[str]:
        """The sessions of this client whose live room this process holds."""
        local = {c.session_id for c in list(self._connections.values()) if c.client_id == client_id}
        local |= {  # a guest's consents are their own: their subject is their participant id
            r.session_id for r in list(self.conn_refs.values()) if r.participant_id == client_id
        }
        held = {s for s, c in self.room_clients.items() if c == client_id and s in self.rooms}
        held |= {room.session_id for room in self.rooms if room.people_of_client(client_id)}
        return {s for s in local | held if self.bus.owns(s) and s in self.rooms}

    async def close_all(self) -> None:
        """On shutdown: close every socket with GOING_AWAY so clients reconnect and resume."""
        for connection in list(self._connections.values()):
            with contextlib.suppress(Exception):
                await connection.ws.close(code=CloseCode.GOING_AWAY, message=b"server restart")
            self.remove(connection.conn_id)


def _presence_in(room: Room) -> tuple[tuple[str, ...], bool]:
    knocks = room.knocks()
    return tuple(k.label for k in knocks if not k.admitted), any(k.admitted for k in knocks)


def _deliver(hub: Hub, session_id: str, args: Mapping[str, Any]) -> None:
    message = parse_server_message(args["message"])
    if not isinstance(message, SharedMessage):
        raise TypeError(f"{message.TYPE!r} is not a shared message")
    hub.deliver(session_id, message, Audience(args["audience"]))


def _deliver_to_client(hub: Hub, session_id: str, args: Mapping[str, Any]) -> None:
    message = parse_server_message(args["message"])
    if not isinstance(message, SharedMessage):
        raise TypeError(f"{message.TYPE!r} is not a shared message")
    hub.deliver_to_client(session_id, str(args["client_id"]), message)


def _deliver_to_therapist(hub: Hub, session_id: str, args: Mapping[str, Any]) -> None:
    hub.deliver_to_therapist(session_id, parse_server_message(args["message"]))


def _terminate(hub: Hub, session_id: str, args: Mapping[str, Any]) -> None:
    hub.terminate(session_id, EndReason(args["reason"]))


def _end_client_part(hub: Hub, session_id: str, args: Mapping[str, Any]) -> None:
    client_id = args.get("client_id")
    hub.end_client_part(
        session_id, EndReason(args["reason"]), None if client_id is None else str(client_id)
    )


def _end_person(hub: Hub, session_id: str, args: Mapping[str, Any]) -> None:
    hub.end_person(session_id, str(args["peer_id"]), EndReason(args["reason"]))


LIVE_CALLS: Mapping[str, Callable[[Hub, str, Mapping[str, Any]], None]] = MappingProxyType(
    {
        "deliver": _deliver,
        "deliver_to_therapist": _deliver_to_therapist,
        "deliver_to_client": _deliver_to_client,
        "terminate": _terminate,
        "end_client_part": _end_client_part,
        "end_person": _end_person,
    }
)
"""The LiveRooms calls that travel to a room's owner, run there by the same Hub methods."""

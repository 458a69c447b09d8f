"""The room hub: live connections, one writer queue each, and the effects the room core asks for.

The room core (server.core.rooms) decides; this module only delivers. Other tasks never write
to a socket: they queue messages, and each connection's writer task sends them in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from privacy.consent import ConsentChanged, ConsentDecision, Purpose
from server.core.cues.config import CueConfig
from server.core.protocol import CloseCode, EndReason, SessionRole, server_message
from server.core.rooms import Close, Effect, RoomRegistry, Send
from server.realtime.live_cues import LiveCues

log = logging.getLogger("attune.realtime")
_QUEUE_LIMIT = 256  # a peer that cannot keep up is dropped rather than buffered without bound


@dataclass(eq=False)
class Connection:
    """One WebSocket: who it is, where it is, and its outgoing queue."""

    conn_id: str
    ws: web.WebSocketResponse
    role: SessionRole
    session_id: str
    client_id: str
    outbox: asyncio.Queue[dict[str, Any] | tuple[int, str]] = field(
        default_factory=lambda: asyncio.Queue(_QUEUE_LIMIT)
    )
    writer: asyncio.Task[None] | None = None
    closer: asyncio.Task[bool] | None = None

    async def write_loop(self) -> None:
        """Send queued messages in order; a queued (code, reason) closes the socket."""
        while True:
            item = await self.outbox.get()
            if isinstance(item, tuple):
                code, reason = item
                await self.ws.close(code=code, message=reason.encode()[:120])
                return
            if self.ws.closed:
                return
            try:
                await self.ws.send_json(item)
            except (ConnectionResetError, RuntimeError):
                return

    def queue(self, item: dict[str, Any] | tuple[int, str]) -> None:
        """Queue without waiting; a full queue means a stuck peer, which is closed."""
        try:
            self.outbox.put_nowait(item)
        except asyncio.QueueFull:
            log.warning("closing a connection whose outbox is full")
            if self.writer is not None:
                self.writer.cancel()
            self.closer = asyncio.ensure_future(self.ws.close(code=CloseCode.GOING_AWAY))


class Hub:
    """Live connections by id and the rooms they are in."""

    def __init__(self, cue_config: CueConfig | None = None) -> None:
        self.rooms = RoomRegistry(new_token=lambda: secrets.token_urlsafe(24))
        self._connections: dict[str, Connection] = {}
        self.cues = LiveCues(cue_config or CueConfig())
        # Whether each client's cue_analysis consent is live, kept current by consent events.
        self.cue_allowed: dict[str, bool] = {}

    def new_conn_id(self) -> str:
        """A fresh connection id."""
        return secrets.token_hex(8)

    def add(self, connection: Connection) -> None:
        """Track a connection and start its writer."""
        self._connections[connection.conn_id] = connection
        connection.writer = asyncio.create_task(connection.write_loop())

    def remove(self, conn_id: str) -> None:
        """Forget a connection (its writer ends with the socket)."""
        connection = self._connections.pop(conn_id, None)
        if connection is not None and connection.writer is not None:
            connection.writer.cancel()

    def execute(self, effects: Iterable[Effect]) -> None:
        """Carry out what the room core decided."""
        for effect in effects:
            connection = self._connections.get(effect.conn_id)
            if connection is None:
                continue
            if isinstance(effect, Send):
                connection.queue(dict(effect.message))
            elif isinstance(effect, Close):
                connection.queue((int(effect.code), effect.reason))

    def send(self, conn_id: str, message: dict[str, Any]) -> None:
        """Queue one message for one connection."""
        connection = self._connections.get(conn_id)
        if connection is not None:
            connection.queue(message)

    def connections_of_client(self, client_id: str) -> list[Connection]:
        """Every live connection that belongs to a client or to a session with that client."""
        return [c for c in list(self._connections.values()) if c.client_id == client_id]

    def end_session(self, session_id: str, reason: EndReason) -> None:
        """Tell everyone in a session it is over and close their sockets."""
        self.execute(self.rooms.terminate(session_id, reason))

    def on_consent_changed(self, event: ConsentChanged) -> None:
        """Consent changes take effect live: both sides hear of it; no telehealth, no call."""
        message = server_message("consent-changed", purpose=event.purpose, decision=event.decision)
        if event.purpose is Purpose.CUE_ANALYSIS:
            granted = event.decision is ConsentDecision.GRANTED
            self.cue_allowed[event.client_id] = granted
            if not granted:
                self.stop_cues_for_client(event.client_id)
        for connection in self.connections_of_client(event.client_id):
            connection.queue(dict(message))
            withdrew_telehealth = (
                event.purpose is Purpose.TELEHEALTH
                and event.decision is ConsentDecision.WITHDRAWN
                and connection.role is SessionRole.CLIENT
            )
            if withdrew_telehealth:
                # As documented: the client's part of the session ends; they must not rejoin.
                connection.queue(
                    server_message("session-ended", reason=EndReason.CONSENT_WITHDRAWN)
                )
                connection.queue((int(CloseCode.SESSION_ENDED), "telehealth consent withdrawn"))

    def stop_cues_for_client(self, client_id: str) -> None:
        """Forget live cue state of every session of this client, at once."""
        for session_id in {c.session_id for c in self.connections_of_client(client_id)}:
            self.cues.drop(session_id)

    async def close_all(self) -> None:
        """On shutdown: close every socket with GOING_AWAY so clients reconnect and resume."""
        for connection in list(self._connections.values()):
            with contextlib.suppress(Exception):
                await connection.ws.close(code=CloseCode.GOING_AWAY, message=b"server restart")
            self.remove(connection.conn_id)

"""The session WebSocket `/ws/session/<id>`: handshake, limits, liveness, and message dispatch.

Protocol rules live in server.core.protocol and server.core.rooms; this loop authenticates,
reads frames, enforces size, rate and idle limits, and turns messages into room actions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from privacy.consent import Channel, ConsentDecision, ConsentState, Purpose
from server.core.ice import ice_configuration_for
from server.core.links import SessionStatus
from server.core.models import Account, Role, TherapySession
from server.core.participants import PersonKind
from server.core.protocol import (
    CALL_ONLY_TYPES,
    DROP_AFTER_IDLE_S,
    FLOOD_CLOSE_AFTER_DROPPED,
    FLOOD_FORGIVE_PER_SECOND,
    HARD_FRAME_LIMIT_BYTES,
    HELLO_TIMEOUT_S,
    MAX_CLOSE_REASON_BYTES,
    MAX_KNOCKS_PER_CLIENT_ACCESS,
    PING_AFTER_IDLE_S,
    AccessEnd,
    Admit,
    CheckinAckMessage,
    CheckinAnswer,
    CheckinLaunch,
    ClientMessage,
    CloseCode,
    Consent,
    Deny,
    End,
    ErrorCode,
    ErrorMessage,
    Features,
    GoalAdd,
    GoalEdit,
    GoalStatusMessage,
    Hello,
    IceTransportPolicy,
    Leave,
    Ping,
    PongMessage,
    PromptFeedbackMessage,
    ProtocolError,
    RateLimiter,
    Relay,
    ScreenShare,
    ScreenShareAllow,
    SendBack,
    SessionRole,
    SharedMessage,
    Signal,
    WaitingNote,
    check_kind,
    check_role,
    check_version,
    parse_client_message,
)
from server.core.room_seats import Person
from server.core.rooms import Close, Room, Send
from server.db import scheduling as session_queries
from server.db.outage import DATABASE_UNAVAILABLE_MESSAGE, is_database_outage
from server.errors import AttuneError, Forbidden, NotFound, RateLimited, Unauthenticated
from server.keys import CLIENT_WRITES, CLOCK, CONSENTS, DB, HUB, LIVE, METRICS, SETTINGS
from server.middlewares import is_same_origin
from server.realtime.bus import BusUnavailable, Change, ConnRef, RoomOp
from server.realtime.hub import Connection, Hub
from server.security.client_writes import ClientWrite
from server.services.live_session import LiveSessions
from server.web.denials import record_denial
from server.web.identity import (
    ANOTHER_DEVICE_MESSAGE,
    after_session_visit,
    resolve_identity,
    signed_in,
)

log = logging.getLogger("attune.realtime")
LIVE_UNAVAILABLE_REASON = "live sessions are temporarily unavailable"


def _now_ms() -> int:
    """Unix milliseconds: the lobby shows them as "waiting since" (docs/protocol.md)."""
    return int(time.time() * 1000)


@dataclass(frozen=True)
class _Member:
    """Who opens the socket: their role, the session, a display label, the therapist's account,
    and which person of the session they are."""

    role: SessionRole
    session: TherapySession
    label: str
    account: Account | None
    sign_in_id: str | None = None
    client_access_id: str | None = None
    another_device: bool = False
    # Which person (issue #15): None for the therapist, else the participant (their peer id).
    participant_id: str | None = None
    kind: PersonKind = PersonKind.THERAPIST  # CLIENT for a client, GUEST for a guest
    # A client's own client id; for the therapist and a guest the session's primary client's
    # (room bookkeeping only: never used to store a guest's data).
    client_id: str = ""
    # Whose consent records count for this person (a client's id, a guest's participant id).
    consent_subject: str = ""


async def _who(request: web.Request, session_id: str) -> _Member:
    """The role this request may take in the session, or Unauthenticated / NotFound."""
    account = signed_in(request)
    if account is not None and account.account.role is Role.THERAPIST:
        async with request.app[DB].read() as conn:
            session = await session_queries.session_for(conn, account.account.id, session_id)
        if session is not None:
            return _Member(
                SessionRole.THERAPIST,
                session,
                "Therapist",
                account.account,
                sign_in_id=account.sign_in_id,
                kind=PersonKind.THERAPIST,
                client_id=session.client_id,
            )
    visit = after_session_visit(request)  # an ended session's cookie gets "not found"
    if visit is not None and visit.session.id == session_id and not visit.after_session:
        label = visit.label
        return _Member(
            SessionRole.CLIENT,
            visit.session,
            f"{label} (another device)" if visit.another_device else label,
            None,
            client_access_id=visit.access_id,
            another_device=visit.another_device,
            participant_id=visit.participant_id,
            kind=visit.kind,
            client_id=visit.person_client_id or visit.session.client_id,
            consent_subject=visit.consent_subject,
        )
    if account is None and visit is None:
        raise Unauthenticated("Sign in or open your session link first.")
    raise NotFound("No such session.")


async def _consent_states(request: web.Request, client_id: str) -> dict[str, str]:
    app = request.app
    states = await app[CONSENTS].state(app[DB], client_id, app[CLOCK]())
    return {purpose.value: status.state.value for purpose, status in states.items()}


async def session_socket(request: web.Request) -> web.StreamResponse:
    """Upgrade to the session WebSocket after checking origin, identity and session state."""
    origin = request.headers.get("Origin")  # none from non-browser clients; cookies still count
    if origin is not None and not is_same_origin(request, origin):
        raise Forbidden("Cross-site WebSocket refused.", code="csrf")
    try:
        member = await _who(request, request.match_info["session_id"])
    except Unauthenticated as exc:
        return await _refuse(request, exc, CloseCode.UNAUTHORIZED)
    except NotFound as exc:
        return await _refuse(request, exc, CloseCode.NOT_FOUND)
    role, session = member.role, member.session
    if session.status in (SessionStatus.ENDED, SessionStatus.CANCELLED):
        ended = NotFound("This session has ended.", code="session-ended")
        return await _refuse(request, ended, CloseCode.SESSION_ENDED)
    app = request.app
    consents = await _consent_states(request, member.consent_subject or member.client_id)
    if role is SessionRole.CLIENT and consents.get("telehealth") != ConsentState.GRANTED.value:
        needed = Forbidden("Please agree to the telehealth consent first.", code="consent-required")
        return await _refuse(request, needed, CloseCode.CONSENT_REQUIRED)

    ws = web.WebSocketResponse(max_msg_size=HARD_FRAME_LIMIT_BYTES, autoping=False)
    await ws.prepare(request)
    hub = app[HUB]
    access_id = member.client_access_id
    if access_id is not None and (
        hub.connections_of_client_access(access_id) >= MAX_KNOCKS_PER_CLIENT_ACCESS
    ):
        await _refuse_knock(ws)
        return ws
    connection = Connection(
        conn_id=hub.new_conn_id(),
        ws=ws,
        role=role,
        session_id=session.id,
        client_id=member.client_id,
        account=member.account,
        sign_in_id=member.sign_in_id,
        client_access_id=access_id,
        another_device=member.another_device,
    )
    ref = ConnRef(
        connection.conn_id,
        role,
        session.id,
        member.client_id,
        member.account,
        sign_in_id=member.sign_in_id,
        client_access_id=access_id,
        another_device=member.another_device,
        participant_id=member.participant_id or None,
        kind=member.kind,
    )
    hub.add(connection)
    joined = False
    try:
        # Access that ended while this socket was being set up missed `close_connections`:
        # look again now that the connection is tracked.
        await _recheck_access(request, connection)
        hello = await _handshake(ws)
        if hello is None or connection.revoked:
            return ws
        settings = app[SETTINGS]
        ice = ice_configuration_for(
            settings, now_unix=int(app[CLOCK]().timestamp()), opaque_id=secrets.token_hex(8)
        )
        joined = True
        try:
            await hub.bus.submit(
                RoomOp(
                    "join",
                    ref,
                    label=member.label,
                    resume=hello.resume,
                    ice_servers=ice["iceServers"],
                    ice_transport_policy=IceTransportPolicy(ice["iceTransportPolicy"]),
                    ice_ttl_seconds=ice["ttlSeconds"],
                    consents=consents,
                )
            )
            await _read_loop(hub, connection, ref)
        except BusUnavailable as exc:
            # Nothing can be routed now (Redis away): "try again later", not "gone". The page
            # reconnects with back-off and resumes; the call's media never needed us.
            log.info("closing a socket: live sessions cannot be routed now (%s)", exc)
            connection.revoke(CloseCode.TRY_AGAIN_LATER, LIVE_UNAVAILABLE_REASON)
    finally:
        try:
            if joined:
                # without a goodbye (close 1000) the therapist's seat is held for resume too
                dropped = ws.close_code != WSCloseCode.OK
                await _leave_room(hub, RoomOp("leave", ref, dropped=dropped))
        finally:
            hub.remove(connection.conn_id)
            if not ws.closed:
                code, reason = connection.revoked_with or (CloseCode.NORMAL, "")
                with contextlib.suppress(ConnectionResetError, RuntimeError):
                    await ws.close(code=code, message=reason.encode()[:120])
    return ws


async def _leave_room(hub: Hub, op: RoomOp) -> None:
    """Tell the room that a connection has gone, and finish doing so even if this handler is
    cancelled meanwhile: a server may cancel the handler of a socket whose peer hung up
    (aiohttp's `handler_cancellation`, its test server, a shutdown), and a leave lost that way
    left the other side never hearing `peer-left` and a dead connection in the room."""
    with contextlib.suppress(Exception):  # logged by the hub
        await asyncio.shield(hub.leave_surely(op))


async def _refuse(request: web.Request, error: AttuneError, code: CloseCode) -> web.StreamResponse:
    """A refused socket: a WebSocket upgrade is accepted and closed at once with `code` and
    the error's words as the reason, so the page can explain instead of retrying; a plain
    HTTP request gets the HTTP error. Either way the refusal is audited like any other."""
    ws = web.WebSocketResponse()
    if not ws.can_prepare(request).ok:
        raise error
    await record_denial(request, error.status, error.code)
    await ws.prepare(request)
    await ws.close(code=code, message=error.message.encode()[:MAX_CLOSE_REASON_BYTES])
    return ws


async def _recheck_access(request: web.Request, connection: Connection) -> None:
    """Revoke the connection if the sign-in or cookie it was opened with has ended since."""
    await resolve_identity(request)
    try:
        again = await _who(request, connection.session_id)
    except AttuneError:
        again = None
    if (
        again is None
        or again.role is not connection.role
        or again.sign_in_id != connection.sign_in_id
        or again.client_access_id != connection.client_access_id
    ):
        reason = AccessEnd.SIGNED_OUT if connection.account else AccessEnd.LINK_REVOKED
        connection.revoke(CloseCode.UNAUTHORIZED, reason.value)


async def _refuse_knock(ws: web.WebSocketResponse) -> None:
    """One client cookie already has MAX_KNOCKS_PER_CLIENT_ACCESS sockets: say so and close
    for good (4429), so the page does not reconnect into the same refusal."""
    log.info("refused a knock: too many sockets of one client link")
    with contextlib.suppress(ConnectionResetError, RuntimeError):
        await ws.send_json(
            ErrorMessage(
                code=ErrorCode.TOO_MANY_KNOCKS,
                message="This link is already open in too many windows; close one and reload.",
            ).to_json()
        )
        await ws.close(
            code=CloseCode.TOO_MANY_MESSAGES, message=AccessEnd.TOO_MANY_KNOCKS.value.encode()
        )


async def _handshake(ws: web.WebSocketResponse) -> Hello | None:
    """The first message must be a supported `hello`, within HELLO_TIMEOUT_S."""
    try:
        msg = await ws.receive(timeout=HELLO_TIMEOUT_S)
    except TimeoutError:
        await ws.close(code=CloseCode.HANDSHAKE_FAILED, message=b"no hello")
        return None
    if msg.type != WSMsgType.TEXT:
        await ws.close(code=CloseCode.HANDSHAKE_FAILED, message=b"expected hello")
        return None
    try:
        parsed = parse_client_message(msg.data)
        if not isinstance(parsed, Hello):
            raise ProtocolError(ErrorCode.HELLO_REQUIRED, "Send `hello` first.")
        check_version(parsed)
    except ProtocolError as exc:
        await ws.send_json(exc.to_message())
        await ws.close(code=CloseCode.HANDSHAKE_FAILED, message=exc.code.encode())
        return None
    return parsed


async def _frames(ws: web.WebSocketResponse) -> AsyncGenerator[str | None, None]:
    """Text frames, and None for a binary one (answered by the read loop, like any bad frame);
    pings after PING_AFTER_IDLE_S of silence, drops at DROP_AFTER_IDLE_S.

    Frames are read with no timeout of their own: a timeout per frame (a timer and a context
    manager each) cost a large share of this loop's time. A watchdog task per socket looks at
    the time of the last frame instead, waking only when the socket could have gone quiet."""
    heard = _Heard(time.monotonic())
    watchdog = asyncio.create_task(_watch_idle(ws, heard))
    try:
        while not ws.closed:
            msg = await ws.receive()
            heard.at = time.monotonic()
            if msg.type == WSMsgType.TEXT:
                yield msg.data
            elif msg.type == WSMsgType.PING:
                await ws.pong(msg.data)
            elif msg.type == WSMsgType.BINARY:
                yield None
            elif msg.type in (
                WSMsgType.CLOSE,
                WSMsgType.CLOSING,
                WSMsgType.CLOSED,
                WSMsgType.ERROR,
            ):
                return
    finally:
        if heard.closing:
            await watchdog  # its close is under way: let it send IDLE_TIMEOUT
        else:
            watchdog.cancel()


@dataclass
class _Heard:
    """When a socket last sent anything (time.monotonic()), and whether its watchdog is
    closing it."""

    at: float
    closing: bool = False


async def _watch_idle(ws: web.WebSocketResponse, heard: _Heard) -> None:
    """Ping a socket silent for PING_AFTER_IDLE_S (once per silence); close it with
    IDLE_TIMEOUT when nothing came for DROP_AFTER_IDLE_S (a half-open connection)."""
    pinged_for = -1.0  # the silence (its start) already pinged
    while not ws.closed:
        idle = time.monotonic() - heard.at
        if idle >= DROP_AFTER_IDLE_S:
            heard.closing = True
            with contextlib.suppress(ConnectionResetError, RuntimeError):
                await ws.close(code=CloseCode.IDLE_TIMEOUT, message=b"idle")
            return
        if idle >= PING_AFTER_IDLE_S:
            if pinged_for != heard.at:
                pinged_for = heard.at
                with contextlib.suppress(ConnectionResetError, RuntimeError):
                    await ws.ping()
            wait = DROP_AFTER_IDLE_S - idle
        else:
            wait = PING_AFTER_IDLE_S - idle
        await asyncio.sleep(wait)


async def _read_loop(hub: Hub, connection: Connection, ref: ConnRef) -> None:
    """Limits and parsing here, where the socket is; the action runs where the room is."""
    started_ms = int(time.monotonic() * 1000)  # the buckets run on the monotonic clock
    limiter = RateLimiter(started_ms)
    # Dropped messages spend from a second bucket: a burst is forgiven, a flood is not.
    patience = RateLimiter(
        started_ms, per_second=FLOOD_FORGIVE_PER_SECOND, burst=FLOOD_CLOSE_AFTER_DROPPED
    )
    frames = contextlib.aclosing(_frames(connection.ws))  # its watchdog ends with the loop
    async with frames as texts:
        async for text in texts:
            if connection.revoked:
                return  # access ended: a message read after that is never processed
            received_at = time.monotonic()
            received_ms = int(received_at * 1000)
            if not limiter.allow(received_ms):
                if not patience.allow(received_ms):
                    # One log line per connection, then the socket is gone for good (no reconnect).
                    log.warning("closing a connection that kept exceeding the message rate")
                    connection.revoke(
                        CloseCode.TOO_MANY_MESSAGES, AccessEnd.TOO_MANY_MESSAGES.value
                    )
                    return
                connection.queue(
                    ErrorMessage(
                        code=ErrorCode.RATE_LIMITED, message="Too many messages; slow down."
                    )
                )
                continue
            if text is None:  # through the writer queue, like every message to this socket
                connection.queue(
                    ErrorMessage(code=ErrorCode.INVALID, message="Send JSON text frames.")
                )
                continue
            message: ClientMessage | None = None
            try:
                message = parse_client_message(text)
                check_role(connection.role, message)
                check_kind(ref.kind, message)  # a guest: hello, relay, leave, ping only
            except ProtocolError as exc:
                ref_id = exc.ref or (message.id if message is not None else None)
                connection.put(exc.to_message(ref=ref_id))
                continue
            await hub.bus.submit(
                RoomOp(
                    "message",
                    ref,
                    text=text,
                    parsed=message,
                    received_at=received_at,
                    message_type=message.TYPE,
                )
            )


class SessionRunner:
    """What the owner of a room does with each action: the room core, then the live
    operations, whichever process the socket is on (server.realtime.bus.RoomRunner)."""

    def __init__(self, app: web.Application) -> None:
        self._app = app

    async def run(self, op: RoomOp) -> Change:
        if op.kind == "join":
            await self._join(op)
        elif op.kind == "leave":
            hub = self._app[HUB]
            hub.conn_refs.pop(op.ref.conn_id, None)
            hub.execute(
                hub.rooms.leave(op.ref.session_id, op.ref.conn_id, _now_ms(), dropped=op.dropped)
            )
        elif op.kind == "message":
            await self._message(op)
            return self._change_of(op)
        else:
            log.warning("unknown room action %r", op.kind)
        return Change.NOW

    def _change_of(self, op: RoomOp) -> Change:
        """What a message may have changed: relays and pings nothing stored; `features` only
        the cue engine's windows, and only while it runs for the session (a prompt it raised
        went out through `deliver_to_therapist`, which marks the room changed itself)."""
        kind = op.message_type or (op.parsed.TYPE if op.parsed is not None else "")
        if kind in _CHANGES_NOTHING:
            return Change.NONE
        if kind == Features.TYPE:
            active = self._app[LIVE].cues.active(op.ref.session_id)
            return Change.LATER if active else Change.NONE
        return Change.NOW

    async def adopt(self, session_id: str, client_id: str, live: Mapping[str, Any]) -> None:
        """A room taken over: consent flags from the database (the durable copy), the rest of
        what the live operations keep from the stored snapshot."""
        app = self._app
        if client_id:
            states = await app[CONSENTS].state(app[DB], client_id, app[CLOCK]())
            app[LIVE].note_consents(
                client_id, {purpose.value: st.state.value for purpose, st in states.items()}
            )
        app[LIVE].restore_live(session_id, live)

    def snapshot(self, session_id: str) -> dict[str, Any]:
        return self._app[LIVE].live_snapshot(session_id)

    async def _join(self, op: RoomOp) -> None:
        hub, live, ref = self._app[HUB], self._app[LIVE], op.ref
        if _over_knock_cap(hub, ref):
            log.info("refused a knock: too many sockets of one client link in the room")
            too_many = ErrorMessage(
                code=ErrorCode.TOO_MANY_KNOCKS,
                message="This link is already open in too many windows; close one and reload.",
            )
            close = Close(ref.conn_id, CloseCode.TOO_MANY_MESSAGES, AccessEnd.TOO_MANY_KNOCKS.value)
            hub.execute([Send(ref.conn_id, too_many.to_json()), close])
            return
        if ref.kind is PersonKind.CLIENT:  # perhaps not the session's primary client
            hub.room_clients.setdefault(ref.session_id, ref.client_id)
        else:  # the therapist's and a guest's client id is the primary client's
            hub.room_clients[ref.session_id] = ref.client_id
        hub.conn_refs[ref.conn_id] = ref
        person = None
        if ref.role is SessionRole.CLIENT:
            client_id = ref.client_id if ref.kind is PersonKind.CLIENT else None
            person = Person(ref.peer_id, ref.kind, client_id)
        hub.execute(
            hub.rooms.join(
                ref.session_id,
                ref.conn_id,
                ref.role,
                op.label,
                _now_ms(),
                resume_token=op.resume,
                ice_servers=op.ice_servers,
                ice_transport_policy=op.ice_transport_policy,
                ice_ttl_seconds=op.ice_ttl_seconds,
                consents=op.consents,
                person=person,
            )
        )
        if ref.kind is not PersonKind.GUEST:  # a guest's consents are not a client's
            live.note_consents(ref.client_id, op.consents)
        room = hub.rooms.get(ref.session_id)
        in_room = room is not None and room.role_of(ref.conn_id) is not None
        waiting_to_act = ref.another_device  # "another device" cannot answer it yet
        client = ref.kind is PersonKind.CLIENT  # a guest gets no check-ins and no goals
        if in_room and client and not waiting_to_act and live.before_checkin_due(ref.session_id):
            hub.send(ref.conn_id, live.checkin_open("before"))
        if in_room and ref.role is SessionRole.THERAPIST and ref.account is not None:
            # the panel so far, so a reload (or a takeover) rebuilds it
            await live.send_panel_state(ref.session_id, ref.account.id)
        if in_room and not waiting_to_act and ref.client_id and ref.kind is not PersonKind.GUEST:
            # the shared goals as they stand, for the goals panel on either side
            hub.send(ref.conn_id, await live.goals_message(ref.client_id))

    async def _message(self, op: RoomOp) -> None:
        hub = self._app[HUB]
        ref = hub.conn_refs.get(op.ref.conn_id, op.ref)  # the owner's view is the current one
        message: ClientMessage | None = op.parsed
        try:
            if message is None:
                message = parse_client_message(op.text)
                check_role(ref.role, message)
                check_kind(ref.kind, message)
            room = hub.rooms.get(ref.session_id)
            if room is None:
                raise ProtocolError(ErrorCode.INTERNAL, "The room is gone; reconnect.")
            if message.TYPE in CALL_ONLY_TYPES and not room.in_call(ref.conn_id):
                raise ProtocolError(ErrorCode.NOT_ADMITTED, "Wait until you are admitted.")
            handler = _HANDLERS.get(type(message))
            if handler is None:
                raise ProtocolError(ErrorCode.INVALID, f"`{message.TYPE}` is not available yet.")
            received_at = op.received_at if op.received_at is not None else time.monotonic()
            await handler(_Context(self._app, ref, room, received_at), message)
        except ProtocolError as exc:
            ref_id = exc.ref or (message.id if message is not None else None)
            hub.execute([Send(ref.conn_id, exc.to_message(ref=ref_id))])
        except AttuneError as exc:  # a live operation refused: the socket stays up
            error = _as_protocol_error(exc).to_message(ref=message.id if message else None)
            hub.execute([Send(ref.conn_id, error)])
        except Exception as exc:
            if not is_database_outage(exc):
                raise
            # Not acknowledged, so the page keeps the answer and sends it again later.
            log.warning("database unreachable during a live operation (%s)", type(exc).__name__)
            unavailable = ProtocolError(ErrorCode.INTERNAL, DATABASE_UNAVAILABLE_MESSAGE)
            hub.execute(
                [Send(ref.conn_id, unavailable.to_message(ref=message.id if message else None))]
            )


_CHANGES_NOTHING = frozenset({Relay.TYPE, Ping.TYPE})
"""Messages that change nothing a takeover needs: the room's state is not written after them."""


def _over_knock_cap(hub: Hub, ref: ConnRef) -> bool:
    """Whether the room already has MAX_KNOCKS_PER_CLIENT_ACCESS sockets of this client
    cookie, on whichever processes they are: the room's owner sees every join of the room,
    so the cap holds across processes (the socket's own process checks its sockets first).
    A resume takes its place back, so it never counts against itself."""
    access_id = ref.client_access_id
    room = hub.rooms.get(ref.session_id)
    if access_id is None or room is None:
        return False
    open_here = sum(
        1
        for other in list(hub.conn_refs.values())
        if other.client_access_id == access_id
        and other.session_id == ref.session_id
        and room.role_of(other.conn_id) is not None
    )
    return open_here >= MAX_KNOCKS_PER_CLIENT_ACCESS


def _as_protocol_error(exc: AttuneError) -> ProtocolError:
    """Map a domain error from a live operation to the protocol's error codes."""
    if exc.code == "no-peer":
        return ProtocolError(ErrorCode.NO_PEER, exc.message)
    if isinstance(exc, Forbidden):
        return ProtocolError(ErrorCode.FORBIDDEN, exc.message)
    return ProtocolError(ErrorCode.INVALID, exc.message)


@dataclass(slots=True)
class _Context:
    """What a message handler works with: the app's services, the connection, its room.
    Built per message, so not frozen (a frozen dataclass's `__init__` costs several times as
    much); no handler changes it."""

    app: web.Application
    connection: ConnRef
    room: Room
    received_at: float  # time.monotonic() when the frame arrived

    @property
    def live(self) -> LiveSessions:
        return self.app[LIVE]

    @property
    def hub(self) -> Hub:
        return self.app[HUB]

    def reply(self, message: SharedMessage) -> None:
        """Answer the connection that sent the message, wherever its socket is."""
        self.hub.send(self.connection.conn_id, message)


async def _ping(ctx: _Context, message: Ping) -> None:
    ctx.reply(PongMessage(ref=message.id))


async def _relay(ctx: _Context, message: Relay) -> None:
    ctx.hub.execute(
        ctx.room.relay(ctx.connection.conn_id, message.payload, message.to),
        received_at=ctx.received_at,
    )


async def _admit(ctx: _Context, message: Admit) -> None:
    ctx.hub.execute(ctx.room.admit(ctx.connection.conn_id, message.knock_id))
    await ctx.live.mark_live(ctx.connection.session_id)
    admitted_id = ctx.room.conn_of_knock(message.knock_id)
    admitted = ctx.hub.conn_refs.get(admitted_id) if admitted_id is not None else None
    if admitted is not None and admitted.kind is PersonKind.CLIENT:
        # the goals as they stand now: they may have changed while the client waited
        ctx.hub.send(admitted.conn_id, await ctx.live.goals_message(admitted.client_id))
    if admitted is not None and admitted.client_access_id is not None:
        await ctx.live.admit_device(ctx.connection.session_id, admitted.client_access_id)
        # its cookie is the link's one device now
        ctx.hub.conn_refs[admitted.conn_id] = replace(admitted, another_device=False)
        local = ctx.hub.connection(admitted.conn_id)
        if local is not None:
            local.another_device = False


async def _deny(ctx: _Context, message: Deny) -> None:
    ctx.hub.execute(ctx.room.deny(ctx.connection.conn_id, message.knock_id))


async def _send_back(ctx: _Context, message: SendBack) -> None:
    ctx.hub.execute(ctx.room.send_back(ctx.connection.conn_id, _now_ms(), message.peer_id))


async def _end(ctx: _Context, _message: End) -> None:
    account = ctx.connection.account
    assert account is not None  # only the therapist's connection may send `end`
    await ctx.live.end_session(account, ctx.connection.session_id)


async def _waiting_note(ctx: _Context, message: WaitingNote) -> None:
    """Relayed to the waiting clients; neither stored nor logged."""
    ctx.hub.execute(ctx.room.waiting_note(ctx.connection.conn_id, message.text, _now_ms()))


async def _leave(ctx: _Context, _message: Leave) -> None:
    """The client's quick exit; its page closes the socket (1000) right after."""
    ctx.hub.execute(ctx.room.quick_exit(ctx.connection.conn_id))


async def _screen_share(ctx: _Context, message: ScreenShare) -> None:
    """Sharing started or stopped: relayed to the other side (the media goes peer to peer)."""
    stream_id = message.stream_id if message.sharing else None
    ctx.hub.execute(ctx.room.screen_share(ctx.connection.conn_id, stream_id, _now_ms()))


async def _screen_share_allow(ctx: _Context, message: ScreenShareAllow) -> None:
    ctx.hub.execute(ctx.room.allow_screen_share(ctx.connection.conn_id, message.allowed))


async def _signal(ctx: _Context, message: Signal) -> None:
    ref = ctx.connection
    await ctx.live.record_signal(
        ref.session_id, ref.client_id, message.signal, peer_id=ref.peer_id, kind=ref.kind
    )


async def _features(ctx: _Context, message: Features) -> None:
    ctx.app[METRICS].features_frame()
    if message.body.get("role") != ctx.connection.role:  # a StrEnum equals its text
        raise ProtocolError(ErrorCode.INVALID, "features.role must be your own role.")
    ref = ctx.connection  # a client's own record; a guest's features are dropped there
    await ctx.live.feed_features(
        ref.session_id, ref.client_id, message.body, peer_id=ref.peer_id, kind=ref.kind
    )


async def _prompt_feedback(ctx: _Context, message: PromptFeedbackMessage) -> None:
    ctx.live.prompt_feedback(
        ctx.connection.session_id, message.prompt_id, message.feedback, message.minutes
    )


def _spend_client_write(
    ctx: _Context, kind: ClientWrite, *, another_device_may: bool = False
) -> None:
    """The same per-cookie write limits as over HTTP; a device still waiting as "another
    device" may not act for the client (but where `another_device_may`)."""
    access_id = ctx.connection.client_access_id
    if access_id is None:
        return
    if ctx.connection.another_device and not another_device_may:
        raise ProtocolError(ErrorCode.FORBIDDEN, ANOTHER_DEVICE_MESSAGE)
    try:
        ctx.app[CLIENT_WRITES].spend(kind, access_id, ctx.app[CLOCK]().timestamp())
    except RateLimited as exc:
        raise ProtocolError(ErrorCode.RATE_LIMITED, exc.message) from None


async def _checkin_answer(ctx: _Context, message: CheckinAnswer) -> None:
    """Acknowledged only after the durable write (the live operation returns after it)."""
    if ctx.connection.kind is not PersonKind.CLIENT:
        raise ProtocolError(ErrorCode.FORBIDDEN, "Only a client answers check-ins.")
    _spend_client_write(ctx, ClientWrite.CHECKIN)
    await ctx.live.submit_checkin(
        ctx.connection.session_id,
        instrument_id=message.instrument_id,
        answers=message.answers,
        idempotency_key=message.idempotency_key,
        language=message.language,
        client_id=ctx.connection.client_id,  # the answering client's own record
    )
    ctx.reply(CheckinAckMessage(idempotency_key=message.idempotency_key, ref=message.id))


async def _checkin_launch(ctx: _Context, message: CheckinLaunch) -> None:
    ctx.live.launch_checkin(ctx.connection.session_id, message.instrument_id)


async def _consent(ctx: _Context, message: Consent) -> None:
    agrees_to_telehealth = (
        message.purpose is Purpose.TELEHEALTH and message.decision is ConsentDecision.GRANTED
    )
    _spend_client_write(ctx, ClientWrite.CONSENT, another_device_may=agrees_to_telehealth)
    await ctx.live.decide_consent(
        ctx.connection.client_id,
        message.purpose,
        message.decision,
        message.notice_version,
        Channel.API,
    )


def _goal_actor(ctx: _Context) -> str:
    """Who changed a goal, as the audit trail names them (never a person's name)."""
    account = ctx.connection.account
    return f"account:{account.id}" if account is not None else "client"


async def _goal_change(ctx: _Context, message: GoalAdd | GoalEdit | GoalStatusMessage) -> None:
    """Either party in the call changes a shared goal; both screens get `goals`."""
    if ctx.connection.role is SessionRole.CLIENT:
        _spend_client_write(ctx, ClientWrite.GOAL)
    await ctx.live.change_goal(
        ctx.connection.session_id,
        ctx.connection.client_id,
        role=ctx.connection.role,
        actor=_goal_actor(ctx),
        text=message.text if not isinstance(message, GoalStatusMessage) else None,
        goal_id=message.goal_id if not isinstance(message, GoalAdd) else None,
        status=message.status if isinstance(message, GoalStatusMessage) else None,
    )


_Handler = Callable[[_Context, Any], Awaitable[None]]
_HANDLERS: Mapping[type[ClientMessage], _Handler] = MappingProxyType(
    {
        Ping: _ping,
        Relay: _relay,
        Admit: _admit,
        Deny: _deny,
        SendBack: _send_back,
        End: _end,
        Leave: _leave,
        WaitingNote: _waiting_note,
        ScreenShare: _screen_share,
        ScreenShareAllow: _screen_share_allow,
        Signal: _signal,
        Features: _features,
        PromptFeedbackMessage: _prompt_feedback,
        CheckinAnswer: _checkin_answer,
        CheckinLaunch: _checkin_launch,
        Consent: _consent,
        GoalAdd: _goal_change,
        GoalEdit: _goal_change,
        GoalStatusMessage: _goal_change,
    }
)
"""One handler per client message type: parsing is done, roles are checked, the rest is
the live operation's (server.services.live_session)."""


async def expire_rooms_loop(hub: Hub) -> None:
    """Once a second: resume slots whose grace ran out are given up (in the rooms this process
    holds; with several processes the bus writes the change with its next renewal)."""
    while True:
        await asyncio.sleep(1.0)
        now_ms = _now_ms()
        rooms = [room.session_id for room in hub.rooms]
        for start in range(0, len(rooms), _EXPIRY_SHARE):
            if start:  # thousands of rooms: let frames through between shares
                await asyncio.sleep(0)
            for session_id in rooms[start : start + _EXPIRY_SHARE]:
                room = hub.rooms.get(session_id)
                deadline = room.next_deadline_ms() if room is not None else None
                if deadline is not None and deadline <= now_ms:
                    hub.execute(hub.rooms.expire_room(session_id, now_ms))
                    hub.bus.changed(session_id)


_EXPIRY_SHARE = 500  # rooms looked at between two turns of the event loop


async def close_sockets_on_shutdown(app: web.Application) -> None:
    """Close live sockets with GOING_AWAY before aiohttp waits for handlers to finish."""
    await app[HUB].close_all()


def add_signaling_routes(app: web.Application) -> None:
    """The session WebSocket, and closing it cleanly on shutdown."""
    app.router.add_get("/ws/session/{session_id}", session_socket)
    app.on_shutdown.append(close_sockets_on_shutdown)

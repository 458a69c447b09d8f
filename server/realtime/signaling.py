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
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import WSMsgType, web

from privacy.consent import Channel, ConsentState, Purpose
from server.core.checkins import questionnaire_resource
from server.core.cues.config import CueConfig
from server.core.ice import ice_configuration_for
from server.core.links import SessionStatus
from server.core.models import Role, TherapySession
from server.core.protocol import (
    CALL_ONLY_TYPES,
    DROP_AFTER_IDLE_S,
    HARD_FRAME_LIMIT_BYTES,
    HELLO_TIMEOUT_S,
    PING_AFTER_IDLE_S,
    Admit,
    CheckinAnswer,
    CheckinLaunch,
    ClientMessage,
    CloseCode,
    Consent,
    Deny,
    End,
    EndReason,
    ErrorCode,
    Features,
    Hello,
    Ping,
    PromptFeedbackMessage,
    ProtocolError,
    RateLimiter,
    Relay,
    SendBack,
    SessionRole,
    Signal,
    check_role,
    check_version,
    parse_client_message,
    server_message,
)
from server.db import scheduling as session_queries
from server.errors import AttuneError, Forbidden, NotFound, Unauthenticated
from server.keys import AUDIT, CHECKINS, CLOCK, CONSENTS, CUE_RECORDS, DB, SETTINGS
from server.middlewares import is_same_origin
from server.realtime.hub import Connection, Hub
from server.services import scheduling
from server.services.checkins import alert_json, scores_json
from server.web.identity import client_visit, signed_in

log = logging.getLogger("attune.realtime")
HUB = web.AppKey("hub", Hub)


def _now_ms() -> int:
    """Unix milliseconds: the lobby shows them as "waiting since" (docs/protocol.md)."""
    return int(time.time() * 1000)


async def _who(request: web.Request, session_id: str) -> tuple[SessionRole, TherapySession, str]:
    """The role this request may take in the session, the session, and a display label."""
    account = signed_in(request)
    if account is not None and account.account.role is Role.THERAPIST:
        async with request.app[DB].read() as conn:
            session = await session_queries.session_for(conn, account.account.id, session_id)
        if session is not None:
            return SessionRole.THERAPIST, session, "Therapist"
    visit = client_visit(request)
    if visit is not None and visit.session.id == session_id:
        return SessionRole.CLIENT, visit.session, visit.session.client_alias
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
    role, session, label = await _who(request, request.match_info["session_id"])
    if session.status in (SessionStatus.ENDED, SessionStatus.CANCELLED):
        raise NotFound("This session has ended.")
    app = request.app
    consents = await _consent_states(request, session.client_id)
    if role is SessionRole.CLIENT and consents.get("telehealth") != ConsentState.GRANTED.value:
        raise Forbidden("Please agree to the telehealth consent first.", code="consent-required")

    ws = web.WebSocketResponse(max_msg_size=HARD_FRAME_LIMIT_BYTES, autoping=False)
    await ws.prepare(request)
    hub = app[HUB]
    connection = Connection(
        conn_id=hub.new_conn_id(),
        ws=ws,
        role=role,
        session_id=session.id,
        client_id=session.client_id,
    )
    hub.add(connection)
    joined = False
    try:
        hello = await _handshake(ws)
        if hello is None:
            return ws
        settings = app[SETTINGS]
        ice = ice_configuration_for(
            settings, now_unix=int(app[CLOCK]().timestamp()), opaque_id=secrets.token_hex(8)
        )
        hub.execute(
            hub.rooms.join(
                session.id,
                connection.conn_id,
                role,
                label,
                _now_ms(),
                resume_token=hello.resume,
                ice_servers=ice["iceServers"],
                consents=consents,
            )
        )
        joined = True
        hub.cue_allowed[session.client_id] = consents.get("cue_analysis") == "granted"
        if role is SessionRole.CLIENT:
            _open_before_checkin(request, connection)
        await _read_loop(request, connection)
    finally:
        if joined:
            hub.execute(hub.rooms.leave(session.id, connection.conn_id, _now_ms()))
        hub.remove(connection.conn_id)
        if not ws.closed:
            await ws.close()
    return ws


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


async def _frames(ws: web.WebSocketResponse) -> AsyncIterator[str]:
    """Text frames; pings after PING_AFTER_IDLE_S of silence, drops at DROP_AFTER_IDLE_S."""
    last_heard = time.monotonic()
    while not ws.closed:
        idle = time.monotonic() - last_heard
        wait = PING_AFTER_IDLE_S - idle if idle < PING_AFTER_IDLE_S else DROP_AFTER_IDLE_S - idle
        if wait <= 0:
            await ws.close(code=CloseCode.IDLE_TIMEOUT, message=b"idle")
            return
        try:
            msg = await ws.receive(timeout=wait)
        except TimeoutError:
            if time.monotonic() - last_heard < DROP_AFTER_IDLE_S:
                with contextlib.suppress(ConnectionResetError, RuntimeError):
                    await ws.ping()
            continue
        last_heard = time.monotonic()
        if msg.type == WSMsgType.TEXT:
            yield msg.data
        elif msg.type == WSMsgType.PING:
            await ws.pong(msg.data)
        elif msg.type == WSMsgType.BINARY:
            await ws.send_json(
                server_message("error", code=ErrorCode.INVALID, message="Send JSON text frames.")
            )
        elif msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
            return


async def _read_loop(request: web.Request, connection: Connection) -> None:
    hub = request.app[HUB]
    limiter = RateLimiter(_now_ms())
    async for text in _frames(connection.ws):
        if not limiter.allow(_now_ms()):
            connection.queue(
                server_message(
                    "error", code=ErrorCode.RATE_LIMITED, message="Too many messages; slow down."
                )
            )
            continue
        message: ClientMessage | None = None
        try:
            message = parse_client_message(text)
            check_role(connection.role, message)
            room = hub.rooms.get(connection.session_id)
            if room is None:
                raise ProtocolError(ErrorCode.INTERNAL, "The room is gone; reconnect.")
            if message.TYPE in CALL_ONLY_TYPES and not room.in_call(connection.conn_id):
                raise ProtocolError(ErrorCode.NOT_ADMITTED, "Wait until you are admitted.")
            await _dispatch(request, connection, message)
        except ProtocolError as exc:
            ref = exc.ref or (message.id if message is not None else None)
            connection.queue(exc.to_message(ref=ref))


async def _dispatch(request: web.Request, connection: Connection, message: ClientMessage) -> None:
    """One message → one room action (or service call)."""
    app = request.app
    hub = app[HUB]
    room = hub.rooms.get(connection.session_id)
    assert room is not None
    conn_id = connection.conn_id
    if isinstance(message, Ping):
        connection.queue(server_message("pong"))
    elif isinstance(message, Relay):
        hub.execute(room.relay(conn_id, message.payload))
    elif isinstance(message, Admit):
        hub.execute(room.admit(conn_id, message.knock_id))
        await _mark_live(request, connection)
    elif isinstance(message, Deny):
        hub.execute(room.deny(conn_id, message.knock_id))
    elif isinstance(message, SendBack):
        hub.execute(room.send_back(conn_id, _now_ms()))
    elif isinstance(message, End):
        await _end_session(request, connection)
    elif isinstance(message, Signal):
        therapist = room.therapist_conn_id
        if therapist is not None:
            hub.send(therapist, server_message("client-signal", signal=message.signal))
        if hub.cue_allowed.get(connection.client_id):
            t_ms = hub.cues.signal(connection.session_id, message.signal.value)
            await app[CUE_RECORDS].store_signal(
                app[DB],
                session_id=connection.session_id,
                client_id=connection.client_id,
                kind=message.signal.value,
                t_ms=t_ms,
                now=app[CLOCK](),
            )
    elif isinstance(message, Features):
        await _features(request, connection, message)
    elif isinstance(message, PromptFeedbackMessage):
        if not hub.cues.feedback(
            connection.session_id, message.prompt_id, message.feedback, message.minutes
        ):
            raise ProtocolError(ErrorCode.INVALID, "No such prompt in this session.")
    elif isinstance(message, CheckinAnswer):
        await _checkin_answer(request, connection, message)
    elif isinstance(message, CheckinLaunch):
        admitted = room.admitted_conn_id
        if admitted is None:
            raise ProtocolError(ErrorCode.NO_PEER, "No client is in the call.")
        hub.send(admitted, _checkin_open(request, message.instrument_id))
    elif isinstance(message, Consent):
        await app[CONSENTS].decide(
            app[DB],
            app[AUDIT],
            client_id=connection.client_id,
            purpose=message.purpose,
            decision=message.decision,
            notice_version=message.notice_version,
            channel=Channel.API,
            now=app[CLOCK](),
        )
    else:
        raise ProtocolError(ErrorCode.INVALID, f"`{message.TYPE}` is not available yet.")


async def _features(request: web.Request, connection: Connection, message: Features) -> None:
    """Cue features: used only while the client's cue_analysis consent is live, else dropped."""
    app = request.app
    hub = app[HUB]
    if message.body.get("role") != connection.role.value:
        raise ProtocolError(ErrorCode.INVALID, "features.role must be your own role.")
    if not hub.cue_allowed.get(connection.client_id):
        return  # consent is not live (or was just withdrawn): drop silently, keep nothing
    try:
        prompts = hub.cues.feed(connection.session_id, message.body)
    except ValueError as exc:  # FeatureError
        raise ProtocolError(ErrorCode.INVALID, str(exc)) from None
    room = hub.rooms.get(connection.session_id)
    therapist = room.therapist_conn_id if room is not None else None
    for prompt in prompts:
        shown = prompt.to_dict()
        if therapist is not None:
            hub.send(therapist, server_message("prompt", prompt=shown))
        await app[CUE_RECORDS].store_prompt(
            app[DB],
            session_id=connection.session_id,
            client_id=connection.client_id,
            prompt=shown,
            now=app[CLOCK](),
        )


def _checkin_open(request: web.Request, instrument_id: str) -> dict[str, Any]:
    instrument = request.app[CHECKINS].instrument(instrument_id)
    return server_message(
        "checkin-open",
        instrument_id=instrument.id,
        kind=instrument.kind,
        questionnaire=questionnaire_resource(instrument),
    )


def _open_before_checkin(request: web.Request, connection: Connection) -> None:
    """The before-session check-in opens in the waiting room, once per session."""
    done = any(
        r.instrument.kind == "before"
        for r in request.app[CHECKINS].live_results(connection.session_id)
    )
    if not done:
        connection.queue(_checkin_open(request, "before"))


async def _checkin_answer(
    request: web.Request, connection: Connection, message: CheckinAnswer
) -> None:
    """Score, store (with consent), ack after the durable write, tell only the therapist."""
    app = request.app
    async with app[DB].read() as conn:
        session = await session_queries.session_by_id(conn, connection.session_id)
    if session is None:
        raise ProtocolError(ErrorCode.INTERNAL, "The session is gone.")
    try:
        result, duplicate = await app[CHECKINS].submit(
            app[DB],
            session=session,
            instrument_id=message.instrument_id,
            answers=message.answers,
            idempotency_key=message.idempotency_key,
            now=app[CLOCK](),
        )
    except AttuneError as exc:
        raise ProtocolError(ErrorCode.INVALID, exc.message) from None
    connection.queue(
        server_message("checkin-ack", idempotency_key=message.idempotency_key, ref=message.id)
    )
    room = app[HUB].rooms.get(connection.session_id)
    therapist = room.therapist_conn_id if room is not None else None
    if therapist is not None and not duplicate:
        app[HUB].send(
            therapist,
            server_message(
                "checkin-result",
                instrument_id=result.instrument.id,
                kind=result.instrument.kind,
                scores=scores_json(result.scores),
                alerts=[alert_json(a) for a in result.alerts],
            ),
        )


async def _mark_live(request: web.Request, connection: Connection) -> None:
    async with request.app[DB].write() as conn:
        session = await session_queries.session_by_id(conn, connection.session_id)
        if session is not None and session.status is SessionStatus.SCHEDULED:
            await session_queries.set_session_status(
                conn, connection.session_id, SessionStatus.LIVE, request.app[CLOCK]()
            )


async def _end_session(request: web.Request, connection: Connection) -> None:
    """The therapist ends the session: everyone is told, and the link stops working."""
    account = signed_in(request)
    assert account is not None
    app = request.app
    await scheduling.close_session(
        app[DB],
        app[AUDIT],
        account.account,
        connection.session_id,
        SessionStatus.ENDED,
        app[CLOCK](),
    )
    # Store the cue summary first: whoever sees `session-ended` can rely on it being kept.
    summary = app[HUB].cues.finish(connection.session_id)
    if summary is not None and app[HUB].cue_allowed.get(connection.client_id):
        await app[CUE_RECORDS].store_summary(
            app[DB],
            session_id=connection.session_id,
            client_id=connection.client_id,
            summary=summary.to_dict(),
            now=app[CLOCK](),
        )
    room = app[HUB].rooms.get(connection.session_id)
    for conn_id in room.client_conn_ids if room is not None else ():
        app[HUB].send(conn_id, _checkin_open(request, "after"))
    app[HUB].end_session(connection.session_id, EndReason.THERAPIST_ENDED)
    app[CHECKINS].forget_session(connection.session_id)


async def hub_cleanup_ctx(app: web.Application) -> AsyncIterator[None]:
    """The hub, its resume-expiry timer, and live reactions to consent changes."""
    hub = Hub(CueConfig().scaled(app[SETTINGS].cue_time_scale))
    app[HUB] = hub
    unsubscribe = app[CONSENTS].events.subscribe(hub.on_consent_changed)

    async def stop_feature_stream(_conn: Any, client_id: str) -> None:
        hub.cue_allowed[client_id] = False
        hub.stop_cues_for_client(client_id)

    app[CONSENTS].on_withdrawal(Purpose.CUE_ANALYSIS, "stop-feature-stream", stop_feature_stream)

    async def expire_loop() -> None:
        while True:
            await asyncio.sleep(1.0)
            hub.execute(hub.rooms.expire(_now_ms()))

    timer = asyncio.create_task(expire_loop())
    yield
    timer.cancel()
    unsubscribe()


async def close_sockets_on_shutdown(app: web.Application) -> None:
    """Close live sockets with GOING_AWAY before aiohttp waits for handlers to finish."""
    await app[HUB].close_all()


def add_signaling_routes(app: web.Application) -> None:
    """The session WebSocket, and closing it cleanly on shutdown."""
    app.router.add_get("/ws/session/{session_id}", session_socket)
    app.on_shutdown.append(close_sockets_on_shutdown)

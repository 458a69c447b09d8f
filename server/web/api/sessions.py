"""API: a therapist's sessions and their invite links."""

from __future__ import annotations

from typing import Final

from aiohttp import web

from server.core.links import SessionStatus
from server.keys import AUDIT, CLOCK, DB, HUB, LIVE, MAILER
from server.services import scheduling
from server.web.guard import SIGNED_IN
from server.web.identity import path_id
from server.web.openapi import Operation
from server.web.shapes import ERR, LINK_SCHEMA, SESSION_SCHEMA, join_url, list_of, session_json
from server.web.validation import parse_datetime, read_json

SESSION_CREATE_SCHEMA = {
    "type": "object",
    "required": ["client_id", "starts_at"],
    "additionalProperties": False,
    "properties": {
        "client_id": {"type": "string", "minLength": 32, "maxLength": 32},
        "starts_at": {"type": "string", "format": "date-time", "maxLength": 40},
        "minutes": {"type": "integer", "minimum": 5, "maximum": 480},
    },
}


async def list_sessions(request: web.Request) -> web.StreamResponse:
    therapist = request[SIGNED_IN].account
    items = await scheduling.list_sessions(request.app[DB], therapist)
    return web.json_response({"items": [session_json(request, s) for s in items]})


async def presence(request: web.Request) -> web.StreamResponse:
    """Who is waiting in, or in the call of, each of my open sessions (the dashboard polls)."""
    therapist = request[SIGNED_IN].account
    items = []
    open_ids = [
        s.id
        for s in await scheduling.list_sessions(request.app[DB], therapist)
        if s.status in (SessionStatus.SCHEDULED, SessionStatus.LIVE)
    ]
    # every process's rooms: those held elsewhere are read from their state in Redis
    for session_id, (waiting, in_call) in (await request.app[HUB].presence_of(open_ids)).items():
        if waiting or in_call:
            items.append({"session_id": session_id, "waiting": list(waiting), "in_call": in_call})
    return web.json_response({"items": items})


async def create_session(request: web.Request) -> web.StreamResponse:
    therapist = request[SIGNED_IN].account
    body = await read_json(request, SESSION_CREATE_SCHEMA)
    session, invite = await scheduling.create_session(
        request.app[DB],
        request.app[AUDIT],
        therapist,
        client_id=body["client_id"],
        starts_at=parse_datetime(body["starts_at"], "starts_at"),
        minutes=body.get("minutes", 50),
        now=request.app[CLOCK](),
        mail=request.app[MAILER],
    )
    payload = {
        "join_url": join_url(request, invite.token),
        "session": session_json(request, session),
    }
    return web.json_response(payload, status=201)


async def get_session(request: web.Request) -> web.StreamResponse:
    therapist = request[SIGNED_IN].account
    session = await scheduling.get_session(
        request.app[DB], therapist, path_id(request, "session_id")
    )
    return web.json_response(session_json(request, session))


async def reissue_invite(request: web.Request) -> web.StreamResponse:
    therapist = request[SIGNED_IN].account
    session_id = path_id(request, "session_id")
    invite = await scheduling.reissue_invite(
        request.app[DB],
        request.app[AUDIT],
        request.app[LIVE],
        therapist,
        session_id,
        request.app[CLOCK](),
        mail=request.app[MAILER],
    )
    session = await scheduling.get_session(request.app[DB], therapist, session_id)
    payload = {
        "join_url": join_url(request, invite.token),
        "session": session_json(request, session),
    }
    return web.json_response(payload, status=201)


async def revoke_invite(request: web.Request) -> web.StreamResponse:
    therapist = request[SIGNED_IN].account
    await scheduling.revoke_invite(
        request.app[DB],
        request.app[AUDIT],
        request.app[LIVE],
        therapist,
        path_id(request, "session_id"),
        request.app[CLOCK](),
    )
    return web.Response(status=204)


async def cancel_session(request: web.Request) -> web.StreamResponse:
    therapist = request[SIGNED_IN].account
    session_id = path_id(request, "session_id")
    await request.app[LIVE].end_session(therapist, session_id, SessionStatus.CANCELLED)
    session = await scheduling.get_session(request.app[DB], therapist, session_id)
    return web.json_response(session_json(request, session))


PRESENCE_SCHEMA = {
    "type": "object",
    "properties": {
        "items": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "session_id": {"type": "string"},
                    "waiting": {"type": "array", "items": {"type": "string"}},
                    "in_call": {"type": "boolean"},
                },
            },
        }
    },
}

OPERATIONS: Final[tuple[Operation, ...]] = (
    Operation(
        "GET",
        "/api/v1/sessions/presence",
        presence,
        "Who is waiting or in the call in my open sessions, now",
        "sessionPresence",
        auth="therapist",
        responses={200: ("Presence", PRESENCE_SCHEMA)},
        tags=["sessions"],
    ),
    Operation(
        "GET",
        "/api/v1/sessions",
        list_sessions,
        "List my sessions",
        "listSessions",
        auth="therapist",
        responses={200: ("Sessions", list_of(SESSION_SCHEMA))},
        tags=["sessions"],
    ),
    Operation(
        "POST",
        "/api/v1/sessions",
        create_session,
        "Schedule a session and mint its invite link",
        "createSession",
        auth="therapist",
        request_schema=SESSION_CREATE_SCHEMA,
        responses={
            201: ("Created, with the join link (shown once)", LINK_SCHEMA),
            404: ("Unknown client", ERR),
        },
        tags=["sessions"],
    ),
    Operation(
        "GET",
        "/api/v1/sessions/{session_id}",
        get_session,
        "One of my sessions",
        "getSession",
        auth="therapist",
        responses={200: ("Session", SESSION_SCHEMA), 404: ("Not found", ERR)},
        tags=["sessions"],
    ),
    Operation(
        "POST",
        "/api/v1/sessions/{session_id}/invite",
        reissue_invite,
        "Revoke the session's client's current link and issue a new one (another person's: "
        "POST .../participants/{participant_id}/invite)",
        "reissueInvite",
        auth="therapist",
        responses={
            201: ("New link (shown once)", LINK_SCHEMA),
            404: ("Not found", ERR),
            409: ("Session closed", ERR),
        },
        tags=["sessions"],
    ),
    Operation(
        "DELETE",
        "/api/v1/sessions/{session_id}/invite",
        revoke_invite,
        "Revoke the session's client's link (another person's ends when they are removed)",
        "revokeInvite",
        auth="therapist",
        responses={204: ("Revoked", None), 404: ("Not found", ERR)},
        tags=["sessions"],
    ),
    Operation(
        "POST",
        "/api/v1/sessions/{session_id}/cancel",
        cancel_session,
        "Cancel a session (its link stops working)",
        "cancelSession",
        auth="therapist",
        responses={
            200: ("Cancelled", SESSION_SCHEMA),
            404: ("Not found", ERR),
            409: ("Already closed", ERR),
        },
        tags=["sessions"],
    ),
)

"""The REST API under /api/v1 (JSON in, JSON out; errors via the error middleware)."""

from __future__ import annotations

import re
import secrets
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from aiohttp import web

from server.core.ice import ice_configuration_for
from server.core.links import SessionStatus
from server.core.models import Account, Client, Role, TherapySession
from server.core.protocol import EndReason
from server.errors import Unauthenticated
from server.keys import API_OPERATIONS, AUDIT, CLOCK, DB, SETTINGS, VAULT
from server.realtime.signaling import HUB
from server.services import accounts as account_service
from server.services import erasure, scheduling
from server.services import notes as note_service
from server.services.notes import Note
from server.web.identity import (
    clear_cookie,
    client_visit,
    cookie_names,
    path_id,
    require_account,
    set_cookie,
    signed_in,
)
from server.web.openapi import Operation, openapi_document
from server.web.sign_in_guard import (
    begin_sign_in,
    set_device_cookie,
    sign_in_failed,
    sign_in_succeeded,
)
from server.web.validation import parse_datetime, read_json

_ID = re.compile(r"^[0-9a-f]{32}$")

# --- shapes ----------------------------------------------------------------------------------

ACCOUNT_SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "email": {"type": "string"},
        "role": {"type": "string", "enum": ["admin", "therapist"]},
        "disabled": {"type": "boolean"},
        "created_at": {"type": "string", "format": "date-time"},
    },
}
CLIENT_SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "alias": {"type": "string"},
        "created_at": {"type": "string", "format": "date-time"},
    },
}
SESSION_SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "client_id": {"type": "string"},
        "client_alias": {"type": "string"},
        "starts_at": {"type": "string", "format": "date-time"},
        "ends_at": {"type": "string", "format": "date-time"},
        "status": {"type": "string", "enum": [s.value for s in SessionStatus]},
        "invite_active": {"type": "boolean"},
        "host_url": {"type": "string"},
    },
}
LINK_SCHEMA = {
    "type": "object",
    "properties": {"join_url": {"type": "string"}, "session": SESSION_SCHEMA},
}


def _list_of(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": {"items": {"type": "array", "items": schema}}}


def account_json(account: Account) -> dict[str, Any]:
    """Account metadata (never the password hash)."""
    return {
        "id": account.id,
        "email": account.email,
        "role": account.role.value,
        "disabled": account.disabled,
        "created_at": account.created_at.isoformat(),
    }


def client_json(client: Client) -> dict[str, Any]:
    """A client as the API shows it."""
    return {"id": client.id, "alias": client.alias, "created_at": client.created_at.isoformat()}


def host_url(request: web.Request, session_id: str) -> str:
    """Where the therapist hosts a session."""
    return f"{request.app[SETTINGS].base_url}/host/{session_id}"


def join_url(request: web.Request, token: str) -> str:
    """The client's invite link."""
    return f"{request.app[SETTINGS].base_url}/join/{token}"


def session_json(request: web.Request, session: TherapySession) -> dict[str, Any]:
    """A session as the API shows it."""
    return {
        "id": session.id,
        "client_id": session.client_id,
        "client_alias": session.client_alias,
        "starts_at": session.starts_at.isoformat(),
        "ends_at": session.ends_at.isoformat(),
        "status": session.status.value,
        "invite_active": session.invite_active,
        "host_url": host_url(request, session.id),
    }


# --- auth ------------------------------------------------------------------------------------

LOGIN_SCHEMA = {
    "type": "object",
    "required": ["email", "password"],
    "additionalProperties": False,
    "properties": {
        "email": {"type": "string", "minLength": 1, "maxLength": 254},
        "password": {"type": "string", "minLength": 1, "maxLength": 1024},
    },
}


async def sign_in(request: web.Request, email: str, password: str) -> tuple[Account, str, str]:
    """Shared by the API and the sign-in page: throttle, check, start a session."""
    attempt = begin_sign_in(request, email)
    app = request.app
    now = app[CLOCK]()
    account = await account_service.authenticate(
        app[DB], app[AUDIT], email=email, password=password, now=now
    )
    if account is None:
        sign_in_failed(request, attempt)
        raise Unauthenticated("Email or password is wrong.", code="bad_credentials")
    sign_in_succeeded(request, attempt, email)
    started = await account_service.start_sign_in(app[DB], account, now)
    return account, started.token, started.csrf_token


async def login(request: web.Request) -> web.StreamResponse:
    body = await read_json(request, LOGIN_SCHEMA)
    account, token, csrf = await sign_in(request, body["email"], body["password"])
    response = web.json_response({"account": account_json(account), "csrf_token": csrf})
    set_cookie(response, request.app[SETTINGS], cookie_names(request.app[SETTINGS]).account, token)
    set_device_cookie(request, response)
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    current = require_account(request)
    await account_service.end_sign_in(
        request.app[DB], request.app[AUDIT], current, request.app[CLOCK]()
    )
    response = web.Response(status=204)
    clear_cookie(response, request.app[SETTINGS], cookie_names(request.app[SETTINGS]).account)
    return response


async def me(request: web.Request) -> web.StreamResponse:
    current = require_account(request)
    return web.json_response(
        {"account": account_json(current.account), "csrf_token": current.csrf_token}
    )


# --- clients ---------------------------------------------------------------------------------

CLIENT_CREATE_SCHEMA = {
    "type": "object",
    "required": ["alias"],
    "additionalProperties": False,
    "properties": {"alias": {"type": "string", "minLength": 1, "maxLength": 64}},
}


async def list_clients(request: web.Request) -> web.StreamResponse:
    therapist = require_account(request, Role.THERAPIST).account
    items = await scheduling.list_clients(request.app[DB], therapist)
    return web.json_response({"items": [client_json(c) for c in items]})


async def create_client(request: web.Request) -> web.StreamResponse:
    therapist = require_account(request, Role.THERAPIST).account
    body = await read_json(request, CLIENT_CREATE_SCHEMA)
    client = await scheduling.create_client(
        request.app[DB], request.app[AUDIT], therapist, body["alias"], request.app[CLOCK]()
    )
    return web.json_response(client_json(client), status=201)


async def get_client(request: web.Request) -> web.StreamResponse:
    therapist = require_account(request, Role.THERAPIST).account
    client = await scheduling.get_client(request.app[DB], therapist, path_id(request, "client_id"))
    return web.json_response(client_json(client))


NOTE_CREATE_SCHEMA = {
    "type": "object",
    "required": ["text"],
    "additionalProperties": False,
    "properties": {"text": {"type": "string", "minLength": 1, "maxLength": 20_000}},
}
NOTE_SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "created_at": {"type": "string", "format": "date-time"},
        "text": {"type": "string"},
    },
}


def note_json(note: Note) -> dict[str, Any]:
    """A decrypted note as the API shows it (only to its own therapist)."""
    return {"id": note.id, "created_at": note.created_at.isoformat(), "text": note.text}


async def list_notes(request: web.Request) -> web.StreamResponse:
    therapist = require_account(request, Role.THERAPIST).account
    app = request.app
    notes = await note_service.list_notes(
        app[DB], app[VAULT], app[AUDIT], therapist, path_id(request, "client_id"), app[CLOCK]()
    )
    return web.json_response({"items": [note_json(n) for n in notes]})


async def add_note(request: web.Request) -> web.StreamResponse:
    therapist = require_account(request, Role.THERAPIST).account
    body = await read_json(request, NOTE_CREATE_SCHEMA)
    app = request.app
    note = await note_service.add_note(
        app[DB],
        app[VAULT],
        app[AUDIT],
        therapist,
        path_id(request, "client_id"),
        body["text"],
        app[CLOCK](),
    )
    return web.json_response(note_json(note), status=201)


async def erase_client(request: web.Request) -> web.StreamResponse:
    therapist = require_account(request, Role.THERAPIST).account
    app = request.app
    await erasure.erase_client(
        app[DB], app[VAULT], app[AUDIT], therapist, path_id(request, "client_id"), app[CLOCK]()
    )
    return web.Response(status=204)


# --- sessions and links ------------------------------------------------------------------------

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
    therapist = require_account(request, Role.THERAPIST).account
    items = await scheduling.list_sessions(request.app[DB], therapist)
    return web.json_response({"items": [session_json(request, s) for s in items]})


async def create_session(request: web.Request) -> web.StreamResponse:
    therapist = require_account(request, Role.THERAPIST).account
    body = await read_json(request, SESSION_CREATE_SCHEMA)
    session, invite = await scheduling.create_session(
        request.app[DB],
        request.app[AUDIT],
        therapist,
        client_id=body["client_id"],
        starts_at=parse_datetime(body["starts_at"], "starts_at"),
        minutes=body.get("minutes", 50),
        now=request.app[CLOCK](),
    )
    payload = {
        "join_url": join_url(request, invite.token),
        "session": session_json(request, session),
    }
    return web.json_response(payload, status=201)


async def get_session(request: web.Request) -> web.StreamResponse:
    therapist = require_account(request, Role.THERAPIST).account
    session = await scheduling.get_session(
        request.app[DB], therapist, path_id(request, "session_id")
    )
    return web.json_response(session_json(request, session))


async def reissue_invite(request: web.Request) -> web.StreamResponse:
    therapist = require_account(request, Role.THERAPIST).account
    session_id = path_id(request, "session_id")
    invite = await scheduling.reissue_invite(
        request.app[DB], request.app[AUDIT], therapist, session_id, request.app[CLOCK]()
    )
    session = await scheduling.get_session(request.app[DB], therapist, session_id)
    payload = {
        "join_url": join_url(request, invite.token),
        "session": session_json(request, session),
    }
    return web.json_response(payload, status=201)


async def revoke_invite(request: web.Request) -> web.StreamResponse:
    therapist = require_account(request, Role.THERAPIST).account
    await scheduling.revoke_invite(
        request.app[DB],
        request.app[AUDIT],
        therapist,
        path_id(request, "session_id"),
        request.app[CLOCK](),
    )
    return web.Response(status=204)


async def cancel_session(request: web.Request) -> web.StreamResponse:
    therapist = require_account(request, Role.THERAPIST).account
    session_id = path_id(request, "session_id")
    await scheduling.close_session(
        request.app[DB],
        request.app[AUDIT],
        therapist,
        session_id,
        SessionStatus.CANCELLED,
        request.app[CLOCK](),
    )
    request.app[HUB].end_session(session_id, EndReason.THERAPIST_ENDED)
    session = await scheduling.get_session(request.app[DB], therapist, session_id)
    return web.json_response(session_json(request, session))


async def ice_servers(request: web.Request) -> web.StreamResponse:
    """ICE servers for whoever is about to call: a signed-in therapist or a client via the link."""
    if signed_in(request) is None and client_visit(request) is None:
        raise Unauthenticated("Sign in or open your session link first.")
    settings = request.app[SETTINGS]
    config = ice_configuration_for(
        settings, now_unix=int(request.app[CLOCK]().timestamp()), opaque_id=secrets.token_hex(8)
    )
    return web.json_response(config)


# --- accounts (admin) --------------------------------------------------------------------------

ACCOUNT_CREATE_SCHEMA = {
    "type": "object",
    "required": ["email", "password", "role"],
    "additionalProperties": False,
    "properties": {
        "email": {"type": "string", "minLength": 3, "maxLength": 254},
        "password": {"type": "string", "minLength": 1, "maxLength": 1024},
        "role": {"type": "string", "enum": ["admin", "therapist"]},
    },
}


async def list_accounts(request: web.Request) -> web.StreamResponse:
    require_account(request, Role.ADMIN)
    items = await account_service.list_accounts(request.app[DB])
    return web.json_response({"items": [account_json(a) for a in items]})


async def create_account(request: web.Request) -> web.StreamResponse:
    admin = require_account(request, Role.ADMIN).account
    body = await read_json(request, ACCOUNT_CREATE_SCHEMA)
    account = await account_service.create_account(
        request.app[DB],
        request.app[AUDIT],
        email=body["email"],
        password=body["password"],
        role=Role(body["role"]),
        actor=f"account:{admin.id}",
        now=request.app[CLOCK](),
    )
    return web.json_response(account_json(account), status=201)


# --- meta ------------------------------------------------------------------------------------


def package_version() -> str:
    """The installed distribution's version."""
    try:
        return version("attune-telehealth")
    except PackageNotFoundError:
        return "0.0.0"


async def openapi(request: web.Request) -> web.StreamResponse:
    document = openapi_document(request.app[API_OPERATIONS], version=package_version())
    return web.json_response(document)


async def healthz(request: web.Request) -> web.StreamResponse:
    return web.json_response({"status": "ok"})


_ERR = {"type": "object"}
OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "POST",
        "/api/v1/auth/login",
        login,
        "Sign in",
        "login",
        auth="none",
        request_schema=LOGIN_SCHEMA,
        responses={
            200: ("Signed in; sets the session cookie", {"type": "object"}),
            401: ("Wrong email or password", _ERR),
            429: ("Too many attempts (see Retry-After)", _ERR),
        },
        tags=["auth"],
    ),
    Operation(
        "POST",
        "/api/v1/auth/logout",
        logout,
        "Sign out",
        "logout",
        responses={204: ("Signed out", None)},
        tags=["auth"],
    ),
    Operation(
        "GET",
        "/api/v1/auth/me",
        me,
        "Who am I",
        "me",
        responses={200: ("The signed-in account and its CSRF token", {"type": "object"})},
        tags=["auth"],
    ),
    Operation(
        "GET",
        "/api/v1/clients",
        list_clients,
        "List my clients",
        "listClients",
        auth="therapist",
        responses={200: ("Clients", _list_of(CLIENT_SCHEMA))},
        tags=["clients"],
    ),
    Operation(
        "POST",
        "/api/v1/clients",
        create_client,
        "Add a client (alias only)",
        "createClient",
        auth="therapist",
        request_schema=CLIENT_CREATE_SCHEMA,
        responses={201: ("Created", CLIENT_SCHEMA), 409: ("Alias in use", _ERR)},
        tags=["clients"],
    ),
    Operation(
        "GET",
        "/api/v1/clients/{client_id}",
        get_client,
        "One of my clients",
        "getClient",
        auth="therapist",
        responses={200: ("Client", CLIENT_SCHEMA), 404: ("Not found", _ERR)},
        tags=["clients"],
    ),
    Operation(
        "DELETE",
        "/api/v1/clients/{client_id}",
        erase_client,
        "Erase a client: destroy its data key, then delete its rows",
        "eraseClient",
        auth="therapist",
        responses={204: ("Erased", None), 404: ("Not found", _ERR)},
        tags=["clients"],
    ),
    Operation(
        "GET",
        "/api/v1/clients/{client_id}/notes",
        list_notes,
        "My notes about a client (decrypted; the read is audited)",
        "listNotes",
        auth="therapist",
        responses={200: ("Notes, newest first", _list_of(NOTE_SCHEMA)), 404: ("Not found", _ERR)},
        tags=["clients"],
    ),
    Operation(
        "POST",
        "/api/v1/clients/{client_id}/notes",
        add_note,
        "Add a note about a client (stored encrypted)",
        "addNote",
        auth="therapist",
        request_schema=NOTE_CREATE_SCHEMA,
        responses={201: ("Created", NOTE_SCHEMA), 404: ("Not found", _ERR)},
        tags=["clients"],
    ),
    Operation(
        "GET",
        "/api/v1/sessions",
        list_sessions,
        "List my sessions",
        "listSessions",
        auth="therapist",
        responses={200: ("Sessions", _list_of(SESSION_SCHEMA))},
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
            404: ("Unknown client", _ERR),
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
        responses={200: ("Session", SESSION_SCHEMA), 404: ("Not found", _ERR)},
        tags=["sessions"],
    ),
    Operation(
        "POST",
        "/api/v1/sessions/{session_id}/invite",
        reissue_invite,
        "Revoke the current link and issue a new one",
        "reissueInvite",
        auth="therapist",
        responses={
            201: ("New link (shown once)", LINK_SCHEMA),
            404: ("Not found", _ERR),
            409: ("Session closed", _ERR),
        },
        tags=["sessions"],
    ),
    Operation(
        "DELETE",
        "/api/v1/sessions/{session_id}/invite",
        revoke_invite,
        "Revoke the session's link",
        "revokeInvite",
        auth="therapist",
        responses={204: ("Revoked", None), 404: ("Not found", _ERR)},
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
            404: ("Not found", _ERR),
            409: ("Already closed", _ERR),
        },
        tags=["sessions"],
    ),
    Operation(
        "GET",
        "/api/v1/ice",
        ice_servers,
        "ICE servers (STUN, TURN with short-lived credentials) and the transport policy",
        "iceServers",
        auth="account",
        responses={200: ("RTCConfiguration fields", {"type": "object"})},
        tags=["video"],
    ),
    Operation(
        "GET",
        "/api/v1/accounts",
        list_accounts,
        "List accounts",
        "listAccounts",
        auth="admin",
        responses={200: ("Accounts", _list_of(ACCOUNT_SCHEMA))},
        tags=["admin"],
    ),
    Operation(
        "POST",
        "/api/v1/accounts",
        create_account,
        "Add an account",
        "createAccount",
        auth="admin",
        request_schema=ACCOUNT_CREATE_SCHEMA,
        responses={201: ("Created", ACCOUNT_SCHEMA), 409: ("Email in use", _ERR)},
        tags=["admin"],
    ),
    Operation(
        "GET",
        "/api/v1/openapi.json",
        openapi,
        "This document",
        "openapi",
        auth="none",
        responses={200: ("OpenAPI 3.1", {"type": "object"})},
        tags=["meta"],
    ),
    Operation(
        "GET",
        "/healthz",
        healthz,
        "Liveness",
        "healthz",
        auth="none",
        responses={200: ("Alive", {"type": "object"})},
        tags=["meta"],
    ),
)


def add_api_routes(app: web.Application, operations: tuple[Operation, ...]) -> None:
    """Register every operation and keep the list for the OpenAPI document."""
    app[API_OPERATIONS] = operations
    for op in operations:
        app.router.add_route(op.method, op.path, op.handler, name=op.operation_id)

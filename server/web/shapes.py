"""JSON shapes shared by the API and the pages: schemas for the OpenAPI document and the
serialisers that fill them, each written once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import segno
from aiohttp import web

from privacy.retention import Action, Category
from server.core.links import SessionStatus
from server.core.models import Account, Client, Role, TherapySession
from server.keys import SETTINGS
from server.services.notes import Note

ACCOUNT_SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "email": {"type": "string"},
        "role": {"type": "string", "enum": [role.value for role in Role]},
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


NOTE_SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "created_at": {"type": "string", "format": "date-time"},
        "text": {"type": "string"},
    },
}
_NULLABLE_TEXT: Final = {"type": ["string", "null"]}


POLICY_SCHEMA: Final = {
    "type": "object",
    "properties": {
        "category": {"type": "string", "enum": [c.value for c in Category]},
        "keep_days": {"type": "integer"},
        "action": {"type": "string", "enum": [a.value for a in Action]},
        "allowed_actions": {"type": "array", "items": {"type": "string"}},
        "floor_days": {"type": ["integer", "null"]},
        "floor_rule": _NULLABLE_TEXT,
        "floor_override_reason": _NULLABLE_TEXT,
        "is_default": {"type": "boolean"},
        "default": {"type": "object"},
        "default_reason": {"type": "string"},
        "stored": {"type": "boolean"},
        "updated_at": _NULLABLE_TEXT,
        "updated_by": _NULLABLE_TEXT,
    },
}


POLICY_SAVED_SCHEMA: Final = {
    "type": "object",
    "properties": {"policy": POLICY_SCHEMA, "warnings": {"type": "array"}},
}


PREVIEW_SCHEMA: Final = {
    "type": "object",
    "properties": {
        "category": {"type": "string"},
        "action": {"type": "string"},
        "count": {"type": "integer"},
        "stored": {"type": "boolean"},
        "message": {"type": "string"},
        "warnings": {"type": "array", "items": {"type": "string"}},
    },
}


HOLD_SCHEMA: Final = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "client_id": {"type": "string"},
        "placed_by": {"type": "string"},
        "reason": {"type": "string"},
        "placed_at": {"type": "string", "format": "date-time"},
        "active": {"type": "boolean"},
        "released_at": _NULLABLE_TEXT,
        "released_by": _NULLABLE_TEXT,
        "release_reason": _NULLABLE_TEXT,
    },
}


REPORT_SCHEMA: Final = {
    "type": "object",
    "properties": {
        "id": _NULLABLE_TEXT,
        "dry_run": {"type": "boolean"},
        "trigger": {"type": "string"},
        "actor": {"type": "string"},
        "started_at": {"type": "string"},
        "finished_at": _NULLABLE_TEXT,
        "finished": {"type": "boolean"},
        "duration_ms": {"type": ["integer", "null"]},
        "counts": {"type": "object"},
        "total": {"type": "integer"},
        "keys_destroyed": {"type": "integer"},
        "problems": {"type": "array", "items": {"type": "string"}},
    },
}


NOTICE_SCHEMA: Final = {
    "type": "object",
    "properties": {
        "purpose": {"type": "string"},
        "current_version": {"type": "integer"},
        "title": {"type": "string"},
        "sha256": {"type": "string"},
        "text": {"type": "string"},
        "versions": {"type": "array"},
    },
}
ERR: Final[Mapping[str, Any]] = {"type": "object"}


def list_of(schema: Mapping[str, Any]) -> dict[str, Any]:
    """The `{"items": [...]}` envelope every list endpoint returns."""
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


def note_json(note: Note) -> dict[str, Any]:
    """A decrypted note as the API shows it (only to its own therapist)."""
    return {"id": note.id, "created_at": note.created_at.isoformat(), "text": note.text}


def host_url(request: web.Request, session_id: str) -> str:
    """Where the therapist hosts a session."""
    return f"{request.app[SETTINGS].base_url}/host/{session_id}"


def join_url(request: web.Request, token: str) -> str:
    """The client's invite link."""
    return f"{request.app[SETTINGS].base_url}/join/{token}"


def reset_url(request: web.Request, token: str) -> str:
    """An account holder's one-time password reset link."""
    return f"{request.app[SETTINGS].base_url}/reset/{token}"


def qr_svg(text: str) -> str:
    """An inline SVG QR code made here: no external service sees the link or secret."""
    svg: str = segno.make(text, error="m").svg_inline(scale=4, border=2, dark="#1d2a33")
    return svg


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

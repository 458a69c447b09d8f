"""The admin's audit-trail browser: GET /api/v1/audit, chain verification, /admin/audit.

Admins only. Entries hold metadata (actor, action, pseudonymous targets, time, small
details), never clinical content, so this page shows the log as stored.

Like the other ``*_views`` modules it owns its operations and pages; ``create_app`` registers
them (``AUDIT_OPERATIONS`` through the route guard, ``add_audit_pages`` as console pages).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import urlencode

import aiohttp_jinja2
from aiohttp import web
from multidict import MultiMapping

from privacy.audit import AUDIT_ACTIONS, VerifyResult
from server.core.models import Role
from server.db.audit_queries import AuditFilter, AuditListing, AuditPage, list_audit_entries
from server.errors import InvalidInput
from server.keys import AUDIT, DB
from server.web.guard import SIGNED_IN, page_guarded
from server.web.openapi import Operation
from server.web.shapes import ERR

DEFAULT_LIMIT: Final = 50
MAX_LIMIT: Final = 200
QUERY_FIELDS: Final = ("action", "actor", "target", "before_seq", "limit")
_ACTION_PREFIX = re.compile(r"^[a-z_]+(\.[a-z_]+)*\.$")
# Actors and targets are ids such as "account:<hex>", "session:<hex>", "anonymous", "system:cli".
_PRINCIPAL = re.compile(r"^[A-Za-z0-9_.:-]{1,80}$")
_MAX_SEQ = 2**63 - 1  # BIGINT; also keeps int() away from Python's limit on digit strings


# --- the filter, from query parameters ----------------------------------------------------------


def _single(query: MultiMapping[str], name: str) -> str | None:
    values = query.getall(name, [])
    if len(values) > 1:
        raise InvalidInput(f"{name}: give it at most once.")
    value = values[0].strip() if values else ""
    return value or None  # an empty form field means "any"


def _action(raw: str | None) -> str | None:
    if raw is None or raw in AUDIT_ACTIONS:
        return raw
    if _ACTION_PREFIX.match(raw) and any(action.startswith(raw) for action in AUDIT_ACTIONS):
        return raw
    raise InvalidInput(
        "action: use a recorded action such as auth.login.success, "
        "or a family ending in '.', such as auth."
    )


def _principal(raw: str | None, name: str) -> str | None:
    if raw is not None and not _PRINCIPAL.match(raw):
        raise InvalidInput(f"{name}: an id such as account:0123… (letters, digits, _ . : -).")
    return raw


def _whole_number(raw: str | None, name: str, low: int, high: int) -> int | None:
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 19) or not low <= int(raw) <= high:
        bounds = f"from {low} to {high}" if high < _MAX_SEQ else f"of at least {low}"
        raise InvalidInput(f"{name}: a whole number {bounds}.")
    return int(raw)


def parse_audit_filter(query: MultiMapping[str]) -> AuditFilter:
    """The filter named by query parameters; InvalidInput names the first bad one."""
    unknown = sorted(set(query) - set(QUERY_FIELDS))
    if unknown:
        raise InvalidInput(f"unknown parameter {unknown[0]!r}.")
    limit = _whole_number(_single(query, "limit"), "limit", 1, MAX_LIMIT)
    return AuditFilter(
        action=_action(_single(query, "action")),
        actor=_principal(_single(query, "actor"), "actor"),
        target=_principal(_single(query, "target"), "target"),
        before_seq=_whole_number(_single(query, "before_seq"), "before_seq", 1, _MAX_SEQ),
        limit=DEFAULT_LIMIT if limit is None else limit,
    )


def filter_query(audit_filter: AuditFilter, **changes: int | None) -> str:
    """The query string that reproduces a filter (defaults left out), with some fields changed."""
    values: dict[str, Any] = {
        "action": audit_filter.action,
        "actor": audit_filter.actor,
        "target": audit_filter.target,
        "before_seq": audit_filter.before_seq,
        "limit": None if audit_filter.limit == DEFAULT_LIMIT else audit_filter.limit,
        **changes,
    }
    return urlencode({k: v for k, v in values.items() if v is not None})


# --- API -----------------------------------------------------------------------------------------


def listing_json(entry: AuditListing) -> dict[str, Any]:
    """One audit entry as the API shows it."""
    return {
        "seq": entry.seq,
        "at": entry.at.isoformat(),
        "actor": entry.actor,
        "action": entry.action,
        "targets": list(entry.targets),
        "details": entry.details,
    }


def verify_json(result: VerifyResult) -> dict[str, Any]:
    """A chain verification outcome as the API shows it."""
    return {
        "ok": result.ok,
        "count": result.count,
        "first_bad_seq": result.first_bad_seq,
        "reason": result.reason,
    }


async def _audit_page(request: web.Request, audit_filter: AuditFilter) -> AuditPage:
    async with request.app[DB].read() as conn:
        return await list_audit_entries(conn, audit_filter)


async def list_audit(request: web.Request) -> web.StreamResponse:
    page = await _audit_page(request, parse_audit_filter(request.query))
    return web.json_response(
        {
            "items": [listing_json(entry) for entry in page.items],
            "next_before_seq": page.next_before_seq,
        }
    )


async def verify_audit(request: web.Request) -> web.StreamResponse:
    result = await request.app[AUDIT].verify(request.app[DB])
    return web.json_response(verify_json(result))


AUDIT_ENTRY_SCHEMA: Final[Mapping[str, Any]] = {
    "type": "object",
    "properties": {
        "seq": {"type": "integer"},
        "at": {"type": "string", "format": "date-time"},
        "actor": {"type": "string"},
        "action": {"type": "string", "enum": sorted(AUDIT_ACTIONS)},
        "targets": {"type": "array", "items": {"type": "string"}},
        "details": {
            "type": "object",
            "additionalProperties": {"type": ["string", "integer", "boolean", "null"]},
        },
    },
}
AUDIT_LIST_SCHEMA: Final[Mapping[str, Any]] = {
    "type": "object",
    "properties": {
        "items": {"type": "array", "items": AUDIT_ENTRY_SCHEMA},
        "next_before_seq": {"type": ["integer", "null"]},
    },
}
AUDIT_VERIFY_SCHEMA: Final[Mapping[str, Any]] = {
    "type": "object",
    "properties": {
        "ok": {"type": "boolean"},
        "count": {"type": "integer"},
        "first_bad_seq": {"type": ["integer", "null"]},
        "reason": {"type": "string"},
    },
}
AUDIT_QUERY_PARAMETERS: Final[tuple[Mapping[str, Any], ...]] = (
    {
        "name": "action",
        "in": "query",
        "description": "An exact action, or a family ending in '.' (e.g. auth.)",
        "schema": {"type": "string", "maxLength": 64},
    },
    {
        "name": "actor",
        "in": "query",
        "description": "Exact actor, e.g. account:<id>, anonymous, client, system:cli",
        "schema": {"type": "string", "pattern": _PRINCIPAL.pattern},
    },
    {
        "name": "target",
        "in": "query",
        "description": "One of the entry's targets, e.g. session:<id>",
        "schema": {"type": "string", "pattern": _PRINCIPAL.pattern},
    },
    {
        "name": "before_seq",
        "in": "query",
        "description": "Cursor: only entries older than this sequence number",
        "schema": {"type": "integer", "minimum": 1},
    },
    {
        "name": "limit",
        "in": "query",
        "description": "Page size",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 50},
    },
)
"""OpenAPI parameter objects for GET /api/v1/audit, ready for an ``Operation.query`` field."""

AUDIT_OPERATIONS: Final[tuple[Operation, ...]] = (
    Operation(
        "GET",
        "/api/v1/audit",
        list_audit,
        "Audit trail, newest first. Query: action (exact, or a family ending in '.'), actor, "
        "target (exact ids), before_seq (cursor from next_before_seq), limit (1-200, default 50)",
        "listAudit",
        auth="admin",
        responses={
            200: ("Entries (metadata only) and the cursor for older ones", AUDIT_LIST_SCHEMA),
            403: ("Not an admin", ERR),
        },
        tags=["admin"],
        query=AUDIT_QUERY_PARAMETERS,
    ),
    Operation(
        "POST",
        "/api/v1/audit/verify",
        verify_audit,
        "Re-walk the hash chain against the signed checkpoints",
        "verifyAudit",
        auth="admin",
        responses={
            200: ("Outcome; first_bad_seq names where it broke", AUDIT_VERIFY_SCHEMA),
            403: ("Not an admin", ERR),
        },
        tags=["admin"],
    ),
)


# --- page ----------------------------------------------------------------------------------------


def action_families() -> list[tuple[str, list[tuple[str, str]]]]:
    """Registered actions grouped by family ('auth.', 'account.', …), for the filter menu."""
    families: dict[str, list[tuple[str, str]]] = {}
    for action, meaning in AUDIT_ACTIONS.items():
        families.setdefault(action.split(".", 1)[0] + ".", []).append((action, meaning))
    return list(families.items())


async def _render(
    request: web.Request, *, verify: VerifyResult | None = None
) -> web.StreamResponse:
    current = request[SIGNED_IN]
    context: dict[str, Any] = {
        "account": current.account,
        "csrf_token": current.csrf_token,
        "families": action_families(),
        "meanings": AUDIT_ACTIONS,
        "verify": verify,
        "error": None,
        "filter": AuditFilter(),
        "entries": (),
        "older_url": None,
        "query": "",
    }
    try:
        audit_filter = parse_audit_filter(request.query)
    except InvalidInput as exc:
        context["error"] = exc.message
        return aiohttp_jinja2.render_template("admin_audit.html", request, context, status=422)
    page = await _audit_page(request, audit_filter)
    context["filter"] = audit_filter
    context["entries"] = page.items
    context["query"] = filter_query(audit_filter)
    if page.next_before_seq is not None:
        context["older_url"] = "/admin/audit?" + filter_query(
            audit_filter, before_seq=page.next_before_seq
        )
    return aiohttp_jinja2.render_template("admin_audit.html", request, context)


async def audit_page(request: web.Request) -> web.StreamResponse:
    return await _render(request)


async def audit_verify_submit(request: web.Request) -> web.StreamResponse:
    result = await request.app[AUDIT].verify(request.app[DB])
    return await _render(request, verify=result)


def add_audit_pages(app: web.Application) -> None:
    """Register /admin/audit and its verify button's target."""
    admin = Role.ADMIN
    app.router.add_get("/admin/audit", page_guarded(audit_page, admin), name="adminAudit")
    app.router.add_post(
        "/admin/audit/verify", page_guarded(audit_verify_submit, admin), name="adminAuditVerify"
    )

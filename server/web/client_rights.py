"""The client's data rights, from their own session link (cookie): see what is kept and why,
download everything as JSON, erase what exists only by their optional consent. A therapist
can export a client's data on the client's request (`CLIENT_RIGHTS_OPERATIONS`).
"""

from __future__ import annotations

import json
from typing import Any, Final

import aiohttp_jinja2
from aiohttp import web

from privacy.consent import OPTIONAL_PURPOSES, Channel, ConsentState
from privacy.retention import Category
from server.errors import InvalidInput
from server.keys import AUDIT, CLOCK, CONSENTS, DB, VAULT
from server.security.client_writes import ClientWrite
from server.services import scheduling
from server.services.client_rights import ClientRights, ErasureOutcome
from server.services.retention import Retention
from server.services.scheduling import ClientVisit
from server.web.guard import SIGNED_IN, VISIT, spend_client_write
from server.web.i18n import LANGUAGE
from server.web.identity import client_visit, require_client_device
from server.web.openapi import Operation
from server.web.shapes import ERR
from server.web.times import duration_words
from server.web.validation import read_json

_EXPORT_FILENAME: Final = "attune-my-data.json"


def _rights(request: web.Request) -> ClientRights:
    app = request.app
    return ClientRights(app[DB], app[VAULT], app[AUDIT], app[CONSENTS])


def _retention(request: web.Request) -> Retention:
    app = request.app
    return Retention(app[DB], app[AUDIT], app[VAULT])


def _page_client(request: web.Request) -> ClientVisit:
    current = client_visit(request)
    if current is None:
        raise web.HTTPSeeOther("/visit")
    return current


def _acting_client(request: web.Request, write: ClientWrite) -> ClientVisit:
    """The link's admitted device while the session is open, within its write limit."""
    _page_client(request)
    visit = require_client_device(request)
    spend_client_write(request, write, visit)
    return visit


def _years(days: int) -> str:
    return duration_words(days)


def outcome_json(outcome: ErasureOutcome) -> dict[str, Any]:
    """What an erasure did, for the client."""
    return {
        "withdrawn": [p.value for p in outcome.withdrawn],
        "deleted": dict(outcome.deleted),
        "deleted_total": outcome.deleted_total,
        "held": outcome.held,
    }


async def _export(request: web.Request, client_id: str, actor: str, notes: bool) -> Any:
    return await _rights(request).export(
        client_id, actor=actor, include_notes=notes, now=request.app[CLOCK]()
    )


# --- pages (client cookie) -------------------------------------------------------------------


async def data_page(request: web.Request) -> web.StreamResponse:
    """What is stored about the client, what erasure removes, and what the clinic keeps."""
    visit = _page_client(request)
    app = request.app
    policies = await _retention(request).policies()
    states = await app[CONSENTS].state(app[DB], visit.session.client_id, app[CLOCK]())
    optional = [
        {
            "title": status.current_notice.title,
            "granted": status.state in (ConsentState.GRANTED, ConsentState.NEEDS_RECONSENT),
        }
        for purpose, status in states.items()
        if purpose in OPTIONAL_PURPOSES
    ]
    kept = {c.value: _years(p.policy.keep_days) for c, p in policies.items()}
    return aiohttp_jinja2.render_template(
        "client_data.html",
        request,
        {
            "csrf_token": visit.csrf_token,
            "optional": optional,
            "kept": kept,
            "session_meta_anonymized": policies[Category.SESSION_META].policy.action.value
            == "anonymize",
            "error": None,
        },
    )


async def export_download(request: web.Request) -> web.StreamResponse:
    visit = _acting_client(request, ClientWrite.EXPORT)
    client_id = visit.session.client_id
    document = await _export(request, client_id, f"client:{client_id}", notes=False)
    return web.Response(
        text=json.dumps(document, indent=2, ensure_ascii=False),
        content_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="{_EXPORT_FILENAME}"'},
    )


async def erase_submit(request: web.Request) -> web.StreamResponse:
    visit = _acting_client(request, ClientWrite.ERASE)
    form = await request.post()
    if form.get("confirm") != "yes":
        raise web.HTTPSeeOther("/visit/data")
    outcome = await _rights(request).erase_consent_based(
        visit.session.client_id,
        channel=Channel.PAGE,
        retention=_retention(request),
        now=request.app[CLOCK](),
    )
    catalog = request.app[CONSENTS].catalog
    # each purpose by its notice's title, as the data page listed it (never its raw id)
    switched_off = [catalog.current(p, request[LANGUAGE]).title for p in outcome.withdrawn]
    return aiohttp_jinja2.render_template(
        "client_erased.html",
        request,
        {"outcome": outcome_json(outcome), "switched_off": switched_off},
    )


# --- API ---------------------------------------------------------------------------------------

ERASE_SCHEMA: Final = {
    "type": "object",
    "required": ["confirm"],
    "additionalProperties": False,
    "properties": {"confirm": {"type": "boolean"}},
}
EXPORT_SCHEMA: Final = {
    "type": "object",
    "properties": {
        "format": {"type": "string"},
        "generated_at": {"type": "string"},
        "client": {"type": "object"},
        "sessions": {"type": "array"},
        "consents": {"type": "array"},
        "records": {"type": "object"},
        "fhir_goals": {"type": "array"},
        "activity": {"type": "array"},
        "not_included": {"type": "array"},
        "notes": {"type": "array"},
    },
}
OUTCOME_SCHEMA: Final = {
    "type": "object",
    "properties": {
        "withdrawn": {"type": "array", "items": {"type": "string"}},
        "deleted": {"type": "object"},
        "deleted_total": {"type": "integer"},
        "held": {"type": "boolean"},
    },
}


async def api_client_export(request: web.Request) -> web.StreamResponse:
    visit = request[VISIT]
    client_id = visit.session.client_id
    return web.json_response(await _export(request, client_id, f"client:{client_id}", False))


async def api_client_erase(request: web.Request) -> web.StreamResponse:
    visit = request[VISIT]
    body = await read_json(request, ERASE_SCHEMA)
    if body["confirm"] is not True:
        raise InvalidInput("confirm: send true to erase.")
    outcome = await _rights(request).erase_consent_based(
        visit.session.client_id,
        channel=Channel.API,
        retention=_retention(request),
        now=request.app[CLOCK](),
    )
    return web.json_response(outcome_json(outcome))


async def api_therapist_export(request: web.Request) -> web.StreamResponse:
    therapist = request[SIGNED_IN].account
    raw_id = request.match_info["client_id"]
    client = await scheduling.get_client(request.app[DB], therapist, raw_id)
    raw_notes = request.query.get("include_notes", "false")
    if raw_notes not in ("true", "false"):
        raise InvalidInput("include_notes: true or false.")
    document = await _export(request, client.id, f"account:{therapist.id}", raw_notes == "true")
    return web.json_response(document)


CLIENT_RIGHTS_OPERATIONS: Final[tuple[Operation, ...]] = (
    Operation(
        "GET",
        "/api/v1/visit/export",
        api_client_export,
        "Everything stored about the client of this link, as JSON (audited)",
        "clientExport",
        auth="client_device",
        responses={200: ("The export", EXPORT_SCHEMA)},
        tags=["client"],
    ),
    Operation(
        "POST",
        "/api/v1/visit/erase",
        api_client_erase,
        "Withdraw every optional consent and delete the data stored under them",
        "clientErase",
        auth="client_device",
        request_schema=ERASE_SCHEMA,
        responses={200: ("What was withdrawn and deleted", OUTCOME_SCHEMA)},
        tags=["client"],
    ),
    Operation(
        "GET",
        "/api/v1/clients/{client_id}/export",
        api_therapist_export,
        "Export a client's data on their request (include_notes=true adds your notes; audited)",
        "exportClient",
        auth="therapist",
        responses={200: ("The export", EXPORT_SCHEMA), 404: ("Not found", ERR)},
        tags=["clients"],
        query=(
            {
                "name": "include_notes",
                "in": "query",
                "description": "Include your notes about the client (default false)",
                "schema": {"type": "string", "enum": ["true", "false"]},
            },
        ),
    ),
)


def add_client_rights_pages(app: web.Application) -> None:
    """The client's data page, export download and erasure form."""
    app.router.add_get("/visit/data", data_page)
    app.router.add_get("/visit/data/export.json", export_download)
    app.router.add_post("/visit/data/erase", erase_submit)

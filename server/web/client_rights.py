"""The client's data rights, from their own session link (cookie): see what is kept and why,
download everything as JSON, erase what exists only by their optional consent. A therapist
can export a client's data on the client's request (`CLIENT_RIGHTS_OPERATIONS`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any, Final

import aiohttp_jinja2
from aiohttp import web

from privacy.consent import OPTIONAL_PURPOSES, Channel, ConsentState, Purpose
from privacy.retention import Category
from server.core.languages import N_
from server.errors import InvalidInput
from server.keys import AUDIT, CLOCK, CONSENTS, DB, PAGE_LANGUAGES, VAULT
from server.security.client_writes import ClientWrite
from server.services import scheduling
from server.services.client_rights import ClientRights, ErasureOutcome
from server.services.retention import Retention
from server.services.scheduling import ClientVisit
from server.web.guard import SIGNED_IN, VISIT, spend_client_write
from server.web.i18n import LANGUAGE
from server.web.identity import page_visit, require_client_device
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


def _acting_client(request: web.Request, write: ClientWrite) -> ClientVisit:
    """The link's admitted device while the session is open, within its write limit."""
    page_visit(request)
    visit = require_client_device(request)
    spend_client_write(request, write, visit)
    return visit


def _years(request: web.Request, days: int) -> str:
    code = request[LANGUAGE]
    return duration_words(days, request.app[PAGE_LANGUAGES].catalogues[code].translations, code)


# What an erasure deletes, as the erased page names it (labels of the consent-based sources in
# server/db/retention_sources.py; translated where they are shown).
DELETED_WORDS: Final = (
    N_("cue prompts"),
    N_("cue summaries"),
    N_("signal events"),
    N_("check-in responses"),
    N_("goal progress answers"),
    N_("emails"),
    N_("email addresses"),
)


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
    """What is stored about the client, what erasure removes, and what the clinic keeps. A
    guest has no client record: all that is kept of them is their consent record, so their
    data page is their consent receipt."""
    visit = page_visit(request)
    if visit.is_guest:
        raise web.HTTPSeeOther("/visit/consent/receipt")
    app = request.app
    policies = await _retention(request).policies()
    states = await app[CONSENTS].state(app[DB], visit.client_id, app[CLOCK](), request[LANGUAGE])
    optional = [
        {
            "title": status.current_notice.title,
            "language": status.current_notice.language,
            "granted": status.state in (ConsentState.GRANTED, ConsentState.NEEDS_RECONSENT),
        }
        for purpose, status in states.items()
        if purpose in OPTIONAL_PURPOSES
    ]
    kept = {c.value: _years(request, p.policy.keep_days) for c, p in policies.items()}
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
    client_id = visit.client_id
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
        visit.client_id,
        channel=Channel.PAGE,
        retention=_retention(request),
        now=request.app[CLOCK](),
    )
    # Post/redirect/get: a reload shows this outcome again instead of erasing a second time.
    raise web.HTTPSeeOther(f"{ERASED_PATH}?r={_seal(visit, outcome_json(outcome))}")


ERASED_PATH: Final = "/visit/data/erased"


def _seal(visit: ClientVisit, outcome: dict[str, Any]) -> str:
    """The outcome for the redirect's URL, bound by an HMAC keyed with this device's secret
    CSRF token: nobody else can send the client a page with other numbers."""
    body = base64.urlsafe_b64encode(json.dumps(outcome, sort_keys=True).encode()).decode()
    return f"{body}.{_mac(visit, body)}"


def _unseal(visit: ClientVisit, sealed: str) -> dict[str, Any] | None:
    body, _, mac = sealed.partition(".")
    if len(sealed) > 4096 or not hmac.compare_digest(mac, _mac(visit, body)):
        return None
    try:
        outcome = json.loads(base64.urlsafe_b64decode(body.encode()))
    except ValueError:
        return None
    return outcome if isinstance(outcome, dict) else None


def _mac(visit: ClientVisit, body: str) -> str:
    key = f"attune-erased-v1\0{visit.csrf_token}".encode()
    return hmac.new(key, body.encode(), hashlib.sha256).hexdigest()


async def erased_page(request: web.Request) -> web.StreamResponse:
    """What the client's erasure did, as many times as the page is reloaded."""
    visit = page_visit(request)
    outcome = _unseal(visit, request.query.get("r", ""))
    if outcome is None:
        raise web.HTTPSeeOther("/visit/data")
    catalog = request.app[CONSENTS].catalog
    purposes = {p.value: p for p in Purpose}
    notices = [
        catalog.current(purposes[value], request[LANGUAGE])
        for value in outcome.get("withdrawn", [])
        if value in purposes
    ]
    return aiohttp_jinja2.render_template(
        "client_erased.html",
        request,
        {
            "outcome": outcome,
            "switched_off": [{"text": n.title, "language": n.language} for n in notices],
        },
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
    client_id = visit.client_id
    return web.json_response(await _export(request, client_id, f"client:{client_id}", False))


async def api_client_erase(request: web.Request) -> web.StreamResponse:
    visit = request[VISIT]
    body = await read_json(request, ERASE_SCHEMA)
    if body["confirm"] is not True:
        raise InvalidInput("confirm: send true to erase.")
    outcome = await _rights(request).erase_consent_based(
        visit.client_id,
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
    app.router.add_get(ERASED_PATH, erased_page)

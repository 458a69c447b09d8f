"""The client's consent page, receipts and consent API (reached with the link's cookie)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from privacy.consent import (
    GUEST_PURPOSES,
    OFFERED_PURPOSES,
    REQUIRED_PURPOSES,
    SOURCE_LANGUAGE,
    Channel,
    ConsentDecision,
    ConsentRecord,
    ConsentState,
    ConsentStatus,
    Purpose,
    Subject,
    receipt,
)
from server.core.languages import LANGUAGE_CODES
from server.errors import Forbidden
from server.keys import AUDIT, CLOCK, CONSENTS, DB
from server.security.client_writes import ClientWrite
from server.services.scheduling import ClientVisit
from server.web.guard import VISIT, spend_client_write
from server.web.i18n import LANGUAGE
from server.web.identity import ANOTHER_DEVICE_MESSAGE, page_visit
from server.web.notice_blocks import notice_blocks
from server.web.openapi import Operation
from server.web.shapes import ERR
from server.web.validation import read_json


def _status_json(status: ConsentStatus) -> dict[str, Any]:
    notice = status.current_notice
    return {
        "purpose": status.purpose.value,
        "required": status.purpose in REQUIRED_PURPOSES,
        "state": status.state.value,
        "notice": {
            "version": notice.version,
            "language": notice.language,
            "title": notice.title,
            "sha256": notice.sha256,
            "text": notice.text,
            # the body after the title, rendered once, server-side: pages place it as text
            "blocks": [block.as_json() for block in notice_blocks(notice.body)],
        },
    }


async def _states(
    request: web.Request, visit: ClientVisit, now: datetime, language: str = SOURCE_LANGUAGE
) -> dict[Purpose, ConsentStatus]:
    """What this person is asked, and where each stands: a client's own consents, or a
    guest's (only taking part: a guest has no record to store or analyse)."""
    states = await request.app[CONSENTS].state(
        request.app[DB], visit.consent_subject, now, language
    )
    if visit.is_guest:
        return {p: s for p, s in states.items() if p in GUEST_PURPOSES}
    return states


async def _decide(
    request: web.Request,
    visit: ClientVisit,
    *,
    purpose: Purpose,
    decision: ConsentDecision,
    notice_version: int,
    notice_language: str,
    channel: Channel,
) -> ConsentRecord:
    """Record this person's own decision. Its live effects follow from the consent event: a
    guest's subject is their participant id, so a guest withdrawing telehealth leaves the room
    alone (server/services/live_session.py), like a client."""
    app = request.app
    return await app[CONSENTS].decide(
        app[DB],
        app[AUDIT],
        client_id=visit.consent_subject,
        purpose=purpose,
        decision=decision,
        notice_version=notice_version,
        notice_language=notice_language,
        channel=channel,
        now=app[CLOCK](),
        subject=Subject.GUEST if visit.is_guest else Subject.CLIENT,
    )


async def consent_page(request: web.Request) -> web.StreamResponse:
    visit = page_visit(request)
    app = request.app
    states = await _states(request, visit, app[CLOCK](), request[LANGUAGE])
    purposes = [
        {
            "purpose": p.value,
            "required": p in REQUIRED_PURPOSES,
            "granted": s.state is ConsentState.GRANTED,
            "needs_reconsent": s.state is ConsentState.NEEDS_RECONSENT,
            "title": s.current_notice.title,
            "version": s.current_notice.version,
            "language": s.current_notice.language,
            "blocks": notice_blocks(s.current_notice.body),
        }
        for p, s in states.items()
    ]
    return aiohttp_jinja2.render_template(
        "consent.html",
        request,
        {
            "purposes": purposes,
            "csrf_token": visit.csrf_token,
            "saved": request.query.get("saved") == "1",
        },
    )


async def consent_submit(request: web.Request) -> web.StreamResponse:
    """Save ticked and unticked boxes: a grant or a withdrawal each takes the same one step."""
    visit = page_visit(request)
    spend_client_write(request, ClientWrite.CONSENT, visit)
    app = request.app
    form = await request.post()
    wanted = {str(v) for v in form.getall("grant", [])}
    now = app[CLOCK]()
    states = await _states(request, visit, now)
    for purpose, status in states.items():
        granted = status.state is ConsentState.GRANTED
        want = purpose.value in wanted
        shown_version = str(form.get(f"version_{purpose.value}", ""))
        shown_language = str(form.get(f"language_{purpose.value}", status.current_notice.language))
        if want == granted or not shown_version.isdigit():
            continue
        if not want and status.state is ConsentState.NEVER_ASKED:
            continue  # declining something never granted needs no record
        decision = ConsentDecision.GRANTED if want else ConsentDecision.WITHDRAWN
        _may_decide(visit, purpose, decision)
        await _decide(
            request,
            visit,
            purpose=purpose,
            decision=decision,
            notice_version=int(shown_version),
            notice_language=shown_language,
            channel=Channel.PAGE,
        )
    raise web.HTTPSeeOther("/visit/consent?saved=1")


async def _receipt(request: web.Request, visit: ClientVisit) -> dict[str, Any]:
    app = request.app
    records = await app[CONSENTS].records(app[DB], visit.consent_subject)
    return receipt(visit.label, records, app[CONSENTS].catalog, app[CLOCK]())


async def receipt_page(request: web.Request) -> web.StreamResponse:
    visit = page_visit(request)
    return aiohttp_jinja2.render_template(
        "consent_receipt.html", request, {"receipt": await _receipt(request, visit)}
    )


async def receipt_download(request: web.Request) -> web.StreamResponse:
    visit = page_visit(request)
    body = json.dumps(await _receipt(request, visit), indent=2, ensure_ascii=False)
    return web.Response(
        text=body,
        content_type="application/json",
        headers={"Content-Disposition": 'attachment; filename="attune-consent-receipt.json"'},
    )


# --- API (client cookie) ---------------------------------------------------------------------

CONSENT_DECISION_SCHEMA = {
    "type": "object",
    "required": ["purpose", "decision", "notice_version"],
    "additionalProperties": False,
    "properties": {
        "purpose": {"type": "string", "enum": [p.value for p in OFFERED_PURPOSES]},
        "decision": {"type": "string", "enum": [d.value for d in ConsentDecision]},
        "notice_version": {"type": "integer", "minimum": 1, "maximum": 10_000},
        "notice_language": {
            "type": "string",
            "enum": sorted(LANGUAGE_CODES),
            "description": "The language of the notice text shown (default: the one "
            "GET /api/v1/visit/consents shows this request)",
        },
    },
}
CONSENT_STATE_SCHEMA = {"type": "object", "properties": {"items": {"type": "array"}}}


async def api_state(request: web.Request) -> web.StreamResponse:
    visit = request[VISIT]
    app = request.app
    states = await _states(request, visit, app[CLOCK](), request[LANGUAGE])
    return web.json_response({"items": [_status_json(s) for s in states.values()]})


def _may_decide(visit: ClientVisit, purpose: Purpose, decision: ConsentDecision) -> None:
    """A device still waiting as "another device" may only agree to telehealth (it needs that
    to knock); everything else is the admitted device's, so a leaked link cannot withdraw
    consents or delete data."""
    if visit.another_device and (
        purpose is not Purpose.TELEHEALTH or decision is not ConsentDecision.GRANTED
    ):
        raise Forbidden(ANOTHER_DEVICE_MESSAGE, code="another-device")


async def api_decide(request: web.Request) -> web.StreamResponse:
    visit = request[VISIT]
    body = await read_json(request, CONSENT_DECISION_SCHEMA)
    purpose, decision = Purpose(body["purpose"]), ConsentDecision(body["decision"])
    _may_decide(visit, purpose, decision)
    shown = request.app[CONSENTS].catalog.current(purpose, request[LANGUAGE]).language
    record = await _decide(
        request,
        visit,
        purpose=purpose,
        decision=decision,
        notice_version=body["notice_version"],
        notice_language=body.get("notice_language", shown),
        channel=Channel.API,
    )
    return web.json_response(
        {
            "purpose": record.purpose.value,
            "decision": record.decision.value,
            "notice_version": record.notice_version,
            "notice_language": record.notice_language,
            "notice_sha256": record.notice_sha256,
            "at": record.at.isoformat(),
            "triggered": list(record.triggered),
        },
        status=201,
    )


async def api_receipt(request: web.Request) -> web.StreamResponse:
    visit = request[VISIT]
    return web.json_response(await _receipt(request, visit))


CONSENT_OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "GET",
        "/api/v1/visit/consents",
        api_state,
        "The client's consent state for each offered purpose, with the notice text",
        "clientConsentState",
        auth="client",
        responses={200: ("Consent state", CONSENT_STATE_SCHEMA)},
        tags=["client"],
    ),
    Operation(
        "POST",
        "/api/v1/visit/consents",
        api_decide,
        "Grant or withdraw one purpose for the notice version shown",
        "clientDecide",
        auth="client",
        request_schema=CONSENT_DECISION_SCHEMA,
        responses={
            201: ("Recorded", {"type": "object"}),
            409: ("The notice changed: read it again", ERR),
        },
        tags=["client"],
    ),
    Operation(
        "GET",
        "/api/v1/visit/consents/receipt",
        api_receipt,
        "A receipt of every consent decision the client made",
        "clientConsentReceipt",
        auth="client",
        responses={200: ("Receipt", {"type": "object"})},
        tags=["client"],
    ),
)


def add_consent_pages(app: web.Application) -> None:
    """The client's consent page and receipts."""
    app.router.add_get("/visit/consent", consent_page)
    app.router.add_post("/visit/consent", consent_submit)
    app.router.add_get("/visit/consent/receipt", receipt_page)
    app.router.add_get("/visit/consent/receipt.json", receipt_download)

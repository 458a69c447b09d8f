"""Check-ins over HTTP: the client's after-session form, the therapist's reads and FHIR export."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import aiohttp_jinja2
from aiohttp import web

from privacy.consent import ConsentState, Purpose
from server.core.checkins import bundle, questionnaire_resource, questionnaire_response
from server.core.goals import with_goal_items
from server.core.languages import N_
from server.core.links import SessionStatus
from server.core.models import Role
from server.errors import Forbidden, InvalidInput, NotFound, Unauthenticated
from server.keys import (
    AUDIT,
    CHECKINS,
    CLOCK,
    CONSENTS,
    CUE_RECORDS,
    DB,
    GOALS,
    LIVE,
    SAFETY,
    SETTINGS,
    VAULT,
)
from server.services import erasure, scheduling
from server.services import notes as note_service
from server.services.checkins import CheckinResult, result_json
from server.services.goals import fhir_goals
from server.web.charts import trend_svg
from server.web.cue_charts import cue_charts
from server.web.guard import SIGNED_IN, VISIT, page_guarded
from server.web.identity import ANOTHER_DEVICE_MESSAGE, after_session_visit, path_id
from server.web.measure_views import client_page_context
from server.web.openapi import Operation
from server.web.progress_views import therapist_progress
from server.web.shapes import ERR
from server.web.validation import read_json

_ID = re.compile(r"^[0-9a-f]{32}$")
# What each signal button says to the client (cues.js SIGNALS), for the summary page.
SIGNAL_WORDS: dict[str, str] = {
    "need-a-moment": "I need a moment",
    "that-landed": "That landed",
    "confused": "I'm confused",
    "slow-down": "Slow down",
    "hard-to-hear-see": "Hard to hear/see",
}

CHECKIN_SUBMIT_SCHEMA = {
    "type": "object",
    "required": ["instrument_id", "answers", "idempotency_key"],
    "additionalProperties": False,
    "properties": {
        "instrument_id": {"type": "string", "minLength": 1, "maxLength": 64},
        "answers": {"type": "object"},
        "idempotency_key": {"type": "string", "minLength": 16, "maxLength": 64},
        "language": {"type": "string", "pattern": "^[a-z]{2,3}(-[A-Za-z0-9]{1,8}){0,3}$"},
    },
}


def script_json(value: object) -> str:
    """JSON safe to place inside a <script type="application/json"> element."""
    text = json.dumps(value, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


async def client_submit(request: web.Request) -> web.StreamResponse:
    """The client submits a check-in (the after-session one arrives here once the call ended)."""
    visit = request[VISIT]
    if visit.another_device:
        raise Forbidden(ANOTHER_DEVICE_MESSAGE, code="another-device")
    body = await read_json(request, CHECKIN_SUBMIT_SCHEMA)
    if not re.fullmatch(r"[A-Za-z0-9_-]{16,64}", body["idempotency_key"]):
        raise InvalidInput("idempotency_key: use only letters, digits, - and _.")
    app = request.app
    if visit.after_session and app[CHECKINS].instrument(body["instrument_id"]).kind != "after":
        raise Forbidden("This session has ended.", code="session-ended")
    submitted = await app[LIVE].submit_checkin(
        visit.session.id,
        instrument_id=body["instrument_id"],
        answers=body["answers"],
        idempotency_key=body["idempotency_key"],
        language=body.get("language"),
    )
    return web.json_response(
        {
            "idempotency_key": body["idempotency_key"],
            "stored": submitted.result.stored,
            "duplicate": submitted.duplicate,
        },
        status=200 if submitted.duplicate else 201,
    )


async def after_page(request: web.Request) -> web.StreamResponse:
    """After the session: the after check-in (reachable from the link for the grace period)."""
    visit = after_session_visit(request)
    if visit is None:
        raise Unauthenticated(N_("Open your session link again."))
    if visit.another_device:
        raise Forbidden(ANOTHER_DEVICE_MESSAGE, code="another-device")
    app = request.app
    instrument = app[CHECKINS].instrument_for("after")
    goals = await app[GOALS].goals(visit.client_id)
    states = await app[CONSENTS].state(app[DB], visit.client_id, app[CLOCK]())
    storing = states[Purpose.CHECKIN_STORAGE].state is ConsentState.GRANTED
    return aiohttp_jinja2.render_template(
        "after.html",
        request,
        {
            "session": visit.session,
            "csrf_token": visit.csrf_token,
            "storing": storing,
            "questionnaire_json": script_json(
                with_goal_items(questionnaire_resource(instrument), goals)
            ),
            "ended": visit.session.status is SessionStatus.ENDED,
        },
    )


async def _audited_read(request: web.Request, client_id: str, what: str, count: int) -> None:
    app = request.app
    therapist = request[SIGNED_IN].account
    async with app[DB].write() as conn:
        await app[AUDIT].record(
            conn,
            at=app[CLOCK](),
            actor=f"account:{therapist.id}",
            action="clinical.read",
            targets=(f"client:{client_id}",),
            details={"what": what, "count": count},
        )


def _fhir_bundle(
    request: web.Request, client_id: str, results: list[CheckinResult], now: datetime
) -> dict[str, Any]:
    from server.core.checkins import validate_answers

    instruments = {r.instrument.id: r.instrument for r in results}
    responses = []
    for r in results:
        # the wording the client read: the instrument in the language it was shown in
        shown = (
            r.instrument.in_language(r.language)
            if r.language in r.instrument.languages
            else r.instrument
        )
        responses.append(
            questionnaire_response(
                shown,
                validate_answers(shown, r.answers),
                response_id=r.id,
                subject_ref=f"Patient/{client_id}",
                authored=r.submitted_at,
            )
        )
    return bundle(
        [questionnaire_resource(i) for i in instruments.values()],
        responses,
        bundle_id=f"checkins-{client_id}",
        timestamp=now,
    )


async def client_checkins(request: web.Request) -> web.StreamResponse:
    """A client's stored check-ins (JSON or, with ?format=fhir, a FHIR R4 Bundle); audited."""
    therapist = request[SIGNED_IN].account
    app = request.app
    client = await scheduling.get_client(app[DB], therapist, path_id(request, "client_id"))
    fmt = request.query.get("format", "json")
    if fmt not in ("json", "fhir"):
        raise NotFound("Unknown format; use json or fhir.")
    results = await app[CHECKINS].stored_for_client(app[DB], client.id)
    await _audited_read(request, client.id, f"checkins:{fmt}", len(results))
    if fmt == "fhir":
        document = _fhir_bundle(request, client.id, results, app[CLOCK]())
        # The shared goals (FHIR R4 `Goal`, with their progress) beside the responses.
        goals = app[GOALS]
        resources = fhir_goals(
            await goals.goals(client.id), await goals.progress(client.id), client.id
        )
        document["entry"].extend({"resource": r} for r in resources)
        return web.json_response(document, content_type="application/fhir+json")
    return web.json_response({"items": [result_json(r) for r in results]})


async def session_checkins(request: web.Request) -> web.StreamResponse:
    """One session's check-ins for its summary (stored ones, plus live ones not stored)."""
    therapist = request[SIGNED_IN].account
    app = request.app
    session = await scheduling.get_session(app[DB], therapist, path_id(request, "session_id"))
    results = await _session_results(request, session.id)
    await _audited_read(request, session.client_id, "session-checkins", len(results))
    return web.json_response({"items": [result_json(r) for r in results]})


async def _session_results(request: web.Request, session_id: str) -> list[CheckinResult]:
    app = request.app
    stored = await app[CHECKINS].stored_for_session(app[DB], session_id)
    seen = {r.id for r in stored}
    live = [r for r in app[CHECKINS].live_results(session_id) if r.id not in seen and not r.stored]
    return sorted([*stored, *live], key=lambda r: r.submitted_at)


async def summary_page(request: web.Request) -> web.StreamResponse:
    """The therapist's session summary: check-in scores, alerts, a timeline."""
    current = request[SIGNED_IN]
    app = request.app
    session = await scheduling.get_session(app[DB], current.account, path_id(request, "session_id"))
    results = await _session_results(request, session.id)
    cues = await app[CUE_RECORDS].for_session(app[DB], session.id)
    summary = cues["cue_summaries"][-1] if cues["cue_summaries"] else None
    read_count = len(results) + sum(len(v) for v in cues.values())
    await _audited_read(request, session.client_id, "session-summary", read_count)
    safety = await app[SAFETY].read_for_therapist(
        app[DB],
        app[AUDIT],
        session=session,
        therapist_id=current.account.id,
        where="summary",
        now=app[CLOCK](),
    )
    return aiohttp_jinja2.render_template(
        "session_summary.html",
        request,
        {
            "account": current.account,
            "csrf_token": current.csrf_token,
            "session": session,
            "results": [result_json(r) for r in results],
            "cue_summary": summary,
            "cue_charts": cue_charts(summary) if summary else [],
            "prompts": cues["cue_prompts"],
            "signals": cues["signal_events"],
            "signal_words": SIGNAL_WORDS,
            "safety": safety,
            "safety_check_on": app[SETTINGS].safety_check,
        },
    )


async def client_page(request: web.Request) -> web.StreamResponse:
    """One client: alliance trend across sessions, sessions, notes."""
    current = request[SIGNED_IN]
    app = request.app
    client = await scheduling.get_client(app[DB], current.account, path_id(request, "client_id"))
    results = await app[CHECKINS].stored_for_client(app[DB], client.id)
    progress = await therapist_progress(request, client, results)
    await _audited_read(request, client.id, "trend", progress["clinical_count"])
    sessions = await scheduling.list_sessions(app[DB], current.account, client_id=client.id)
    notes = await note_service.list_notes(
        app[DB], app[VAULT], app[AUDIT], current.account, client.id, app[CLOCK]()
    )
    points = _trend_points(results, sessions)
    cutoff = app[CHECKINS].instrument_for("after").rules
    measures = await client_page_context(request, client.id)
    return aiohttp_jinja2.render_template(
        "client.html",
        request,
        {
            "account": current.account,
            "csrf_token": current.csrf_token,
            "client": client,
            "sessions": sessions,
            "points": points,
            "notes": notes,
            "error": request.query.get("error"),
            "trend_svg": trend_svg(
                points, cutoff=getattr(cutoff, "alliance_total_below", 36), maximum=40
            ),
            **measures,
            **progress,
        },
    )


def _trend_points(results: list[CheckinResult], sessions: list[Any]) -> list[dict[str, Any]]:
    """Per session (in time order): the before wellbeing total and the after alliance total."""
    by_session: dict[str, dict[str, Any]] = {}
    for s in sessions:
        by_session[s.id] = {
            "label": s.starts_at.strftime("%d %b"),
            "before": None,
            "after": None,
            "starts_at": s.starts_at,
        }
    for r in results:
        point = by_session.get(r.session_id)
        if point is None:
            continue
        if r.instrument.kind == "before" and r.scores.wellbeing_total is not None:
            point["before"] = r.scores.wellbeing_total
        if r.instrument.kind == "after" and r.scores.alliance_total is not None:
            point["after"] = r.scores.alliance_total
    return [
        p
        for p in sorted(by_session.values(), key=lambda p: p["starts_at"])
        if p["before"] is not None or p["after"] is not None
    ]


CHECKIN_OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "POST",
        "/api/v1/visit/checkins",
        client_submit,
        "Submit a check-in (idempotent per key; 201 stored or kept for the session)",
        "clientSubmitCheckin",
        auth="client_after_session",
        request_schema=CHECKIN_SUBMIT_SCHEMA,
        responses={
            201: ("Accepted", {"type": "object"}),
            200: ("Already received (same key)", {"type": "object"}),
        },
        tags=["client"],
    ),
    Operation(
        "GET",
        "/api/v1/clients/{client_id}/checkins",
        client_checkins,
        "A client's stored check-ins; ?format=fhir gives a FHIR R4 Bundle (audited)",
        "clientCheckins",
        auth="therapist",
        query=(
            {
                "name": "format",
                "in": "query",
                "required": False,
                "schema": {"type": "string", "enum": ["json", "fhir"]},
            },
        ),
        responses={200: ("Check-ins", {"type": "object"}), 404: ("Not found", ERR)},
        media_types=("application/json", "application/fhir+json"),
        tags=["checkins"],
    ),
    Operation(
        "GET",
        "/api/v1/sessions/{session_id}/checkins",
        session_checkins,
        "A session's check-ins with scores and alerts (audited)",
        "sessionCheckins",
        auth="therapist",
        responses={200: ("Check-ins", {"type": "object"}), 404: ("Not found", ERR)},
        tags=["checkins"],
    ),
)


async def add_note_submit(request: web.Request) -> web.StreamResponse:
    """A note typed on the client page: stored only through the vault."""
    current = request[SIGNED_IN]
    client_id = path_id(request, "client_id")
    form = await request.post()
    text = form.get("text")
    app = request.app
    try:
        await note_service.add_note(
            app[DB],
            app[VAULT],
            app[AUDIT],
            current.account,
            client_id,
            text if isinstance(text, str) else "",
            app[CLOCK](),
        )
    except InvalidInput as exc:
        raise web.HTTPSeeOther(
            f"/dashboard/clients/{client_id}?{urlencode({'error': exc.message})}"
        ) from None
    raise web.HTTPSeeOther(f"/dashboard/clients/{client_id}")


async def erase_submit(request: web.Request) -> web.StreamResponse:
    """Erase a client after the therapist typed its alias to confirm."""
    current = request[SIGNED_IN]
    client_id = path_id(request, "client_id")
    app = request.app
    client = await scheduling.get_client(app[DB], current.account, client_id)
    form = await request.post()
    if form.get("confirm_alias") != client.alias:
        message = "Type the alias exactly to confirm the erasure."
        raise web.HTTPSeeOther(f"/dashboard/clients/{client_id}?{urlencode({'error': message})}")
    await erasure.erase_client(
        app[DB], app[VAULT], app[AUDIT], current.account, client_id, app[CLOCK]()
    )
    raise web.HTTPSeeOther("/dashboard")


def add_checkin_pages(app: web.Application) -> None:
    """The client's after-session page, the session summary, and the client page."""
    app.router.add_get("/visit/after", after_page)
    therapist = Role.THERAPIST
    app.router.add_get("/host/{session_id}/summary", page_guarded(summary_page, therapist))
    app.router.add_get("/dashboard/clients/{client_id}", page_guarded(client_page, therapist))
    app.router.add_post(
        "/dashboard/clients/{client_id}/notes", page_guarded(add_note_submit, therapist)
    )
    app.router.add_post(
        "/dashboard/clients/{client_id}/erase", page_guarded(erase_submit, therapist)
    )

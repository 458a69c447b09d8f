"""Outcome measures over HTTP: the client's due measures and answers on the visit page, the
therapist's plan per client and list of flags on the client page, and the dashboard's list of
safety alerts. Every operation is the `Measures` service's (and `LiveSessions.submit_measure`
for a submission, which delivers the safety alert)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any, Final

from aiohttp import web

from server.core.languages import N_, SOURCE_LANGUAGE
from server.core.measures import Measure
from server.core.measures.fhir import localized_questionnaire, measure_languages
from server.core.measures.schedule import FREQUENCY_LABELS, PlanError, parse_plan
from server.core.models import Role
from server.errors import Forbidden, InvalidInput
from server.keys import AUDIT, CLOCK, DB, LIVE, MEASURES, PAGE_LANGUAGES, SETTINGS
from server.services import scheduling
from server.services.measures import flags_from_history
from server.settings import Settings
from server.web.forms import read_form
from server.web.guard import SIGNED_IN, VISIT, page_guarded
from server.web.i18n import wanted_language
from server.web.identity import ANOTHER_DEVICE_MESSAGE, path_id
from server.web.openapi import Operation
from server.web.shapes import ERR
from server.web.validation import read_json

DEFAULT_CRISIS_TEXT: Final = N_(
    "If you are in danger now or might act on these thoughts, call your local emergency number "
    "or go to the nearest emergency department."
)
CLINIC_NUMBER_TEXT: Final = N_("You can also call the clinic on {number}.")

MEASURE_SUBMIT_SCHEMA: Final = {
    "type": "object",
    "required": ["measure_id", "answers", "idempotency_key"],
    "additionalProperties": False,
    "properties": {
        "measure_id": {"type": "string", "minLength": 1, "maxLength": 64},
        "answers": {"type": "object", "maxProperties": 50},
        "idempotency_key": {"type": "string", "minLength": 16, "maxLength": 64},
    },
}
_KEY = re.compile(r"[A-Za-z0-9_-]{16,64}")


def crisis_help_text(settings: Settings, gettext: Callable[[str], str] = str) -> str:
    """Where a client gets help right now: the clinic's text (as the clinic wrote it), else
    the default in the client's language (``gettext``) with the clinic's emergency number
    when one is set."""
    if settings.crisis_line_text.strip():
        return settings.crisis_line_text.strip()
    number = settings.clinic_emergency_number
    if number:
        return f"{gettext(DEFAULT_CRISIS_TEXT)} {gettext(CLINIC_NUMBER_TEXT).format(number=number)}"
    return gettext(DEFAULT_CRISIS_TEXT)


def client_language(request: web.Request, measure: Measure | None = None) -> str:
    """The language the client reads (their choice, their browser's, the clinic's), when the
    measure (if given) is translated into it; English otherwise."""
    wanted = wanted_language(request)
    if measure is not None and wanted not in measure_languages(measure):
        return SOURCE_LANGUAGE
    return wanted


def client_gettext(request: web.Request) -> Callable[[str], str]:
    """Page messages in the client's language, for answers made outside templates."""
    catalogue = request.app[PAGE_LANGUAGES].catalogues[wanted_language(request)]
    return catalogue.translations.gettext


# --- the client's side (visit page) ----------------------------------------------------------


def questionnaire_in(request: web.Request, measure: Measure) -> dict[str, Any]:
    """A due measure for the client's form: its id, title and FHIR Questionnaire, worded in
    the client's language where the measure is translated into it."""
    questionnaire = localized_questionnaire(measure, client_language(request, measure))
    return {
        "measure_id": measure.id,
        "title": questionnaire.get("title", measure.title),
        "questionnaire": questionnaire,
    }


async def client_due(request: web.Request) -> web.StreamResponse:
    """The measures the client is asked before this session, each as its FHIR Questionnaire."""
    visit = request[VISIT]
    if visit.another_device:
        raise Forbidden(ANOTHER_DEVICE_MESSAGE, code="another-device")
    due = await request.app[MEASURES].due(visit.session)
    return web.json_response({"due": [questionnaire_in(request, m) for m in due]})


def answer_language(request: web.Request, measure_id: str) -> str:
    """The language the client was shown this measure in (stored with the answers)."""
    measure = request.app[MEASURES].measures.get(measure_id)
    return client_language(request, measure) if measure is not None else SOURCE_LANGUAGE


async def client_submit(request: web.Request) -> web.StreamResponse:
    """The client's answers to one measure (idempotent per key). When they raise the safety
    alert the answer carries where to get help now; the therapist is told at once."""
    visit = request[VISIT]
    if visit.another_device:
        raise Forbidden(ANOTHER_DEVICE_MESSAGE, code="another-device")
    body = await read_json(request, MEASURE_SUBMIT_SCHEMA)
    if not _KEY.fullmatch(body["idempotency_key"]):
        raise InvalidInput("idempotency_key: use only letters, digits, - and _.")
    submitted = await request.app[LIVE].submit_measure(
        visit.session.id,
        measure_id=body["measure_id"],
        answers=body["answers"],
        idempotency_key=body["idempotency_key"],
        language=answer_language(request, body["measure_id"]),
    )
    safety = submitted.result.alert is not None
    help_text = crisis_help_text(request.app[SETTINGS], client_gettext(request))
    return web.json_response(
        {
            "idempotency_key": body["idempotency_key"],
            "duplicate": submitted.duplicate,
            "help": help_text if safety else None,
        },
        status=200 if submitted.duplicate else 201,
    )


# --- the therapist's side ----------------------------------------------------------------------


async def client_page_context(request: web.Request, client_id: str) -> dict[str, Any]:
    """What the client page shows of measures: the plan form and the not-on-track flags
    (the caller has checked the client is the therapist's). Reading the history to flag it is
    a read of clinical content, audited like the check-in trend."""
    app = request.app
    measures = app[MEASURES]
    plan = await measures.plan(client_id)
    history = await measures.history(client_id)
    flags = flags_from_history(history, measures.review_by_session)
    if history:
        async with app[DB].write() as conn:
            await app[AUDIT].record(
                conn,
                at=app[CLOCK](),
                actor=f"account:{request[SIGNED_IN].account.id}",
                action="clinical.read",
                targets=(f"client:{client_id}",),
                details={"what": "measure-flags", "count": len(history)},
            )
    return {
        "measure_choices": [
            {"id": m.id, "title": m.title, "chosen": m.id in plan.measures}
            for m in measures.measures.values()
        ],
        "measure_frequencies": [
            {"value": f.value, "label": label, "chosen": f is plan.frequency}
            for f, label in FREQUENCY_LABELS.items()
        ],
        "measure_flags": [
            {"measure": measures.measures[m].title, "reasons": [f.text for f in found]}
            for m, found in flags.items()
        ],
        "measures_review_session": measures.review_by_session,
        "measures_saved": request.query.get("measures") == "saved",
    }


async def plan_submit(request: web.Request) -> web.StreamResponse:
    """The therapist chooses which measures a client is asked and how often (audited)."""
    current = request[SIGNED_IN]
    app = request.app
    client = await scheduling.get_client(app[DB], current.account, path_id(request, "client_id"))
    form = await read_form(request)
    known = tuple(app[MEASURES].measures)
    chosen = [m for m in known if form.get(f"measure-{m}") == "on"]
    try:
        plan = parse_plan(chosen, form.get("frequency", ""), known)
    except PlanError as exc:
        raise InvalidInput(str(exc)) from None
    await app[MEASURES].set_plan(
        therapist_id=current.account.id,
        client_id=client.id,
        plan=plan,
        now=app[CLOCK](),
        audit=app[AUDIT],
    )
    raise web.HTTPSeeOther(f"/dashboard/clients/{client.id}?measures=saved#measures")


async def dashboard_alerts(request: web.Request) -> list[dict[str, Any]]:
    """The signed-in therapist's safety alerts not yet marked seen, for the dashboard."""
    alerts = await request.app[MEASURES].unseen_alerts(request[SIGNED_IN].account.id)
    return [
        {
            "id": a.id,
            "client_id": a.client_id,
            "alias": a.client_alias,
            "measure": a.measure_title,
            "raised_at": a.raised_at,
        }
        for a in alerts
    ]


async def dashboard_flags(request: web.Request) -> list[dict[str, Any]]:
    """The signed-in therapist's clients flagged not on track, for the dashboard."""
    app = request.app
    flagged = await app[MEASURES].flagged_clients(
        request[SIGNED_IN].account.id, now=app[CLOCK](), audit=app[AUDIT]
    )
    return [
        {"client_id": f.client_id, "alias": f.client_alias, "measures": list(f.measure_titles)}
        for f in flagged
    ]


async def alerts_api(request: web.Request) -> web.StreamResponse:
    """The dashboard's alert list, polled like "who is waiting": unseen safety alerts and the
    clients flagged not on track (the database is the source, so every process answers alike)."""
    safety = await dashboard_alerts(request)
    return web.json_response(
        {
            "safety": [{**a, "raised_at": a["raised_at"].isoformat()} for a in safety],
            "not_on_track": await dashboard_flags(request),
        }
    )


async def alert_seen_submit(request: web.Request) -> web.StreamResponse:
    """The therapist marks a safety alert seen: it leaves the dashboard list (audited)."""
    app = request.app
    now: datetime = app[CLOCK]()
    await app[MEASURES].mark_alert_seen(
        therapist_id=request[SIGNED_IN].account.id,
        alert_id=path_id(request, "alert_id"),
        now=now,
        audit=app[AUDIT],
    )
    raise web.HTTPSeeOther("/dashboard#safety-alerts")


MEASURE_OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "GET",
        "/api/v1/dashboard/alerts",
        alerts_api,
        "My unseen safety alerts and my clients flagged not on track (the dashboard polls)",
        "dashboardAlerts",
        auth="therapist",
        responses={200: ("Alerts", {"type": "object"}), 401: ("Not signed in", ERR)},
        tags=["therapist"],
    ),
    Operation(
        "GET",
        "/api/v1/visit/measures",
        client_due,
        "The outcome measures due before this session, as FHIR Questionnaires",
        "clientDueMeasures",
        auth="client",
        responses={200: ("Due measures", {"type": "object"}), 403: ("Forbidden", ERR)},
        tags=["client"],
    ),
    Operation(
        "POST",
        "/api/v1/visit/measures",
        client_submit,
        "Submit an outcome measure (idempotent per key); a safety answer returns help text",
        "clientSubmitMeasure",
        auth="client",
        request_schema=MEASURE_SUBMIT_SCHEMA,
        responses={
            201: ("Stored", {"type": "object"}),
            200: ("Already received (same key)", {"type": "object"}),
            400: ("Invalid answers", ERR),
        },
        tags=["client"],
    ),
)


def add_measure_pages(app: web.Application) -> None:
    """The therapist's plan form and the dashboard's "mark as seen"."""
    therapist = Role.THERAPIST
    app.router.add_post(
        "/dashboard/clients/{client_id}/measures", page_guarded(plan_submit, therapist)
    )
    app.router.add_post(
        "/dashboard/safety-alerts/{alert_id}/seen", page_guarded(alert_seen_submit, therapist)
    )

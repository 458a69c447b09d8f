"""Answering measures between sessions over HTTP: the emailed link `/m/<token>` is swapped for
a page cookie and a same-site move on to the token-free `/measures` (like `/join` → `/visit`,
but by a page of ours rather than a 303, see `open_link`), whose
form (measures.js) reads and answers the link's measures through `/api/v1/measure-link`.
Every operation is `MeasureLinks`' (server/services/measure_links.py)."""

from __future__ import annotations

import time

import aiohttp_jinja2
from aiohttp import web

from server.core.languages import N_
from server.errors import InvalidInput, RateLimited
from server.keys import ADDRESS_HASHER, CLOCK, LINK_THROTTLE, LIVE, MEASURE_LINKS, SETTINGS
from server.services.measure_links import LinkState
from server.web.guard import MEASURE_LINK
from server.web.i18n import translate
from server.web.identity import client_address, cookie_names, measure_link, set_cookie
from server.web.measure_views import (
    _KEY,
    MEASURE_SUBMIT_SCHEMA,
    answer_language,
    client_gettext,
    crisis_help_text,
    questionnaire_in,
)
from server.web.openapi import Operation
from server.web.shapes import ERR
from server.web.validation import read_json


async def open_link(request: web.Request) -> web.StreamResponse:
    """Swap the emailed token for a page cookie and move on to `/measures`, so the token leaves
    the address bar; a link that does not work gets one plain page (never why), and repeated
    bad links from one address are slowed down like invite links."""
    app = request.app
    address = app[ADDRESS_HASHER].key(client_address(request), time.time())
    throttle, now_mono = app[LINK_THROTTLE], time.monotonic()
    wait = throttle.blocked_for(address, now_mono)
    if wait:
        raise RateLimited(
            N_("Too many attempts with invalid links. Try again later."), retry_after=wait
        )
    now = app[CLOCK]()
    entry = await app[MEASURE_LINKS].open(request.match_info["token"], now)
    if entry is None:
        throttle.record_failure(address, now_mono)
        return aiohttp_jinja2.render_template(
            "measures_link.html", request, _page(request, LinkState.CLOSED), status=404
        )
    # Not a 303: a client opens this from their mail, a cross-site navigation, and browsers
    # keep SameSite=Strict cookies off every hop of a redirect chain that began on another
    # site, so /measures would not see the cookie. A page of our own that moves on by itself
    # (meta refresh, with a link as fallback) starts a same-site navigation that carries it.
    response = aiohttp_jinja2.render_template(
        "moving_on.html",
        request,
        {
            "next_url": "/measures",
            "title": translate(request, N_("A short form")),
            "link_text": translate(request, N_("Open the form")),
        },
    )
    response.headers["Cache-Control"] = "no-store"
    settings = app[SETTINGS]
    set_cookie(
        response,
        settings,
        cookie_names(settings).measures,
        entry.cookie_token,
        expires_at=entry.expires_at,
        now=now,
    )
    return response


def _page(request: web.Request, state: LinkState, csrf_token: str = "") -> dict[str, object]:
    return {
        "state": state.value,
        "csrf_token": csrf_token,
        "crisis_text": crisis_help_text(request.app[SETTINGS], client_gettext(request)),
    }


async def link_page(request: web.Request) -> web.StreamResponse:
    """The token-free page of an opened link: its form, a thank-you once answered, or a plain
    "does not work" once it expired or was replaced."""
    visit = measure_link(request)
    if visit is None:
        return aiohttp_jinja2.render_template(
            "measures_link.html", request, _page(request, LinkState.CLOSED), status=404
        )
    status = 200 if visit.state is not LinkState.CLOSED else 404
    return aiohttp_jinja2.render_template(
        "measures_link.html", request, _page(request, visit.state, visit.csrf_token), status=status
    )


async def link_due(request: web.Request) -> web.StreamResponse:
    """The link's measures not yet answered, each as its FHIR Questionnaire."""
    visit = request[MEASURE_LINK]
    if visit.state is not LinkState.OPEN:
        return web.json_response({"due": []})
    remaining = await request.app[MEASURE_LINKS].remaining(visit)
    return web.json_response({"due": [questionnaire_in(request, m) for m in remaining]})


async def link_submit(request: web.Request) -> web.StreamResponse:
    """One answered measure from the link (idempotent per key); a safety answer returns where
    to get help now, and the therapist is told at once (dashboard, email)."""
    visit = request[MEASURE_LINK]
    body = await read_json(request, MEASURE_SUBMIT_SCHEMA)
    if not _KEY.fullmatch(body["idempotency_key"]):
        raise InvalidInput("idempotency_key: use only letters, digits, - and _.")
    app = request.app
    submitted = await app[MEASURE_LINKS].submit(
        app[LIVE],
        visit,
        measure_id=body["measure_id"],
        answers=body["answers"],
        idempotency_key=body["idempotency_key"],
        now=app[CLOCK](),
        language=answer_language(request, body["measure_id"]),
    )
    safety = submitted.result.alert is not None
    help_text = crisis_help_text(app[SETTINGS], client_gettext(request))
    return web.json_response(
        {
            "idempotency_key": body["idempotency_key"],
            "duplicate": submitted.duplicate,
            "help": help_text if safety else None,
        },
        status=200 if submitted.duplicate else 201,
    )


MEASURE_LINK_OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "GET",
        "/api/v1/measure-link",
        link_due,
        "The measures an emailed link still asks, as FHIR Questionnaires",
        "linkDueMeasures",
        auth="client_measure_link",
        responses={
            200: ("Due measures", {"type": "object"}),
            401: ("No link opened", ERR),
            403: ("Link closed", ERR),
        },
        tags=["client"],
    ),
    Operation(
        "POST",
        "/api/v1/measure-link",
        link_submit,
        "Submit a measure from an emailed link (idempotent per key); a safety answer returns"
        " help text",
        "linkSubmitMeasure",
        auth="client_measure_link",
        request_schema=MEASURE_SUBMIT_SCHEMA,
        responses={
            201: ("Stored", {"type": "object"}),
            200: ("Already received (same key)", {"type": "object"}),
            400: ("Invalid answers", ERR),
            403: ("Link closed", ERR),
            409: ("The form was already sent", ERR),
        },
        tags=["client"],
    ),
)


def add_measure_link_pages(app: web.Application) -> None:
    """The emailed link and its token-free page."""
    app.router.add_get("/m/{token}", open_link)
    app.router.add_get("/measures", link_page)

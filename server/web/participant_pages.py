"""The therapist's page of a session's people: who takes part, their links, add and remove."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from server.core.links import SessionStatus
from server.core.models import Role
from server.core.participant_rules import MAX_GUEST_LABEL_CHARS
from server.errors import AttuneError, NotFound
from server.keys import AUDIT, CLOCK, DB, LIVE, MAILER, SETTINGS, VAULT
from server.services import participants, scheduling
from server.web.forms import read_form
from server.web.guard import SIGNED_IN, page_guarded
from server.web.identity import clear_cookie, path_id, set_cookie
from server.web.shapes import join_url, qr_svg

_NEW_LINK_SHOWN_FOR = timedelta(minutes=10)


def _new_link_cookie(request: web.Request) -> str:
    """A just-issued person's link rides this short-lived HttpOnly cookie to the page (post,
    redirect, get), so a reload shows it again instead of minting another."""
    return "__Host-attune-person-link" if request.app[SETTINGS].uses_tls else "attune-person-link"


def _path(session_id: str) -> str:
    return f"/dashboard/sessions/{session_id}/people"


def _show_link(
    request: web.Request, session_id: str, participant_id: str, token: str
) -> web.HTTPSeeOther:
    response = web.HTTPSeeOther(_path(session_id))
    now = request.app[CLOCK]()
    set_cookie(
        response,
        request.app[SETTINGS],
        _new_link_cookie(request),
        f"{session_id}.{participant_id}.{token}",
        expires_at=now + _NEW_LINK_SHOWN_FOR,
        now=now,
    )
    return response


async def people_page(
    request: web.Request, *, error: str | None = None, status: int = 200
) -> web.StreamResponse:
    """Who takes part besides the therapist, each link's status, and the forms to change it."""
    current = request[SIGNED_IN]
    app = request.app
    session_id = path_id(request, "session_id")
    session = await scheduling.get_session(app[DB], current.account, session_id)
    people = await participants.list_participants(app[DB], app[VAULT], current.account, session_id)
    present = {p.client_id for p in people if p.client_id}
    clients = await scheduling.list_clients(app[DB], current.account)
    carried = request.cookies.get(_new_link_cookie(request), "").split(".")
    new_link: dict[str, Any] | None = None
    if len(carried) == 3 and carried[0] == session_id:
        person = next((p for p in people if p.id == carried[1]), None)
        if person is not None:
            url = join_url(request, carried[2])
            new_link = {"person": person, "url": url, "qr_svg": qr_svg(url)}
    max_people = app[SETTINGS].max_people_per_session
    context = {
        "account": current.account,
        "csrf_token": current.csrf_token,
        "session": session,
        "people": people,
        "addable_clients": [c for c in clients if c.id not in present],
        "room_left": max_people - 1 - len(people),
        "max_people": max_people,
        "is_open": session.status in (SessionStatus.SCHEDULED, SessionStatus.LIVE),
        "new_link": new_link,
        "label_max": MAX_GUEST_LABEL_CHARS,
        "error": error,
    }
    return aiohttp_jinja2.render_template("session_people.html", request, context, status=status)


async def add_person(request: web.Request) -> web.StreamResponse:
    """Add a client (chosen among the therapist's own) or a guest (a label)."""
    current = request[SIGNED_IN]
    app = request.app
    session_id = path_id(request, "session_id")
    form = await read_form(request)
    now, max_people = app[CLOCK](), app[SETTINGS].max_people_per_session
    try:
        if form.get("kind") == "client":
            person, invite = await participants.add_client(
                app[DB],
                app[AUDIT],
                app[VAULT],
                current.account,
                session_id,
                client_id=form.get("client_id", ""),
                max_people=max_people,
                now=now,
                mail=app[MAILER],
            )
        elif form.get("kind") == "guest":
            person, invite = await participants.add_guest(
                app[DB],
                app[AUDIT],
                app[VAULT],
                current.account,
                session_id,
                label=form.get("label", ""),
                max_people=max_people,
                now=now,
            )
        else:
            return await people_page(request, error="Choose a client or a guest.", status=422)
    except AttuneError as exc:
        if isinstance(exc, NotFound) and exc.message == "No such session.":
            raise
        return await people_page(request, error=exc.message, status=exc.status)
    raise _show_link(request, session_id, person.id, invite.token)


async def person_action(request: web.Request) -> web.StreamResponse:
    """Re-issue a person's link (shown once) or remove them (after a confirmation)."""
    current = request[SIGNED_IN]
    app = request.app
    session_id = path_id(request, "session_id")
    participant_id = path_id(request, "participant_id")
    action = request.match_info["action"]
    now = app[CLOCK]()
    try:
        if action == "reissue":
            invite = await participants.reissue(
                app[DB],
                app[AUDIT],
                app[LIVE],
                current.account,
                session_id,
                participant_id,
                now,
                mail=app[MAILER],
            )
            raise _show_link(request, session_id, participant_id, invite.token)
        if action != "remove":
            raise NotFound("Not found.")
        await participants.remove(
            app[DB], app[AUDIT], app[LIVE], current.account, session_id, participant_id, now
        )
    except AttuneError as exc:
        if isinstance(exc, NotFound):
            raise
        return await people_page(request, error=exc.message, status=exc.status)
    response = web.HTTPSeeOther(_path(session_id))
    clear_cookie(response, app[SETTINGS], _new_link_cookie(request))
    raise response


def add_participant_pages(app: web.Application) -> None:
    """The session's people page and its forms (therapists only)."""
    therapist = Role.THERAPIST
    r = app.router
    r.add_get("/dashboard/sessions/{session_id}/people", page_guarded(people_page, therapist))
    r.add_post("/dashboard/sessions/{session_id}/people", page_guarded(add_person, therapist))
    r.add_post(
        "/dashboard/sessions/{session_id}/people/{participant_id}/{action}",
        page_guarded(person_action, therapist),
    )

"""Email pages: the client's address and reminder choice (from their visit link), and the
one-click unsubscribe link that every reminder carries (no sign-in, no cookie)."""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
from aiohttp import web

from privacy.consent import Channel, ConsentDecision, ConsentState, Purpose
from server.core.languages import N_, offered
from server.core.models import Role
from server.errors import AttuneError
from server.keys import AUDIT, CLOCK, CONSENTS, DB, MAILER
from server.services.email import clean_email
from server.services.scheduling import ClientVisit
from server.web.guard import SIGNED_IN, page_guarded
from server.web.i18n import LANGUAGE, translate
from server.web.identity import page_visit

_FIELD_LIMIT = 512


async def _render(
    request: web.Request,
    visit: ClientVisit,
    *,
    error: str | None = None,
    entered: str | None = None,
    saved: str | None = None,
    ticked: bool | None = None,
    status: int = 200,
) -> web.StreamResponse:
    app = request.app
    client_id = visit.client_id
    mailer = app[MAILER]
    states = await app[CONSENTS].state(app[DB], client_id, app[CLOCK](), request[LANGUAGE])
    contact = states[Purpose.CONTACT]
    email = await mailer.contact_email(app[DB], client_id)
    context: dict[str, Any] = {
        "csrf_token": visit.csrf_token,
        "enabled": mailer.enabled,
        "email": email,
        "entered": entered if entered is not None else (email or ""),
        "reminders": await mailer.reminders_on(app[DB], client_id),
        "consented": contact.state is ConsentState.GRANTED,
        "ticked": contact.state is ConsentState.GRANTED if ticked is None else ticked,
        "notice_title": contact.current_notice.title,
        "notice_version": contact.current_notice.version,
        "notice_language": contact.current_notice.language,
        "error": translate(request, error) if error else None,
        "saved": saved,
    }
    return aiohttp_jinja2.render_template("visit_contact.html", request, context, status=status)


async def contact_page(request: web.Request) -> web.StreamResponse:
    """The client's email address for reminders: add, change or remove."""
    visit = page_visit(request)
    saved = request.query.get("saved")
    return await _render(request, visit, saved=saved if saved in {"saved", "removed"} else None)


async def contact_submit(request: web.Request) -> web.StreamResponse:
    """Save (ticking the `contact` consent in the same step) or remove the address."""
    visit = page_visit(request)
    app = request.app
    form = await request.post()
    action = str(form.get("action", "save"))
    email = str(form.get("email", ""))[:_FIELD_LIMIT]
    client_id = visit.client_id
    now = app[CLOCK]()
    consents, mailer = app[CONSENTS], app[MAILER]
    # the notice's language as shown on the page (an offered one), else this page's language
    shown_language = offered(str(form.get("notice_language", ""))) or request[LANGUAGE]
    states = await consents.state(app[DB], client_id, now)
    granted = states[Purpose.CONTACT].state is ConsentState.GRANTED
    if action == "remove":
        await mailer.remove_contact(app[DB], app[AUDIT], client_id=client_id, now=now)
        if granted:
            await consents.decide(
                app[DB],
                app[AUDIT],
                client_id=client_id,
                purpose=Purpose.CONTACT,
                decision=ConsentDecision.WITHDRAWN,
                notice_version=consents.catalog.current(Purpose.CONTACT).version,
                channel=Channel.PAGE,
                now=now,
                notice_language=shown_language,
            )
        raise web.HTTPSeeOther("/visit/contact?saved=removed")
    if not mailer.enabled:  # the page offers no form then; a stale or forged post records nothing
        return await _render(request, visit, status=409)
    if form.get("consent") != "yes":
        return await _render(
            request,
            visit,
            error=N_("Tick “Email me reminders” to save an address, or leave this page."),
            entered=email,
            status=422,
        )
    try:
        email = clean_email(email)  # before the consent: a typo must not record a grant
        if not granted:
            shown = str(form.get("notice_version", ""))
            await consents.decide(
                app[DB],
                app[AUDIT],
                client_id=client_id,
                purpose=Purpose.CONTACT,
                decision=ConsentDecision.GRANTED,
                notice_version=int(shown) if shown.isdigit() else -1,
                channel=Channel.PAGE,
                now=now,
                notice_language=shown_language,
            )
        await mailer.set_contact(app[DB], app[AUDIT], client_id=client_id, email=email, now=now)
    except AttuneError as exc:
        return await _render(
            request, visit, error=exc.message, entered=email, ticked=True, status=exc.status
        )
    raise web.HTTPSeeOther("/visit/contact?saved=saved")


async def unsubscribe_page(request: web.Request) -> web.StreamResponse:
    """The link in a reminder: one button (a GET alone changes nothing: link scanners)."""
    return aiohttp_jinja2.render_template(
        "unsubscribe.html", request, {"token": request.match_info["token"], "done": None}
    )


async def unsubscribe_submit(request: web.Request) -> web.StreamResponse:
    """Stop reminders; also the RFC 8058 one-click POST that mail programs send."""
    app = request.app
    done = await app[MAILER].unsubscribe(
        app[DB], app[AUDIT], request.match_info["token"], app[CLOCK]()
    )
    return aiohttp_jinja2.render_template(
        "unsubscribe.html",
        request,
        {"token": request.match_info["token"], "done": done},
        status=200 if done else 404,
    )


async def alert_emails_submit(request: web.Request) -> web.StreamResponse:
    """A therapist switches alert emails on or off (from the dashboard)."""
    current = request[SIGNED_IN]
    form = await request.post()
    app = request.app
    await app[MAILER].set_alert_emails(
        app[DB], account_id=current.account.id, on=form.get("alerts") == "on", now=app[CLOCK]()
    )
    raise web.HTTPSeeOther("/dashboard")


def add_email_pages(app: web.Application) -> None:
    """Register the email pages."""
    app.router.add_post(
        "/dashboard/email-alerts", page_guarded(alert_emails_submit, Role.THERAPIST)
    )
    app.router.add_get("/visit/contact", contact_page)
    app.router.add_post("/visit/contact", contact_submit)
    app.router.add_get("/email/unsubscribe/{token}", unsubscribe_page)
    app.router.add_post("/email/unsubscribe/{token}", unsubscribe_submit)

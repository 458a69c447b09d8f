"""HTML pages (jinja2): sign-in, first-run setup, therapist dashboard, admin, invite links."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from server.core.languages import N_
from server.core.links import LinkState, LinkWindow, SessionStatus
from server.core.models import Role
from server.errors import (
    AttuneError,
    InvalidInput,
    LiveUnavailable,
    NotFound,
    RateLimited,
    Unauthenticated,
)
from server.keys import (
    ADDRESS_HASHER,
    AUDIT,
    CLOCK,
    DB,
    HUB,
    LINK_THROTTLE,
    LIVE,
    MAILER,
    SETTINGS,
    VAULT,
)
from server.security.redirects import safe_next
from server.services import accounts as account_service
from server.services import admin_accounts, participants, scheduling, two_factor
from server.web.account_links import deliver_account_link
from server.web.account_pages import after_password, after_sign_in
from server.web.api.auth import sign_in
from server.web.denials import record_denial
from server.web.forms import read_form
from server.web.guard import SIGNED_IN, page_guarded
from server.web.i18n import translate
from server.web.identity import (
    after_session_visit,
    clear_cookie,
    client_address,
    client_visit,
    cookie_names,
    pending_sign_in,
    set_cookie,
    signed_in,
)
from server.web.measure_views import dashboard_alerts, dashboard_flags
from server.web.shapes import join_url, qr_svg
from server.web.sign_in_guard import set_device_cookie
from server.web.validation import parse_datetime


def _context(request: web.Request, **values: Any) -> dict[str, Any]:
    current = signed_in(request)
    return {
        "account": current.account if current else None,
        "csrf_token": current.csrf_token if current else "",
        **values,
    }


async def home(request: web.Request) -> web.StreamResponse:
    current = signed_in(request)
    if current is None:
        raise web.HTTPSeeOther("/login")
    raise web.HTTPSeeOther("/admin" if current.account.role is Role.ADMIN else "/dashboard")


@aiohttp_jinja2.template("login.html")
async def login_page(request: web.Request) -> dict[str, Any]:
    done = request.query.get("reset") == "done"
    return _context(
        request,
        next=safe_next(request.query.get("next")),
        error=None,
        email="",
        throttled=False,
        message="Your new password is set. Sign in with it." if done else None,
    )


async def login_submit(request: web.Request) -> web.StreamResponse:
    form = await read_form(request)
    email, next_path = form.get("email", ""), safe_next(form.get("next"))
    code = form.get("code", "").strip() or None
    try:
        outcome = await sign_in(request, email, form.get("password", ""), code)
    except (Unauthenticated, RateLimited) as exc:
        response = aiohttp_jinja2.render_template(
            "login.html",
            request,
            _context(
                request,
                next=next_path,
                error=exc.message,
                email=email[:254],
                throttled=isinstance(exc, RateLimited),
            ),
            status=exc.status,
        )
        if isinstance(exc, RateLimited):
            response.headers["Retry-After"] = str(exc.retry_after)
            await record_denial(request, exc.status, exc.code)
        return response
    target = after_password(outcome.stage, next_path) or await after_sign_in(
        request, outcome.account.id, next_path
    )
    response = web.HTTPSeeOther(target)
    set_cookie(
        response, request.app[SETTINGS], cookie_names(request.app[SETTINGS]).account, outcome.token
    )
    set_device_cookie(request, response)
    raise response


async def logout_submit(request: web.Request) -> web.StreamResponse:
    current = signed_in(request) or pending_sign_in(request)
    if current is not None:
        await account_service.end_sign_in(
            request.app[DB], request.app[AUDIT], request.app[LIVE], current, request.app[CLOCK]()
        )
    response = web.HTTPSeeOther("/login")
    clear_cookie(response, request.app[SETTINGS], cookie_names(request.app[SETTINGS]).account)
    raise response


async def setup_page(request: web.Request) -> web.StreamResponse:
    token = request.match_info["token"]
    usable = await account_service.setup_link_usable(request.app[DB], token, request.app[CLOCK]())
    if not usable:
        raise NotFound("This setup link is no longer valid.")
    return aiohttp_jinja2.render_template("setup.html", request, _context(request, error=None))


async def setup_submit(request: web.Request) -> web.StreamResponse:
    token = request.match_info["token"]
    form = await read_form(request)
    if form.get("password") != form.get("password_again"):
        return aiohttp_jinja2.render_template(
            "setup.html",
            request,
            _context(request, error="The two passwords differ."),
            status=422,
        )
    try:
        await account_service.complete_setup(
            request.app[DB],
            request.app[AUDIT],
            token=token,
            email=form.get("email", ""),
            password=form.get("password", ""),
            now=request.app[CLOCK](),
        )
    except InvalidInput as exc:
        return aiohttp_jinja2.render_template(
            "setup.html", request, _context(request, error=exc.message), status=422
        )
    raise web.HTTPSeeOther("/login")


# --- therapist dashboard ----------------------------------------------------------------------


async def _dashboard(
    request: web.Request, *, error: str | None = None, status: int = 200
) -> web.StreamResponse:
    current = request[SIGNED_IN]
    db = request.app[DB]
    now = request.app[CLOCK]()
    sessions = await scheduling.list_sessions(db, current.account)
    open_states = (SessionStatus.SCHEDULED, SessionStatus.LIVE)
    upcoming = sorted(
        (s for s in sessions if s.status in open_states and s.ends_at > now),
        key=lambda s: s.starts_at,
    )
    past = sorted(
        (s for s in sessions if s not in upcoming), key=lambda s: s.starts_at, reverse=True
    )
    context = _context(
        request,
        clients=await scheduling.list_clients(db, current.account),
        upcoming=upcoming,
        past=past,
        email_enabled=request.app[MAILER].enabled,
        email_status=await request.app[MAILER].statuses(db, current.account.id),
        alert_emails=await request.app[MAILER].alert_emails_on(db, current.account.id),
        safety_alerts=await dashboard_alerts(request),
        not_on_track=await dashboard_flags(request),
        error=error,
        now=now,
    )
    return aiohttp_jinja2.render_template("dashboard.html", request, context, status=status)


async def dashboard(request: web.Request) -> web.StreamResponse:
    return await _dashboard(request)


async def add_client(request: web.Request) -> web.StreamResponse:
    current = request[SIGNED_IN]
    form = await read_form(request)
    try:
        await scheduling.create_client(
            request.app[DB],
            request.app[AUDIT],
            current.account,
            form.get("alias", ""),
            request.app[CLOCK](),
        )
    except AttuneError as exc:
        return await _dashboard(request, error=exc.message, status=exc.status)
    raise web.HTTPSeeOther("/dashboard")


_NEW_LINK_SHOWN_FOR = timedelta(minutes=10)


def _show_link_after_redirect(
    request: web.Request, session_id: str, token: str
) -> web.HTTPSeeOther:
    """Post/redirect/get for a new invite link: the token rides a short-lived HttpOnly cookie
    to the link page, so a reload shows the same link instead of booking or minting another."""
    response = web.HTTPSeeOther(f"/dashboard/sessions/{session_id}/link")
    now = request.app[CLOCK]()
    settings = request.app[SETTINGS]
    set_cookie(
        response,
        settings,
        cookie_names(settings).new_link,
        f"{session_id}.{token}",
        expires_at=now + _NEW_LINK_SHOWN_FOR,
        now=now,
    )
    return response


async def link_page(request: web.Request) -> web.StreamResponse:
    """The invite link just issued for a session (or, later, a way to issue a new one)."""
    current = request[SIGNED_IN]
    session = await scheduling.get_session(
        request.app[DB], current.account, request.match_info["session_id"]
    )
    carried = request.cookies.get(cookie_names(request.app[SETTINGS]).new_link, "")
    session_id, _, token = carried.partition(".")
    url = join_url(request, token) if session_id == session.id and token else None
    return aiohttp_jinja2.render_template(
        "link_issued.html",
        request,
        _context(request, session=session, join_url=url, qr_svg=qr_svg(url) if url else None),
    )


async def add_session(request: web.Request) -> web.StreamResponse:
    current = request[SIGNED_IN]
    form = await read_form(request)
    try:
        starts = form.get("starts_at", "")
        offset = form.get("tz_offset_minutes", "0")
        starts_at = _local_form_time(starts, offset)
        minutes = int(form.get("minutes", "50") or "50")
        session, invite = await scheduling.create_session(
            request.app[DB],
            request.app[AUDIT],
            current.account,
            client_id=form.get("client_id", ""),
            starts_at=starts_at,
            minutes=minutes,
            now=request.app[CLOCK](),
            mail=request.app[MAILER],
        )
    except ValueError:
        return await _dashboard(request, error="Enter the length in whole minutes.", status=422)
    except AttuneError as exc:
        return await _dashboard(request, error=exc.message, status=exc.status)
    raise _show_link_after_redirect(request, session.id, invite.token)


def _local_form_time(value: str, offset_minutes: str) -> datetime:
    """A datetime-local field plus the browser's UTC offset (or an ISO time with an offset)."""
    value = value.strip()
    if not value:
        raise InvalidInput("Choose when the session starts.")
    if value.endswith("Z") or "+" in value[10:] or value[10:].count("-"):
        return parse_datetime(value, "starts_at")
    try:
        naive = datetime.fromisoformat(value)
        offset = int(offset_minutes)
    except ValueError:
        raise InvalidInput("Choose when the session starts.") from None
    if naive.tzinfo is not None or not -900 <= offset <= 900:
        raise InvalidInput("Choose when the session starts.")
    # JavaScript's getTimezoneOffset(): minutes to add to local time to reach UTC.
    try:
        return naive.replace(tzinfo=UTC) + timedelta(minutes=offset)
    except OverflowError:
        raise InvalidInput("That start time is out of range.") from None


async def session_action(request: web.Request) -> web.StreamResponse:
    current = request[SIGNED_IN]
    session_id, action = request.match_info["session_id"], request.match_info["action"]
    if action == "edit":
        return await edit_session_submit(request)
    app = request.app
    now = app[CLOCK]()
    try:
        if action == "reissue":
            invite = await scheduling.reissue_invite(
                app[DB], app[AUDIT], app[LIVE], current.account, session_id, now, mail=app[MAILER]
            )
            raise _show_link_after_redirect(request, session_id, invite.token)
        if action == "revoke":
            await scheduling.revoke_invite(
                app[DB], app[AUDIT], app[LIVE], current.account, session_id, now
            )
        elif action == "cancel":
            await app[LIVE].end_session(current.account, session_id, SessionStatus.CANCELLED)
        else:
            raise NotFound("Not found.")
    except AttuneError as exc:
        if isinstance(exc, NotFound):
            raise
        return await _dashboard(request, error=exc.message, status=exc.status)
    raise web.HTTPSeeOther("/dashboard")


async def edit_session_page(
    request: web.Request, *, error: str | None = None, status: int = 200
) -> web.StreamResponse:
    """Reschedule a session: a new time and length, and whether to send a new link."""
    current = request[SIGNED_IN]
    session = await scheduling.get_session(
        request.app[DB], current.account, request.match_info["session_id"]
    )
    minutes = int((session.ends_at - session.starts_at).total_seconds() // 60)
    return aiohttp_jinja2.render_template(
        "session_edit.html",
        request,
        _context(request, session=session, minutes=minutes, error=error),
        status=status,
    )


async def edit_session_submit(request: web.Request) -> web.StreamResponse:
    current = request[SIGNED_IN]
    session_id = request.match_info["session_id"]
    form = await read_form(request)
    app = request.app
    try:
        minutes = int(form.get("minutes", "50") or "50")
    except ValueError:
        minutes = 0
    if not 5 <= minutes <= 480:
        return await edit_session_page(
            request, error="Enter the length in whole minutes (5 to 480).", status=422
        )
    try:
        starts_at = _local_form_time(form.get("starts_at", ""), form.get("tz_offset_minutes", "0"))
        invite = await scheduling.reschedule_session(
            app[DB],
            app[AUDIT],
            app[LIVE],
            current.account,
            session_id,
            starts_at=starts_at,
            minutes=minutes,
            new_link=form.get("link") == "new",
            now=app[CLOCK](),
            mail=app[MAILER],
        )
    except AttuneError as exc:
        if isinstance(exc, NotFound):
            raise
        return await edit_session_page(request, error=exc.message, status=exc.status)
    if invite is not None:
        raise _show_link_after_redirect(request, session_id, invite.token)
    raise web.HTTPSeeOther("/dashboard")


def host_heading(client_alias: str, labels: list[str]) -> str:
    """The therapist's room's title: the session's client, or in a group everyone invited."""
    if len(labels) > 1:
        return "Group session: " + ", ".join(labels)
    return f"Session with {client_alias}"


async def host_page(request: web.Request) -> web.StreamResponse:
    current = request[SIGNED_IN]
    session = await scheduling.get_session(
        request.app[DB], current.account, request.match_info["session_id"]
    )
    await _live_sessions_can_start(request)
    settings = request.app[SETTINGS]
    people = await participants.list_participants(
        request.app[DB], request.app[VAULT], current.account, session.id
    )
    return aiohttp_jinja2.render_template(
        "host.html",
        request,
        _context(
            request,
            session=session,
            heading=host_heading(session.client_alias, [p.label for p in people]),
            emergency_number=settings.clinic_emergency_number,
            safety_check=settings.safety_check,
        ),
    )


# --- admin ------------------------------------------------------------------------------------


async def _admin(
    request: web.Request, *, error: str | None = None, notice: str | None = None, status: int = 200
) -> web.StreamResponse:
    accounts = await account_service.list_accounts(request.app[DB])
    return aiohttp_jinja2.render_template(
        "admin.html",
        request,
        _context(
            request,
            accounts=accounts,
            two_factor_required=await two_factor.required(request.app[DB]),
            error=error,
            notice=notice,
        ),
        status=status,
    )


async def admin(request: web.Request) -> web.StreamResponse:
    return await _admin(request)


async def admin_add_account(request: web.Request) -> web.StreamResponse:
    current = request[SIGNED_IN]
    form = await read_form(request)
    try:
        role = Role(form.get("role", Role.THERAPIST.value))
        account, token, expires_at = await admin_accounts.add_account_with_link(
            request.app[DB],
            request.app[AUDIT],
            current.account,
            email=form.get("email", ""),
            role=role,
            now=request.app[CLOCK](),
            by_email=request.app[MAILER].enabled,
        )
    except ValueError:
        return await _admin(request, error="Choose a role.", status=422)
    except AttuneError as exc:
        return await _admin(request, error=exc.message, status=exc.status)
    delivery = await deliver_account_link(request, account, token, expires_at, first_password=True)
    response = aiohttp_jinja2.render_template(
        "admin_reset_link.html",
        request,
        _context(
            request,
            target=account,
            delivery=delivery,
            qr_svg=qr_svg(delivery.url) if delivery.url else "",
            expires_at=expires_at,
            first_password=True,
        ),
    )
    response.headers["Cache-Control"] = "no-store"
    return response


async def admin_two_factor(request: web.Request) -> web.StreamResponse:
    current = request[SIGNED_IN]
    form = await read_form(request)
    required = form.get("required") == "on"
    await two_factor.set_required(
        request.app[DB], request.app[AUDIT], current.account, required, request.app[CLOCK]()
    )
    return await _admin(
        request,
        notice=(
            "Two-factor sign-in is now required: accounts without it set it up at their next"
            " sign-in."
            if required
            else "Two-factor sign-in is no longer required (accounts that use it keep it)."
        ),
    )


# --- clients arriving through a link -----------------------------------------------------------


async def join(request: web.Request) -> web.StreamResponse:
    """Swap the invite token for a cookie and redirect, so the token leaves the address bar."""
    app = request.app
    address = app[ADDRESS_HASHER].key(client_address(request), time.time())
    throttle, now_mono = app[LINK_THROTTLE], time.monotonic()
    wait = throttle.blocked_for(address, now_mono)
    if wait:
        raise RateLimited(
            N_("Too many attempts with invalid links. Try again later."), retry_after=wait
        )
    settings = app[SETTINGS]
    window = LinkWindow(
        early=timedelta(minutes=settings.invite_early_minutes),
        grace=timedelta(minutes=settings.invite_grace_minutes),
    )
    now = app[CLOCK]()
    outcome = await scheduling.redeem_invite(
        app[DB],
        app[AUDIT],
        request.match_info["token"],
        window,
        now,
        replacing=request.cookies.get(cookie_names(settings).client),
    )
    if isinstance(outcome, scheduling.TooEarly):
        return aiohttp_jinja2.render_template(
            "link_problem.html",
            request,
            {"too_early": True, "opens_at": outcome.opens_at, "starts_at": outcome.starts_at},
            status=403,
        )
    if isinstance(outcome, LinkState):
        throttle.record_failure(address, now_mono)
        return aiohttp_jinja2.render_template(
            "link_problem.html", request, {"too_early": False}, status=404
        )
    response: web.Response
    if request.headers.get("Sec-Fetch-Site") == "cross-site":  # e.g. a link in webmail
        response = aiohttp_jinja2.render_template(
            "moving_on.html",
            request,
            {
                "next_url": "/visit",
                "title": translate(request, N_("Your session")),
                "link_text": translate(request, N_("Continue")),
            },
        )
        response.headers["Cache-Control"] = "no-store"
    else:
        response = web.HTTPSeeOther("/visit")
    set_cookie(
        response,
        settings,
        cookie_names(settings).client,
        outcome.cookie_token,
        expires_at=outcome.expires_at,
        now=now,
    )
    if isinstance(response, web.HTTPSeeOther):
        raise response
    return response


async def _live_sessions_can_start(request: web.Request) -> None:
    """The pages that open a session's socket say so plainly (503) while live sessions cannot
    be routed (with several processes: Redis away), instead of a page that cannot connect."""
    if not await request.app[HUB].bus.available():
        raise LiveUnavailable()


async def visit(request: web.Request) -> web.StreamResponse:
    """The client's token-free landing page."""
    current = client_visit(request)
    if current is None:
        if after_session_visit(request) is not None:  # ended: the after-session check-in only
            raise web.HTTPSeeOther("/visit/after")
        return aiohttp_jinja2.render_template(
            "link_problem.html", request, {"too_early": False}, status=404
        )
    await _live_sessions_can_start(request)
    together = await participants.count_present(request.app[DB], current.session.id) > 1
    return aiohttp_jinja2.render_template(
        "visit.html",
        request,
        {
            "session": current.session,
            "csrf_token": current.csrf_token,
            "quick_exit_url": request.app[SETTINGS].quick_exit_url,
            # asked of the session's own client only (one check per session, for now)
            "safety_check": request.app[SETTINGS].safety_check and current.is_session_client,
            "guest": current.is_guest,
            "together": together,  # others besides the therapist see and hear this person
        },
    )


def add_page_routes(app: web.Application) -> None:
    """Register every page."""
    r = app.router
    r.add_get("/", home)
    r.add_get("/login", login_page)
    r.add_post("/login", login_submit)
    r.add_post("/logout", logout_submit)
    r.add_get("/setup/{token}", setup_page)
    r.add_post("/setup/{token}", setup_submit)
    therapist, admin_only = Role.THERAPIST, Role.ADMIN
    r.add_get("/dashboard", page_guarded(dashboard, therapist))
    r.add_post("/dashboard/clients", page_guarded(add_client, therapist))
    r.add_post("/dashboard/sessions", page_guarded(add_session, therapist))
    r.add_get("/dashboard/sessions/{session_id}/link", page_guarded(link_page, therapist))
    r.add_get("/dashboard/sessions/{session_id}/edit", page_guarded(edit_session_page, therapist))
    r.add_post("/dashboard/sessions/{session_id}/{action}", page_guarded(session_action, therapist))
    r.add_get("/host/{session_id}", page_guarded(host_page, therapist))
    r.add_get("/admin", page_guarded(admin, admin_only))
    r.add_post("/admin/accounts", page_guarded(admin_add_account, admin_only))
    r.add_post("/admin/two-factor", page_guarded(admin_two_factor, admin_only))
    r.add_get("/join/{token}", join)
    r.add_get("/visit", visit)

"""Every account's own security pages: the second sign-in step, two-factor enrolment, the
account page (password, two-factor, sign-ins), security notices, and the reset-link page.

A pending sign-in (password done, code or enrolment due) is not signed in: it reaches only
`/login/two-factor` or the enrolment page, and nothing else (`server/web/identity.py`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import aiohttp_jinja2
from aiohttp import web

from server.errors import AttuneError, InvalidInput, NotFound, RateLimited, Unauthenticated
from server.keys import AUDIT, CLOCK, DB, LIVE, VAULT
from server.security.redirects import safe_next
from server.security.totp import grouped
from server.services import accounts as account_service
from server.services import two_factor
from server.services.accounts import SignedIn, Stage
from server.web.api.auth import finish_second_factor
from server.web.denials import record_denial
from server.web.forms import read_form
from server.web.guard import SIGNED_IN, page_guarded
from server.web.identity import pending_sign_in, signed_in
from server.web.shapes import qr_svg


def _context(current: SignedIn | None, **values: Any) -> dict[str, Any]:
    full = current is not None and current.stage is Stage.FULL
    return {
        "account": current.account if full and current else None,
        "csrf_token": current.csrf_token if current else "",
        **values,
    }


def _with_next(path: str, next_path: str) -> str:
    return f"{path}?next={quote(next_path, safe='/')}" if next_path != "/" else path


async def after_sign_in(request: web.Request, account_id: str, next_path: str) -> str:
    """Where a completed sign-in goes: first the unseen security notices and the account's
    other sign-ins (to end them), if there are any; then where it was going."""
    db = request.app[DB]
    unseen = await account_service.account_notices(db, account_id, unseen_only=True)
    others = await account_service.other_sign_in_count(db, account_id)
    return _with_next("/account/notices", next_path) if unseen or others else next_path


def after_password(stage: Stage, next_path: str) -> str | None:
    """Where the password step sends a pending sign-in (None when it is complete)."""
    if stage is Stage.SECOND_FACTOR:
        return _with_next("/login/two-factor", next_path)
    if stage is Stage.ENROL:
        return _with_next("/account/two-factor", next_path)
    return None


# --- the second step ------------------------------------------------------------------------


def _second_step(
    request: web.Request, pending: SignedIn, *, error: str | None = None, status: int = 200
) -> web.StreamResponse:
    return aiohttp_jinja2.render_template(
        "login_two_factor.html",
        request,
        _context(pending, next=safe_next(request.query.get("next")), error=error),
        status=status,
    )


async def second_step_page(request: web.Request) -> web.StreamResponse:
    pending = pending_sign_in(request)
    if pending is None or pending.stage is not Stage.SECOND_FACTOR:
        raise web.HTTPSeeOther("/login")
    return _second_step(request, pending)


async def second_step_submit(request: web.Request) -> web.StreamResponse:
    pending = pending_sign_in(request)
    if pending is None or pending.stage is not Stage.SECOND_FACTOR:
        raise web.HTTPSeeOther("/login")
    form = await read_form(request)
    try:
        done = await finish_second_factor(request, form.get("code", ""))
    except (Unauthenticated, RateLimited) as exc:
        if isinstance(exc, RateLimited):
            await record_denial(request, exc.status, exc.code)
        return _second_step(request, pending, error=exc.message, status=exc.status)
    next_path = safe_next(form.get("next"))
    raise web.HTTPSeeOther(await after_sign_in(request, done.account.id, next_path))


# --- enrolment ------------------------------------------------------------------------


def _enrolling(request: web.Request) -> SignedIn:
    """A full sign-in, or one that must enrol before anything else."""
    current = signed_in(request)
    if current is not None:
        return current
    pending = pending_sign_in(request)
    if pending is not None and pending.stage is Stage.ENROL:
        return pending
    raise web.HTTPSeeOther("/login?next=/account/two-factor")


async def _enrol_page(
    request: web.Request, current: SignedIn, *, error: str | None = None, status: int = 200
) -> web.StreamResponse:
    if (await two_factor.status(request.app[DB], current.account.id)).enabled:
        raise web.HTTPSeeOther("/account")
    enrolment = await two_factor.begin_enrolment(
        request.app[DB], request.app[VAULT].ring, current.account
    )
    return aiohttp_jinja2.render_template(
        "two_factor_enrol.html",
        request,
        _context(
            current,
            qr_svg=qr_svg(enrolment.uri),
            secret=grouped(enrolment.secret),
            required=current.stage is Stage.ENROL,
            next=safe_next(request.query.get("next")),
            error=error,
        ),
        status=status,
    )


async def enrol_page(request: web.Request) -> web.StreamResponse:
    return await _enrol_page(request, _enrolling(request))


async def enrol_submit(request: web.Request) -> web.StreamResponse:
    current = _enrolling(request)
    form = await read_form(request)
    app = request.app
    now = app[CLOCK]()
    try:
        codes = await two_factor.confirm_enrolment(
            app[DB], app[AUDIT], app[VAULT].ring, current.account, form.get("code", ""), now
        )
    except InvalidInput as exc:
        return await _enrol_page(request, current, error=exc.message, status=exc.status)
    next_path = safe_next(form.get("next"))
    if current.stage is Stage.ENROL:
        current = await account_service.complete_sign_in(app[DB], app[AUDIT], current, now, "totp")
        next_path = await after_sign_in(request, current.account.id, next_path)
    else:
        next_path = "/account"
    return _codes_page(request, current, codes, next_path)


def _codes_page(
    request: web.Request, current: SignedIn, codes: list[str], next_path: str
) -> web.StreamResponse:
    response = aiohttp_jinja2.render_template(
        "recovery_codes.html", request, _context(current, codes=codes, next=next_path)
    )
    response.headers["Cache-Control"] = "no-store"
    return response


# --- the account page ------------------------------------------------------------------------


async def _account_page(
    request: web.Request,
    *,
    error: str | None = None,
    notice: str | None = None,
    status: int = 200,
) -> web.StreamResponse:
    current = request[SIGNED_IN]
    db = request.app[DB]
    return aiohttp_jinja2.render_template(
        "account_security.html",
        request,
        _context(
            current,
            two_factor=await two_factor.status(db, current.account.id),
            two_factor_required=await two_factor.required(db),
            sign_ins=await account_service.list_sign_ins(db, current),
            notices=await account_service.account_notices(
                db, current.account.id, unseen_only=False
            ),
            error=error,
            notice=notice,
        ),
        status=status,
    )


# Post/redirect/get: an action's page is `/account?done=<what>`, so a reload repeats nothing.
_DONE = {
    "password": "Password changed. Your other sign-ins have ended.",
    "two-factor-off": "Two-factor sign-in is off. Your other sign-ins have ended.",
    "sign-in-ended": "That sign-in has ended.",
}


def _done_notice(query: Mapping[str, str]) -> str | None:
    """The notice an action's redirect names (`?done=…`; `end-others` carries its count)."""
    done = query.get("done", "")
    if done == "end-others":
        ended = query.get("ended", "")
        n = int(ended) if ended.isdigit() and len(ended) < 5 else 0
        return f"Ended {n} other sign-in{'' if n == 1 else 's'}."
    return _DONE.get(done)


async def account_page(request: web.Request) -> web.StreamResponse:
    return await _account_page(request, notice=_done_notice(request.query))


async def account_action(request: web.Request) -> web.StreamResponse:
    current = request[SIGNED_IN]
    action = request.match_info["action"]
    form = await read_form(request)
    app = request.app
    db, audit, ring, now = app[DB], app[AUDIT], app[VAULT].ring, app[CLOCK]()
    try:
        if action == "password":
            if form.get("new_password") != form.get("new_password_again"):
                raise InvalidInput("The two new passwords differ.")
            await account_service.change_password(
                db,
                audit,
                current,
                current_password=form.get("current_password", ""),
                new_password=form.get("new_password", ""),
                now=now,
                live=request.app[LIVE],
            )
            done = "password"
        elif action == "two-factor-off":
            await two_factor.disable(
                db,
                audit,
                ring,
                current,
                password=form.get("password", ""),
                code=form.get("code", ""),
                now=now,
                live=request.app[LIVE],
            )
            done = "two-factor-off"
        elif action == "recovery-codes":
            codes = await two_factor.regenerate_recovery_codes(
                db,
                audit,
                ring,
                current,
                password=form.get("password", ""),
                code=form.get("code", ""),
                now=now,
            )
            return _codes_page(request, current, codes, "/account")
        elif action == "end-others":
            ended = await account_service.end_all_sign_ins(
                db,
                audit,
                current.account.id,
                account_service.EndReason.ENDED_BY_OWNER,
                now,
                except_session=current.token_hash,
                live=request.app[LIVE],
            )
            done = f"end-others&ended={len(ended)}"
        else:
            raise NotFound("Not found.")
    except AttuneError as exc:
        if isinstance(exc, NotFound):
            raise
        return await _account_page(request, error=exc.message, status=exc.status)
    raise web.HTTPSeeOther(f"/account?done={done}")


async def end_sign_in(request: web.Request) -> web.StreamResponse:
    current = request[SIGNED_IN]
    public_id = request.match_info["sign_in_id"]
    ended = await account_service.end_own_sign_in(
        request.app[DB],
        request.app[AUDIT],
        current,
        public_id,
        request.app[CLOCK](),
        live=request.app[LIVE],
    )
    if not ended:
        raise NotFound("Not found.")
    if public_id == current.public_id:
        raise web.HTTPSeeOther("/login")
    raise web.HTTPSeeOther("/account?done=sign-in-ended")


# --- notices at sign-in ------------------------------------------------------------------------


async def notices_page(request: web.Request) -> web.StreamResponse:
    current = request[SIGNED_IN]
    db = request.app[DB]
    found = await account_service.account_notices(db, current.account.id, unseen_only=True)
    others = [s for s in await account_service.list_sign_ins(db, current) if not s.current]
    return aiohttp_jinja2.render_template(
        "account_notices.html",
        request,
        _context(current, notices=found, others=others, next=safe_next(request.query.get("next"))),
    )


async def end_others_and_continue(request: web.Request) -> web.StreamResponse:
    current = request[SIGNED_IN]
    form = await read_form(request)
    app = request.app
    await account_service.end_all_sign_ins(
        app[DB],
        app[AUDIT],
        current.account.id,
        account_service.EndReason.ENDED_BY_OWNER,
        app[CLOCK](),
        except_session=current.token_hash,
        live=app[LIVE],
    )
    await account_service.mark_notices_seen(app[DB], current.account.id, app[CLOCK]())
    raise web.HTTPSeeOther(safe_next(form.get("next")))


async def notices_seen(request: web.Request) -> web.StreamResponse:
    current = request[SIGNED_IN]
    form = await read_form(request)
    await account_service.mark_notices_seen(
        request.app[DB], current.account.id, request.app[CLOCK]()
    )
    raise web.HTTPSeeOther(safe_next(form.get("next")))


# --- the reset link ------------------------------------------------------------------------


async def reset_page(request: web.Request) -> web.StreamResponse:
    account = await account_service.reset_link_account(
        request.app[DB], request.match_info["token"], request.app[CLOCK]()
    )
    if account is None:
        raise NotFound("This reset link is no longer valid. Ask your clinic's admin for a new one.")
    return aiohttp_jinja2.render_template(
        "reset_password.html",
        request,
        _context(signed_in(request), email=account.email, error=None),
    )


async def reset_submit(request: web.Request) -> web.StreamResponse:
    token = request.match_info["token"]
    form = await read_form(request)
    app = request.app
    account = await account_service.reset_link_account(app[DB], token, app[CLOCK]())
    if account is None:
        raise NotFound("This reset link is no longer valid. Ask your clinic's admin for a new one.")
    try:
        if form.get("password") != form.get("password_again"):
            raise InvalidInput("The two passwords differ.")
        await account_service.complete_reset(
            app[DB],
            app[AUDIT],
            token=token,
            password=form.get("password", ""),
            now=app[CLOCK](),
            live=app[LIVE],
        )
    except InvalidInput as exc:
        return aiohttp_jinja2.render_template(
            "reset_password.html",
            request,
            _context(signed_in(request), email=account.email, error=exc.message),
            status=exc.status,
        )
    raise web.HTTPSeeOther("/login?reset=done")


def add_account_pages(app: web.Application) -> None:
    """Register the account's own pages (every role) and the reset-link page."""
    r = app.router
    r.add_get("/login/two-factor", second_step_page)
    r.add_post("/login/two-factor", second_step_submit)
    r.add_get("/account/two-factor", enrol_page)
    r.add_post("/account/two-factor", enrol_submit)
    r.add_get("/account", page_guarded(account_page, None))
    r.add_post("/account/sign-ins/{sign_in_id}/end", page_guarded(end_sign_in, None))
    r.add_get("/account/notices", page_guarded(notices_page, None))
    r.add_post("/account/notices", page_guarded(notices_seen, None))
    r.add_post("/account/notices/end-others", page_guarded(end_others_and_continue, None))
    r.add_post("/account/{action}", page_guarded(account_action, None))
    r.add_get("/reset/{token}", reset_page)
    r.add_post("/reset/{token}", reset_submit)

"""API sign-in (password, then a second factor), sign-out, who-am-I, one's own password and
sign-ins; `sign_in` and `finish_second_factor` are shared with the sign-in pages."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Final

from aiohttp import web

from server.core.models import Account
from server.errors import NotFound, RateLimited, Unauthenticated
from server.keys import AUDIT, CLOCK, DB, LIVE, LOGIN_GUARD, SETTINGS, VAULT
from server.security.user_agents import describe_device
from server.services import accounts as account_service
from server.services import two_factor
from server.services.accounts import SignedIn, Stage
from server.web.guard import SIGNED_IN
from server.web.identity import (
    clear_cookie,
    cookie_names,
    path_id,
    pending_sign_in,
    set_cookie,
)
from server.web.openapi import Operation
from server.web.shapes import ERR, account_json
from server.web.sign_in_guard import (
    THROTTLED_MESSAGE,
    begin_sign_in,
    set_device_cookie,
    sign_in_failed,
    sign_in_succeeded,
)
from server.web.validation import read_json

LOGIN_SCHEMA = {
    "type": "object",
    "required": ["email", "password"],
    "additionalProperties": False,
    "properties": {
        "email": {"type": "string", "minLength": 1, "maxLength": 254},
        "password": {"type": "string", "minLength": 1, "maxLength": 1024},
        "code": {"type": "string", "minLength": 1, "maxLength": 64},
    },
}
CODE_SCHEMA = {
    "type": "object",
    "required": ["code"],
    "additionalProperties": False,
    "properties": {"code": {"type": "string", "minLength": 1, "maxLength": 64}},
}
PASSWORD_CHANGE_SCHEMA = {
    "type": "object",
    "required": ["current_password", "new_password"],
    "additionalProperties": False,
    "properties": {
        "current_password": {"type": "string", "minLength": 1, "maxLength": 1024},
        "new_password": {"type": "string", "minLength": 1, "maxLength": 1024},
    },
}
WRONG_CODE = "That code does not match (or was used already)."


@dataclass(frozen=True)
class SignInOutcome:
    """The result of the password step: a full sign-in, or one waiting for a code or for
    enrolment (its cookie then opens only that next step)."""

    account: Account
    token: str
    csrf_token: str
    stage: Stage


async def sign_in(
    request: web.Request, email: str, password: str, code: str | None = None
) -> SignInOutcome:
    """Shared by the API and the sign-in page: throttle, check, start a (pending) session.

    While the account is under back-off from someone else's wrong passwords, an attempt that
    brings a code too is judged only by its own address's limits, and succeeds only when the
    password AND a fresh two-factor code are right: an attacker cannot lock the owner out, and
    learns nothing about the password without the code (every failure looks the same, 429)."""
    attempt = begin_sign_in(request, email, allow_code_bypass=bool(code))
    app = request.app
    db, audit, now = app[DB], app[AUDIT], app[CLOCK]()
    guard = app[LOGIN_GUARD]
    bypass = guard.blocked_for(attempt, time.monotonic()) is not None
    account = await account_service.authenticate(db, audit, email=email, password=password, now=now)
    device = describe_device(request.headers.get("User-Agent"))
    ring = app[VAULT].ring
    if bypass:
        kind = (
            await two_factor.check_code(db, audit, ring, account.id, code or "", now)
            if account is not None
            else None
        )
        if account is None or kind is None:
            guard.failed_from_address(attempt, time.monotonic())
            wait = guard.blocked_for(attempt, time.monotonic()) or 1
            raise RateLimited(THROTTLED_MESSAGE, retry_after=wait)
        sign_in_succeeded(request, attempt, email)
        started = await account_service.start_sign_in(
            db, account, now, audit=audit, device=device, second_factor=kind
        )
        return SignInOutcome(account, started.token, started.csrf_token, started.stage)
    if account is None:
        sign_in_failed(request, attempt)
        raise Unauthenticated("Email or password is wrong.", code="bad_credentials")
    sign_in_succeeded(request, attempt, email)
    stage, kind = Stage.FULL, "none"
    if (await two_factor.status(db, account.id)).enabled:
        stage = Stage.SECOND_FACTOR
        if code:
            kind = await check_second_factor(request, account.id, code) or "none"
            stage = Stage.FULL
    elif await two_factor.required(db):
        stage = Stage.ENROL
    started = await account_service.start_sign_in(
        db, account, now, audit=audit, stage=stage, device=device, second_factor=kind
    )
    return SignInOutcome(account, started.token, started.csrf_token, started.stage)


async def check_second_factor(request: web.Request, account_id: str, code: str) -> str:
    """The kind of a valid second factor ("totp" or "recovery"); wrong codes back off per
    account (429 while waiting) and get 401."""
    app = request.app
    guard = app[LOGIN_GUARD]
    wait = guard.code_blocked_for(account_id, time.monotonic())
    if wait:
        raise RateLimited("Too many wrong codes. Try again later.", retry_after=wait)
    kind = await two_factor.check_code(
        app[DB], app[AUDIT], app[VAULT].ring, account_id, code, app[CLOCK]()
    )
    if kind is None:
        guard.code_failed(account_id, time.monotonic())
        raise Unauthenticated(WRONG_CODE, code="bad_code")
    return kind


async def finish_second_factor(request: web.Request, code: str) -> SignedIn:
    """The second step: the pending sign-in's code; it becomes a full sign-in."""
    pending = pending_sign_in(request)
    if pending is None or pending.stage is not Stage.SECOND_FACTOR:
        raise Unauthenticated("Sign in again.", code="no_pending_sign_in")
    kind = await check_second_factor(request, pending.account.id, code)
    app = request.app
    return await account_service.complete_sign_in(app[DB], app[AUDIT], pending, app[CLOCK](), kind)


def _signed_in_json(account: Account, csrf: str, stage: Stage, notices: list[str]) -> Any:
    body: dict[str, Any] = {"stage": stage.value, "csrf_token": csrf}
    if stage is Stage.FULL:
        body["account"] = account_json(account)
        body["notices"] = notices
    return body


async def _unseen_notices(request: web.Request, account_id: str) -> list[str]:
    found = await account_service.account_notices(request.app[DB], account_id, unseen_only=True)
    return [notice.text for notice in found]


async def login(request: web.Request) -> web.StreamResponse:
    body = await read_json(request, LOGIN_SCHEMA)
    outcome = await sign_in(request, body["email"], body["password"], body.get("code"))
    notices = (
        await _unseen_notices(request, outcome.account.id) if outcome.stage is Stage.FULL else []
    )
    response = web.json_response(
        _signed_in_json(outcome.account, outcome.csrf_token, outcome.stage, notices)
    )
    set_cookie(
        response, request.app[SETTINGS], cookie_names(request.app[SETTINGS]).account, outcome.token
    )
    set_device_cookie(request, response)
    return response


async def second_factor(request: web.Request) -> web.StreamResponse:
    body = await read_json(request, CODE_SCHEMA)
    done = await finish_second_factor(request, body["code"])
    notices = await _unseen_notices(request, done.account.id)
    return web.json_response(_signed_in_json(done.account, done.csrf_token, done.stage, notices))


async def logout(request: web.Request) -> web.StreamResponse:
    current = request[SIGNED_IN]
    await account_service.end_sign_in(
        request.app[DB], request.app[AUDIT], request.app[LIVE], current, request.app[CLOCK]()
    )
    response = web.Response(status=204)
    clear_cookie(response, request.app[SETTINGS], cookie_names(request.app[SETTINGS]).account)
    return response


async def me(request: web.Request) -> web.StreamResponse:
    current = request[SIGNED_IN]
    return web.json_response(
        {"account": account_json(current.account), "csrf_token": current.csrf_token}
    )


async def change_password(request: web.Request) -> web.StreamResponse:
    body = await read_json(request, PASSWORD_CHANGE_SCHEMA)
    await account_service.change_password(
        request.app[DB],
        request.app[AUDIT],
        request[SIGNED_IN],
        current_password=body["current_password"],
        new_password=body["new_password"],
        now=request.app[CLOCK](),
        live=request.app[LIVE],
    )
    return web.Response(status=204)


async def list_sessions(request: web.Request) -> web.StreamResponse:
    records = await account_service.list_sign_ins(request.app[DB], request[SIGNED_IN])
    return web.json_response(
        {
            "items": [
                {
                    "id": r.public_id,
                    "device": r.device,
                    "created_at": r.created_at.isoformat(),
                    "last_seen_at": r.last_seen_at.isoformat(),
                    "current": r.current,
                }
                for r in records
            ]
        }
    )


async def end_session(request: web.Request) -> web.StreamResponse:
    public_id = path_id(request, "sign_in_id")
    ended = await account_service.end_own_sign_in(
        request.app[DB],
        request.app[AUDIT],
        request[SIGNED_IN],
        public_id,
        request.app[CLOCK](),
        live=request.app[LIVE],
    )
    if not ended:
        raise NotFound("Not found.")
    return web.Response(status=204)


async def end_other_sessions(request: web.Request) -> web.StreamResponse:
    current = request[SIGNED_IN]
    await account_service.end_all_sign_ins(
        request.app[DB],
        request.app[AUDIT],
        current.account.id,
        account_service.EndReason.ENDED_BY_OWNER,
        request.app[CLOCK](),
        except_session=current.token_hash,
        live=request.app[LIVE],
    )
    return web.Response(status=204)


OPERATIONS: Final[tuple[Operation, ...]] = (
    Operation(
        "POST",
        "/api/v1/auth/login",
        login,
        "Sign in",
        "login",
        auth="none",
        request_schema=LOGIN_SCHEMA,
        responses={
            200: (
                "Password right; sets the session cookie. `stage` is `full` (signed in),"
                " `second_factor` (send the code to /api/v1/auth/second-factor) or `enrol`"
                " (two-factor is required: set it up on the account page first)",
                {"type": "object"},
            ),
            401: ("Wrong email or password (or wrong code)", ERR),
            429: ("Too many attempts (see Retry-After)", ERR),
        },
        tags=["auth"],
    ),
    Operation(
        "POST",
        "/api/v1/auth/second-factor",
        second_factor,
        "Second sign-in step: a code from the authenticator app or a recovery code",
        "secondFactor",
        auth="none",
        request_schema=CODE_SCHEMA,
        responses={
            200: ("Signed in", {"type": "object"}),
            401: ("Wrong or reused code, or no pending sign-in", ERR),
            429: ("Too many wrong codes (see Retry-After)", ERR),
        },
        tags=["auth"],
    ),
    Operation(
        "POST",
        "/api/v1/auth/password",
        change_password,
        "Change one's own password (needs the current one; other sign-ins end)",
        "changePassword",
        request_schema=PASSWORD_CHANGE_SCHEMA,
        responses={204: ("Changed", None), 422: ("Wrong current password or weak new one", ERR)},
        tags=["auth"],
    ),
    Operation(
        "GET",
        "/api/v1/auth/sessions",
        list_sessions,
        "This account's active sign-ins",
        "listSignIns",
        responses={200: ("Sign-ins (device family only, no address)", {"type": "object"})},
        tags=["auth"],
    ),
    Operation(
        "POST",
        "/api/v1/auth/sessions/{sign_in_id}/end",
        end_session,
        "End one of this account's sign-ins",
        "endSignIn",
        responses={204: ("Ended", None), 404: ("Not one of this account's", ERR)},
        tags=["auth"],
    ),
    Operation(
        "POST",
        "/api/v1/auth/sessions/end-others",
        end_other_sessions,
        "End every other sign-in of this account",
        "endOtherSignIns",
        responses={204: ("Ended", None)},
        tags=["auth"],
    ),
    Operation(
        "POST",
        "/api/v1/auth/logout",
        logout,
        "Sign out",
        "logout",
        responses={204: ("Signed out", None)},
        tags=["auth"],
    ),
    Operation(
        "GET",
        "/api/v1/auth/me",
        me,
        "Who am I",
        "me",
        responses={200: ("The signed-in account and its CSRF token", {"type": "object"})},
        tags=["auth"],
    ),
)

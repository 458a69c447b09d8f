"""API sign-in, sign-out and who-am-I; `sign_in` is shared with the sign-in page."""

from __future__ import annotations

import time
from typing import Final

from aiohttp import web

from server.core.models import Account
from server.errors import RateLimited, Unauthenticated
from server.keys import (
    ADDRESS_HASHER,
    AUDIT,
    CLOCK,
    DB,
    LOGIN_ADDRESS_THROTTLE,
    LOGIN_THROTTLE,
    SETTINGS,
)
from server.services import accounts as account_service
from server.web.guard import SIGNED_IN
from server.web.identity import cookie_names, set_cookie
from server.web.openapi import Operation
from server.web.shapes import ERR, account_json
from server.web.validation import read_json

LOGIN_SCHEMA = {
    "type": "object",
    "required": ["email", "password"],
    "additionalProperties": False,
    "properties": {
        "email": {"type": "string", "minLength": 1, "maxLength": 254},
        "password": {"type": "string", "minLength": 1, "maxLength": 1024},
    },
}


def login_throttle_keys(request: web.Request, email: str) -> tuple[str, str]:
    """(per address and email, per address) keys; addresses only as rotating keyed hashes."""
    address = request.app[ADDRESS_HASHER].key(request.remote or "unknown", time.time())
    return f"{address}:{email.strip().lower()}", address


def check_login_throttle(request: web.Request, email: str) -> None:
    """Raise RateLimited while this address (and email) has failed too often."""
    now = time.monotonic()
    pair_key, address_key = login_throttle_keys(request, email)
    wait = request.app[LOGIN_THROTTLE].blocked_for(pair_key, now) or request.app[
        LOGIN_ADDRESS_THROTTLE
    ].blocked_for(address_key, now)
    if wait:
        raise RateLimited("Too many sign-in attempts. Try again later.", retry_after=wait)


def record_login_failure(request: web.Request, email: str) -> None:
    """Count a failed sign-in against the address and the address+email pair."""
    now = time.monotonic()
    pair_key, address_key = login_throttle_keys(request, email)
    request.app[LOGIN_THROTTLE].record_failure(pair_key, now)
    # A wider per-address budget catches one place trying many accounts.
    request.app[LOGIN_ADDRESS_THROTTLE].record_failure(address_key, now)


async def sign_in(request: web.Request, email: str, password: str) -> tuple[Account, str, str]:
    """Shared by the API and the sign-in page: throttle, check, start a session."""
    check_login_throttle(request, email)
    app = request.app
    now = app[CLOCK]()
    account = await account_service.authenticate(
        app[DB], app[AUDIT], email=email, password=password, now=now
    )
    if account is None:
        record_login_failure(request, email)
        raise Unauthenticated("Email or password is wrong.", code="bad_credentials")
    app[LOGIN_THROTTLE].reset(login_throttle_keys(request, email)[0])
    started = await account_service.start_sign_in(app[DB], account, now)
    return account, started.token, started.csrf_token


async def login(request: web.Request) -> web.StreamResponse:
    body = await read_json(request, LOGIN_SCHEMA)
    account, token, csrf = await sign_in(request, body["email"], body["password"])
    response = web.json_response({"account": account_json(account), "csrf_token": csrf})
    set_cookie(response, request.app[SETTINGS], cookie_names(request.app[SETTINGS]).account, token)
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    current = request[SIGNED_IN]
    await account_service.end_sign_in(
        request.app[DB], request.app[AUDIT], current, request.app[CLOCK]()
    )
    response = web.Response(status=204)
    response.del_cookie(cookie_names(request.app[SETTINGS]).account, path="/")
    return response


async def me(request: web.Request) -> web.StreamResponse:
    current = request[SIGNED_IN]
    return web.json_response(
        {"account": account_json(current.account), "csrf_token": current.csrf_token}
    )


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
            200: ("Signed in; sets the session cookie", {"type": "object"}),
            401: ("Wrong email or password", ERR),
            429: ("Too many attempts (see Retry-After)", ERR),
        },
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

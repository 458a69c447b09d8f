"""API sign-in, sign-out and who-am-I; `sign_in` is shared with the sign-in page."""

from __future__ import annotations

from typing import Final

from aiohttp import web

from server.core.models import Account
from server.errors import Unauthenticated
from server.keys import AUDIT, CLOCK, DB, LIVE, SETTINGS
from server.services import accounts as account_service
from server.web.guard import SIGNED_IN
from server.web.identity import clear_cookie, cookie_names, set_cookie
from server.web.openapi import Operation
from server.web.shapes import ERR, account_json
from server.web.sign_in_guard import (
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
    },
}


async def sign_in(request: web.Request, email: str, password: str) -> tuple[Account, str, str]:
    """Shared by the API and the sign-in page: throttle, check, start a session."""
    attempt = begin_sign_in(request, email)
    app = request.app
    now = app[CLOCK]()
    account = await account_service.authenticate(
        app[DB], app[AUDIT], email=email, password=password, now=now
    )
    if account is None:
        sign_in_failed(request, attempt)
        raise Unauthenticated("Email or password is wrong.", code="bad_credentials")
    sign_in_succeeded(request, attempt, email)
    started = await account_service.start_sign_in(app[DB], account, now)
    return account, started.token, started.csrf_token


async def login(request: web.Request) -> web.StreamResponse:
    body = await read_json(request, LOGIN_SCHEMA)
    account, token, csrf = await sign_in(request, body["email"], body["password"])
    response = web.json_response({"account": account_json(account), "csrf_token": csrf})
    set_cookie(response, request.app[SETTINGS], cookie_names(request.app[SETTINGS]).account, token)
    set_device_cookie(request, response)
    return response


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

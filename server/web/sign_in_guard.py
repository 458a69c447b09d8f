"""The sign-in throttles at the HTTP edge: which address and device cookie an attempt comes
from, 429 while it must wait, and a fresh device cookie after the right password."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import timedelta

from aiohttp import web

from privacy.keyfiles import KeyFileError, load_or_create_secret
from server.errors import RateLimited
from server.keys import ADDRESS_HASHER, CLOCK, LOGIN_GUARD, SETTINGS
from server.runtime import StartupError
from server.security.device_cookies import DEVICE_COOKIE_DAYS, DeviceCookies
from server.security.login_guard import Attempt, LoginGuard
from server.security.throttle import Backoff, Limit
from server.settings import Settings
from server.web.identity import client_address, cookie_names, set_cookie

DEVICE_COOKIE_KEY_FILE = "device-cookie.key"
_NEW_DEVICE_COOKIE: web.RequestKey[str] = web.RequestKey("new_device_cookie")
THROTTLED_MESSAGE = "Too many sign-in attempts. Try again later."


def login_guard(settings: Settings, key: bytes) -> LoginGuard:
    """The guard with this deployment's limits."""
    backoff = Backoff(
        free_failures=settings.login_account_max_failures,
        first_wait_seconds=settings.login_backoff_seconds,
        max_wait_seconds=settings.login_backoff_max_seconds,
    )
    return LoginGuard(
        DeviceCookies(key),
        per_pair=Limit(settings.login_max_failures, settings.login_window_seconds),
        per_address=Limit(settings.login_max_failures * 4, settings.login_window_seconds),
        per_account=backoff,
        per_device=backoff,
    )


async def login_guard_ctx(app: web.Application) -> AsyncIterator[None]:
    """Load (or create) the device-cookie key under the data directory and build the guard."""
    settings = app[SETTINGS]
    path = settings.data_dir / DEVICE_COOKIE_KEY_FILE
    try:
        key = load_or_create_secret(path, "device cookie key file")
    except KeyFileError as exc:
        raise StartupError(f"Device cookie key file problem ({path}): {exc}") from None
    app[LOGIN_GUARD] = login_guard(settings, key)
    yield


def begin_sign_in(request: web.Request, email: str, *, allow_code_bypass: bool = False) -> Attempt:
    """The attempt's throttling keys; RateLimited while it must wait (same for every email).
    With `allow_code_bypass` (the attempt brings a second-factor code), the account's back-off
    does not refuse it here: the caller then needs the password and the code both right."""
    app = request.app
    address_key = app[ADDRESS_HASHER].key(client_address(request), time.time())
    device_cookie = request.cookies.get(cookie_names(app[SETTINGS]).device)
    guard = app[LOGIN_GUARD]
    attempt = guard.attempt(email, address_key, device_cookie, time.time())
    wait = guard.blocked_for(attempt, time.monotonic(), account_backoff=not allow_code_bypass)
    if wait:
        raise RateLimited(THROTTLED_MESSAGE, retry_after=wait)
    return attempt


def sign_in_failed(request: web.Request, attempt: Attempt) -> None:
    """Count a wrong password."""
    request.app[LOGIN_GUARD].failed(attempt, time.monotonic())


def sign_in_succeeded(request: web.Request, attempt: Attempt, email: str) -> None:
    """Forget this browser's failures and hand it a fresh device cookie for the account."""
    guard = request.app[LOGIN_GUARD]
    guard.succeeded(attempt, time.monotonic())
    request[_NEW_DEVICE_COOKIE] = guard.cookies.issue(email, time.time())


def set_device_cookie(request: web.Request, response: web.StreamResponse) -> None:
    """Attach the device cookie minted by this request's successful sign-in, if any."""
    value = request.get(_NEW_DEVICE_COOKIE)
    if value is None:
        return
    settings, now = request.app[SETTINGS], request.app[CLOCK]()
    set_cookie(
        response,
        settings,
        cookie_names(settings).device,
        value,
        expires_at=now + timedelta(days=DEVICE_COOKIE_DAYS),
        now=now,
    )

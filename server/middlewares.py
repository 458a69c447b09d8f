"""Request ids, security headers, identity + CSRF, and the one place errors become HTTP."""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import aiohttp_jinja2
from aiohttp import web
from aiohttp.client_exceptions import ClientConnectionResetError

from privacy.vault import VaultError
from server.core.languages import N_
from server.db.outage import (
    DATABASE_UNAVAILABLE_MESSAGE,
    RETRY_AFTER_SECONDS,
    is_database_outage,
    raised_by_database,
)
from server.errors import LIVE_UNAVAILABLE_MESSAGE, AttuneError, Forbidden, LiveUnavailable
from server.keys import SETTINGS
from server.realtime.bus import is_redis_outage
from server.web.denials import record_denial
from server.web.i18n import (
    CLIENT_API,
    LANGUAGE,
    client_api_message,
    set_page_language,
    start_page,
)
from server.web.identity import (
    CSRF_FIELD,
    CSRF_HEADER,
    expected_csrf_tokens,
    resolve_identity,
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
log = logging.getLogger("attune.http")

REQUEST_ID_KEY = web.RequestKey("request_id", str)
NONCE_KEY = web.RequestKey("csp_nonce", str)
_UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Signing in does not act with the current cookie, so it needs no token (Origin still applies).
_TOKEN_EXEMPT_PATHS = frozenset({"/login", "/api/v1/auth/login"})
# Probes act for no one: they skip cookies, so a database outage shows as their own answer.
_PROBE_PATHS = frozenset({"/healthz", "/readyz"})


def wants_json(request: web.Request) -> bool:
    """API and WebSocket paths answer errors as JSON; pages answer with an HTML page."""
    return request.path.startswith(("/api/", "/ws/", "/healthz", "/readyz", "/metrics"))


def _csp(nonce: str) -> str:
    return "; ".join(
        (
            "default-src 'self'",
            f"script-src 'self' 'nonce-{nonce}'",
            "style-src 'self'",
            "img-src 'self' data: blob:",
            "media-src 'self' blob:",
            "connect-src 'self'",
            "font-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        )
    )


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Request id, CSP nonce and the security headers on every response (errors included)."""
    request[REQUEST_ID_KEY] = secrets.token_hex(8)
    nonce = secrets.token_urlsafe(16)
    request[NONCE_KEY] = nonce
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = exc
    headers = response.headers
    headers["Content-Security-Policy"] = _csp(nonce)
    headers["Referrer-Policy"] = "no-referrer"
    headers["X-Content-Type-Options"] = "nosniff"
    headers["X-Frame-Options"] = "DENY"
    headers["Cross-Origin-Opener-Policy"] = "same-origin"
    # Location only for the client's visit page, where the safety check may ask for it (and
    # only when the client presses "Use my device's location"); nowhere else.
    geolocation = "(self)" if request.path == "/visit" else "()"
    headers["Permissions-Policy"] = f"camera=(self), microphone=(self), geolocation={geolocation}"
    headers["X-Request-Id"] = request[REQUEST_ID_KEY]
    if request.app[SETTINGS].uses_tls:
        headers["Strict-Transport-Security"] = "max-age=63072000; includeSubDomains"
    if not request.path.startswith("/static/"):
        headers.setdefault("Cache-Control", "no-store")
    if isinstance(response, web.HTTPException):
        raise response
    return response


def is_same_origin(request: web.Request, origin: str) -> bool:
    """True when `origin` is this server as the browser sees it (or its public URL)."""
    settings = request.app[SETTINGS]
    allowed = {f"{request.scheme}://{request.host}"}
    if settings.public_base_url:
        parts = urlsplit(settings.public_base_url)
        allowed.add(f"{parts.scheme}://{parts.netloc}")
    return origin in allowed


def _same_site_request(request: web.Request) -> bool:
    """Refuse cross-site writes. Under `Referrer-Policy: no-referrer` browsers send
    `Origin: null` even for same-origin form posts, so then `Sec-Fetch-Site` decides."""
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site not in (None, "same-origin", "none"):
        return False
    origin = request.headers.get("Origin")
    if origin is None:
        return True  # not a browser form or fetch (curl, tests); cookies still need the token
    if origin == "null":
        return fetch_site == "same-origin"
    return is_same_origin(request, origin)


@web.middleware
async def identity_and_csrf(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Resolve cookies once; refuse cross-site writes and cookie-authenticated writes without
    the session's CSRF token (header for the API, hidden field for forms)."""
    if request.path.startswith("/static/") or request.path in _PROBE_PATHS:
        return await handler(request)
    await resolve_identity(request)
    if request.method in _UNSAFE_METHODS:
        if not _same_site_request(request):
            raise Forbidden(N_("Cross-site request refused."), code="csrf")
        expected = expected_csrf_tokens(request)
        if expected and request.path not in _TOKEN_EXEMPT_PATHS:
            sent = request.headers.get(CSRF_HEADER)
            if sent is None and request.content_type in (
                "application/x-www-form-urlencoded",
                "multipart/form-data",
            ):
                form = await request.post()
                field = form.get(CSRF_FIELD)
                sent = field if isinstance(field, str) else None
            if sent is None or not any(
                hmac.compare_digest(sent.encode(), token.encode()) for token in expected
            ):
                raise Forbidden(N_("Missing or wrong CSRF token; reload the page."), code="csrf")
    return await handler(request)


def _error_response(
    request: web.Request,
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
) -> web.StreamResponse:
    request_id = request.get(REQUEST_ID_KEY, "")
    if wants_json(request):
        if request.path.startswith(CLIENT_API):
            message = client_api_message(request, message)
        body = {"error": {"code": code, "message": message, "request_id": request_id}}
        return web.json_response(body, status=status, headers=headers)
    if LANGUAGE not in request:  # refused before the page's language was set
        set_page_language(request)
    response = aiohttp_jinja2.render_template(
        "error.html",
        request,
        {
            "status": status,
            "message": message,
            "request_id": request_id,
            "start": start_page(request),
        },
        status=status,
    )
    if headers:
        response.headers.update(headers)
    return response


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    503: "unavailable",
}


_CLIENT_CLOSED_REQUEST = 499  # as nginx logs it: the client closed the connection first


def client_went_away(exc: BaseException) -> bool:
    """Whether `exc` is the client's connection closing under the request (aiohttp raises a
    bare `ConnectionResetError` into a body being read, its own subclass into a write), as
    opposed to the database or Redis dropping ours."""
    if isinstance(exc, ClientConnectionResetError):
        return True
    return (
        isinstance(exc, ConnectionResetError)
        and not raised_by_database(exc)
        and raised_by_aiohttp(exc)
    )


def raised_by_aiohttp(exc: BaseException) -> bool:
    """Whether the innermost frame of `exc`'s traceback is aiohttp's own code."""
    tb = exc.__traceback__
    module = ""
    while tb is not None:
        module = str(tb.tb_frame.f_globals.get("__name__", ""))
        tb = tb.tb_next
    return module.split(".", 1)[0] == "aiohttp"


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Map domain errors and HTTP errors to {error:{code,message}}; never leak a stack trace."""
    try:
        return await handler(request)
    except AttuneError as exc:
        headers = {"Retry-After": str(exc.retry_after)} if hasattr(exc, "retry_after") else None
        await record_denial(request, exc.status, exc.code)
        return _error_response(request, exc.status, exc.code, exc.message, headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, "http_error")
        message = exc.reason if exc.status != 404 else N_("Not found.")
        headers = {k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After")}
        return _error_response(request, exc.status, code, message, headers)
    except VaultError:
        log.error(
            "stored data failed its integrity check",
            extra={"request_id": request.get(REQUEST_ID_KEY)},
        )
        return _error_response(
            request,
            500,
            "integrity_error",
            N_("Stored data failed its integrity check and was not shown. Please tell the clinic."),
        )
    except Exception as exc:
        if client_went_away(exc):
            # Nobody is left to read an answer; not a database or Redis outage, not a bug.
            log.info(
                "the client went away before its answer (%s)",
                type(exc).__name__,
                extra={"request_id": request.get(REQUEST_ID_KEY)},
            )
            return web.Response(status=_CLIENT_CLOSED_REQUEST)
        if is_database_outage(exc):
            # No traceback and no driver message (it can name hosts): the class says enough.
            log.warning(
                "database unreachable (%s)",
                type(exc).__name__,
                extra={"request_id": request.get(REQUEST_ID_KEY)},
            )
            return _error_response(
                request,
                503,
                "database_unavailable",
                DATABASE_UNAVAILABLE_MESSAGE,
                {"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        if is_redis_outage(exc):  # the bus between processes is away: live sessions wait
            log.warning(
                "redis unreachable (%s)",
                type(exc).__name__,
                extra={"request_id": request.get(REQUEST_ID_KEY)},
            )
            unavailable = LiveUnavailable()
            return _error_response(
                request,
                503,
                unavailable.code,
                LIVE_UNAVAILABLE_MESSAGE,
                {"Retry-After": str(unavailable.retry_after)},
            )
        log.exception("unhandled error", extra={"request_id": request.get(REQUEST_ID_KEY)})
        return _error_response(
            request, 500, "internal", N_("Something went wrong on our side. Please try again.")
        )

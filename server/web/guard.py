"""Who may call what, enforced in one place: the wrapper that registers every API operation
and every console page, so no handler has to remember its own sign-in check.

Handlers behind the wrapper get the caller from typed request keys: `request[SIGNED_IN]` for
"account", "therapist" and "admin" operations and console pages, `request[VISIT]` for
"client" operations. A handler registered without the wrapper finds neither key and fails
loudly (KeyError, a 500) instead of serving an unchecked request.
"""

from __future__ import annotations

import functools
from typing import Final

from aiohttp import web

from server.core.models import Role
from server.errors import Forbidden, Unauthenticated
from server.keys import API_OPERATIONS, CLIENT_WRITES, CLOCK
from server.security.client_writes import CLIENT_WRITE_OPERATIONS, ClientWrite
from server.services.accounts import SignedIn
from server.services.measure_links import LinkVisit
from server.services.scheduling import GUEST_NO_RECORD, ClientVisit
from server.web.identity import (
    after_session_visit,
    client_visit,
    page_account,
    require_account,
    require_client,
    require_client_device,
    require_measure_link,
    signed_in,
)
from server.web.openapi import AUTH_LEVELS, ApiHandler, Auth, Operation

SIGNED_IN: web.RequestKey[SignedIn] = web.RequestKey("signed_in")
VISIT: web.RequestKey[ClientVisit] = web.RequestKey("visit")
MEASURE_LINK: web.RequestKey[LinkVisit] = web.RequestKey("measure_link_visit")

_ROLE_OF: Final[dict[Auth, Role]] = {"therapist": Role.THERAPIST, "admin": Role.ADMIN}

# What a session's guest (interpreter, guardian, support person) may call with their link: their
# own consent and the safety step's "not asked". Everything else a link's cookie reaches is a
# client record's (check-ins, measures, export, erasure), which a guest does not have.
GUEST_OPERATIONS: Final = frozenset(
    {"clientConsentState", "clientDecide", "clientConsentReceipt", "clientSafetyStep"}
)


def authorize(request: web.Request, auth: Auth) -> None:
    """Raise 401/403 unless the request's caller fits `auth`; remember who it is."""
    if auth == "none":
        return
    if auth == "client":
        request[VISIT] = require_client(request)
        return
    if auth == "client_device":
        request[VISIT] = require_client_device(request)
        return
    if auth == "client_after_session":
        visit = after_session_visit(request)
        if visit is None:
            raise Unauthenticated("Open your session link again.")
        request[VISIT] = visit
        return
    if auth == "client_measure_link":
        request[MEASURE_LINK] = require_measure_link(request)
        return
    if auth == "account_or_client":
        if signed_in(request) is None and client_visit(request) is None:
            raise Unauthenticated("Sign in or open your session link first.")
        return
    request[SIGNED_IN] = require_account(request, _ROLE_OF.get(auth))


def spend_client_write(
    request: web.Request, kind: ClientWrite, visit: ClientVisit | LinkVisit
) -> None:
    """Count a client write against its cookie's limit, or 429 (Retry-After) when over it."""
    now = request.app[CLOCK]().timestamp()
    request.app[CLIENT_WRITES].spend(kind, visit.access_id, now)


def guarded(
    handler: ApiHandler,
    auth: Auth,
    *,
    client_write: ClientWrite | None = None,
    guests: bool = False,
) -> ApiHandler:
    """The handler behind an auth check (and, for a client write, its rate limit); an unknown
    auth value fails at registration. A guest's link reaches a client operation only with
    `guests` (403 "guest" otherwise)."""
    if auth not in AUTH_LEVELS:
        raise ValueError(f"unknown auth {auth!r}: one of {', '.join(AUTH_LEVELS)}")
    if client_write is not None and not auth.startswith("client"):
        raise ValueError("a client write limit needs a client auth level")

    @functools.wraps(handler)
    async def guard(request: web.Request) -> web.StreamResponse:
        authorize(request, auth)
        visit = request.get(VISIT)
        if visit is not None and visit.is_guest and not guests:
            raise Forbidden(GUEST_NO_RECORD, code="guest")
        if client_write is not None:
            visit = request[MEASURE_LINK] if auth == "client_measure_link" else request[VISIT]
            spend_client_write(request, client_write, visit)
        return await handler(request)

    return guard


def page_guarded(handler: ApiHandler, role: Role | None) -> ApiHandler:
    """A console page for `role` (None: any signed-in account): a signed-out visitor is sent
    to sign in, others get 403."""

    @functools.wraps(handler)
    async def guard(request: web.Request) -> web.StreamResponse:
        request[SIGNED_IN] = page_account(request, role)
        return await handler(request)

    return guard


def add_operation_route(app: web.Application, op: Operation) -> None:
    """Route one operation through its auth check."""
    handler = guarded(
        op.handler,
        op.auth,
        client_write=CLIENT_WRITE_OPERATIONS.get(op.operation_id),
        guests=op.operation_id in GUEST_OPERATIONS,
    )
    app.router.add_route(op.method, op.path, handler, name=op.operation_id)


def add_api_routes(app: web.Application, operations: tuple[Operation, ...]) -> None:
    """Register every operation and keep the list for the OpenAPI document."""
    app[API_OPERATIONS] = operations
    for op in operations:
        add_operation_route(app, op)

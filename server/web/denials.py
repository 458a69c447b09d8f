"""Refused requests (401, 403, 404 for ids that are not yours, 429) leave an `access.denied`
audit entry: actor, route pattern and reason, never the raw path, ids or tokens."""

from __future__ import annotations

import logging
import time

from aiohttp import web

from server.keys import AUDIT, CLOCK, DB, DENIAL_LIMITER
from server.web.identity import client_visit, signed_in

log = logging.getLogger("attune.audit")

AUDITED_STATUSES = frozenset({401, 403, 404, 429})
# Already recorded as auth.login.failure, with its target.
_ALREADY_AUDITED = frozenset({"bad_credentials"})


def route_name(request: web.Request) -> str | None:
    """The matched route's pattern (`/api/v1/clients/{client_id}`), or None when nothing
    matched (unknown paths are not worth an entry)."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else None


def denial_actor(request: web.Request) -> str:
    """Who was refused: the account, a client by its link, or anonymous."""
    account = signed_in(request)
    if account is not None:
        return f"account:{account.account.id}"
    return "client" if client_visit(request) is not None else "anonymous"


async def record_denial(request: web.Request, status: int, reason: str) -> None:
    """Append `access.denied` unless the limiter leaves it out; never fails the response."""
    if status not in AUDITED_STATUSES or reason in _ALREADY_AUDITED:
        return
    route = route_name(request)
    if route is None:
        return
    app = request.app
    actor = denial_actor(request)
    suppressed = app[DENIAL_LIMITER].admit((actor, route, reason), time.monotonic())
    if suppressed is None:
        return
    details: dict[str, str | int] = {"route": route, "reason": reason, "status": status}
    if suppressed:
        details["suppressed"] = suppressed
    try:
        async with app[DB].write() as conn:
            await app[AUDIT].record(
                conn, at=app[CLOCK](), actor=actor, action="access.denied", details=details
            )
    except Exception:
        log.exception("could not record a refused request in the audit trail")

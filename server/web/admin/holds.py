"""Admin console: legal holds on a client's data."""

from __future__ import annotations

import aiohttp_jinja2
from aiohttp import web

from server.db import scheduling as scheduling_rows
from server.errors import AttuneError
from server.keys import CLOCK, DB
from server.services.retention import hold_json
from server.web.admin.common import actor, page_context, retention_service
from server.web.forms import read_form
from server.web.guard import SIGNED_IN
from server.web.identity import path_id

_DONE = {"placed": "Hold placed.", "lifted": "Hold lifted."}


async def holds_page(
    request: web.Request, *, error: str | None = None, notice: str | None = None, status: int = 200
) -> web.StreamResponse:
    current = request[SIGNED_IN]
    now = request.app[CLOCK]()
    holds = await retention_service(request).holds()
    async with request.app[DB].read() as conn:
        clients = await scheduling_rows.all_clients_for_holds(conn)
    names = {
        client_id: f"client of {email}, added {added:%d %b %Y} ({client_id[:8]}…)"
        for client_id, email, added in clients
    }
    return aiohttp_jinja2.render_template(
        "admin_holds.html",
        request,
        page_context(
            current,
            holds=[hold_json(h, now) for h in holds],
            names=names,
            error=error,
            notice=notice or _DONE.get(request.query.get("done", "")),
        ),
        status=status,
    )


async def holds_add(request: web.Request) -> web.StreamResponse:
    current = request[SIGNED_IN]
    form = await read_form(request)
    try:
        hold = await retention_service(request).add_hold(
            form.get("client_id", ""),
            form.get("reason", ""),
            actor=actor(current),
            now=request.app[CLOCK](),
        )
    except AttuneError as exc:
        return await holds_page(request, error=exc.message, status=exc.status)
    del hold
    raise web.HTTPSeeOther("/admin/holds?done=placed")


async def holds_release(request: web.Request) -> web.StreamResponse:
    current = request[SIGNED_IN]
    client_id = path_id(request, "client_id")
    form = await read_form(request)
    try:
        await retention_service(request).remove_hold(
            client_id, form.get("reason", ""), actor=actor(current), now=request.app[CLOCK]()
        )
    except AttuneError as exc:
        return await holds_page(request, error=exc.message, status=exc.status)
    raise web.HTTPSeeOther("/admin/holds?done=lifted")

"""Admin console: consent notice versions (publishing one asks clients again)."""

from __future__ import annotations

import aiohttp_jinja2
from aiohttp import web

from privacy.consent import OFFERED_PURPOSES
from server.errors import AttuneError
from server.web.admin.common import notices_json, page_context, publish_notice
from server.web.forms import read_form
from server.web.guard import SIGNED_IN


async def notices_page(
    request: web.Request, *, error: str | None = None, notice: str | None = None, status: int = 200
) -> web.StreamResponse:
    current = request[SIGNED_IN]
    return aiohttp_jinja2.render_template(
        "admin_notices.html",
        request,
        page_context(
            current,
            notices=notices_json(request),
            purposes=[p.value for p in OFFERED_PURPOSES],
            error=error,
            notice=notice
            or (
                "Published a new version: clients will be asked again."
                if request.query.get("done") == "published"
                else None
            ),
        ),
        status=status,
    )


async def notices_publish(request: web.Request) -> web.StreamResponse:
    current = request[SIGNED_IN]
    form = await read_form(request, long_fields=("text",))
    try:
        published = await publish_notice(
            request, current, form.get("purpose", ""), form.get("title", ""), form.get("text", "")
        )
    except AttuneError as exc:
        return await notices_page(request, error=exc.message, status=exc.status)
    del published
    raise web.HTTPSeeOther("/admin/notices?done=published")

"""Admin console: one account's page and its actions (disable, enable, reset: a one-time link
for the holder to choose a new password; the admin never sets one, and with SMTP configured
never sees the link either)."""

from __future__ import annotations

import aiohttp_jinja2
from aiohttp import web

from server.errors import AttuneError, NotFound
from server.keys import AUDIT, CLOCK, DB, LIVE, MAILER
from server.services import admin_accounts
from server.web.account_links import deliver_account_link
from server.web.admin.common import page_context
from server.web.guard import SIGNED_IN
from server.web.identity import path_id
from server.web.shapes import qr_svg

# Post/redirect/get: an action redirects here with ?done=<action>, which names what happened.
_DONE = {
    "added": "Added.",
    "disable": "Disabled: its sign-ins have ended.",
    "enable": "Enabled again.",
}


async def account_page(
    request: web.Request, *, error: str | None = None, notice: str | None = None, status: int = 200
) -> web.StreamResponse:
    current = request[SIGNED_IN]
    account_id = path_id(request, "account_id")
    target, anonymized_at = await admin_accounts.account_detail(request.app[DB], account_id)
    closed = await admin_accounts.closed_at(request.app[DB], account_id)
    return aiohttp_jinja2.render_template(
        "admin_account.html",
        request,
        page_context(
            current,
            target=target,
            anonymized_at=anonymized_at,
            closed_at=closed,
            is_self=target.id == current.account.id,
            error=error,
            notice=notice or _DONE.get(request.query.get("done", "")),
        ),
        status=status,
    )


async def account_action(request: web.Request) -> web.StreamResponse:
    current = request[SIGNED_IN]
    account_id = path_id(request, "account_id")
    action = request.match_info["action"]
    app = request.app
    now = app[CLOCK]()
    try:
        if action == "disable":
            await admin_accounts.disable_account(
                app[DB], app[AUDIT], app[LIVE], current.account, account_id, now
            )
        elif action == "enable":
            await admin_accounts.enable_account(
                app[DB], app[AUDIT], current.account, account_id, now
            )
        elif action == "reset":
            target, token, expires_at = await admin_accounts.issue_reset_link(
                app[DB],
                app[AUDIT],
                app[LIVE],
                current.account,
                account_id,
                now,
                by_email=app[MAILER].enabled,
            )
            delivery = await deliver_account_link(
                request, target, token, expires_at, first_password=False
            )
            response = aiohttp_jinja2.render_template(
                "admin_reset_link.html",
                request,
                page_context(
                    current,
                    target=target,
                    delivery=delivery,
                    qr_svg=qr_svg(delivery.url) if delivery.url else "",
                    expires_at=expires_at,
                ),
            )
            response.headers["Cache-Control"] = "no-store"
            return response
        else:
            raise NotFound("Not found.")
    except AttuneError as exc:
        if isinstance(exc, NotFound):
            raise
        return await account_page(request, error=exc.message, status=exc.status)
    raise web.HTTPSeeOther(f"/admin/accounts/{account_id}?done={action}")

"""The admin console beyond the account list (which lives at /admin in pages.py).

One module per resource: accounts, retention (policies, purge, reports), holds, notices.
"""

from __future__ import annotations

from aiohttp import web

from server.core.models import Role
from server.web.admin import accounts, holds, notices, retention
from server.web.guard import page_guarded
from server.web.openapi import ApiHandler


def add_admin_pages(app: web.Application) -> None:
    """Register the admin console's pages, each for admins only."""

    def get(path: str, handler: ApiHandler, name: str) -> None:
        app.router.add_get(path, page_guarded(handler, Role.ADMIN), name=name)

    def post(path: str, handler: ApiHandler) -> None:
        app.router.add_post(path, page_guarded(handler, Role.ADMIN))

    get("/admin/accounts/{account_id}", accounts.account_page, "adminAccount")
    post("/admin/accounts/{account_id}/{action}", accounts.account_action)
    get("/admin/retention", retention.retention_page, "adminRetention")
    post("/admin/retention/preview", retention.retention_preview)
    post("/admin/retention/save", retention.retention_save)
    post("/admin/retention/purge", retention.retention_purge)
    get("/admin/holds", holds.holds_page, "adminHolds")
    post("/admin/holds", holds.holds_add)
    post("/admin/holds/{client_id}/release", holds.holds_release)
    get("/admin/notices", notices.notices_page, "adminNotices")
    post("/admin/notices", notices.notices_publish)
    get("/admin/purge-reports", retention.reports_page, "adminPurgeReports")

"""The admin console beyond the account list (which lives at /admin in pages.py).

One module per resource: accounts, retention (policies, purge, reports), holds, notices.
"""

from __future__ import annotations

from aiohttp import web

from server.web.admin import accounts, holds, notices, retention


def add_admin_pages(app: web.Application) -> None:
    """Register the admin console's pages (the account list at /admin lives in pages.py)."""
    r = app.router
    r.add_get("/admin/accounts/{account_id}", accounts.account_page, name="adminAccount")
    r.add_post("/admin/accounts/{account_id}/{action}", accounts.account_action)
    r.add_get("/admin/retention", retention.retention_page, name="adminRetention")
    r.add_post("/admin/retention/preview", retention.retention_preview)
    r.add_post("/admin/retention/save", retention.retention_save)
    r.add_post("/admin/retention/purge", retention.retention_purge)
    r.add_get("/admin/holds", holds.holds_page, name="adminHolds")
    r.add_post("/admin/holds", holds.holds_add)
    r.add_post("/admin/holds/{client_id}/release", holds.holds_release)
    r.add_get("/admin/notices", notices.notices_page, name="adminNotices")
    r.add_post("/admin/notices", notices.notices_publish)
    r.add_get("/admin/purge-reports", retention.reports_page, name="adminPurgeReports")

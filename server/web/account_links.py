"""Handing an account holder their one-time set-up or reset link: by email to the account's own
address when SMTP is configured (the admin never sees the link), otherwise shown once to the
admin for hand delivery. One place for the console and the API."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from aiohttp import web

from server.core.models import Account
from server.keys import CLOCK, MAILER, SMTP_TRANSPORT
from server.smtp import DeliveryError
from server.web.shapes import reset_url

log = logging.getLogger("attune.accounts")


@dataclass(frozen=True)
class LinkDelivery:
    """How the link went: `url` to show (no SMTP), or emailed, or the email's failure."""

    url: str | None
    emailed: bool
    error: str | None


async def deliver_account_link(
    request: web.Request,
    account: Account,
    token: str,
    expires_at: datetime,
    *,
    first_password: bool,
) -> LinkDelivery:
    """Email the link when SMTP is configured, else return it for the admin to hand over."""
    url = reset_url(request, token)
    mailer = request.app[MAILER]
    if not mailer.enabled:
        return LinkDelivery(url=url, emailed=False, error=None)
    try:
        await mailer.send_account_link(
            request.app[SMTP_TRANSPORT],
            to=account.email,
            url=url,
            expires_at=expires_at,
            first_password=first_password,
            now=request.app[CLOCK](),
        )
    except DeliveryError as exc:
        log.warning("an account link email was not delivered: %s", exc.reason)
        return LinkDelivery(url=None, emailed=False, error=exc.reason)
    return LinkDelivery(url=None, emailed=True, error=None)

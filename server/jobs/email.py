"""The email job: every `email_interval_seconds`, queue the reminders that are due (and the
links to measures due between sessions, server/services/measure_links.py) and send
what the outbox holds, as a cleanup_ctx task. It runs only when SMTP is configured.

Several processes may run it at once: each message is claimed under a lease before it is
sent, so no two senders send the same message (see server/services/email.py for the one
window in which a crash can send a message twice).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from datetime import datetime

from aiohttp import web

from server.audit import AuditTrail
from server.db.engine import Database
from server.keys import AUDIT, CLOCK, DB, MAILER, MEASURE_LINKS, SETTINGS, SMTP_TRANSPORT
from server.services.email import Mailer
from server.services.measure_links import MeasureLinks
from server.smtp import Transport

log = logging.getLogger("attune.email")


async def run_once(
    mailer: Mailer,
    db: Database,
    audit: AuditTrail,
    transport: Transport,
    now: datetime,
    measure_links: MeasureLinks | None = None,
) -> int:
    """One round: queue due reminders (and links to measures due between sessions), then send
    everything due; returns messages sent."""
    await mailer.queue_due_reminders(db, now)
    if measure_links is not None:
        await measure_links.queue_due(now)
    return await mailer.send_due(db, audit, transport, now)


async def run_forever(
    mailer: Mailer,
    db: Database,
    audit: AuditTrail,
    transport: Transport,
    clock: Callable[[], datetime],
    interval_seconds: float,
    measure_links: MeasureLinks | None = None,
) -> None:
    """Rounds until cancelled; a failed round is logged, never fatal."""
    while True:
        try:
            await run_once(mailer, db, audit, transport, clock(), measure_links)
        except Exception:
            log.exception("email round failed; the next round retries")
        await asyncio.sleep(interval_seconds)


async def email_job_ctx(app: web.Application) -> AsyncIterator[None]:
    """Start the email loop with the server (when SMTP is configured); stop it on shutdown."""
    settings = app[SETTINGS]
    if not settings.email_enabled:
        yield
        return
    task = asyncio.create_task(
        run_forever(
            app[MAILER],
            app[DB],
            app[AUDIT],
            app[SMTP_TRANSPORT],
            app[CLOCK],
            settings.email_interval_seconds,
            app[MEASURE_LINKS],
        ),
        name="attune-email-job",
    )
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task

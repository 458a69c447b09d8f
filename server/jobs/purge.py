"""The purge job: applies the retention policies inside the server, every
`purge_interval_seconds` (default hourly), as a cleanup_ctx task.

A restart does not postpone purging: the next run is due one interval after the last run
started (read from the purge reports), and an overdue run starts shortly after start-up.
A run that fails is logged and retried at the next interval; shutting down cancels a run
between or inside a batch, which rolls that batch back (the next run finishes the work).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Final

from aiohttp import web

from server.keys import AUDIT, CLOCK, DB, SETTINGS, VAULT
from server.services.retention import PURGE_ACTOR, Retention

log = logging.getLogger("attune.purge")

STARTUP_DELAY_SECONDS: Final = 30.0  # let the server settle before an overdue run


def first_delay(last_started: datetime | None, now: datetime, interval_seconds: float) -> float:
    """Seconds until the first run: one interval after the last run, and not during start-up."""
    if last_started is None:
        return interval_seconds
    due_in = interval_seconds - (now - last_started).total_seconds()
    return min(interval_seconds, max(STARTUP_DELAY_SECONDS, due_in))


async def run_forever(
    retention: Retention, clock: Callable[[], datetime], interval_seconds: float
) -> None:
    """Purge every interval until cancelled; a failed run is logged, never fatal."""
    delay = first_delay(await retention.last_run_started(), clock(), interval_seconds)
    while True:
        await asyncio.sleep(delay)
        delay = interval_seconds
        try:
            report = await retention.purge(clock(), trigger="job", actor=PURGE_ACTOR)
        except Exception:
            log.exception("purge run failed; the next run retries")
            continue
        log.info(
            "purge run finished: %d records, %d data keys destroyed",
            report.total,
            report.keys_destroyed,
            extra={"duration_ms": report.duration_ms},
        )


async def purge_job_ctx(app: web.Application) -> AsyncIterator[None]:
    """Start the purge loop with the server; stop it (rolling back any batch) on shutdown."""
    retention = Retention(app[DB], app[AUDIT], app[VAULT])
    task = asyncio.create_task(
        run_forever(retention, app[CLOCK], app[SETTINGS].purge_interval_seconds),
        name="attune-purge-job",
    )
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task

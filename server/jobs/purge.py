"""The purge job: applies the retention policies inside the server, every
`purge_interval_seconds` (default hourly), as a cleanup_ctx task.

A restart does not postpone purging: the next run is due one interval after the last run
started (read from the purge reports), and an overdue run starts shortly after start-up.
A run that fails is logged and retried at the next interval. Shutting down lets a run in
progress finish its current batch and write its report (at most STOP_GRACE_SECONDS); only
then, or if it overruns, is the task cancelled, which rolls an unfinished batch back (the
next run finishes the work).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Final

from aiohttp import web

from server.keys import AUDIT, CLOCK, DB, METRICS, SETTINGS, VAULT
from server.services.retention import PURGE_ACTOR, STOPPED_FOR_SHUTDOWN, Retention

log = logging.getLogger("attune.purge")

STARTUP_DELAY_SECONDS: Final = 30.0  # let the server settle before an overdue run
STOP_GRACE_SECONDS: Final = 10.0  # how long shutdown waits for the current batch


def first_delay(last_started: datetime | None, now: datetime, interval_seconds: float) -> float:
    """Seconds until the first run: one interval after the last run, and not during start-up."""
    if last_started is None:
        return interval_seconds
    due_in = interval_seconds - (now - last_started).total_seconds()
    return min(interval_seconds, max(STARTUP_DELAY_SECONDS, due_in))


class PurgeJob:
    """The loop's state that shutdown needs: whether a run is in progress."""

    def __init__(self) -> None:
        self.idle = asyncio.Event()
        self.idle.set()


async def run_forever(
    retention: Retention,
    clock: Callable[[], datetime],
    interval_seconds: float,
    job: PurgeJob | None = None,
    on_outcome: Callable[[str], None] = lambda _outcome: None,
) -> None:
    """Purge every interval until cancelled; a failed run is logged, never fatal.
    `on_outcome` hears "ok", "stopped" or "failed" after each run (for the metrics)."""
    job = job or PurgeJob()
    delay = first_delay(await retention.last_run_started(), clock(), interval_seconds)
    while True:
        await asyncio.sleep(delay)
        delay = interval_seconds
        job.idle.clear()
        try:
            report = await retention.purge(clock(), trigger="job", actor=PURGE_ACTOR)
        except Exception:
            on_outcome("failed")
            log.exception("purge run failed; the next run retries")
            continue
        finally:
            job.idle.set()
        on_outcome("stopped" if STOPPED_FOR_SHUTDOWN in report.problems else "ok")
        log.info(
            "purge run finished: %d records, %d data keys destroyed",
            report.total,
            report.keys_destroyed,
            extra={"duration_ms": report.duration_ms},
        )


async def purge_job_ctx(app: web.Application) -> AsyncIterator[None]:
    """Start the purge loop with the server; on shutdown let the current batch finish."""
    retention = Retention(app[DB], app[AUDIT], app[VAULT])
    job = PurgeJob()
    task = asyncio.create_task(
        run_forever(
            retention,
            app[CLOCK],
            app[SETTINGS].purge_interval_seconds,
            job,
            app[METRICS].purge_run,
        ),
        name="attune-purge-job",
    )
    yield
    retention.request_stop()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(STOP_GRACE_SECONDS):
            await job.idle.wait()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task

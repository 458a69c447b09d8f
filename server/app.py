"""create_app(settings): the only place where Attune is wired together."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection

from privacy.consent import Purpose
from server.core.checkins import load_builtin_instruments, load_instruments_dir
from server.core.cues.config import CueConfig
from server.core.measures import load_builtin_measures
from server.db import goals as goal_rows
from server.jobs.email import email_job_ctx
from server.jobs.purge import purge_job_ctx
from server.keys import (
    ADDRESS_HASHER,
    AUDIT,
    CHECKINS,
    CLIENT_WRITES,
    CLOCK,
    CONSENTS,
    CUE_RECORDS,
    DB,
    DENIAL_LIMITER,
    DRAINING,
    GOALS,
    HUB,
    LINK_THROTTLE,
    LIVE,
    MAILER,
    MEASURE_LINKS,
    MEASURES,
    METRICS,
    SAFETY,
    SETTINGS,
    SMTP_TRANSPORT,
    VAULT,
)
from server.metrics import Metrics, serve_metrics_ctx
from server.middlewares import errors, identity_and_csrf, security_headers
from server.realtime.bus import consent_event, consent_event_json, open_bus
from server.realtime.conncheck import CONNCHECK_OPERATIONS, conncheck_cleanup_ctx
from server.realtime.hub import LIVE_CALLS, Hub
from server.realtime.signaling import SessionRunner, add_signaling_routes, expire_rooms_loop
from server.runtime import open_audit_trail, open_database, open_vault
from server.security.client_writes import ClientWriteLimiter
from server.security.denials import DenialLimiter
from server.security.throttle import AddressHasher, FailureThrottle, Limit
from server.services.checkins import Checkins
from server.services.consents import Consents
from server.services.cue_records import CueRecords
from server.services.email import Mailer
from server.services.goals import Goals
from server.services.live_session import LiveSessions
from server.services.measure_links import MeasureLinks
from server.services.measures import Measures
from server.services.safety import SafetyChecks
from server.settings import Settings
from server.smtp import SmtpTransport, Transport
from server.web.account_pages import add_account_pages
from server.web.admin import add_admin_pages
from server.web.api import OPERATIONS
from server.web.audit_views import AUDIT_OPERATIONS, add_audit_pages
from server.web.checkin_views import CHECKIN_OPERATIONS, add_checkin_pages
from server.web.client_rights import CLIENT_RIGHTS_OPERATIONS, add_client_rights_pages
from server.web.consent_views import CONSENT_OPERATIONS, add_consent_pages
from server.web.email_views import add_email_pages
from server.web.guard import add_api_routes
from server.web.i18n import install_languages, page_language
from server.web.measure_link_views import MEASURE_LINK_OPERATIONS, add_measure_link_pages
from server.web.measure_views import MEASURE_OPERATIONS, add_measure_pages
from server.web.neutral_page import add_neutral_page_routes
from server.web.pages import add_page_routes
from server.web.participant_pages import add_participant_pages
from server.web.progress_views import GOAL_OPERATIONS, add_progress_pages
from server.web.safety_views import SAFETY_OPERATIONS
from server.web.sign_in_guard import login_guard_ctx
from server.web.times import number, when

log = logging.getLogger("attune")
LEAVES_SETTLE_S = 2.0
"""On shutdown, how long the leaves of the sockets just closed may take to reach their rooms."""


def utc_now() -> datetime:
    """The real clock (tests pass their own)."""
    return datetime.now(UTC)


def client_web_dir() -> Path:
    """Where templates and static files are installed."""
    return Path(str(resources.files("client_web")))


async def _metrics_site(app: web.Application) -> AsyncIterator[None]:
    """/metrics on its own admin port when `metrics_port` is set; never on the public port."""
    settings = app[SETTINGS]
    async for _runner in serve_metrics_ctx(
        app[METRICS], settings.metrics_host, settings.metrics_port
    ):
        yield


async def _database(app: web.Application) -> AsyncIterator[None]:
    db = await open_database(app[SETTINGS])
    app[DB] = db
    yield
    await db.dispose()


async def _vault(app: web.Application) -> AsyncIterator[None]:
    vault, message = await open_vault(app[SETTINGS], app[DB])
    if message:
        log.warning(message)
    app[VAULT] = vault
    yield


async def _consents(app: web.Application) -> AsyncIterator[None]:
    app[CONSENTS] = await Consents.load(app[DB])
    yield


async def _checkins(app: web.Application) -> AsyncIterator[None]:
    instruments = load_builtin_instruments()
    extra_dir = app[SETTINGS].instruments_dir
    if extra_dir is not None:
        instruments |= load_instruments_dir(extra_dir, reserved=instruments)
    checkins = Checkins(instruments, app[CONSENTS], app[VAULT])

    async def delete_checkins(conn: AsyncConnection, client_id: str) -> None:
        # The after-session goal progress answers are check-in answers too.
        await checkins.delete_for_client(conn, client_id)
        await goal_rows.delete_progress(conn, client_id)

    app[CONSENTS].on_withdrawal(Purpose.CHECKIN_STORAGE, "delete-checkins", delete_checkins)
    app[CHECKINS] = checkins
    yield


async def _measures(app: web.Application) -> AsyncIterator[None]:
    app[MEASURES] = Measures(
        load_builtin_measures(),
        db=app[DB],
        vault=app[VAULT],
        review_by_session=app[SETTINGS].measures_review_session,
    )
    yield


async def _goals(app: web.Application) -> AsyncIterator[None]:
    app[GOALS] = Goals(app[DB], app[VAULT], app[AUDIT], app[CONSENTS])
    yield


async def _cue_records(app: web.Application) -> AsyncIterator[None]:
    records = CueRecords(app[VAULT])
    app[CONSENTS].on_withdrawal(Purpose.CUE_ANALYSIS, "delete-cue-data", records.delete_for_client)
    app[CUE_RECORDS] = records
    yield


async def _safety(app: web.Application) -> AsyncIterator[None]:
    app[SAFETY] = SafetyChecks(app[VAULT])
    yield


async def _mailer(app: web.Application) -> AsyncIterator[None]:
    mailer = Mailer(app[SETTINGS], app[VAULT], app[CONSENTS])
    app[CONSENTS].on_withdrawal(Purpose.CONTACT, "delete-contact", mailer.delete_contact_effect)
    app[MAILER] = mailer
    yield


async def _measure_links(app: web.Application) -> AsyncIterator[None]:
    app[MEASURE_LINKS] = MeasureLinks(
        db=app[DB], measures=app[MEASURES], mailer=app[MAILER], audit=app[AUDIT]
    )
    yield


async def _audit(app: web.Application) -> AsyncIterator[None]:
    trail = open_audit_trail(app[SETTINGS])
    app[AUDIT] = trail
    yield
    # A signed checkpoint on shutdown lets `attune audit verify` catch a truncated tail.
    await trail.checkpoint(app[DB], app[CLOCK]())


async def _live_sessions(app: web.Application) -> AsyncIterator[None]:
    """The rooms of this process, the bus to the others, and the owner of live operations."""
    settings = app[SETTINGS]
    bus = open_bus(
        settings, round_trip=app[METRICS].redis_round_trip, loop_lag=app[METRICS].event_loop_lag
    )
    hub = Hub(
        bus,
        relay_written=app[METRICS].relay_written,
        max_people=settings.max_people_per_session,
    )
    app[METRICS].watch(hub.connection_count, lambda: len(hub.rooms))
    live = LiveSessions(
        db=app[DB],
        audit=app[AUDIT],
        checkins=app[CHECKINS],
        measures=app[MEASURES],
        consents=app[CONSENTS],
        cue_records=app[CUE_RECORDS],
        rooms=hub,
        clock=app[CLOCK],
        cue_config=CueConfig().scaled(settings.cue_time_scale),
        mailer=app[MAILER],
        safety=app[SAFETY],
        goals=app[GOALS],
    )
    app[HUB], app[LIVE] = hub, live
    bus.bind(hub, SessionRunner(app), LIVE_CALLS)
    # A consent change reaches every process: each reacts for the rooms it holds.
    bus.on_control("consent", lambda payload: live.on_consent_changed(consent_event(payload)))
    bus.on_control("close-connections", hub.on_close_connections)
    unsubscribe = app[CONSENTS].events.subscribe(
        lambda event: bus.broadcast("consent", consent_event_json(event))
    )

    async def stop_feature_stream(_conn: Any, client_id: str) -> None:
        live.stop_cues_for_client(client_id)

    app[CONSENTS].on_withdrawal(Purpose.CUE_ANALYSIS, "stop-feature-stream", stop_feature_stream)
    await bus.start()
    timer = asyncio.create_task(expire_rooms_loop(hub))
    yield
    timer.cancel()
    unsubscribe()
    await hub.settle_leaves(within_s=LEAVES_SETTLE_S)
    await bus.stop()


async def _start_draining(app: web.Application) -> None:
    app[DRAINING].set()


def create_app(
    settings: Settings,
    *,
    clock: Callable[[], datetime] = utc_now,
    smtp: Transport | None = None,
) -> web.Application:
    """Build the application: state, resources, middlewares, routes (tests may pass their own
    clock and SMTP transport)."""

    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[security_headers, errors, identity_and_csrf, page_language],
    )
    app[SETTINGS] = settings
    app[CLOCK] = clock
    app[SMTP_TRANSPORT] = smtp or SmtpTransport(settings)
    app[LINK_THROTTLE] = FailureThrottle(
        Limit(settings.invite_max_failures, settings.invite_window_seconds)
    )
    app[ADDRESS_HASHER] = AddressHasher()
    app[CLIENT_WRITES] = ClientWriteLimiter(scale=settings.client_write_limit_scale)
    app[DENIAL_LIMITER] = DenialLimiter()
    app[DRAINING] = asyncio.Event()
    app[METRICS] = Metrics()
    app.on_shutdown.append(_start_draining)

    web_dir = client_web_dir()
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(str(web_dir / "templates")),
        autoescape=jinja2.select_autoescape(default=True),
    )
    env.globals["when"] = when
    env.globals["number"] = number
    install_languages(app, env, web_dir / "locales")
    app.cleanup_ctx.append(_metrics_site)
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_vault)
    app.cleanup_ctx.append(_consents)
    app.cleanup_ctx.append(_checkins)
    app.cleanup_ctx.append(_measures)
    app.cleanup_ctx.append(_cue_records)
    app.cleanup_ctx.append(_safety)
    app.cleanup_ctx.append(_mailer)
    app.cleanup_ctx.append(conncheck_cleanup_ctx)
    app.cleanup_ctx.append(_audit)
    app.cleanup_ctx.append(_goals)
    app.cleanup_ctx.append(_measure_links)
    app.cleanup_ctx.append(_live_sessions)
    app.cleanup_ctx.append(login_guard_ctx)
    app.cleanup_ctx.append(purge_job_ctx)
    app.cleanup_ctx.append(email_job_ctx)
    add_api_routes(
        app,
        OPERATIONS
        + CONSENT_OPERATIONS
        + AUDIT_OPERATIONS
        + CHECKIN_OPERATIONS
        + CLIENT_RIGHTS_OPERATIONS
        + SAFETY_OPERATIONS
        + CONNCHECK_OPERATIONS
        + MEASURE_OPERATIONS
        + MEASURE_LINK_OPERATIONS
        + GOAL_OPERATIONS,
    )
    add_participant_pages(app)  # before the pages' /dashboard/sessions/{id}/{action}
    add_page_routes(app)
    add_neutral_page_routes(app)
    add_consent_pages(app)
    add_audit_pages(app)
    add_checkin_pages(app)
    add_measure_pages(app)
    add_measure_link_pages(app)
    add_progress_pages(app)
    add_admin_pages(app)
    add_account_pages(app)
    add_client_rights_pages(app)
    add_email_pages(app)
    add_signaling_routes(app)
    app.router.add_static("/static", web_dir / "static", append_version=False)
    return app

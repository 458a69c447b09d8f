"""Every piece of shared application state, typed; handlers reach it only via request.app[KEY]."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime

from aiohttp import web

from server.audit import AuditTrail
from server.db.engine import Database
from server.metrics import Metrics
from server.realtime.hub import Hub
from server.security.client_writes import ClientWriteLimiter
from server.security.denials import DenialLimiter
from server.security.login_guard import LoginGuard
from server.security.throttle import AddressHasher, FailureThrottle
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
from server.smtp import Transport
from server.vault_store import ClientVault
from server.web.catalogues import PageLanguages
from server.web.openapi import Operation

SETTINGS = web.AppKey("settings", Settings)
Clock = Callable[[], datetime]
CLOCK: web.AppKey[Clock] = web.AppKey("clock")
DB = web.AppKey("db", Database)
AUDIT = web.AppKey("audit", AuditTrail)
LOGIN_GUARD = web.AppKey("login_guard", LoginGuard)
DENIAL_LIMITER = web.AppKey("denial_limiter", DenialLimiter)
LINK_THROTTLE = web.AppKey("link_throttle", FailureThrottle)
CLIENT_WRITES = web.AppKey("client_writes", ClientWriteLimiter)
ADDRESS_HASHER = web.AppKey("address_hasher", AddressHasher)
VAULT = web.AppKey("vault", ClientVault)
CONSENTS = web.AppKey("consents", Consents)
PAGE_LANGUAGES = web.AppKey("page_languages", PageLanguages)
API_OPERATIONS: web.AppKey[Sequence[Operation]] = web.AppKey("api_operations")
CHECKINS = web.AppKey("checkins", Checkins)
CUE_RECORDS = web.AppKey("cue_records", CueRecords)
# Outcome measures: plans, submissions, history (`history(client_id)`), flags, safety alerts.
MEASURES = web.AppKey("measures", Measures)
# Emailed links to answer due measures between sessions.
MEASURE_LINKS = web.AppKey("measure_links", MeasureLinks)
HUB = web.AppKey("hub", Hub)
LIVE = web.AppKey("live", LiveSessions)
GOALS = web.AppKey("goals", Goals)
MAILER = web.AppKey("mailer", Mailer)
SAFETY = web.AppKey("safety", SafetyChecks)
SMTP_TRANSPORT: web.AppKey[Transport] = web.AppKey("smtp_transport")
METRICS = web.AppKey("metrics", Metrics)
# Set when shutdown begins: /readyz answers 503 so balancers stop sending new work here.
DRAINING = web.AppKey("draining", asyncio.Event)

"""Answering measures between sessions: the emailed link (docs/checkins.md "Between sessions").

The email job asks `queue_due` each round. For a client whose monthly plan makes measures due
while no session is near (`server.core.measures.schedule.between_sessions_due`), it creates a
link and queues a neutral email in one transaction, only with the `contact` consent and an
address on file. The link's token (32 random bytes) is stored only as its SHA-256, works once
and for `LINK_LIFETIME`: the first opening swaps it for a page cookie (stored as its hash too)
and a redirect to the token-free `/measures`. The answers go through
`LiveSessions.submit_measure` like the visit page's: same idempotency, vault and safety alert,
filed under the client's latest session. The link stops when everything it asked is answered,
when it expires, when a newer link replaces it and when the therapist changes the plan.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from server.audit import AuditTrail
from server.core.measures import Measure
from server.core.measures.schedule import LINK_LIFETIME, Frequency, Plan
from server.core.models import TherapySession
from server.db import measure_links as link_rows
from server.db import measures as measure_rows
from server.db import scheduling as session_rows
from server.db.engine import Database
from server.errors import Conflict, InvalidInput
from server.security.tokens import looks_like_token, new_id, new_token, token_hash
from server.services.email import Mailer
from server.services.measures import Measures

if TYPE_CHECKING:
    from server.services.live_session import LiveSessions, Submitted
    from server.services.measures import MeasureResult


class LinkState(StrEnum):
    """Where a link stands for its page."""

    OPEN = "open"  # measures left to answer
    FINISHED = "finished"  # everything asked was answered
    CLOSED = "closed"  # expired or revoked


@dataclass(frozen=True)
class LinkEntry:
    """A link just opened: the page cookie (never stored) and until when it works."""

    cookie_token: str
    expires_at: datetime


@dataclass(frozen=True)
class LinkVisit:
    """A client on the measures page, recognised by the page cookie."""

    link_id: str
    session: TherapySession
    measures: tuple[str, ...]
    csrf_token: str
    created_at: datetime
    expires_at: datetime
    state: LinkState

    @property
    def access_id(self) -> str:
        """This link's id for rate limits (never the token)."""
        return f"measure-link:{self.link_id}"


def _state(row: link_rows.LinkRow, now: datetime) -> LinkState:
    if row.finished_at is not None:
        return LinkState.FINISHED
    if row.revoked_at is not None or now >= row.expires_at:
        return LinkState.CLOSED
    return LinkState.OPEN


async def resolve_link(db: Database, cookie_token: str, now: datetime) -> LinkVisit | None:
    """The link a page cookie belongs to (in any state), or None for an unknown cookie."""
    if not looks_like_token(cookie_token):
        return None
    async with db.read() as conn:
        row = await link_rows.by_cookie_hash(conn, token_hash(cookie_token))
        if row is None or row.csrf_token is None:
            return None
        session = await session_rows.session_by_id(conn, row.session_id)
    if session is None:
        return None
    return LinkVisit(
        link_id=row.id,
        session=session,
        measures=row.measures,
        csrf_token=row.csrf_token,
        created_at=row.created_at,
        expires_at=row.expires_at,
        state=_state(row, now),
    )


class MeasureLinks:
    """Emailed links to answer due measures between sessions."""

    def __init__(
        self, *, db: Database, measures: Measures, mailer: Mailer, audit: AuditTrail
    ) -> None:
        self._db = db
        self._measures = measures
        self._mailer = mailer
        self._audit = audit

    async def queue_due(self, now: datetime) -> int:
        """Create a link and queue its email for every client due one now; how many."""
        if not self._mailer.enabled:
            return 0
        async with self._db.read() as conn:
            plans = await measure_rows.monthly_plans(conn)
        queued = 0
        for found in plans:
            async with self._db.write() as conn:
                if not await self._mailer.wants_email(conn, found.client_id, now):
                    continue
                plan = Plan(found.measures, Frequency.MONTHLY)
                due = await self._measures.due_between_sessions(conn, found.client_id, plan, now)
                if not due:
                    continue
                session_id = await link_rows.latest_started_session(conn, found.client_id, now)
                session = (
                    None
                    if session_id is None
                    else await session_rows.session_by_id(conn, session_id)
                )
                if session is None:
                    continue
                token, link_id, expires_at = new_token(), new_id(), now + LINK_LIFETIME
                await link_rows.revoke_for_client(conn, found.client_id, now)
                await link_rows.insert(
                    conn,
                    row_id=link_id,
                    client_id=found.client_id,
                    session_id=session.id,
                    measures=due,
                    token_hash=token_hash(token),
                    now=now,
                    expires_at=expires_at,
                )
                await self._mailer.queue_measures_link(
                    conn,
                    session=session,
                    link_id=link_id,
                    token=token,
                    expires_at=expires_at,
                    now=now,
                )
                await self._audit.record(
                    conn,
                    at=now,
                    actor="system:email",
                    action="measure.link_sent",
                    targets=(f"client:{found.client_id}",),
                    details={"measures": ",".join(due)},
                )
                queued += 1
        return queued

    async def open(self, token: str, now: datetime) -> LinkEntry | None:
        """Swap an emailed token for a page cookie, once; None when the link does not work
        (unknown, opened before, answered, expired or revoked: never which)."""
        if not looks_like_token(token):
            return None
        async with self._db.write() as conn:
            row = await link_rows.by_token_hash(conn, token_hash(token))
            if row is None or row.opened_at is not None or _state(row, now) is not LinkState.OPEN:
                return None
            cookie = new_token()
            if not await link_rows.mark_opened(
                conn, row.id, token_hash(cookie), secrets.token_urlsafe(32), now
            ):
                return None
            await self._audit.record(
                conn,
                at=now,
                actor="client",
                action="measure.link_open",
                targets=(f"client:{row.client_id}",),
            )
        return LinkEntry(cookie, row.expires_at)

    async def remaining(self, visit: LinkVisit) -> list[Measure]:
        """The link's measures not yet answered through it, in the plan's order."""
        async with self._db.read() as conn:
            answered = await measure_rows.answered_by_link_since(
                conn, visit.session.client_id, visit.created_at
            )
        return [
            self._measures.measures[m]
            for m in visit.measures
            if m in self._measures.measures and m not in answered
        ]

    async def submit(
        self,
        live: LiveSessions,
        visit: LinkVisit,
        *,
        measure_id: str,
        answers: Mapping[str, object],
        idempotency_key: str,
        now: datetime,
        language: str = "en",
    ) -> Submitted[MeasureResult]:
        """Store one answered measure from the link (like the visit page's), and close the
        link once everything it asked is answered. A retry of an answer already stored is
        a duplicate, also after the link closed."""
        if measure_id not in visit.measures:
            raise InvalidInput("This form does not ask that questionnaire.")
        if visit.state is not LinkState.OPEN:
            async with self._db.read() as conn:
                stored = await measure_rows.by_idempotency_key(
                    conn, visit.session.id, idempotency_key
                )
            if stored is None:
                raise Conflict("This form is closed. Your therapist can send a new one.")
        submitted = await live.submit_measure(
            visit.session.id,
            measure_id=measure_id,
            answers=answers,
            idempotency_key=idempotency_key,
            by_link=True,
            language=language,
        )
        if visit.state is LinkState.OPEN and not await self.remaining(visit):
            async with self._db.write() as conn:
                await link_rows.mark_finished(conn, visit.link_id, now)
        return submitted

"""Outcome measures (PHQ-9, GAD-7): the therapist's plan, what is due, submissions (validated,
scored, stored through the vault), the safety alert's record, history and not-on-track flags.

Scoring, schedules and flags are pure (server.core.measures). Answers are part of the clinical
record (docs/privacy.md "Outcome measures"): a submission is stored whatever the optional
consents say, in its own table and retention category `measure`, and is idempotent (same key
→ same result, stored once, also after a restart). A PHQ-9 item 9 above "Not at all" leaves a
minimal alert record in the same transaction; delivering it to the therapist (room, email) is
`LiveSessions.submit_measure`'s job.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from sqlalchemy.ext.asyncio import AsyncConnection

from privacy.vault import FieldContext
from server.audit import AuditTrail
from server.core.checkins.alerts import Alert
from server.core.measures import (
    Flag,
    Measure,
    MeasureAnswerError,
    MeasureScore,
    ScorePoint,
    not_on_track,
    safety_alert,
    score_measure,
    validate_measure_answers,
)
from server.core.measures.schedule import (
    NO_PLAN,
    Frequency,
    Plan,
    between_sessions_due,
    due_measures,
    session_number,
)
from server.core.measures.scoring import DEFAULT_REVIEW_BY_SESSION
from server.core.models import TherapySession
from server.db import measure_links as link_rows
from server.db import measures as rows
from server.db.engine import Database
from server.errors import InvalidInput, NotFound
from server.security.tokens import new_id
from server.services.submissions import SessionResults, Written, write_once
from server.vault_store import ClientVault

_LIVE_PER_SESSION: Final = 50


@dataclass(frozen=True)
class MeasureResult:
    """One scored measure with its safety alert, if any (for the therapist only).

    ``session_number`` is the session's place in the client's course (1 for the first
    session that was not cancelled).
    """

    id: str
    session_id: str
    client_id: str
    measure: Measure
    answers: Mapping[str, str | None]
    score: MeasureScore
    alert: Alert | None
    submitted_at: datetime
    stored: bool
    session_number: int = 1


@dataclass(frozen=True)
class SafetyAlertRecord:
    """A safety alert as the therapist's dashboard lists it: who, which measure, when."""

    id: str
    session_id: str
    client_id: str
    client_alias: str
    response_id: str
    measure_title: str
    raised_at: datetime
    seen: bool


@dataclass(frozen=True)
class FlaggedClient:
    """A client with a not-on-track flag, as the dashboard lists it (no scores, no reasons)."""

    client_id: str
    client_alias: str
    measure_titles: tuple[str, ...]


def _context(row_id: str, client_id: str) -> FieldContext:
    return FieldContext("measure_responses", row_id, "payload", client_id)


class Measures:
    """The installed outcome measures, their storage and the plans per client."""

    def __init__(
        self,
        measures: Mapping[str, Measure],
        *,
        db: Database,
        vault: ClientVault,
        review_by_session: int = DEFAULT_REVIEW_BY_SESSION,
    ) -> None:
        self.measures = dict(measures)
        self.review_by_session = review_by_session
        self._db = db
        self._vault = vault
        self._live: SessionResults[MeasureResult] = SessionResults(_LIVE_PER_SESSION)
        # per client: (answers count, latest answer) → flagged measure ids, so a dashboard
        # that polls opens a client's history only when a new answer arrived
        self._flagged: dict[str, tuple[tuple[int, datetime], tuple[str, ...]]] = {}

    def measure(self, measure_id: str) -> Measure:
        """A measure by id, or InvalidInput."""
        found = self.measures.get(measure_id)
        if found is None:
            raise InvalidInput(f"Unknown measure {measure_id!r}.")
        return found

    def forget_session(self, session_id: str) -> None:
        """Drop the in-memory copies of a finished session."""
        self._live.forget(session_id)

    # --- plans and what is due --------------------------------------------------------

    async def plan(self, client_id: str) -> Plan:
        """The therapist's plan for a client (no measures when none was saved)."""
        async with self._db.read() as conn:
            found = await rows.plan_of(conn, client_id)
        if found is None:
            return NO_PLAN
        known = tuple(m for m in found.measures if m in self.measures)
        try:
            frequency = Frequency(found.frequency)
        except ValueError:  # a value this version does not know: ask every session
            frequency = Frequency.EVERY_SESSION
        return Plan(known, frequency)

    async def set_plan(
        self, *, therapist_id: str, client_id: str, plan: Plan, now: datetime, audit: AuditTrail
    ) -> None:
        """Save a client's plan (the caller checked the client is the therapist's); audited."""
        async with self._db.write() as conn:
            await rows.save_plan(conn, client_id, plan.measures, plan.frequency.value, now)
            # a link sent under the old plan asks what is no longer wanted
            await link_rows.revoke_for_client(conn, client_id, now)
            await audit.record(
                conn,
                at=now,
                actor=f"account:{therapist_id}",
                action="measure.plan",
                targets=(f"client:{client_id}",),
                details={"measures": ",".join(plan.measures) or "none", "every": plan.frequency},
            )

    async def due(self, session: TherapySession) -> list[Measure]:
        """The measures the client should be asked before this session, in plan order."""
        plan = await self.plan(session.client_id)
        if not plan.measures:
            return []
        async with self._db.read() as conn:
            starts = await rows.session_starts(conn, session.client_id)
            answered = await rows.measured_in_sessions(conn, session.client_id)
            _, by_link = await rows.answer_times(conn, session.client_id)
        due = due_measures(plan, session.starts_at, starts, answered, by_link)
        return [self.measures[m] for m in due]

    async def due_between_sessions(
        self, conn: AsyncConnection, client_id: str, plan: Plan, now: datetime
    ) -> tuple[str, ...]:
        """The measures to send the client by an emailed link now (between_sessions_due)."""
        starts = await rows.session_starts(conn, client_id)
        last_answered, _ = await rows.answer_times(conn, client_id)
        last_link = await link_rows.last_sent(conn, client_id)
        known = Plan(tuple(m for m in plan.measures if m in self.measures), plan.frequency)
        return between_sessions_due(known, now, starts, last_answered, last_link)

    # --- submitting -------------------------------------------------------------------

    async def submit(
        self,
        *,
        session: TherapySession,
        measure_id: str,
        answers: Mapping[str, object],
        idempotency_key: str,
        now: datetime,
        audit: AuditTrail | None = None,
        by_link: bool = False,
        language: str = "en",
    ) -> tuple[MeasureResult, bool]:
        """Score and store a submission; (result, was_duplicate). ``by_link``: answered from
        an emailed link between sessions (filed under ``session``, the latest one). ``language``:
        the language the client was shown the measure in, stored with the answers so that
        exports keep that wording.

        Returns only after the encrypted write (and the safety alert's record, if any) is
        committed. A retry with the same key, even after a restart, returns the first result
        and stores nothing more.
        """
        found = self._live.get(session.id, idempotency_key)
        if found is not None:
            return found, True
        measure = self.measure(measure_id)
        try:
            response = validate_measure_answers(measure, answers)
        except MeasureAnswerError as exc:
            raise InvalidInput(str(exc)) from None
        scored = score_measure(measure, response)
        alert = safety_alert(measure, scored)

        async def earlier(conn: AsyncConnection) -> MeasureResult | None:
            existing = await rows.by_idempotency_key(conn, session.id, idempotency_key)
            if existing is None:
                return None
            return await self._open(
                conn, existing, await rows.session_starts(conn, session.client_id)
            )

        async def write(conn: AsyncConnection) -> Written[MeasureResult]:
            starts = await rows.session_starts(conn, session.client_id)
            row_id = new_id()
            payload = {
                "measure_version": measure.version,
                "answers": response.as_raw(),
                "language": language,
            }
            ciphertext = await self._vault.encrypt_json(
                conn, _context(row_id, session.client_id), payload
            )
            await rows.insert(
                conn,
                row_id=row_id,
                session_id=session.id,
                client_id=session.client_id,
                measure_id=measure.id,
                measure_version=measure.version,
                idempotency_key=idempotency_key,
                submitted_at=now,
                payload_ciphertext=ciphertext,
                by_link=by_link,
            )
            if alert is not None:
                await rows.insert_alert(
                    conn,
                    row_id=new_id(),
                    session_id=session.id,
                    client_id=session.client_id,
                    therapist_id=session.therapist_id,
                    response_id=row_id,
                    measure_id=measure.id,
                    raised_at=now,
                )
            result = MeasureResult(
                id=row_id,
                session_id=session.id,
                client_id=session.client_id,
                measure=measure,
                answers=response.as_raw(),
                score=scored,
                alert=alert,
                submitted_at=now,
                stored=True,
                session_number=session_number(session.starts_at, starts),
            )
            by = {"by": "emailed-link"} if by_link else {}
            return Written(result, {"measure": measure.id, "stored": True, **by})

        return await write_once(
            self._db,
            self._live,
            session_id=session.id,
            key=idempotency_key,
            earlier=earlier,
            write=write,
            audit=audit,
            action="measure.submit",
            now=now,
        )

    async def _open(
        self, conn: AsyncConnection, row: rows.StoredMeasure, starts: list[datetime]
    ) -> MeasureResult:
        measure = self.measure(row.measure_id)
        payload = await self._vault.decrypt_json(
            conn, _context(row.id, row.client_id), row.payload_ciphertext
        )
        response = validate_measure_answers(measure, payload["answers"])
        score = score_measure(measure, response)
        return MeasureResult(
            id=row.id,
            session_id=row.session_id,
            client_id=row.client_id,
            measure=measure,
            answers=response.as_raw(),
            score=score,
            alert=safety_alert(measure, score),
            submitted_at=row.submitted_at,
            stored=True,
            session_number=session_number(row.session_starts_at, starts),
        )

    # --- reading ----------------------------------------------------------------------

    async def history(self, client_id: str) -> list[MeasureResult]:
        """Every stored measure of a client, oldest first (the caller audits the read)."""
        async with self._db.read() as conn:
            stored = await rows.for_client(conn, client_id)
            starts = await rows.session_starts(conn, client_id)
            return [
                await self._open(conn, row, starts)
                for row in stored
                if row.measure_id in self.measures
            ]

    async def flags(self, client_id: str) -> dict[str, tuple[Flag, ...]]:
        """Not-on-track flags per measure id (only measures with a flag), from the history:
        per session the last complete total counts (core.measures.not_on_track)."""
        return flags_from_history(await self.history(client_id), self.review_by_session)

    async def flagged_clients(
        self, therapist_id: str, *, now: datetime, audit: AuditTrail
    ) -> list[FlaggedClient]:
        """The therapist's clients with a not-on-track flag, by alias (for the dashboard).
        A client's history is opened (and that read audited) only when it changed."""
        async with self._db.read() as conn:
            marks = await rows.marks_of_therapist(conn, therapist_id)
        found: list[FlaggedClient] = []
        for mark in marks:
            key = (mark.count, mark.latest)
            cached = self._flagged.get(mark.client_id)
            if cached is None or cached[0] != key:
                history = await self.history(mark.client_id)
                flagged = tuple(flags_from_history(history, self.review_by_session))
                async with self._db.write() as conn:
                    await audit.record(
                        conn,
                        at=now,
                        actor=f"account:{therapist_id}",
                        action="clinical.read",
                        targets=(f"client:{mark.client_id}",),
                        details={"what": "measure-flags-dashboard", "count": len(history)},
                    )
                cached = (key, flagged)
                self._flagged[mark.client_id] = cached
            if cached[1]:
                titles = tuple(self.measures[m].title for m in cached[1] if m in self.measures)
                found.append(FlaggedClient(mark.client_id, mark.client_alias, titles))
        return found

    # --- safety alerts ----------------------------------------------------------------

    def _record(self, row: rows.SafetyAlertRow) -> SafetyAlertRecord:
        measure = self.measures.get(row.measure_id)
        return SafetyAlertRecord(
            id=row.id,
            session_id=row.session_id,
            client_id=row.client_id,
            client_alias=row.client_alias,
            response_id=row.response_id,
            measure_title=measure.title if measure else row.measure_id,
            raised_at=row.raised_at,
            seen=row.seen_at is not None,
        )

    async def unseen_alerts(self, therapist_id: str) -> list[SafetyAlertRecord]:
        """The therapist's safety alerts not yet marked seen, newest first."""
        async with self._db.read() as conn:
            found = await rows.unseen_alerts(conn, therapist_id)
        return [self._record(r) for r in found]

    async def alerts_of_session(self, session_id: str) -> list[SafetyAlertRecord]:
        """The safety alerts raised in a session, newest first."""
        async with self._db.read() as conn:
            found = await rows.alerts_of_session(conn, session_id)
        return [self._record(r) for r in found]

    async def mark_alert_seen(
        self, *, therapist_id: str, alert_id: str, now: datetime, audit: AuditTrail
    ) -> None:
        """The therapist has seen a safety alert: it leaves the dashboard list; audited."""
        async with self._db.write() as conn:
            found = await rows.mark_alert_seen(conn, alert_id, therapist_id, now)
            if found is None:
                raise NotFound("No such alert.")
            await audit.record(
                conn,
                at=now,
                actor=f"account:{therapist_id}",
                action="measure.alert_seen",
                targets=(f"client:{found.client_id}", f"session:{found.session_id}"),
                details={"measure": found.measure_id},
            )


def flags_from_history(
    history: list[MeasureResult], review_by_session: int
) -> dict[str, tuple[Flag, ...]]:
    """Not-on-track flags per measure from a client's history (pure): the last complete total
    of each session, in session order."""
    per_measure: dict[str, tuple[Measure, dict[int, int]]] = {}
    for result in history:
        if result.score.total is None:
            continue
        _, points = per_measure.setdefault(result.measure.id, (result.measure, {}))
        points[result.session_number] = result.score.total
    flags: dict[str, tuple[Flag, ...]] = {}
    for measure_id, (measure, points) in per_measure.items():
        series = [ScorePoint(n, total) for n, total in sorted(points.items())]
        found = not_on_track(measure, series, review_by_session)
        if found:
            flags[measure_id] = found
    return flags

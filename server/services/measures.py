"""Outcome measures (PHQ-9, GAD-7): validate, score, raise the safety alert, and store the
answers through the vault with the client's `checkin_storage` consent.

Scoring is pure (server.core.measures). Like check-ins, a submission is idempotent (same key →
same result, stored once) and answers are kept only while `checkin_storage` is live; the rows
share the check-in table (kind ``measure``), so retention, export, erasure and withdrawal
treat them as check-ins. The safety alert is part of the result either way: the caller
delivers it to the therapist whatever the consent says.

Not yet here (issue #18 part 2): a record of the safety alert that survives without the
consent, and the edges (WebSocket, REST, pages) that call this service.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from privacy.consent import Purpose
from privacy.vault import FieldContext
from server.audit import AuditTrail
from server.core.checkins.alerts import Alert
from server.core.measures import (
    Measure,
    MeasureAnswerError,
    MeasureScore,
    safety_alert,
    score_measure,
    validate_measure_answers,
)
from server.core.models import TherapySession
from server.db import checkins as checkin_rows
from server.db.engine import Database
from server.errors import InvalidInput
from server.security.tokens import new_id
from server.services.checkins import alert_json
from server.services.consents import Consents
from server.vault_store import ClientVault

KIND: Final = "measure"
_LIVE_PER_SESSION: Final = 50


@dataclass(frozen=True)
class MeasureResult:
    """One scored measure with its safety alert, if any (for the therapist only)."""

    id: str
    session_id: str
    client_id: str
    measure: Measure
    answers: Mapping[str, str | None]
    score: MeasureScore
    alert: Alert | None
    submitted_at: datetime
    stored: bool


def _context(row_id: str, client_id: str) -> FieldContext:
    return FieldContext("checkin_responses", row_id, "payload", client_id)


class Measures:
    """The installed outcome measures and the submissions of live sessions."""

    def __init__(
        self, measures: Mapping[str, Measure], consents: Consents, vault: ClientVault
    ) -> None:
        self.measures = dict(measures)
        self._consents = consents
        self._vault = vault
        self._live: dict[str, OrderedDict[str, MeasureResult]] = {}

    def measure(self, measure_id: str) -> Measure:
        """A measure by id, or InvalidInput."""
        found = self.measures.get(measure_id)
        if found is None:
            raise InvalidInput(f"Unknown measure {measure_id!r}.")
        return found

    def forget_session(self, session_id: str) -> None:
        """Drop the in-memory copies of a finished session."""
        self._live.pop(session_id, None)

    async def submit(
        self,
        db: Database,
        *,
        session: TherapySession,
        measure_id: str,
        answers: Mapping[str, object],
        idempotency_key: str,
        now: datetime,
        audit: AuditTrail | None = None,
    ) -> tuple[MeasureResult, bool]:
        """Score and (with consent) store a submission; (result, was_duplicate).

        Returns only after the encrypted write is committed. A retry with the same key,
        even after a restart, returns the first result and stores nothing more.
        """
        live = self._live.setdefault(session.id, OrderedDict())
        if idempotency_key in live:
            return live[idempotency_key], True
        measure = self.measure(measure_id)
        try:
            response = validate_measure_answers(measure, answers)
        except MeasureAnswerError as exc:
            raise InvalidInput(str(exc)) from None
        scored = score_measure(measure, response)
        alert = safety_alert(measure, scored)
        async with db.write() as conn:
            existing = await checkin_rows.by_idempotency_key(conn, session.id, idempotency_key)
            if existing:
                row = existing[0]
                payload = await self._vault.decrypt_json(
                    conn, _context(row.id, row.client_id), row.payload_ciphertext
                )
                first = validate_measure_answers(measure, payload["answers"])
                first_score = score_measure(measure, first)
                result = MeasureResult(
                    id=row.id,
                    session_id=row.session_id,
                    client_id=row.client_id,
                    measure=measure,
                    answers=first.as_raw(),
                    score=first_score,
                    alert=safety_alert(measure, first_score),
                    submitted_at=row.submitted_at,
                    stored=True,
                )
                live[idempotency_key] = result
                return result, True
            row_id = new_id()
            stored = await self._consents.allows(
                conn, session.client_id, Purpose.CHECKIN_STORAGE, now
            )
            if stored:
                payload = {
                    "answers": response.as_raw(),
                    "alerts": [] if alert is None else [alert_json(alert)],
                }
                ciphertext = await self._vault.encrypt_json(
                    conn, _context(row_id, session.client_id), payload
                )
                await checkin_rows.insert(
                    conn,
                    row_id=row_id,
                    session_id=session.id,
                    client_id=session.client_id,
                    instrument_id=measure.id,
                    instrument_version=measure.version,
                    kind=KIND,
                    idempotency_key=idempotency_key,
                    submitted_at=now,
                    payload_ciphertext=ciphertext,
                )
            if audit is not None:  # in the same transaction: no write without its entry
                await audit.record(
                    conn,
                    at=now,
                    actor="client",
                    action="measure.submit",
                    targets=(f"session:{session.id}",),
                    details={"measure": measure.id, "stored": stored},
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
            stored=stored,
        )
        live[idempotency_key] = result
        while len(live) > _LIVE_PER_SESSION:
            live.popitem(last=False)
        return result, False

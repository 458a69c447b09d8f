"""Check-ins: validate, score, raise alerts, and store answers through the vault with consent.

Scoring and alert rules are pure (server.core.checkins). This module keeps each submission
idempotent (same key → same result, stored once), stores answers encrypted only while the
client's `checkin_storage` consent is live, and otherwise keeps them for the session only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from privacy.consent import Purpose
from privacy.vault import FieldContext
from server.audit import AuditTrail
from server.core.checkins import (
    Alert,
    AnswerError,
    Instrument,
    Scores,
    evaluate_after,
    evaluate_before,
    evaluate_pulse,
    evaluate_session_split,
    score,
    validate_answers,
)
from server.core.checkins.instruments import ScoreRole
from server.core.checkins.translations import SOURCE_LANGUAGE
from server.core.models import TherapySession
from server.db import checkins as checkin_rows
from server.db.checkins import StoredCheckin
from server.db.engine import Database
from server.errors import InvalidInput
from server.security.tokens import new_id
from server.services.consents import Consents
from server.services.submissions import SessionResults, Written, write_once
from server.vault_store import ClientVault

_LIVE_PER_SESSION = 200  # bounds the in-memory copy kept for a session without storage consent


@dataclass(frozen=True)
class CheckinResult:
    """One scored check-in with the alerts it raised (for the therapist only)."""

    id: str
    session_id: str
    client_id: str
    instrument: Instrument
    answers: Mapping[str, int | str | None]
    scores: Scores
    alerts: tuple[Alert, ...]
    submitted_at: datetime
    stored: bool
    language: str = SOURCE_LANGUAGE
    """The language the client read the questionnaire in (its wording is what the export
    shows)."""


def _answer_text(instrument: Instrument, link_id: str, value: int | str) -> tuple[str, str]:
    """(the item's therapist label, the answer in words) for one stored answer."""
    try:
        item = instrument.item(link_id)
    except KeyError:
        return link_id, str(value)
    for option in item.options:
        if option.code == value:
            return item.label, option.display
    if item.type == "integer" and item.max_value is not None:
        return item.label, f"{value}/{item.max_value}"
    return item.label, str(value)


def readable_answers(instrument: Instrument, scores: Scores) -> dict[str, Any]:
    """The answers in the therapist's words: item labels and option displays, never raw ids.
    Free text and the rupture items have their own lines, so `answers` leaves them out."""

    def by_role(role: ScoreRole, value: str | None) -> str | None:
        items = instrument.items_with_role(role)
        if value is None or not items:
            return value
        return _answer_text(instrument, items[0].link_id, value)[1]

    own_line = ("free-text", "rupture", "rupture-repair")
    shown = {item.link_id for item in instrument.items if item.role not in own_line}
    return {
        "answers": [
            {"label": label, "text": text}
            for label, text in (
                _answer_text(instrument, link_id, value)
                for link_id, value in scores.values.items()
                if link_id in shown
            )
        ],
        "skipped": [_answer_text(instrument, link_id, "")[0] for link_id in scores.skipped],
        "rupture": by_role("rupture", scores.rupture),
        "repair": by_role("rupture-repair", scores.repair),
    }


def scores_json(scores: Scores, instrument: Instrument | None = None) -> dict[str, Any]:
    """Scores as plain JSON for the therapist's panel and the API (with the instrument, also
    `readable`: the answers in words for display)."""
    readable = readable_answers(instrument, scores) if instrument is not None else None
    return {
        "readable": readable,
        "values": dict(scores.values),
        "skipped": list(scores.skipped),
        "alliance_total": scores.alliance_total,
        "alliance_max": scores.alliance_max,
        "technology": scores.technology,
        "wellbeing_total": scores.wellbeing_total,
        "wellbeing_max": scores.wellbeing_max,
        "pulse": scores.pulse,
        "rupture": scores.rupture,
        "repair": scores.repair,
        "free_text": scores.free_text,
    }


def alert_json(alert: Alert) -> dict[str, Any]:
    """An alert with its reason and one suggested repair move."""
    return {
        "code": alert.code,
        "category": alert.category,
        "severity": alert.severity,
        "reason": alert.reason,
        "repair": alert.repair,
        "items": list(alert.items),
    }


def _context(row_id: str, client_id: str) -> FieldContext:
    return FieldContext("checkin_responses", row_id, "payload", client_id)


class Checkins:
    """The check-in instruments in force and the submissions of live sessions."""

    def __init__(
        self, instruments: Mapping[str, Instrument], consents: Consents, vault: ClientVault
    ) -> None:
        self.instruments = dict(instruments)
        self._consents = consents
        self._vault = vault
        self._live: SessionResults[CheckinResult] = SessionResults(_LIVE_PER_SESSION)

    def instrument(self, instrument_id: str) -> Instrument:
        """An instrument by id, or InvalidInput."""
        found = self.instruments.get(instrument_id)
        if found is None:
            raise InvalidInput(f"Unknown check-in {instrument_id!r}.")
        return found

    def instrument_for(self, kind: str) -> Instrument:
        """The instrument used for a kind of check-in (the built-in one of that name)."""
        return self.instrument(kind)

    def forget_session(self, session_id: str) -> None:
        """Drop the in-memory copies of a finished session."""
        self._live.forget(session_id)

    def live_results(self, session_id: str) -> list[CheckinResult]:
        """This session's check-ins seen live (stored or not), oldest first."""
        return self._live.of_session(session_id)

    async def _open(
        self, conn: AsyncConnection, rows: Sequence[StoredCheckin]
    ) -> list[CheckinResult]:
        results = []
        for row in rows:
            instrument = self.instruments.get(row.instrument_id)
            if instrument is None:
                continue  # an instrument no longer installed: kept, but cannot be scored
            payload = await self._vault.decrypt_json(
                conn, _context(row.id, row.client_id), row.payload_ciphertext
            )
            response = validate_answers(instrument, payload["answers"])
            results.append(
                CheckinResult(
                    id=row.id,
                    session_id=row.session_id,
                    client_id=row.client_id,
                    instrument=instrument,
                    answers=payload["answers"],
                    scores=score(instrument, response),
                    alerts=tuple(alert_json_to_alerts(payload.get("alerts", []))),
                    submitted_at=row.submitted_at,
                    stored=True,
                    language=payload.get("language", SOURCE_LANGUAGE),
                )
            )
        return results

    async def stored_for_client(self, db: Database, client_id: str) -> list[CheckinResult]:
        """Every stored check-in of a client, oldest first (the caller audits the read)."""
        async with db.read() as conn:
            return await self._open(conn, await checkin_rows.for_client(conn, client_id))

    async def stored_for_session(self, db: Database, session_id: str) -> list[CheckinResult]:
        """A session's stored check-ins, oldest first (the caller audits the read)."""
        async with db.read() as conn:
            return await self._open(conn, await checkin_rows.for_session(conn, session_id))

    async def delete_for_client(self, conn: AsyncConnection, client_id: str) -> None:
        """Withdrawal of `checkin_storage`: delete the client's stored check-ins."""
        await checkin_rows.delete_for_client(conn, client_id)

    async def split_alert(
        self, db: Database, session_id: str, instrument: Instrument
    ) -> Alert | None:
        """The split-alliance alert of a session with several clients: each client's latest
        after-session answers on `instrument`, live or stored, compared (the caller audits
        the read). Kept in no client's record: its reason holds both totals, and each
        client's record (and export) must hold only their own answers."""
        stored = await self.stored_for_session(db, session_id)
        seen = {r.id for r in stored}
        live = [r for r in self.live_results(session_id) if r.id not in seen]
        responses = sorted(
            (r for r in (*stored, *live) if r.instrument.id == instrument.id),
            key=lambda r: r.submitted_at,
        )
        return evaluate_session_split(instrument, [(r.client_id, r.scores) for r in responses])

    async def _alerts(
        self,
        conn: AsyncConnection,
        session: TherapySession,
        client_id: str,
        instrument: Instrument,
        scores: Scores,
    ) -> list[Alert]:
        if instrument.kind == "before":
            return evaluate_before(instrument, scores)
        if instrument.kind == "pulse":
            taps = [
                r.scores.pulse
                for r in self.live_results(session.id)
                if r.instrument.kind == "pulse"
                and r.scores.pulse is not None
                and r.client_id == client_id
            ]
            return evaluate_pulse(instrument, [*taps, scores.pulse]) if scores.pulse else []
        earlier = await self._open(
            conn,
            await checkin_rows.after_checkins_elsewhere(conn, client_id, session.id),
        )
        number = await checkin_rows.session_number(conn, client_id, session.starts_at)
        history = [r.scores for r in earlier if r.instrument.id == instrument.id]
        return evaluate_after(instrument, scores, history, max(1, number))

    async def submit(
        self,
        db: Database,
        *,
        session: TherapySession,
        instrument_id: str,
        answers: Mapping[str, object],
        idempotency_key: str,
        now: datetime,
        audit: AuditTrail | None = None,
        language: str | None = None,
        client_id: str | None = None,
    ) -> tuple[CheckinResult, bool]:
        """Score and (with consent) store a submission; (result, was_duplicate). `language`
        is the one the client read the form in (None: the instrument's own; InvalidInput for
        one the instrument is not translated into). `client_id` is the client who answered
        (a partner in a couple session; None: the session's client): their consent decides
        the storage, their key encrypts it, their history raises the alerts.

        Returns only after the encrypted write is committed, so an acknowledgement sent after
        this call means the answers are durable.
        """
        client_id = client_id or session.client_id
        found = self._live.get(session.id, idempotency_key)
        if found is not None:
            return _same_client(found, client_id), True
        instrument = self.instrument(instrument_id)
        language = language or instrument.language
        if language not in instrument.languages:
            raise InvalidInput(
                f"language: this check-in is written in {', '.join(sorted(instrument.languages))}."
            )
        try:
            response = validate_answers(instrument, answers)
        except AnswerError as exc:
            raise InvalidInput(str(exc)) from None
        scores = score(instrument, response)

        async def earlier(conn: AsyncConnection) -> CheckinResult | None:
            rows = await checkin_rows.by_idempotency_key(conn, session.id, idempotency_key)
            found = next(iter(await self._open(conn, rows)), None)
            return None if found is None else _same_client(found, client_id)

        async def write(conn: AsyncConnection) -> Written[CheckinResult]:
            alerts = await self._alerts(conn, session, client_id, instrument, scores)
            row_id = new_id()
            stored = await self._consents.allows(conn, client_id, Purpose.CHECKIN_STORAGE, now)
            if stored:
                payload = {
                    "answers": response.as_raw(),
                    "alerts": [alert_json(a) for a in alerts],
                    "language": language,
                }
                ciphertext = await self._vault.encrypt_json(
                    conn, _context(row_id, client_id), payload
                )
                await checkin_rows.insert(
                    conn,
                    row_id=row_id,
                    session_id=session.id,
                    client_id=client_id,
                    instrument_id=instrument.id,
                    instrument_version=instrument.version,
                    kind=instrument.kind,
                    idempotency_key=idempotency_key,
                    submitted_at=now,
                    payload_ciphertext=ciphertext,
                )
            result = CheckinResult(
                id=row_id,
                session_id=session.id,
                client_id=client_id,
                instrument=instrument,
                answers=response.as_raw(),
                scores=scores,
                alerts=tuple(alerts),
                submitted_at=now,
                stored=stored,
                language=language,
            )
            return Written(result, {"kind": instrument.kind, "stored": stored})

        return await write_once(
            db,
            self._live,
            session_id=session.id,
            key=idempotency_key,
            earlier=earlier,
            write=write,
            audit=audit,
            action="checkin.submit",
            now=now,
        )


def _same_client(found: CheckinResult, client_id: str) -> CheckinResult:
    """A retry's earlier result, only if the same client sent it: another client's key is
    refused, so no one reads a partner's answers back through a duplicate."""
    if found.client_id != client_id:
        raise InvalidInput("idempotency_key: already used; send a new one.")
    return found


def alert_json_to_alerts(items: Sequence[Mapping[str, Any]]) -> list[Alert]:
    """Alerts as they were raised at submission (thresholds may have changed since)."""
    return [
        Alert(
            code=a["code"],
            category=a["category"],
            severity=a["severity"],
            reason=a["reason"],
            repair=a["repair"],
            items=tuple(a.get("items", ())),
        )
        for a in items
    ]


def result_json(result: CheckinResult) -> dict[str, Any]:
    """A check-in result for the therapist (panel, summary, API)."""
    return {
        "id": result.id,
        "client_id": result.client_id,  # who answered (a partner, in a couple session)
        "instrument_id": result.instrument.id,
        "kind": result.instrument.kind,
        "title": result.instrument.title,
        "submitted_at": result.submitted_at.isoformat(),
        "stored": result.stored,
        "scores": scores_json(result.scores, result.instrument),
        "alerts": [alert_json(a) for a in result.alerts],
    }

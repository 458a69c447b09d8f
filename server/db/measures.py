"""Outcome measures: stored responses (encrypted), safety-alert records and per-client plans."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from server.core.links import SessionStatus
from server.db.tables import (
    AnyRow,
    clients,
    measure_alerts,
    measure_plans,
    measure_responses,
    therapy_sessions,
)


@dataclass(frozen=True)
class StoredMeasure:
    """One stored response; the payload stays ciphertext until the vault opens it."""

    id: str
    session_id: str
    client_id: str
    measure_id: str
    submitted_at: datetime
    session_starts_at: datetime
    payload_ciphertext: bytes


@dataclass(frozen=True)
class SafetyAlertRow:
    """The minimal record of a safety alert (no answers, no text)."""

    id: str
    session_id: str
    client_id: str
    client_alias: str
    response_id: str
    measure_id: str
    raised_at: datetime
    seen_at: datetime | None


@dataclass(frozen=True)
class PlanRow:
    """A therapist's choice for one client."""

    client_id: str
    measures: tuple[str, ...]
    frequency: str
    updated_at: datetime


async def _select(conn: AsyncConnection, where: sa.ColumnElement[bool]) -> list[StoredMeasure]:
    r, s = measure_responses, therapy_sessions
    rows = await conn.execute(
        sa.select(r, s.c.starts_at.label("session_starts_at"))
        .join(s, s.c.id == r.c.session_id)
        .where(where)
        .order_by(r.c.submitted_at, r.c.id)
    )
    return [
        StoredMeasure(
            id=row.id,
            session_id=row.session_id,
            client_id=row.client_id,
            measure_id=row.measure_id,
            submitted_at=row.submitted_at,
            session_starts_at=row.session_starts_at,
            payload_ciphertext=row.payload_ciphertext,
        )
        for row in rows
    ]


async def for_client(conn: AsyncConnection, client_id: str) -> list[StoredMeasure]:
    """A client's stored responses, oldest first."""
    return await _select(conn, measure_responses.c.client_id == client_id)


async def by_idempotency_key(
    conn: AsyncConnection, session_id: str, idempotency_key: str
) -> StoredMeasure | None:
    """The stored submission with this key in this session, if any (retries are duplicates)."""
    found = await _select(
        conn,
        sa.and_(
            measure_responses.c.session_id == session_id,
            measure_responses.c.idempotency_key == idempotency_key,
        ),
    )
    return found[0] if found else None


async def insert(
    conn: AsyncConnection,
    *,
    row_id: str,
    session_id: str,
    client_id: str,
    measure_id: str,
    measure_version: str,
    idempotency_key: str,
    submitted_at: datetime,
    payload_ciphertext: bytes,
    by_link: bool = False,
) -> None:
    """Store one encrypted response (``by_link``: answered from an emailed link)."""
    await conn.execute(
        measure_responses.insert().values(
            id=row_id,
            session_id=session_id,
            client_id=client_id,
            measure_id=measure_id,
            measure_version=measure_version,
            idempotency_key=idempotency_key,
            submitted_at=submitted_at,
            payload_ciphertext=payload_ciphertext,
            by_link=by_link,
        )
    )


async def answer_times(
    conn: AsyncConnection, client_id: str
) -> tuple[dict[str, datetime], dict[str, list[datetime]]]:
    """Per measure: when it was last answered anywhere, and when it was answered by link."""
    r = measure_responses
    rows = await conn.execute(
        sa.select(r.c.measure_id, r.c.submitted_at, r.c.by_link).where(r.c.client_id == client_id)
    )
    last: dict[str, datetime] = {}
    by_link: dict[str, list[datetime]] = {}
    for row in rows:
        if row.measure_id not in last or row.submitted_at > last[row.measure_id]:
            last[row.measure_id] = row.submitted_at
        if row.by_link:
            by_link.setdefault(row.measure_id, []).append(row.submitted_at)
    return last, by_link


async def answered_by_link_since(
    conn: AsyncConnection, client_id: str, since: datetime
) -> set[str]:
    """The measures the client answered from an emailed link at or after ``since``."""
    r = measure_responses
    rows = await conn.execute(
        sa.select(r.c.measure_id)
        .where(r.c.client_id == client_id, r.c.by_link.is_(True), r.c.submitted_at >= since)
        .distinct()
    )
    return {row.measure_id for row in rows}


async def monthly_plans(conn: AsyncConnection) -> list[PlanRow]:
    """Every plan that asks monthly (candidates for an emailed link between sessions)."""
    rows = await conn.execute(
        sa.select(measure_plans).where(
            measure_plans.c.frequency == "monthly", measure_plans.c.measures != ""
        )
    )
    return [
        PlanRow(
            row.client_id,
            tuple(m for m in row.measures.split(",") if m),
            row.frequency,
            row.updated_at,
        )
        for row in rows
    ]


async def measured_in_sessions(conn: AsyncConnection, client_id: str) -> dict[str, list[datetime]]:
    """For each measure, the start times of the client's sessions in which it was answered."""
    r, s = measure_responses, therapy_sessions
    rows = await conn.execute(
        sa.select(r.c.measure_id, s.c.starts_at)
        .join(s, s.c.id == r.c.session_id)
        .where(r.c.client_id == client_id)
        .distinct()
    )
    found: dict[str, list[datetime]] = {}
    for row in rows:
        found.setdefault(row.measure_id, []).append(row.starts_at)
    return found


@dataclass(frozen=True)
class MeasureMark:
    """How much a client has answered: changes whenever a new answer is stored."""

    client_id: str
    client_alias: str
    count: int
    latest: datetime


async def marks_of_therapist(conn: AsyncConnection, therapist_id: str) -> list[MeasureMark]:
    """Per client of the therapist with stored measures: how many, and the latest time."""
    r = measure_responses
    rows = await conn.execute(
        sa.select(
            r.c.client_id,
            clients.c.alias,
            sa.func.count(r.c.id).label("answers"),
            sa.func.max(r.c.submitted_at).label("latest"),
        )
        .join(clients, clients.c.id == r.c.client_id)
        .where(clients.c.therapist_id == therapist_id)
        .group_by(r.c.client_id, clients.c.alias)
        .order_by(clients.c.alias)
    )
    return [MeasureMark(row.client_id, row.alias, int(row.answers), row.latest) for row in rows]


async def session_starts(conn: AsyncConnection, client_id: str) -> list[datetime]:
    """Start times of the client's sessions that were not cancelled, earliest first."""
    rows = await conn.execute(
        sa.select(therapy_sessions.c.starts_at)
        .where(
            therapy_sessions.c.client_id == client_id,
            therapy_sessions.c.status != SessionStatus.CANCELLED.value,
        )
        .order_by(therapy_sessions.c.starts_at)
    )
    return [row.starts_at for row in rows]


# --- safety alerts ----------------------------------------------------------------------


async def insert_alert(
    conn: AsyncConnection,
    *,
    row_id: str,
    session_id: str,
    client_id: str,
    therapist_id: str,
    response_id: str,
    measure_id: str,
    raised_at: datetime,
) -> None:
    """Record that a safety alert was raised."""
    await conn.execute(
        measure_alerts.insert().values(
            id=row_id,
            session_id=session_id,
            client_id=client_id,
            therapist_id=therapist_id,
            response_id=response_id,
            measure_id=measure_id,
            raised_at=raised_at,
        )
    )


def _alert(row: AnyRow) -> SafetyAlertRow:
    return SafetyAlertRow(
        id=row.id,
        session_id=row.session_id,
        client_id=row.client_id,
        client_alias=row.alias,
        response_id=row.response_id,
        measure_id=row.measure_id,
        raised_at=row.raised_at,
        seen_at=row.seen_at,
    )


def _alert_rows(where: sa.ColumnElement[bool]) -> sa.Select[tuple[object, ...]]:
    a = measure_alerts
    return (
        sa.select(
            a.c.id,
            a.c.session_id,
            a.c.client_id,
            clients.c.alias,
            a.c.response_id,
            a.c.measure_id,
            a.c.raised_at,
            a.c.seen_at,
        )
        .join(clients, clients.c.id == a.c.client_id)
        .where(where)
        .order_by(a.c.raised_at.desc(), a.c.id)
    )


async def unseen_alerts(conn: AsyncConnection, therapist_id: str) -> list[SafetyAlertRow]:
    """A therapist's safety alerts not yet marked seen, newest first."""
    a = measure_alerts
    rows = await conn.execute(
        _alert_rows(sa.and_(a.c.therapist_id == therapist_id, a.c.seen_at.is_(None)))
    )
    return [_alert(row) for row in rows]


async def alerts_of_session(conn: AsyncConnection, session_id: str) -> list[SafetyAlertRow]:
    """Every safety alert raised in a session, newest first."""
    rows = await conn.execute(_alert_rows(measure_alerts.c.session_id == session_id))
    return [_alert(row) for row in rows]


async def mark_alert_seen(
    conn: AsyncConnection, alert_id: str, therapist_id: str, now: datetime
) -> SafetyAlertRow | None:
    """Mark one of the therapist's alerts seen; None when it is not theirs or does not exist."""
    a = measure_alerts
    found = (
        await conn.execute(
            _alert_rows(sa.and_(a.c.id == alert_id, a.c.therapist_id == therapist_id))
        )
    ).first()
    if found is None:
        return None
    if found.seen_at is None:
        await conn.execute(a.update().where(a.c.id == alert_id).values(seen_at=now))
    return _alert(found)


# --- plans ------------------------------------------------------------------------------


async def plan_of(conn: AsyncConnection, client_id: str) -> PlanRow | None:
    """The therapist's plan for a client, if one was saved."""
    row = (
        await conn.execute(sa.select(measure_plans).where(measure_plans.c.client_id == client_id))
    ).first()
    if row is None:
        return None
    ids = tuple(m for m in row.measures.split(",") if m)
    return PlanRow(row.client_id, ids, row.frequency, row.updated_at)


async def save_plan(
    conn: AsyncConnection,
    client_id: str,
    measures: tuple[str, ...],
    frequency: str,
    now: datetime,
) -> None:
    """Replace the client's plan."""
    await conn.execute(measure_plans.delete().where(measure_plans.c.client_id == client_id))
    await conn.execute(
        measure_plans.insert().values(
            client_id=client_id, measures=",".join(measures), frequency=frequency, updated_at=now
        )
    )

"""Stored check-in responses (encrypted payloads) and the session count the alerts need."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from server.core.links import SessionStatus
from server.db.tables import checkin_responses, therapy_sessions


@dataclass(frozen=True)
class StoredCheckin:
    """One stored check-in row; the payload stays ciphertext until the vault opens it."""

    id: str
    session_id: str
    client_id: str
    instrument_id: str
    submitted_at: datetime
    payload_ciphertext: bytes


async def _select(conn: AsyncConnection, where: sa.ColumnElement[bool]) -> list[StoredCheckin]:
    rows = await conn.execute(
        sa.select(checkin_responses).where(where).order_by(checkin_responses.c.submitted_at)
    )
    return [
        StoredCheckin(
            id=row.id,
            session_id=row.session_id,
            client_id=row.client_id,
            instrument_id=row.instrument_id,
            submitted_at=row.submitted_at,
            payload_ciphertext=row.payload_ciphertext,
        )
        for row in rows
    ]


async def for_client(conn: AsyncConnection, client_id: str) -> list[StoredCheckin]:
    """A client's stored check-ins, oldest first."""
    return await _select(conn, checkin_responses.c.client_id == client_id)


async def for_session(conn: AsyncConnection, session_id: str) -> list[StoredCheckin]:
    """A session's stored check-ins, oldest first."""
    return await _select(conn, checkin_responses.c.session_id == session_id)


async def after_checkins_elsewhere(
    conn: AsyncConnection, client_id: str, session_id: str
) -> list[StoredCheckin]:
    """The client's after-session check-ins from other sessions (the alert history)."""
    return await _select(
        conn,
        sa.and_(
            checkin_responses.c.client_id == client_id,
            checkin_responses.c.session_id != session_id,
            checkin_responses.c.kind == "after",
        ),
    )


async def by_idempotency_key(
    conn: AsyncConnection, session_id: str, idempotency_key: str
) -> list[StoredCheckin]:
    """The stored submission with this key in this session, if any (retries are duplicates)."""
    return await _select(
        conn,
        sa.and_(
            checkin_responses.c.session_id == session_id,
            checkin_responses.c.idempotency_key == idempotency_key,
        ),
    )


async def session_number(conn: AsyncConnection, client_id: str, starts_at: datetime) -> int:
    """How many of the client's sessions (not cancelled) start no later than `starts_at`."""
    number = await conn.scalar(
        sa.select(sa.func.count())
        .select_from(therapy_sessions)
        .where(
            therapy_sessions.c.client_id == client_id,
            therapy_sessions.c.starts_at <= starts_at,
            therapy_sessions.c.status != SessionStatus.CANCELLED.value,
        )
    )
    return int(number or 0)


async def insert(
    conn: AsyncConnection,
    *,
    row_id: str,
    session_id: str,
    client_id: str,
    instrument_id: str,
    instrument_version: str,
    kind: str,
    idempotency_key: str,
    submitted_at: datetime,
    payload_ciphertext: bytes,
) -> None:
    """Store one encrypted check-in."""
    await conn.execute(
        checkin_responses.insert().values(
            id=row_id,
            session_id=session_id,
            client_id=client_id,
            instrument_id=instrument_id,
            instrument_version=instrument_version,
            kind=kind,
            idempotency_key=idempotency_key,
            submitted_at=submitted_at,
            payload_ciphertext=payload_ciphertext,
        )
    )


async def delete_for_client(conn: AsyncConnection, client_id: str) -> None:
    """Delete every stored check-in of a client."""
    await conn.execute(checkin_responses.delete().where(checkin_responses.c.client_id == client_id))

"""Safety checks: one row per session (the newest answers), the answers only as ciphertext."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from server.db.tables import AnyRow, safety_checks


@dataclass(frozen=True)
class StoredSafetyCheck:
    """One stored safety check; the answers stay ciphertext until the vault opens them."""

    id: str
    session_id: str
    client_id: str
    submitted_at: datetime
    payload_ciphertext: bytes


def _stored(row: AnyRow) -> StoredSafetyCheck:
    return StoredSafetyCheck(
        row.id, row.session_id, row.client_id, row.submitted_at, bytes(row.payload_ciphertext)
    )


_COLUMNS = (
    safety_checks.c.id,
    safety_checks.c.session_id,
    safety_checks.c.client_id,
    safety_checks.c.submitted_at,
    safety_checks.c.payload_ciphertext,
)


async def replace_for_session(
    conn: AsyncConnection,
    *,
    check_id: str,
    session_id: str,
    client_id: str,
    submitted_at: datetime,
    payload_ciphertext: bytes,
) -> bool:
    """Store a session's safety check, replacing an earlier one; True if one was replaced."""
    removed = await conn.execute(
        safety_checks.delete().where(safety_checks.c.session_id == session_id)
    )
    await conn.execute(
        safety_checks.insert().values(
            id=check_id,
            session_id=session_id,
            client_id=client_id,
            submitted_at=submitted_at,
            payload_ciphertext=payload_ciphertext,
        )
    )
    return bool(removed.rowcount)


async def for_session(conn: AsyncConnection, session_id: str) -> StoredSafetyCheck | None:
    """The session's safety check, if the client answered one."""
    row = (
        await conn.execute(sa.select(*_COLUMNS).where(safety_checks.c.session_id == session_id))
    ).first()
    return None if row is None else _stored(row)


async def latest_for_client(conn: AsyncConnection, client_id: str) -> StoredSafetyCheck | None:
    """The client's newest safety check in any session (what the next one is prefilled from)."""
    c = safety_checks.c
    row = (
        await conn.execute(
            sa.select(*_COLUMNS)
            .where(c.client_id == client_id)
            .order_by(c.submitted_at.desc(), c.id.desc())
            .limit(1)
        )
    ).first()
    return None if row is None else _stored(row)

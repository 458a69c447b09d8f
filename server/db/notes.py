"""Therapists' notes about their clients: one encrypted body per row."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from server.db.tables import client_notes


@dataclass(frozen=True)
class StoredNote:
    """One stored note; the body stays ciphertext until the vault opens it."""

    id: str
    created_at: datetime
    body_ciphertext: bytes


async def insert(
    conn: AsyncConnection,
    *,
    note_id: str,
    client_id: str,
    therapist_id: str,
    created_at: datetime,
    body_ciphertext: bytes,
) -> None:
    """Store one encrypted note."""
    await conn.execute(
        client_notes.insert().values(
            id=note_id,
            client_id=client_id,
            therapist_id=therapist_id,
            created_at=created_at,
            body_ciphertext=body_ciphertext,
        )
    )


async def for_client(
    conn: AsyncConnection, client_id: str, *, newest_first: bool
) -> list[StoredNote]:
    """A client's notes by time (newest first for the therapist, oldest first for an export)."""
    c = client_notes.c
    rows = await conn.execute(
        sa.select(c.id, c.created_at, c.body_ciphertext)
        .where(c.client_id == client_id)
        .order_by(c.created_at.desc() if newest_first else c.created_at, c.id)
    )
    return [StoredNote(row.id, row.created_at, bytes(row.body_ciphertext)) for row in rows]

"""Stored cue prompts, cue summaries and client signals: one encrypted payload per row."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from server.db.tables import cue_prompts, cue_summaries, signal_events

CUE_TABLES = (cue_prompts, cue_summaries, signal_events)
_BY_NAME = {table.name: table for table in CUE_TABLES}
CUE_TABLE_NAMES = tuple(_BY_NAME)  # "cue_prompts", "cue_summaries", "signal_events"


@dataclass(frozen=True)
class StoredCueRow:
    """One stored row; the payload stays ciphertext until the vault opens it."""

    id: str
    client_id: str
    payload_ciphertext: bytes


async def insert(
    conn: AsyncConnection,
    table_name: str,
    *,
    row_id: str,
    session_id: str,
    client_id: str,
    created_at: datetime,
    payload_ciphertext: bytes,
) -> None:
    """Store one encrypted row in one of `CUE_TABLE_NAMES`."""
    await conn.execute(
        _BY_NAME[table_name]
        .insert()
        .values(
            id=row_id,
            session_id=session_id,
            client_id=client_id,
            created_at=created_at,
            payload_ciphertext=payload_ciphertext,
        )
    )


async def for_session(
    conn: AsyncConnection, table_name: str, session_id: str
) -> list[StoredCueRow]:
    """A session's rows of one of `CUE_TABLE_NAMES`, oldest first."""
    table = _BY_NAME[table_name]
    rows = await conn.execute(
        sa.select(table.c.id, table.c.client_id, table.c.payload_ciphertext)
        .where(table.c.session_id == session_id)
        .order_by(table.c.created_at)
    )
    return [
        StoredCueRow(id=row.id, client_id=row.client_id, payload_ciphertext=row.payload_ciphertext)
        for row in rows
    ]


async def delete_for_client(conn: AsyncConnection, client_id: str) -> None:
    """Delete every stored prompt, summary and signal of a client."""
    for table in CUE_TABLES:
        await conn.execute(table.delete().where(table.c.client_id == client_id))

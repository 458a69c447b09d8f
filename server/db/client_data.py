"""Everything stored about one client, as rows: what the client's export reads and what the
client's own erasure deletes. Generic over the tables in the retention source registry, so a
new table of client data is exported and erased without a change here."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from server.db.tables import audit_log, session_participants, therapy_sessions


async def sessions(conn: AsyncConnection, client_id: str) -> list[dict[str, Any]]:
    """The client's sessions (id, times, status), soonest first, as stored: their own and
    those they were added to (a couple's sessions are in both clients' exports; nothing of
    the other people in them)."""
    t, p = therapy_sessions, session_participants
    added_to = sa.select(p.c.session_id).where(p.c.client_id == client_id)
    rows = await conn.execute(
        sa.select(t.c.id, t.c.starts_at, t.c.ends_at, t.c.status, t.c.created_at, t.c.ended_at)
        .where(sa.or_(t.c.client_id == client_id, t.c.id.in_(added_to)))
        .order_by(t.c.starts_at)
    )
    return [dict(row._mapping) for row in rows]


async def table_rows(
    conn: AsyncConnection,
    table: sa.Table,
    *,
    client_column: str,
    order_by: tuple[str, ...],
    client_id: str,
) -> list[dict[str, Any]]:
    """Every column of the client's rows in one table, in `order_by` order, as stored."""
    rows = await conn.execute(
        sa.select(table)
        .where(table.c[client_column] == client_id)
        .order_by(*(table.c[name] for name in order_by))
    )
    return [dict(row._mapping) for row in rows]


async def count_rows(
    conn: AsyncConnection, table: sa.Table, *, client_column: str, client_id: str
) -> int:
    """How many rows of one table are the client's."""
    query = sa.select(sa.func.count()).select_from(table).where(table.c[client_column] == client_id)
    return int((await conn.execute(query)).scalar_one())


async def delete_rows(
    conn: AsyncConnection, table: sa.Table, *, client_column: str, client_id: str
) -> int:
    """Delete the client's rows in one table; returns how many went."""
    result = await conn.execute(table.delete().where(table.c[client_column] == client_id))
    return result.rowcount


@dataclass(frozen=True)
class Activity:
    """An audit entry about the client: when, what, and who acted."""

    at: datetime
    action: str
    actor: str


async def activity(conn: AsyncConnection, client_id: str) -> list[Activity]:
    """Audit entries by or about the client (as actor, or one whole target), in chain order."""
    name = f"client:{client_id}"
    rows = await conn.execute(
        sa.select(audit_log.c.at, audit_log.c.action, audit_log.c.actor)
        .where(
            sa.or_(
                audit_log.c.actor == name,
                audit_log.c.targets.contains(json.dumps(name), autoescape=True),
            )
        )
        .order_by(audit_log.c.seq)
    )
    return [Activity(row.at, row.action, row.actor) for row in rows]

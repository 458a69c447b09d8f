"""Stored goals, their history, progress answers and the progress page switch (SQL only)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from server.db.tables import AnyRow, client_goals, goal_changes, goal_progress, progress_views


async def goal_rows(conn: AsyncConnection, client_id: str) -> Sequence[AnyRow]:
    """A client's goals in their order (ciphertext still closed)."""
    result = await conn.execute(
        sa.select(client_goals)
        .where(client_goals.c.client_id == client_id)
        .order_by(client_goals.c.position, client_goals.c.created_at)
    )
    return result.all()


async def insert_goal(
    conn: AsyncConnection,
    *,
    goal_id: str,
    client_id: str,
    position: int,
    status: str,
    now: datetime,
    by: str,
    ciphertext: bytes,
) -> None:
    """A new goal."""
    await conn.execute(
        client_goals.insert().values(
            id=goal_id,
            client_id=client_id,
            position=position,
            status=status,
            created_at=now,
            updated_at=now,
            updated_by=by,
            text_ciphertext=ciphertext,
        )
    )


async def update_goal(
    conn: AsyncConnection,
    goal_id: str,
    *,
    now: datetime,
    by: str,
    status: str | None = None,
    ciphertext: bytes | None = None,
) -> None:
    """A goal's new status or text."""
    values: dict[str, object] = {"updated_at": now, "updated_by": by}
    if status is not None:
        values["status"] = status
    if ciphertext is not None:
        values["text_ciphertext"] = ciphertext
    await conn.execute(client_goals.update().where(client_goals.c.id == goal_id).values(**values))


async def insert_change(
    conn: AsyncConnection,
    *,
    change_id: str,
    goal_id: str,
    client_id: str,
    session_id: str | None,
    at: datetime,
    by: str,
    change: str,
) -> None:
    """One history entry (never text)."""
    await conn.execute(
        goal_changes.insert().values(
            id=change_id,
            goal_id=goal_id,
            client_id=client_id,
            session_id=session_id,
            at=at,
            by=by,
            change=change,
        )
    )


async def change_rows(conn: AsyncConnection, client_id: str) -> Sequence[AnyRow]:
    """A client's goal history, oldest first."""
    result = await conn.execute(
        sa.select(goal_changes)
        .where(goal_changes.c.client_id == client_id)
        .order_by(goal_changes.c.at, goal_changes.c.id)
    )
    return result.all()


async def progress_rows(
    conn: AsyncConnection,
    client_id: str,
    *,
    session_id: str | None = None,
    idempotency_key: str | None = None,
) -> Sequence[AnyRow]:
    """A client's stored progress answers, oldest first (optionally of one submission)."""
    query = sa.select(goal_progress).where(goal_progress.c.client_id == client_id)
    if session_id is not None:
        query = query.where(goal_progress.c.session_id == session_id)
    if idempotency_key is not None:
        query = query.where(goal_progress.c.idempotency_key == idempotency_key)
    result = await conn.execute(query.order_by(goal_progress.c.submitted_at, goal_progress.c.id))
    return result.all()


async def insert_progress(
    conn: AsyncConnection,
    *,
    row_id: str,
    goal_id: str,
    client_id: str,
    session_id: str,
    idempotency_key: str,
    now: datetime,
    ciphertext: bytes,
) -> None:
    """One progress answer."""
    await conn.execute(
        goal_progress.insert().values(
            id=row_id,
            goal_id=goal_id,
            client_id=client_id,
            session_id=session_id,
            idempotency_key=idempotency_key,
            submitted_at=now,
            payload_ciphertext=ciphertext,
        )
    )


async def delete_progress(conn: AsyncConnection, client_id: str) -> None:
    """Withdrawal of `checkin_storage`: the progress answers go with the check-ins."""
    await conn.execute(goal_progress.delete().where(goal_progress.c.client_id == client_id))


async def progress_view(conn: AsyncConnection, client_id: str) -> AnyRow | None:
    """The progress page switch, if a therapist ever set it."""
    result = await conn.execute(
        sa.select(progress_views).where(progress_views.c.client_id == client_id)
    )
    return result.first()


async def set_progress_view(
    conn: AsyncConnection,
    client_id: str,
    *,
    shown: bool,
    now: datetime,
    reason_ciphertext: bytes | None,
) -> None:
    """Turn the client's own progress page on or off."""
    await conn.execute(progress_views.delete().where(progress_views.c.client_id == client_id))
    await conn.execute(
        progress_views.insert().values(
            client_id=client_id, shown=shown, changed_at=now, reason_ciphertext=reason_ciphertext
        )
    )

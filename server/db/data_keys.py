"""Wrapped per-client data keys: the rows the vault reads, creates, re-wraps and destroys."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from privacy.vault import WrappedDataKey
from server.db.tables import data_keys


def _wrapped(row: sa.Row[tuple[object, ...]]) -> WrappedDataKey:
    return WrappedDataKey(
        client_id=row.client_id, master_version=row.master_version, blob=bytes(row.wrapped_key)
    )


async def find(conn: AsyncConnection, client_id: str) -> WrappedDataKey | None:
    """A client's wrapped data key, or None when it was never made or has been shredded."""
    row = (
        await conn.execute(sa.select(data_keys).where(data_keys.c.client_id == client_id))
    ).first()
    return None if row is None else _wrapped(row)


async def any_key(conn: AsyncConnection) -> WrappedDataKey | None:
    """One wrapped key, to check that the master key opens this database's keys."""
    row = (await conn.execute(sa.select(data_keys).limit(1))).first()
    return None if row is None else _wrapped(row)


async def insert(
    conn: AsyncConnection, wrapped: WrappedDataKey, *, key_version: int, created_at: datetime
) -> None:
    """Store a newly wrapped data key."""
    await conn.execute(
        data_keys.insert().values(
            client_id=wrapped.client_id,
            key_version=key_version,
            master_version=wrapped.master_version,
            wrapped_key=wrapped.blob,
            created_at=created_at,
        )
    )


async def delete(conn: AsyncConnection, client_id: str) -> bool:
    """Destroy a client's wrapped key; True when there was one."""
    result = await conn.execute(data_keys.delete().where(data_keys.c.client_id == client_id))
    return result.rowcount > 0


async def page_after(
    conn: AsyncConnection, after_client_id: str, limit: int
) -> list[WrappedDataKey]:
    """Up to `limit` keys in client-id order after `after_client_id` (for batched re-wrapping)."""
    rows = await conn.execute(
        sa.select(data_keys)
        .where(data_keys.c.client_id > after_client_id)
        .order_by(data_keys.c.client_id)
        .limit(limit)
    )
    return [_wrapped(row) for row in rows]


async def replace(conn: AsyncConnection, wrapped: WrappedDataKey) -> None:
    """Store a re-wrapped key in place of the old wrapping."""
    await conn.execute(
        data_keys.update()
        .where(data_keys.c.client_id == wrapped.client_id)
        .values(master_version=wrapped.master_version, wrapped_key=wrapped.blob)
    )


async def master_versions(conn: AsyncConnection) -> set[int]:
    """Master key versions that still wrap at least one data key."""
    rows = await conn.execute(sa.select(data_keys.c.master_version).distinct())
    return {int(v) for (v,) in rows}

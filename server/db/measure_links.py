"""Emailed measure links: only token hashes, the filed session and what the link asks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from server.core.links import SessionStatus
from server.db.tables import measure_links, therapy_sessions


@dataclass(frozen=True)
class LinkRow:
    """One link as stored (hashes only)."""

    id: str
    client_id: str
    session_id: str
    measures: tuple[str, ...]
    csrf_token: str | None
    created_at: datetime
    expires_at: datetime
    opened_at: datetime | None
    finished_at: datetime | None
    revoked_at: datetime | None


def _row(row: sa.Row[tuple[object, ...]]) -> LinkRow:
    m = row._mapping
    return LinkRow(
        id=m["id"],
        client_id=m["client_id"],
        session_id=m["session_id"],
        measures=tuple(x for x in m["measures"].split(",") if x),
        csrf_token=m["csrf_token"],
        created_at=m["created_at"],
        expires_at=m["expires_at"],
        opened_at=m["opened_at"],
        finished_at=m["finished_at"],
        revoked_at=m["revoked_at"],
    )


async def insert(
    conn: AsyncConnection,
    *,
    row_id: str,
    client_id: str,
    session_id: str,
    measures: tuple[str, ...],
    token_hash: str,
    now: datetime,
    expires_at: datetime,
) -> None:
    """Store a new link (its token's hash only)."""
    await conn.execute(
        measure_links.insert().values(
            id=row_id,
            client_id=client_id,
            session_id=session_id,
            measures=",".join(measures),
            token_hash=token_hash,
            created_at=now,
            expires_at=expires_at,
        )
    )


async def by_token_hash(conn: AsyncConnection, token_hash: str) -> LinkRow | None:
    """The link an emailed token names, whatever its state."""
    found = (
        await conn.execute(sa.select(measure_links).where(measure_links.c.token_hash == token_hash))
    ).first()
    return None if found is None else _row(found)


async def by_cookie_hash(conn: AsyncConnection, cookie_hash: str) -> LinkRow | None:
    """The link a page cookie belongs to, whatever its state."""
    found = (
        await conn.execute(
            sa.select(measure_links).where(measure_links.c.cookie_hash == cookie_hash)
        )
    ).first()
    return None if found is None else _row(found)


async def mark_opened(
    conn: AsyncConnection, link_id: str, cookie_hash: str, csrf_token: str, now: datetime
) -> bool:
    """Swap the token for a cookie, once: False when it was opened already (a race)."""
    links = measure_links
    result = await conn.execute(
        links.update()
        .where(links.c.id == link_id, links.c.opened_at.is_(None))
        .values(opened_at=now, cookie_hash=cookie_hash, csrf_token=csrf_token)
    )
    return bool(result.rowcount)


async def mark_finished(conn: AsyncConnection, link_id: str, now: datetime) -> None:
    """Everything the link asked was answered: it stops working."""
    links = measure_links
    await conn.execute(
        links.update()
        .where(links.c.id == link_id, links.c.finished_at.is_(None))
        .values(finished_at=now)
    )


async def revoke_for_client(conn: AsyncConnection, client_id: str, now: datetime) -> int:
    """Stop every live link of a client; how many there were."""
    links = measure_links
    result = await conn.execute(
        links.update()
        .where(
            links.c.client_id == client_id,
            links.c.revoked_at.is_(None),
            links.c.finished_at.is_(None),
        )
        .values(revoked_at=now)
    )
    return int(result.rowcount or 0)


async def last_sent(conn: AsyncConnection, client_id: str) -> datetime | None:
    """When the client was last sent a link that was not revoked, if ever (a revoked link,
    e.g. after the plan changed, does not hold the next one back)."""
    found = await conn.scalar(
        sa.select(sa.func.max(measure_links.c.created_at)).where(
            measure_links.c.client_id == client_id, measure_links.c.revoked_at.is_(None)
        )
    )
    return found if isinstance(found, datetime) else None


async def latest_started_session(
    conn: AsyncConnection, client_id: str, now: datetime
) -> str | None:
    """The id of the client's latest session (not cancelled) that started by ``now``."""
    s = therapy_sessions
    found = await conn.scalar(
        sa.select(s.c.id)
        .where(
            s.c.client_id == client_id,
            s.c.status != SessionStatus.CANCELLED.value,
            s.c.starts_at <= now,
        )
        .order_by(s.c.starts_at.desc(), s.c.id)
        .limit(1)
    )
    return str(found) if found is not None else None

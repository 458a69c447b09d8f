"""The audit chain's rows: entries, signed checkpoints and the anchors purges leave behind.

SQL only; the chain's rules (hashing, signing, verifying) are privacy/audit.py's, and
server/audit.py decides when each of these runs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from privacy.audit import Anchor, AuditEntry, Checkpoint
from server.db.retention_tables import audit_anchors
from server.db.tables import AnyRow, audit_checkpoints, audit_log

_PG_AUDIT_LOCK = 0x41545455  # serialises appenders across processes on PostgreSQL


def _entry(row: AnyRow) -> AuditEntry:
    m = row._mapping
    return AuditEntry(
        seq=m["seq"],
        at=m["at"],
        actor=m["actor"],
        action=m["action"],
        targets=tuple(json.loads(m["targets"])),
        details=json.loads(m["details"]),
        prev_hash=bytes(m["prev_hash"]),
        hash=bytes(m["hash"]),
    )


def _anchor(row: AnyRow) -> Anchor:
    m = row._mapping
    return Anchor(seq=m["seq"], hash=bytes(m["hash"]), signature=bytes(m["signature"]))


async def lock_chain(conn: AsyncConnection) -> None:
    """Serialise appenders and purges of the chain (a no-op on SQLite: one writer)."""
    if conn.dialect.name == "postgresql":
        await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_AUDIT_LOCK)))


async def last_entry(conn: AsyncConnection) -> AuditEntry | None:
    """The newest entry, or None when the log is empty."""
    row = (
        await conn.execute(sa.select(audit_log).order_by(audit_log.c.seq.desc()).limit(1))
    ).first()
    return _entry(row) if row else None


async def insert_entry(conn: AsyncConnection, entry: AuditEntry) -> None:
    """Store one chained entry (targets and details as JSON, details with sorted keys)."""
    await conn.execute(
        audit_log.insert().values(
            seq=entry.seq,
            at=entry.at,
            actor=entry.actor,
            action=entry.action,
            targets=json.dumps(list(entry.targets)),
            details=json.dumps(dict(entry.details), sort_keys=True),
            prev_hash=entry.prev_hash,
            hash=entry.hash,
        )
    )


async def entry_hash(conn: AsyncConnection, seq: int) -> bytes | None:
    """The stored hash of entry `seq`, or None when there is no such entry."""
    value = await conn.scalar(sa.select(audit_log.c.hash).where(audit_log.c.seq == seq))
    return None if value is None else bytes(value)


async def max_seq(conn: AsyncConnection) -> int:
    """The newest entry's seq, 0 when the log is empty."""
    return int(await conn.scalar(sa.select(sa.func.max(audit_log.c.seq))) or 0)


@dataclass(frozen=True)
class EntryForRetention:
    """What the purge job needs to know of an entry: when, and whom it names."""

    seq: int
    at: datetime
    actor: str
    targets: tuple[str, ...]


async def entries_between(
    conn: AsyncConnection, after_seq: int, through_seq: int, limit: int
) -> list[EntryForRetention]:
    """Up to `limit` entries with after_seq < seq <= through_seq, in seq order."""
    c = audit_log.c
    rows = await conn.execute(
        sa.select(c.seq, c.at, c.actor, c.targets)
        .where(c.seq > after_seq, c.seq <= through_seq)
        .order_by(c.seq)
        .limit(limit)
    )
    return [
        EntryForRetention(row.seq, row.at, row.actor, tuple(json.loads(row.targets)))
        for row in rows
    ]


async def delete_entries_through(conn: AsyncConnection, seq: int) -> int:
    """Delete entries 1..seq and the checkpoints pinning them; returns entries deleted."""
    deleted = await conn.execute(audit_log.delete().where(audit_log.c.seq <= seq))
    await conn.execute(audit_checkpoints.delete().where(audit_checkpoints.c.seq <= seq))
    return deleted.rowcount


async def has_checkpoint(conn: AsyncConnection, seq: int) -> bool:
    """Whether entry `seq` is already signed."""
    found = await conn.scalar(
        sa.select(audit_checkpoints.c.seq).where(audit_checkpoints.c.seq == seq)
    )
    return found is not None


async def insert_checkpoint(conn: AsyncConnection, checkpoint: Checkpoint, at: datetime) -> None:
    """Store a signed checkpoint."""
    await conn.execute(
        audit_checkpoints.insert().values(
            seq=checkpoint.seq, hash=checkpoint.hash, signature=checkpoint.signature, at=at
        )
    )


async def insert_anchor(conn: AsyncConnection, anchor: Anchor, at: datetime) -> None:
    """Store a signed anchor (kept forever: the chain starts after it)."""
    await conn.execute(
        audit_anchors.insert().values(
            seq=anchor.seq, hash=anchor.hash, signature=anchor.signature, at=at
        )
    )


async def newest_anchor(conn: AsyncConnection) -> Anchor | None:
    """The anchor the chain now starts after, or None while nothing was ever purged."""
    row = (
        await conn.execute(sa.select(audit_anchors).order_by(audit_anchors.c.seq.desc()).limit(1))
    ).first()
    return _anchor(row) if row else None


@dataclass(frozen=True)
class StoredChain:
    """The chain as stored, for verification: its anchor, checkpoints and a stream of entries."""

    anchor: Anchor | None
    checkpoints: list[Checkpoint]
    entries: Iterator[AuditEntry]


def stored_chain(sync_conn: sa.Connection) -> StoredChain:
    """Read the chain from the newest anchor on (for `run_sync`); entries stream in batches
    of 1,000, so consume them before the connection closes."""
    anchor_row = sync_conn.execute(
        sa.select(audit_anchors).order_by(audit_anchors.c.seq.desc()).limit(1)
    ).first()
    anchor = _anchor(anchor_row) if anchor_row else None
    checkpoints = [
        Checkpoint(seq=r.seq, hash=bytes(r.hash), signature=bytes(r.signature))
        for r in sync_conn.execute(sa.select(audit_checkpoints).order_by(audit_checkpoints.c.seq))
    ]
    start = 0 if anchor is None else anchor.seq
    rows = sync_conn.execution_options(yield_per=1000).execute(
        sa.select(audit_log).where(audit_log.c.seq > start).order_by(audit_log.c.seq)
    )
    return StoredChain(anchor, checkpoints, (_entry(row) for row in rows))

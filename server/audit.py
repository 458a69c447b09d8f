"""The audit trail's storage edge: append entries in the caller's transaction, checkpoint, verify.

The hash chain and its rules live in privacy.audit (pure); this module only stores and reads.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.ext.asyncio import AsyncConnection

from privacy.audit import (
    Anchor,
    AuditEntry,
    AuditEvent,
    ChainTip,
    Checkpoint,
    VerifyResult,
    append,
    sign_anchor,
    sign_checkpoint,
    verify_chain,
)
from server.db.engine import Database
from server.db.retention_tables import audit_anchors
from server.db.tables import AnyRow, audit_checkpoints, audit_log

DetailValue = str | int | bool | None
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


class AuditTrail:
    """Appends audit events inside the caller's write transaction, so they commit together."""

    def __init__(self, signing_key: Ed25519PrivateKey, *, checkpoint_every: int = 100) -> None:
        self._signing_key = signing_key
        self._checkpoint_every = checkpoint_every

    async def lock_chain(self, conn: AsyncConnection) -> None:
        """Serialise appenders and purges of the chain (a no-op lock on SQLite: one writer)."""
        if conn.dialect.name == "postgresql":
            await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_AUDIT_LOCK)))

    async def _last_entry(self, conn: AsyncConnection) -> AuditEntry | None:
        row = (
            await conn.execute(sa.select(audit_log).order_by(audit_log.c.seq.desc()).limit(1))
        ).first()
        return _entry(row) if row else None

    async def _tail(self, conn: AsyncConnection) -> ChainTip | None:
        """The newest entry; once a purge took every entry, the anchor it left (never genesis)."""
        await self.lock_chain(conn)
        return await self._last_entry(conn) or await newest_anchor(conn)

    async def record(
        self,
        conn: AsyncConnection,
        *,
        at: datetime,
        actor: str,
        action: str,
        targets: tuple[str, ...] = (),
        details: Mapping[str, DetailValue] | None = None,
    ) -> AuditEntry:
        """Append one event (metadata only: never clinical content, tokens or passwords)."""
        event = AuditEvent(
            at=at, actor=actor, action=action, targets=targets, details=details or {}
        )
        entry = append(await self._tail(conn), event)
        await conn.execute(
            audit_log.insert().values(
                seq=entry.seq,
                at=event.at,
                actor=event.actor,
                action=event.action,
                targets=json.dumps(list(event.targets)),
                details=json.dumps(dict(event.details), sort_keys=True),
                prev_hash=entry.prev_hash,
                hash=entry.hash,
            )
        )
        if entry.seq % self._checkpoint_every == 0:
            await self._store_checkpoint(conn, entry, at)
        return entry

    async def _store_checkpoint(self, conn: AsyncConnection, entry: ChainTip, at: datetime) -> None:
        checkpoint = sign_checkpoint(self._signing_key, entry.seq, entry.hash)
        await conn.execute(
            audit_checkpoints.insert().values(
                seq=checkpoint.seq, hash=checkpoint.hash, signature=checkpoint.signature, at=at
            )
        )

    async def checkpoint(self, db: Database, at: datetime) -> int | None:
        """Sign the current tail (on shutdown); returns its seq, or None when nothing new."""
        async with db.write() as conn:
            await self.lock_chain(conn)
            tail = await self._last_entry(conn)
            if tail is None:
                return None
            exists = await conn.scalar(
                sa.select(audit_checkpoints.c.seq).where(audit_checkpoints.c.seq == tail.seq)
            )
            if exists is None:
                await self._store_checkpoint(conn, tail, at)
            return tail.seq

    async def purge_prefix(
        self, conn: AsyncConnection, *, through_seq: int, at: datetime, actor: str
    ) -> Anchor:
        """Drop entries 1..through_seq behind a signed anchor, in the caller's transaction.

        The anchor is signed before anything is deleted, and an `audit.purged` entry naming
        `through_seq` is appended after, so `verify` starts at the anchor and stays green.
        """
        await self.lock_chain(conn)
        entry_hash = await conn.scalar(
            sa.select(audit_log.c.hash).where(audit_log.c.seq == through_seq)
        )
        if entry_hash is None:
            raise ValueError(f"audit entry {through_seq} does not exist")
        anchor = sign_anchor(self._signing_key, through_seq, bytes(entry_hash))
        await conn.execute(
            audit_anchors.insert().values(
                seq=anchor.seq, hash=anchor.hash, signature=anchor.signature, at=at
            )
        )
        deleted = await conn.execute(audit_log.delete().where(audit_log.c.seq <= through_seq))
        # Checkpoints up to the anchor pin entries that are gone; the anchor replaces them.
        await conn.execute(audit_checkpoints.delete().where(audit_checkpoints.c.seq <= through_seq))
        await self.record(
            conn,
            at=at,
            actor=actor,
            action="audit.purged",
            details={"through_seq": through_seq, "entries": deleted.rowcount},
        )
        return anchor

    async def verify(self, db: Database) -> VerifyResult:
        """Re-walk the chain from genesis, or from the newest anchor, against the signed
        checkpoints (streamed, O(1) memory)."""
        public_key = self._signing_key.public_key()

        def walk(sync_conn: sa.Connection) -> VerifyResult:
            anchor_row = sync_conn.execute(
                sa.select(audit_anchors).order_by(audit_anchors.c.seq.desc()).limit(1)
            ).first()
            anchor = _anchor(anchor_row) if anchor_row else None
            checkpoints = [
                Checkpoint(seq=r.seq, hash=bytes(r.hash), signature=bytes(r.signature))
                for r in sync_conn.execute(
                    sa.select(audit_checkpoints).order_by(audit_checkpoints.c.seq)
                )
            ]
            start = 0 if anchor is None else anchor.seq
            rows = sync_conn.execution_options(yield_per=1000).execute(
                sa.select(audit_log).where(audit_log.c.seq > start).order_by(audit_log.c.seq)
            )
            return verify_chain((_entry(row) for row in rows), checkpoints, public_key, anchor)

        async with db.read() as conn:
            return await conn.run_sync(walk)


def _anchor(row: AnyRow) -> Anchor:
    m = row._mapping
    return Anchor(seq=m["seq"], hash=bytes(m["hash"]), signature=bytes(m["signature"]))


async def newest_anchor(conn: AsyncConnection) -> Anchor | None:
    """The anchor the chain now starts after, or None while nothing was ever purged."""
    row = (
        await conn.execute(sa.select(audit_anchors).order_by(audit_anchors.c.seq.desc()).limit(1))
    ).first()
    return _anchor(row) if row else None

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
    AuditEntry,
    AuditEvent,
    Checkpoint,
    VerifyResult,
    append,
    sign_checkpoint,
    verify_chain,
)
from server.db.engine import Database
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

    async def _tail(self, conn: AsyncConnection) -> AuditEntry | None:
        if conn.dialect.name == "postgresql":
            await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_AUDIT_LOCK)))
        row = (
            await conn.execute(sa.select(audit_log).order_by(audit_log.c.seq.desc()).limit(1))
        ).first()
        return _entry(row) if row else None

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

    async def _store_checkpoint(
        self, conn: AsyncConnection, entry: AuditEntry, at: datetime
    ) -> None:
        checkpoint = sign_checkpoint(self._signing_key, entry.seq, entry.hash)
        await conn.execute(
            audit_checkpoints.insert().values(
                seq=checkpoint.seq, hash=checkpoint.hash, signature=checkpoint.signature, at=at
            )
        )

    async def checkpoint(self, db: Database, at: datetime) -> int | None:
        """Sign the current tail (on shutdown); returns its seq, or None when nothing new."""
        async with db.write() as conn:
            tail = await self._tail(conn)
            if tail is None:
                return None
            exists = await conn.scalar(
                sa.select(audit_checkpoints.c.seq).where(audit_checkpoints.c.seq == tail.seq)
            )
            if exists is None:
                await self._store_checkpoint(conn, tail, at)
            return tail.seq

    async def verify(self, db: Database) -> VerifyResult:
        """Re-walk the whole chain against the signed checkpoints (streamed, O(1) memory)."""
        public_key = self._signing_key.public_key()

        def walk(sync_conn: sa.Connection) -> VerifyResult:
            checkpoints = [
                Checkpoint(seq=r.seq, hash=bytes(r.hash), signature=bytes(r.signature))
                for r in sync_conn.execute(
                    sa.select(audit_checkpoints).order_by(audit_checkpoints.c.seq)
                )
            ]
            rows = sync_conn.execution_options(yield_per=1000).execute(
                sa.select(audit_log).order_by(audit_log.c.seq)
            )
            return verify_chain((_entry(row) for row in rows), checkpoints, public_key)

        async with db.read() as conn:
            return await conn.run_sync(walk)

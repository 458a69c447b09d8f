"""The audit trail's storage edge: append entries in the caller's transaction, checkpoint, verify.

The hash chain and its rules live in privacy.audit (pure); the SQL in server.db.audit. This
module decides when each runs: the lock before reading the tail, a checkpoint every
`checkpoint_every` entries, the anchor before a purge deletes anything.
"""

from __future__ import annotations

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
    DetailValue,
    VerifyResult,
    append,
    sign_anchor,
    sign_checkpoint,
    verify_chain,
)
from server.db import audit as audit_rows
from server.db.engine import Database


class AuditTrail:
    """Appends audit events inside the caller's write transaction, so they commit together."""

    def __init__(self, signing_key: Ed25519PrivateKey, *, checkpoint_every: int = 100) -> None:
        self._signing_key = signing_key
        self._checkpoint_every = checkpoint_every

    async def lock_chain(self, conn: AsyncConnection) -> None:
        """Serialise appenders and purges of the chain (a no-op lock on SQLite: one writer)."""
        await audit_rows.lock_chain(conn)

    async def _tail(self, conn: AsyncConnection) -> ChainTip | None:
        """The newest entry; once a purge took every entry, the anchor it left (never genesis)."""
        await self.lock_chain(conn)
        return await audit_rows.last_entry(conn) or await audit_rows.newest_anchor(conn)

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
        await audit_rows.insert_entry(conn, entry)
        if entry.seq % self._checkpoint_every == 0:
            await self._store_checkpoint(conn, entry, at)
        return entry

    async def record_own(
        self, conn: AsyncConnection, *, at: datetime, account_id: str, action: str
    ) -> AuditEntry:
        """Append an account's action on itself: the account is both actor and target."""
        account = f"account:{account_id}"
        return await self.record(conn, at=at, actor=account, action=action, targets=(account,))

    async def _store_checkpoint(self, conn: AsyncConnection, entry: ChainTip, at: datetime) -> None:
        checkpoint = sign_checkpoint(self._signing_key, entry.seq, entry.hash)
        await audit_rows.insert_checkpoint(conn, checkpoint, at)

    async def checkpoint(self, db: Database, at: datetime) -> int | None:
        """Sign the current tail (on shutdown); returns its seq, or None when nothing new."""
        async with db.write() as conn:
            await self.lock_chain(conn)
            tail = await audit_rows.last_entry(conn)
            if tail is None:
                return None
            if not await audit_rows.has_checkpoint(conn, tail.seq):
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
        entry_hash = await audit_rows.entry_hash(conn, through_seq)
        if entry_hash is None:
            raise ValueError(f"audit entry {through_seq} does not exist")
        anchor = sign_anchor(self._signing_key, through_seq, entry_hash)
        await audit_rows.insert_anchor(conn, anchor, at)
        # Checkpoints up to the anchor pin entries that are gone; the anchor replaces them.
        deleted = await audit_rows.delete_entries_through(conn, through_seq)
        await self.record(
            conn,
            at=at,
            actor=actor,
            action="audit.purged",
            details={"through_seq": through_seq, "entries": deleted},
        )
        return anchor

    async def verify(self, db: Database) -> VerifyResult:
        """Re-walk the chain from genesis, or from the newest anchor, against the signed
        checkpoints (streamed, O(1) memory)."""
        public_key = self._signing_key.public_key()

        def walk(sync_conn: sa.Connection) -> VerifyResult:
            chain = audit_rows.stored_chain(sync_conn)
            return verify_chain(chain.entries, chain.checkpoints, public_key, chain.anchor)

        async with db.read() as conn:
            return await conn.run_sync(walk)

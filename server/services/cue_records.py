"""Storing cue prompts, cue summaries and client signals: through the vault, with consent only.

Everything here is written only while the client's `cue_analysis` consent is live (the live
edge checks before calling), and withdrawing it deletes all of it (`delete-cue-data`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from privacy.vault import FieldContext
from server.db import cues as cue_rows
from server.db.engine import Database
from server.security.tokens import new_id
from server.vault_store import ClientVault


class CueRecords:
    """The stored side of cue analysis and client signals."""

    def __init__(self, vault: ClientVault) -> None:
        self._vault = vault

    async def _store(
        self,
        db: Database,
        table_name: str,
        *,
        session_id: str,
        client_id: str,
        payload: dict[str, Any],
        now: datetime,
    ) -> None:
        """Encrypt under the client's key, bound to this table and row, and store."""
        row_id = new_id()
        ctx = FieldContext(table_name, row_id, "payload", client_id)
        async with db.write() as conn:
            await cue_rows.insert(
                conn,
                table_name,
                row_id=row_id,
                session_id=session_id,
                client_id=client_id,
                created_at=now,
                payload_ciphertext=await self._vault.encrypt_json(conn, ctx, payload),
            )

    async def store_prompt(
        self,
        db: Database,
        *,
        session_id: str,
        client_id: str,
        prompt: dict[str, Any],
        now: datetime,
    ) -> None:
        """A prompt as shown to the therapist."""
        await self._store(
            db, "cue_prompts", session_id=session_id, client_id=client_id, payload=prompt, now=now
        )

    async def store_signal(
        self, db: Database, *, session_id: str, client_id: str, kind: str, t_ms: int, now: datetime
    ) -> None:
        """A client's signal button press."""
        payload = {"kind": kind, "t_ms": t_ms}
        await self._store(
            db,
            "signal_events",
            session_id=session_id,
            client_id=client_id,
            payload=payload,
            now=now,
        )

    async def store_summary(
        self,
        db: Database,
        *,
        session_id: str,
        client_id: str,
        summary: dict[str, Any],
        now: datetime,
    ) -> None:
        """The after-session cue summary."""
        await self._store(
            db,
            "cue_summaries",
            session_id=session_id,
            client_id=client_id,
            payload=summary,
            now=now,
        )

    async def for_session(self, db: Database, session_id: str) -> dict[str, list[Any]]:
        """A session's stored prompts, signals and summaries, decrypted (the caller audits)."""
        found: dict[str, list[Any]] = {}
        async with db.read() as conn:
            for table_name in cue_rows.CUE_TABLE_NAMES:
                found[table_name] = [
                    await self._vault.decrypt_json(
                        conn,
                        FieldContext(table_name, row.id, "payload", row.client_id),
                        row.payload_ciphertext,
                    )
                    for row in await cue_rows.for_session(conn, table_name, session_id)
                ]
        return found

    async def summaries_by_client(self, db: Database, session_id: str) -> dict[str, Any]:
        """A session's latest stored after-session summary of each client, decrypted (one per
        client analysed in a session of several; the caller audits)."""
        found: dict[str, Any] = {}
        async with db.read() as conn:
            for row in await cue_rows.for_session(conn, "cue_summaries", session_id):
                found[row.client_id] = await self._vault.decrypt_json(
                    conn,
                    FieldContext("cue_summaries", row.id, "payload", row.client_id),
                    row.payload_ciphertext,
                )
        return found

    async def delete_for_client(self, conn: AsyncConnection, client_id: str) -> None:
        """Withdrawal of `cue_analysis`: delete every stored prompt, summary and signal."""
        await cue_rows.delete_for_client(conn, client_id)

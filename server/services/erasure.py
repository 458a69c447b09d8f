"""Erasing a client: destroy the data key first (crypto-shredding), then delete the rows."""

from __future__ import annotations

from datetime import datetime

from server.audit import AuditTrail
from server.core.models import Account
from server.db import scheduling as scheduling_rows
from server.db.engine import Database
from server.services.scheduling import own_client
from server.vault_store import ClientVault


async def erase_client(
    db: Database,
    vault: ClientVault,
    audit: AuditTrail,
    therapist: Account,
    client_id: str,
    now: datetime,
) -> None:
    """Make everything encrypted for this client unreadable, then delete the client's rows.

    Consent records stay: they hold no clinical content and are the clinic's evidence of what
    was agreed (kept under the `consent` retention policy).
    """
    async with db.write() as conn:
        await own_client(conn, therapist, client_id)
        shredded = await vault.shred(conn, client_id)
        # Sessions, invites, client cookies and notes go with the client (ON DELETE CASCADE).
        await scheduling_rows.delete_client(conn, client_id)
        await audit.record(
            conn,
            at=now,
            actor=f"account:{therapist.id}",
            action="client.erase",
            targets=(f"client:{client_id}",),
            details={"key_destroyed": shredded},
        )

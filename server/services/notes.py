"""Therapist notes about a client: clinical text, stored only through the vault, reads audited."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from privacy.vault import FieldContext
from server.audit import AuditTrail
from server.core.models import Account
from server.db import notes as note_rows
from server.db.engine import Database
from server.errors import InvalidInput
from server.security.tokens import new_id
from server.services.scheduling import own_client
from server.vault_store import ClientVault

MAX_NOTE_CHARS = 20_000


@dataclass(frozen=True)
class Note:
    """A decrypted note."""

    id: str
    client_id: str
    created_at: datetime
    text: str


def _context(note_id: str, client_id: str) -> FieldContext:
    return FieldContext(table="client_notes", row_id=note_id, column="body", client_id=client_id)


async def add_note(
    db: Database,
    vault: ClientVault,
    audit: AuditTrail,
    therapist: Account,
    client_id: str,
    text: str,
    now: datetime,
) -> Note:
    """Encrypt and store a note about one of the therapist's clients."""
    text = text.strip()
    if not text:
        raise InvalidInput("Write something first.")
    if len(text) > MAX_NOTE_CHARS:
        raise InvalidInput(f"Keep a note under {MAX_NOTE_CHARS} characters.")
    note_id = new_id()
    async with db.write() as conn:
        await own_client(conn, therapist, client_id)
        ciphertext = await vault.encrypt_text(conn, _context(note_id, client_id), text)
        await note_rows.insert(
            conn,
            note_id=note_id,
            client_id=client_id,
            therapist_id=therapist.id,
            created_at=now,
            body_ciphertext=ciphertext,
        )
        await audit.record(
            conn,
            at=now,
            actor=f"account:{therapist.id}",
            action="clinical.write",
            targets=(f"client:{client_id}",),
            details={"what": "note"},
        )
    return Note(id=note_id, client_id=client_id, created_at=now, text=text)


async def list_notes(
    db: Database,
    vault: ClientVault,
    audit: AuditTrail,
    therapist: Account,
    client_id: str,
    now: datetime,
) -> list[Note]:
    """Decrypt the client's notes, newest first; the read is written to the audit trail."""
    async with db.read() as conn:
        await own_client(conn, therapist, client_id)
        rows = await note_rows.for_client(conn, client_id, newest_first=True)
        notes = [
            Note(
                id=row.id,
                client_id=client_id,
                created_at=row.created_at,
                text=await vault.decrypt_text(
                    conn, _context(row.id, client_id), row.body_ciphertext
                ),
            )
            for row in rows
        ]
    async with db.write() as conn:
        await audit.record(
            conn,
            at=now,
            actor=f"account:{therapist.id}",
            action="clinical.read",
            targets=(f"client:{client_id}",),
            details={"what": "notes", "count": len(notes)},
        )
    return notes

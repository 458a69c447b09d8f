"""The client's safety check: checked (pure core), encrypted under the client's data key,
stored one per session, audited; read back only for the client's own prefill and for the
session's own therapist (every therapist read is audited).

Live delivery to the therapist's panel is `LiveSessions.submit_safety_check`'s, which calls
`submit` here and then tells the room.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from privacy.vault import DecryptionError, FieldContext, KeyShredded
from server.audit import AuditTrail
from server.core.models import TherapySession
from server.core.safety import SafetyAnswerError, SafetyAnswers, check_answers
from server.db import safety as safety_rows
from server.db.engine import Database
from server.db.tables import safety_checks
from server.errors import InvalidInput
from server.security.tokens import new_id
from server.vault_store import ClientVault


@dataclass(frozen=True)
class SafetyCheck:
    """A session's safety check, decrypted."""

    id: str
    session_id: str
    client_id: str
    submitted_at: datetime
    answers: SafetyAnswers

    def to_json(self) -> dict[str, Any]:
        """The answers with when they were given (Unix ms), as the therapist's panel gets them."""
        return {
            **self.answers.to_json(),
            "submitted_at_ms": int(self.submitted_at.timestamp() * 1000),
        }


def _context(check_id: str, client_id: str) -> FieldContext:
    return FieldContext(safety_checks.name, check_id, "payload", client_id)


class SafetyChecks:
    """Stores and reads safety checks through the vault."""

    def __init__(self, vault: ClientVault) -> None:
        self._vault = vault

    async def submit(
        self,
        db: Database,
        audit: AuditTrail,
        *,
        session: TherapySession,
        raw: dict[str, Any],
        now: datetime,
    ) -> SafetyCheck:
        """Check the answers (InvalidInput naming the field), then encrypt and store them as
        this session's safety check, replacing an earlier one, with a `safety.submit` entry
        (never the answers) in the same transaction."""
        try:
            answers = check_answers(raw)
        except SafetyAnswerError as exc:
            raise InvalidInput(exc.message, code=f"invalid-{exc.field.replace('_', '-')}") from None
        check_id = new_id()
        client_id = session.client_id
        async with db.write() as conn:
            ciphertext = await self._vault.encrypt_json(
                conn, _context(check_id, client_id), answers.to_json()
            )
            replaced = await safety_rows.replace_for_session(
                conn,
                check_id=check_id,
                session_id=session.id,
                client_id=client_id,
                submitted_at=now,
                payload_ciphertext=ciphertext,
            )
            await audit.record(
                conn,
                at=now,
                actor=f"client:{client_id}",
                action="safety.submit",
                targets=(f"client:{client_id}", f"session:{session.id}"),
                details={"replaced": replaced},
            )
        return SafetyCheck(check_id, session.id, client_id, now, answers)

    async def _open(
        self, conn: AsyncConnection, stored: safety_rows.StoredSafetyCheck | None
    ) -> SafetyCheck | None:
        """Decrypt a stored check; None when there is none or it cannot be read any more
        (the client's key was shredded, or the row was tampered with)."""
        if stored is None:
            return None
        try:
            payload = await self._vault.decrypt_json(
                conn, _context(stored.id, stored.client_id), stored.payload_ciphertext
            )
            answers = check_answers(payload)
        except (KeyShredded, DecryptionError, SafetyAnswerError):
            return None
        return SafetyCheck(
            stored.id, stored.session_id, stored.client_id, stored.submitted_at, answers
        )

    async def for_session(self, db: Database, session_id: str) -> SafetyCheck | None:
        """The session's safety check (unaudited: callers showing it to a therapist use
        `read_for_therapist`)."""
        async with db.read() as conn:
            return await self._open(conn, await safety_rows.for_session(conn, session_id))

    async def previous_for_client(self, db: Database, client_id: str) -> SafetyCheck | None:
        """The client's newest safety check, to prefill the next one (the client's own data)."""
        async with db.read() as conn:
            return await self._open(conn, await safety_rows.latest_for_client(conn, client_id))

    async def read_for_therapist(
        self,
        db: Database,
        audit: AuditTrail,
        *,
        session: TherapySession,
        therapist_id: str,
        where: str,
        now: datetime,
    ) -> SafetyCheck | None:
        """The session's safety check for its own therapist (the caller has checked that the
        session is theirs); a read of one is audited as `clinical.read`, `what: safety-check`."""
        check = await self.for_session(db, session.id)
        if check is not None:
            async with db.write() as conn:
                await audit.record(
                    conn,
                    at=now,
                    actor=f"account:{therapist_id}",
                    action="clinical.read",
                    targets=(f"client:{session.client_id}",),
                    details={"what": "safety-check", "where": where},
                )
        return check

"""A small clinic with a past, for retention tests: data is written as if at chosen times."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from aiohttp import web

from privacy.consent import Channel, ConsentDecision, ConsentRecord, Purpose
from privacy.vault import FieldContext
from server.audit import AuditTrail
from server.core.models import Account, Client, Role, TherapySession
from server.db import accounts as account_q
from server.db import consents as consent_q
from server.db.engine import Database
from server.db.tables import checkin_responses, data_keys, safety_checks
from server.keys import AUDIT, CONSENTS, DB, VAULT
from server.security.tokens import new_id
from server.services import scheduling
from server.services.retention import Retention
from server.vault_store import ClientVault

MARKER = "CLINICAL-MARKER-7f3a91"
"""Written into every clinical field; an admin must never see it."""

DAY = timedelta(days=1)
YEAR = timedelta(days=365)


class NoSockets:
    """`LiveAccess` for a world without live rooms: there is no socket to close."""

    def end_account_access(self, account_id: str, reason: object, **_filters: object) -> None:
        """Nothing is connected here."""

    def end_client_access(self, reason: object, **_filters: object) -> None:
        """Nothing is connected here."""


@dataclass
class World:
    """Handles on a started app, and ways to give it a history."""

    app: web.Application
    now: datetime

    @property
    def db(self) -> Database:
        return self.app[DB]

    @property
    def audit(self) -> AuditTrail:
        return self.app[AUDIT]

    @property
    def vault(self) -> ClientVault:
        return self.app[VAULT]

    def retention(self, **options: Any) -> Retention:
        return Retention(self.db, self.audit, self.vault, **options)

    async def account(self, email: str, at: datetime, role: Role = Role.THERAPIST) -> Account:
        """An account created at `at` (audited like any; no password: it never signs in)."""
        account_id = new_id()
        async with self.db.write() as conn:
            await account_q.insert_account(
                conn, account_id=account_id, email=email, password_hash="!", role=role, now=at
            )
            await self.audit.record(
                conn,
                at=at,
                actor="system:test",
                action="account.create",
                targets=(f"account:{account_id}",),
                details={"role": role.value},
            )
        return Account(id=account_id, email=email, role=role, disabled=False, created_at=at)

    async def client(self, therapist: Account, alias: str, at: datetime) -> Client:
        return await scheduling.create_client(self.db, self.audit, therapist, alias, at)

    async def session(
        self, therapist: Account, client: Client, starts_at: datetime
    ) -> TherapySession:
        session, _invite = await scheduling.create_session(
            self.db,
            self.audit,
            therapist,
            client_id=client.id,
            starts_at=starts_at,
            minutes=50,
            now=starts_at - timedelta(hours=1),
        )
        return session

    async def clinical_row(
        self, table: sa.Table, session: TherapySession, at: datetime, text: str = MARKER
    ) -> str:
        """A cue prompt, cue summary or signal event (encrypted payload) written at `at`."""
        row_id = new_id()
        ctx = FieldContext(table.name, row_id, "payload", session.client_id)
        async with self.db.write() as conn:
            blob = await self.vault.encrypt_json(conn, ctx, {"note": text})
            await conn.execute(
                table.insert().values(
                    id=row_id,
                    session_id=session.id,
                    client_id=session.client_id,
                    created_at=at,
                    payload_ciphertext=blob,
                )
            )
        return row_id

    async def safety_check(self, session: TherapySession, at: datetime, text: str = MARKER) -> str:
        """The session's safety check answered at `at`, `text` as the place (encrypted)."""
        row_id = new_id()
        ctx = FieldContext("safety_checks", row_id, "payload", session.client_id)
        answers = {
            "location": text,
            "private": False,
            "contact_name": f"contact {text}",
            "contact_phone": "112",
            "code_word": "",
        }
        async with self.db.write() as conn:
            await conn.execute(
                safety_checks.insert().values(
                    id=row_id,
                    session_id=session.id,
                    client_id=session.client_id,
                    submitted_at=at,
                    payload_ciphertext=await self.vault.encrypt_json(conn, ctx, answers),
                )
            )
        return row_id

    async def checkin(self, session: TherapySession, at: datetime, text: str = MARKER) -> str:
        """A stored check-in response written at `at` (answers encrypted)."""
        row_id = new_id()
        ctx = FieldContext("checkin_responses", row_id, "payload", session.client_id)
        async with self.db.write() as conn:
            blob = await self.vault.encrypt_json(
                conn, ctx, {"answers": {"free_text": text}, "alerts": []}
            )
            await conn.execute(
                checkin_responses.insert().values(
                    id=row_id,
                    session_id=session.id,
                    client_id=session.client_id,
                    instrument_id="pulse",
                    instrument_version="1",
                    kind="pulse",
                    idempotency_key=new_id(),
                    submitted_at=at,
                    payload_ciphertext=blob,
                )
            )
        return row_id

    async def consent(
        self, client_id: str, purpose: Purpose, decision: ConsentDecision, at: datetime
    ) -> None:
        """A consent record made at `at` for the notice now in force."""
        notice = self.app[CONSENTS].catalog.current(purpose)
        record = ConsentRecord(
            client_id=client_id,
            purpose=purpose,
            notice_version=notice.version,
            notice_sha256=notice.sha256,
            decision=decision,
            at=at,
            channel=Channel.PAGE,
        )
        async with self.db.write() as conn:
            await consent_q.insert_record(conn, record)

    async def audit_entry(self, at: datetime, targets: tuple[str, ...] = ()) -> int:
        """One audit entry written at `at` (cheaper than creating an account)."""
        async with self.db.write() as conn:
            entry = await self.audit.record(
                conn, at=at, actor="system:test", action="auth.logout", targets=targets
            )
        return entry.seq

    async def ids(self, table: sa.Table, column: str = "id") -> set[Any]:
        async with self.db.read() as conn:
            return set(await conn.scalars(sa.select(table.c[column])))

    async def has_data_key(self, client_id: str) -> bool:
        return client_id in await self.ids(data_keys, "client_id")

"""Consent: the client's decisions, recorded with the exact notice shown, audited, broadcast.

The rules live in privacy.consent (pure); this module stores records, runs the effects a
withdrawal triggers, and publishes ConsentChanged so live sessions react at once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from privacy.consent import (
    GUEST_PURPOSES,
    OFFERED_PURPOSES,
    SOURCE_LANGUAGE,
    Channel,
    ConsentChanged,
    ConsentDecision,
    ConsentEvents,
    ConsentRecord,
    ConsentStatus,
    Notice,
    NoticeCatalog,
    NoticeNotFound,
    Purpose,
    Subject,
    consent_state,
    load_notices,
    may_process,
)
from server.audit import AuditTrail
from server.core.languages import N_
from server.db import consents as q
from server.db.engine import Database
from server.errors import Conflict, InvalidInput

# An effect runs inside the withdrawal's transaction: (connection, client id) -> None.
WithdrawalEffect = Callable[[AsyncConnection, str], Awaitable[None]]


class Consents:
    """The consent ledger of this server: notices in force, records, effects, live events."""

    def __init__(self, catalog: NoticeCatalog) -> None:
        self.catalog = catalog
        self.events = ConsentEvents()
        self._effects: dict[Purpose, list[tuple[str, WithdrawalEffect]]] = {}

    @classmethod
    async def load(cls, db: Database) -> Consents:
        """Shipped notices plus any versions admins have published."""
        catalog = load_notices()
        async with db.read() as conn:
            for notice in await q.published_notices(conn):
                catalog = catalog.with_notice(notice)
        return cls(catalog)

    async def publish_notice(
        self,
        db: Database,
        audit: AuditTrail,
        notice: Notice,
        *,
        published_by: str,
        now: datetime,
    ) -> None:
        """Put a new notice version in force: clients are asked again for that purpose."""
        if notice.version in self.catalog.versions(notice.purpose):
            raise Conflict(f"Version {notice.version} of this notice already exists.")
        catalog = self.catalog.with_notice(notice)
        async with db.write() as conn:
            await q.insert_notice(conn, notice, published_by=published_by, now=now)
            await audit.record(
                conn,
                at=now,
                actor=published_by,
                action="notice.publish",
                details={
                    "purpose": notice.purpose.value,
                    "version": notice.version,
                    "sha256": notice.sha256,
                },
            )
        self.catalog = catalog  # replaced, not mutated: readers keep a consistent catalog

    def on_withdrawal(self, purpose: Purpose, name: str, effect: WithdrawalEffect) -> None:
        """Register what withdrawing `purpose` must do (e.g. delete stored check-ins)."""
        self._effects.setdefault(purpose, []).append((name, effect))

    async def state(
        self, db: Database, client_id: str, now: datetime, language: str = SOURCE_LANGUAGE
    ) -> dict[Purpose, ConsentStatus]:
        """Where each offered purpose stands for this client, with each notice in `language`
        where it is translated."""
        async with db.read() as conn:
            records = await q.records_for(conn, client_id)
        states = consent_state(records, self.catalog, now, language)
        return {p: states[p] for p in OFFERED_PURPOSES if p in states}

    async def records(self, db: Database, client_id: str) -> list[ConsentRecord]:
        """Every record of this client, oldest first."""
        async with db.read() as conn:
            return await q.records_for(conn, client_id)

    async def allows(
        self, conn: AsyncConnection, client_id: str, purpose: Purpose, now: datetime
    ) -> bool:
        """The one gate: may `purpose` be processed for this client right now?"""
        records = await q.records_for(conn, client_id)
        return may_process(purpose, records, now, self.catalog.current(purpose).version)

    async def decide(
        self,
        db: Database,
        audit: AuditTrail,
        *,
        client_id: str,
        purpose: Purpose,
        decision: ConsentDecision,
        notice_version: int,
        channel: Channel,
        now: datetime,
        subject: Subject = Subject.CLIENT,
        notice_language: str = SOURCE_LANGUAGE,
    ) -> ConsentRecord:
        """Record a grant or withdrawal of the notice version the client was shown, in the
        language it was shown in (its hash is that text's)."""
        if purpose not in OFFERED_PURPOSES:
            raise InvalidInput(f"{purpose.value} is not offered.")
        if subject is Subject.GUEST and purpose not in GUEST_PURPOSES:
            raise InvalidInput(f"{purpose.value} is not asked of guests.")
        current = self.catalog.current(purpose)
        if notice_version != current.version:
            raise Conflict(
                N_(
                    "The notice has changed since you read it. Please read the new "
                    "version and decide again."
                )
            )
        try:
            notice = self.catalog.get(purpose, notice_version, notice_language)
        except NoticeNotFound:
            raise InvalidInput(
                f"The notice is not published in the language {notice_language!r}."
            ) from None
        async with db.write() as conn:
            triggered: list[str] = []
            if decision is ConsentDecision.WITHDRAWN:
                for name, effect in self._effects.get(purpose, []):
                    await effect(conn, client_id)
                    triggered.append(name)
            record = ConsentRecord(
                client_id=client_id,
                purpose=purpose,
                notice_version=notice.version,
                notice_sha256=notice.sha256,
                decision=decision,
                at=now,
                channel=channel,
                subject=subject,
                triggered=tuple(triggered),
                notice_language=notice.language,
            )
            await q.insert_record(conn, record)
            action = "consent.grant" if decision is ConsentDecision.GRANTED else "consent.withdraw"
            who = f"guest:{client_id}" if subject is Subject.GUEST else f"client:{client_id}"
            await audit.record(
                conn,
                at=now,
                actor=who,
                action=action,
                targets=(who,),
                details={
                    "purpose": purpose.value,
                    "notice_version": notice.version,
                    "notice_language": notice.language,
                    "channel": channel.value,
                    "triggered": ",".join(triggered) or None,
                },
            )
        self.events.publish(ConsentChanged.from_record(record))
        return record

"""Resources shared by the server and the CLI: the database and the audit trail."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from privacy.keyfiles import load_or_create_signing_key
from server.audit import AuditTrail
from server.db.engine import Database
from server.db.migrate import upgrade_to_head
from server.settings import Settings

AUDIT_SIGNING_KEY_FILE = "audit-signing.key"


@dataclass(frozen=True)
class Runtime:
    """What a command needs to act like the server does."""

    settings: Settings
    db: Database
    audit: AuditTrail


async def open_database(settings: Settings) -> Database:
    """Connect and bring the schema to the newest revision."""
    db = Database.connect(settings.effective_database_url)
    await upgrade_to_head(db)
    return db


def open_audit_trail(settings: Settings) -> AuditTrail:
    """The audit trail, signing checkpoints with the key under the data directory."""
    return AuditTrail(load_or_create_signing_key(settings.data_dir / AUDIT_SIGNING_KEY_FILE))


@asynccontextmanager
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    """Database plus audit trail for one CLI command."""
    db = await open_database(settings)
    try:
        yield Runtime(settings=settings, db=db, audit=open_audit_trail(settings))
    finally:
        await db.dispose()

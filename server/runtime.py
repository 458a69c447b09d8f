"""Resources shared by the server and the CLI: database, master keyring, vault, audit trail."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from privacy.keyfiles import (
    KeyFileError,
    load_keyring,
    load_or_create_keyring,
    load_or_create_signing_key,
    parse_master_key,
)
from privacy.vault import MasterKeyring
from server.audit import AuditTrail
from server.db import data_keys as data_key_rows
from server.db.engine import Database
from server.db.migrate import upgrade_to_head
from server.settings import Settings
from server.vault_store import ClientVault, MasterKeyMismatch

AUDIT_SIGNING_KEY_FILE = "audit-signing.key"
MASTER_KEYRING_FILE = "master-keys.json"


class StartupError(RuntimeError):
    """Attune must not start (or run a command) in this state; the message says why."""


@dataclass(frozen=True)
class Runtime:
    """What a command needs to act like the server does."""

    settings: Settings
    db: Database
    audit: AuditTrail
    vault: ClientVault


def keyring_path(settings: Settings) -> Path:
    """Where the master keyring file lives."""
    return settings.master_key_file or settings.data_dir / MASTER_KEYRING_FILE


async def open_database(settings: Settings) -> Database:
    """Connect and bring the schema to the newest revision."""
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    db = Database.connect(settings.effective_database_url)
    await upgrade_to_head(db)
    return db


def open_audit_trail(settings: Settings) -> AuditTrail:
    """The audit trail, signing checkpoints with the key under the data directory."""
    path = settings.data_dir / AUDIT_SIGNING_KEY_FILE
    try:
        return AuditTrail(load_or_create_signing_key(path))
    except KeyFileError as exc:
        raise StartupError(f"Audit signing key file problem ({path}): {exc}") from None


async def load_master_keyring(settings: Settings, db: Database) -> tuple[MasterKeyring, str | None]:
    """The keyring from ATTUNE_MASTER_KEY or the keyring file, creating the file only on an
    empty database. Returns the ring and a message to show when a key was just created."""
    try:
        if settings.master_key:
            return MasterKeyring.from_single(parse_master_key(settings.master_key)), None
        path = keyring_path(settings)
        if path.exists():
            return load_keyring(path), None
        async with db.read() as conn:
            holds_keys = await data_key_rows.any_key(conn) is not None
        if holds_keys:
            raise StartupError(
                f"The master keyring {path} is missing, but the database holds encrypted data. "
                "Attune will not start without the key: restore the keyring file or set "
                "ATTUNE_MASTER_KEY."
            )
        ring, _created = load_or_create_keyring(path)
    except KeyFileError as exc:
        raise StartupError(f"Master key problem: {exc}") from None
    return ring, (
        f"Created a new master key in {path} (readable only by you). Back it up safely: "
        "without it, the encrypted clinical data cannot be read."
    )


async def open_vault(settings: Settings, db: Database) -> tuple[ClientVault, str | None]:
    """The vault, after checking the master key really opens this database's data keys."""
    ring, message = await load_master_keyring(settings, db)
    vault = ClientVault(ring)
    try:
        await vault.check_master_key(db)
    except MasterKeyMismatch as exc:
        raise StartupError(str(exc)) from None
    return vault, message


@asynccontextmanager
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    """Database, audit trail and vault for one CLI command."""
    db = await open_database(settings)
    try:
        vault, message = await open_vault(settings, db)
        if message:
            print(message, file=sys.stderr)  # stdout stays clean for --json output
        yield Runtime(settings=settings, db=db, audit=open_audit_trail(settings), vault=vault)
    finally:
        await db.dispose()

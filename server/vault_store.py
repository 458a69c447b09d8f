"""The vault's storage edge: per-client data keys wrapped by the master keyring, in the database.

The cryptography lives in privacy.vault (pure); this module loads, creates, re-wraps and
destroys wrapped data keys, and encrypts/decrypts fields for callers inside their transaction.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from privacy.vault import (
    DecryptionError,
    FieldContext,
    KeyShredded,
    MasterKeyring,
    UnknownKeyVersion,
    decrypt_json,
    decrypt_text,
    encrypt_json,
    encrypt_text,
    generate_data_key,
    rewrap,
    unwrap_data_key,
    wrap_data_key,
)
from server.db import data_keys as key_rows
from server.db.engine import Database

DATA_KEY_VERSION = 1
_CACHE_SIZE = 1024


class MasterKeyMismatch(RuntimeError):
    """The configured master key cannot unwrap the data keys this database holds."""


class ClientVault:
    """Encrypts clinical fields under each client's own data key."""

    def __init__(self, ring: MasterKeyring) -> None:
        self._ring = ring
        # Unwrapped keys are cheap to derive but cost a query; shredding evicts here too.
        self._cache: OrderedDict[str, bytes] = OrderedDict()

    @property
    def ring(self) -> MasterKeyring:
        """The master keyring in use."""
        return self._ring

    async def _data_key(self, conn: AsyncConnection, client_id: str, *, create: bool) -> bytes:
        cached = self._cache.get(client_id)
        if cached is not None:
            self._cache.move_to_end(client_id)
            return cached
        stored = await key_rows.find(conn, client_id)
        if stored is None:
            if not create:
                raise KeyShredded("this client's data key does not exist (erased)")
            key = generate_data_key()
            wrapped = wrap_data_key(self._ring, client_id, key)
            await key_rows.insert(
                conn, wrapped, key_version=DATA_KEY_VERSION, created_at=datetime.now(UTC)
            )
        else:
            key = unwrap_data_key(self._ring, stored)
        self._cache[client_id] = key
        while len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)
        return key

    async def encrypt_text(self, conn: AsyncConnection, ctx: FieldContext, text: str) -> bytes:
        """Ciphertext of `text` bound to its table, row, column and client."""
        key = await self._data_key(conn, ctx.client_id, create=True)
        return encrypt_text(key, DATA_KEY_VERSION, text, ctx)

    async def encrypt_json(self, conn: AsyncConnection, ctx: FieldContext, value: object) -> bytes:
        """Ciphertext of a JSON value bound to its place."""
        key = await self._data_key(conn, ctx.client_id, create=True)
        return encrypt_json(key, DATA_KEY_VERSION, value, ctx)

    async def _lookup(self, conn: AsyncConnection, client_id: str) -> Any:
        key = await self._data_key(conn, client_id, create=False)

        def lookup(lookup_client: str, version: int) -> bytes:
            if lookup_client != client_id or version != DATA_KEY_VERSION:
                raise UnknownKeyVersion("no such data key")
            return key

        return lookup

    async def decrypt_text(self, conn: AsyncConnection, ctx: FieldContext, blob: bytes) -> str:
        """Plaintext of a field; DecryptionError if moved or tampered, KeyShredded if erased."""
        return decrypt_text(await self._lookup(conn, ctx.client_id), bytes(blob), ctx)

    async def decrypt_json(self, conn: AsyncConnection, ctx: FieldContext, blob: bytes) -> Any:
        """A JSON field's value."""
        return decrypt_json(await self._lookup(conn, ctx.client_id), bytes(blob), ctx)

    async def shred(self, conn: AsyncConnection, client_id: str) -> bool:
        """Destroy a client's data key: everything encrypted under it becomes unreadable."""
        self._cache.pop(client_id, None)
        return await key_rows.delete(conn, client_id)

    async def check_master_key(self, db: Database) -> None:
        """Refuse to run with a master key that cannot open this database's data keys."""
        async with db.read() as conn:
            stored = await key_rows.any_key(conn)
        if stored is None:
            return
        try:
            unwrap_data_key(self._ring, stored)
        except (DecryptionError, UnknownKeyVersion):
            raise MasterKeyMismatch(
                "The master key does not match the data keys in this database. Attune will not "
                "start: check ATTUNE_MASTER_KEY or the master keyring file."
            ) from None

    async def rewrap_all(self, db: Database, ring: MasterKeyring, *, batch: int = 500) -> int:
        """Re-wrap every data key under `ring`'s current version (data untouched); returns count."""
        self._ring = ring
        done, last = 0, ""
        while True:
            async with db.write() as conn:
                rows = await key_rows.page_after(conn, last, batch)
                for row in rows:
                    await key_rows.replace(conn, rewrap(ring, row))
            if not rows:
                return done
            done += len(rows)
            last = rows[-1].client_id

    async def versions_in_use(self, db: Database) -> set[int]:
        """Master key versions that still wrap at least one data key."""
        async with db.read() as conn:
            return await key_rows.master_versions(conn)

"""Envelope encryption (pure): master keyring → per-client data keys → field ciphertexts.

Layers:
- A ``MasterKeyring`` holds versioned 32-byte master keys. Data keys are wrapped under the
  ring's current version (AES-256-GCM); rotation adds a version and re-wraps data keys, the
  field ciphertexts are never touched.
- Each client has its own 32-byte data key. A field ciphertext is self-describing::

      tag (1 byte, 0x01) | data key version (uint32, big-endian) | nonce (12 bytes) | ct+tag

  The associated data is the tag and key version followed by the canonical encoding of the
  ``FieldContext`` (table, row id, column, client id), so a ciphertext moved to another row,
  column or client no longer decrypts.
- Crypto-shredding: the storage layer deletes a client's wrapped data key; a key lookup then
  raises ``KeyShredded`` and the data is unreadable everywhere, backups included.

No I/O here: randomness comes from ``os.urandom`` and nothing is stored.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, NoReturn

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES: Final = 32
NONCE_BYTES: Final = 12
GCM_TAG_BYTES: Final = 16
FIELD_FORMAT_V1: Final = 0x01
_MAX_UINT32: Final = 0xFFFF_FFFF
_FIELD_HEADER = struct.Struct(">BI")  # format tag, data key version
_FIELD_PREFIX_BYTES: Final = _FIELD_HEADER.size + NONCE_BYTES
_FIELD_CONTEXT_LABEL: Final = b"attune-field-v1"
_WRAP_LABEL: Final = b"attune-data-key-wrap-v1"


class VaultError(Exception):
    """Base class of every vault failure."""


class DecryptionError(VaultError):
    """A ciphertext is malformed, tampered with, or bound to another context."""


class KeyShredded(VaultError):
    """The data key was destroyed (crypto-shredding): the data can no longer be read."""


class UnknownKeyVersion(VaultError):
    """A key version is not (or no longer) available."""


DataKeyLookup = Callable[[str, int], bytes]
"""``(client_id, data_key_version) -> data key``; raises KeyShredded or UnknownKeyVersion."""


def _require_key(key: bytes, what: str) -> None:
    if not isinstance(key, bytes) or len(key) != KEY_BYTES:
        raise ValueError(f"{what} must be exactly {KEY_BYTES} bytes")


def _require_version(version: int, what: str) -> None:
    if isinstance(version, bool) or not isinstance(version, int):
        raise ValueError(f"{what} must be an int")
    if not 1 <= version <= _MAX_UINT32:
        raise ValueError(f"{what} must be between 1 and {_MAX_UINT32}")


def _length_prefixed(*parts: str) -> bytes:
    """Encode strings unambiguously: each as uint32 byte length, then its UTF-8 bytes."""
    out = bytearray()
    for part in parts:
        raw = part.encode("utf-8")
        out += struct.pack(">I", len(raw))
        out += raw
    return bytes(out)


class MasterKeyring:
    """Immutable map of master key versions (1, 2, …) to 32-byte keys, with a current one."""

    __slots__ = ("_current", "_keys")
    _keys: Mapping[int, bytes]
    _current: int

    def __init__(self, keys: Mapping[int, bytes], current_version: int) -> None:
        checked: dict[int, bytes] = {}
        for version, key in keys.items():
            _require_version(version, "master key version")
            _require_key(key, "a master key")
            checked[version] = key
        if current_version not in checked:
            raise ValueError("the current master key version is not in the ring")
        if len(set(checked.values())) != len(checked):
            raise ValueError("two master key versions share the same key")
        object.__setattr__(self, "_keys", MappingProxyType(checked))
        object.__setattr__(self, "_current", current_version)

    @classmethod
    def from_single(cls, key: bytes) -> MasterKeyring:
        """A ring holding one key as version 1."""
        return cls({1: key}, current_version=1)

    @property
    def current_version(self) -> int:
        """The version new data keys are wrapped under."""
        return self._current

    @property
    def versions(self) -> tuple[int, ...]:
        """All versions held, ascending."""
        return tuple(sorted(self._keys))

    def key(self, version: int) -> bytes:
        """The master key of one version; UnknownKeyVersion if it is not held."""
        try:
            return self._keys[version]
        except KeyError:
            raise UnknownKeyVersion(f"master key version {version} is not in the ring") from None

    def with_new_version(self, key: bytes) -> MasterKeyring:
        """A ring with ``key`` added as the next version, which becomes current."""
        next_version = max(self._keys) + 1
        return MasterKeyring({**self._keys, next_version: key}, current_version=next_version)

    def without_version(self, version: int) -> MasterKeyring:
        """A ring with an old version retired; the current version cannot be retired."""
        if version == self._current:
            raise ValueError("refusing to retire the current master key version")
        self.key(version)  # raises UnknownKeyVersion for a version not held
        remaining = {v: k for v, k in self._keys.items() if v != version}
        return MasterKeyring(remaining, current_version=self._current)

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError("MasterKeyring is immutable")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MasterKeyring):
            return NotImplemented
        return self._current == other._current and dict(self._keys) == dict(other._keys)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        # Never show key material.
        return f"MasterKeyring(versions={self.versions}, current_version={self._current})"


def generate_data_key() -> bytes:
    """A fresh random 32-byte data key."""
    return os.urandom(KEY_BYTES)


@dataclass(frozen=True)
class WrappedDataKey:
    """A client's data key encrypted under one master key version (blob = nonce || ct+tag)."""

    client_id: str
    master_version: int
    blob: bytes = field(repr=False)


def _wrap_associated_data(client_id: str, master_version: int) -> bytes:
    return _WRAP_LABEL + struct.pack(">I", master_version) + _length_prefixed(client_id)


def wrap_data_key(ring: MasterKeyring, client_id: str, data_key: bytes) -> WrappedDataKey:
    """Encrypt a data key under the ring's current master version, bound to the client."""
    _require_key(data_key, "a data key")
    version = ring.current_version
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(ring.key(version)).encrypt(
        nonce, data_key, _wrap_associated_data(client_id, version)
    )
    return WrappedDataKey(client_id=client_id, master_version=version, blob=nonce + sealed)


def unwrap_data_key(ring: MasterKeyring, wrapped: WrappedDataKey) -> bytes:
    """Recover a data key; UnknownKeyVersion if its master version was retired."""
    master_key = ring.key(wrapped.master_version)
    nonce, sealed = wrapped.blob[:NONCE_BYTES], wrapped.blob[NONCE_BYTES:]
    if len(nonce) != NONCE_BYTES or len(sealed) != KEY_BYTES + GCM_TAG_BYTES:
        raise DecryptionError("wrapped data key has the wrong length")
    try:
        return AESGCM(master_key).decrypt(
            nonce, sealed, _wrap_associated_data(wrapped.client_id, wrapped.master_version)
        )
    except InvalidTag:
        raise DecryptionError("wrapped data key failed authentication") from None


def rewrap(ring: MasterKeyring, wrapped: WrappedDataKey) -> WrappedDataKey:
    """Re-wrap a data key under the ring's current master version (key rotation)."""
    return wrap_data_key(ring, wrapped.client_id, unwrap_data_key(ring, wrapped))


@dataclass(frozen=True)
class FieldContext:
    """Where a ciphertext lives; bound into its associated data so it cannot be moved."""

    table: str
    row_id: str
    column: str
    client_id: str

    def encode(self) -> bytes:
        """Canonical, unambiguous bytes (a label, then each part length-prefixed)."""
        return _FIELD_CONTEXT_LABEL + _length_prefixed(
            self.table, self.row_id, self.column, self.client_id
        )


def _field_associated_data(header: bytes, ctx: FieldContext) -> bytes:
    return header + ctx.encode()


def encrypt_field(data_key: bytes, key_version: int, plaintext: bytes, ctx: FieldContext) -> bytes:
    """Encrypt one field value under a client's data key, bound to its context."""
    _require_key(data_key, "a data key")
    _require_version(key_version, "data key version")
    header = _FIELD_HEADER.pack(FIELD_FORMAT_V1, key_version)
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(data_key).encrypt(nonce, plaintext, _field_associated_data(header, ctx))
    return header + nonce + sealed


def field_key_version(ciphertext: bytes) -> int:
    """The data key version a field ciphertext names; DecryptionError if malformed."""
    if len(ciphertext) < _FIELD_PREFIX_BYTES + GCM_TAG_BYTES:
        raise DecryptionError("ciphertext is too short")
    tag, version = _FIELD_HEADER.unpack_from(ciphertext)
    if tag != FIELD_FORMAT_V1:
        raise DecryptionError("ciphertext has an unknown format tag")
    return int(version)


def decrypt_field(lookup: DataKeyLookup, ciphertext: bytes, ctx: FieldContext) -> bytes:
    """Decrypt one field value.

    Raises DecryptionError for anything malformed, tampered or out of context (including a
    key version the client does not have), and lets KeyShredded from the lookup through.
    """
    version = field_key_version(ciphertext)
    try:
        data_key = lookup(ctx.client_id, version)
    except UnknownKeyVersion as exc:
        raise DecryptionError("ciphertext names a data key version that does not exist") from exc
    header = ciphertext[: _FIELD_HEADER.size]
    nonce = ciphertext[_FIELD_HEADER.size : _FIELD_PREFIX_BYTES]
    sealed = ciphertext[_FIELD_PREFIX_BYTES:]
    try:
        return AESGCM(data_key).decrypt(nonce, sealed, _field_associated_data(header, ctx))
    except InvalidTag:
        raise DecryptionError("ciphertext failed authentication") from None


def encrypt_text(data_key: bytes, key_version: int, text: str, ctx: FieldContext) -> bytes:
    """Encrypt a string (UTF-8)."""
    return encrypt_field(data_key, key_version, text.encode("utf-8"), ctx)


def decrypt_text(lookup: DataKeyLookup, ciphertext: bytes, ctx: FieldContext) -> str:
    """Decrypt a string written by ``encrypt_text``."""
    try:
        return decrypt_field(lookup, ciphertext, ctx).decode("utf-8")
    except UnicodeDecodeError:
        raise DecryptionError("field is not UTF-8 text") from None


def canonical_json_bytes(value: object) -> bytes:
    """Canonical JSON: sorted keys, no whitespace, UTF-8, no NaN or infinity."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def encrypt_json(data_key: bytes, key_version: int, value: object, ctx: FieldContext) -> bytes:
    """Encrypt a JSON-serialisable value as canonical JSON."""
    return encrypt_field(data_key, key_version, canonical_json_bytes(value), ctx)


def decrypt_json(lookup: DataKeyLookup, ciphertext: bytes, ctx: FieldContext) -> Any:
    """Decrypt a value written by ``encrypt_json``."""
    text = decrypt_text(lookup, ciphertext, ctx)
    try:
        return json.loads(text)
    except ValueError:
        raise DecryptionError("field is not JSON") from None


@dataclass(frozen=True)
class DataKeySet:
    """Unwrapped data keys by client and version: an in-memory ``DataKeyLookup``.

    Clients in ``shredded`` had their keys destroyed; looking them up raises KeyShredded.
    """

    keys: Mapping[str, Mapping[int, bytes]] = field(default_factory=dict, repr=False)
    shredded: frozenset[str] = frozenset()

    def __call__(self, client_id: str, version: int) -> bytes:
        """The data key for ``(client_id, version)``."""
        if client_id in self.shredded:
            raise KeyShredded("this client's data key was destroyed")
        try:
            return self.keys[client_id][version]
        except KeyError:
            raise UnknownKeyVersion(f"no data key version {version} for this client") from None

    def with_key(self, client_id: str, version: int, data_key: bytes) -> DataKeySet:
        """A set with one more key; a shredded client cannot get keys again."""
        if client_id in self.shredded:
            raise ValueError("this client's data keys were destroyed")
        _require_key(data_key, "a data key")
        _require_version(version, "data key version")
        versions = {**self.keys.get(client_id, {}), version: data_key}
        return DataKeySet({**self.keys, client_id: versions}, self.shredded)

    def shred(self, client_id: str) -> DataKeySet:
        """A set in which the client's keys are destroyed."""
        remaining = {c: v for c, v in self.keys.items() if c != client_id}
        return DataKeySet(remaining, self.shredded | {client_id})

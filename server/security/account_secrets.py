"""Account secrets at rest (a TOTP seed): sealed under a key derived from the master keyring.

Client data has per-client data keys so that erasing a client can shred its key. Account
secrets need no shredding (clearing the column is enough), so they use one key per master
key version, derived with HKDF-SHA256 (info `attune-account-secret-v1`), AES-256-GCM with a
fresh 96-bit nonce, and associated data naming the account and the column: a sealed value
copied to another account or column does not open. Format:
`b"A1" | master version (4 bytes, big-endian) | nonce (12) | ciphertext+tag`.

A database dump alone reveals no seed; whoever holds the master keyring (the operator, the
running server) can open them, as it can open clinical data.
"""

from __future__ import annotations

import os
import struct
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from privacy.vault import MasterKeyring, UnknownKeyVersion

_MAGIC: Final = b"A1"
_INFO: Final = b"attune-account-secret-v1"
_NONCE: Final = 12


class SealedSecretError(ValueError):
    """A sealed account secret that does not open (wrong row, tampered, retired key)."""


def _key(ring: MasterKeyring, version: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(
        ring.key(version)
    )


def _aad(account_id: str, column: str) -> bytes:
    return f"accounts|{account_id}|{column}".encode()


def seal(ring: MasterKeyring, account_id: str, column: str, secret: bytes) -> bytes:
    """Encrypt `secret` for one account's column under the current master version."""
    version = ring.current_version
    nonce = os.urandom(_NONCE)
    sealed = AESGCM(_key(ring, version)).encrypt(nonce, secret, _aad(account_id, column))
    return _MAGIC + struct.pack(">I", version) + nonce + sealed


def open_sealed(ring: MasterKeyring, account_id: str, column: str, blob: bytes) -> bytes:
    """Decrypt a value made by `seal` for the same account and column."""
    if len(blob) < 2 + 4 + _NONCE + 16 or blob[:2] != _MAGIC:
        raise SealedSecretError("not a sealed account secret")
    (version,) = struct.unpack(">I", blob[2:6])
    nonce, sealed = blob[6 : 6 + _NONCE], blob[6 + _NONCE :]
    try:
        return AESGCM(_key(ring, version)).decrypt(nonce, sealed, _aad(account_id, column))
    except (InvalidTag, UnknownKeyVersion):
        raise SealedSecretError("the sealed account secret does not open") from None


def sealed_version(blob: bytes) -> int:
    """The master key version a sealed value needs (0 when it is not one)."""
    if len(blob) < 6 or blob[:2] != _MAGIC:
        return 0
    version: int = struct.unpack(">I", blob[2:6])[0]
    return version

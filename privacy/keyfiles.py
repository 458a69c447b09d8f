"""Key material on disk: the master keyring file and the audit signing key file.

One format per kind of key, both readable by the owner only (mode 0600, directory 0700):

- Master keyring (``load_or_create_keyring``, ``load_keyring``, ``save_keyring``): a JSON
  object ``{"current": 2, "keys": {"1": "<base64>", "2": "<base64>"}}``; each value is the
  standard base64 of exactly 32 bytes, ``current`` names one of the versions. A fresh file
  holds one random key as version 1. Rotation rewrites the file atomically (``save_keyring``).
  ``ATTUNE_MASTER_KEY`` holds a single base64 key instead (``parse_master_key``), which is
  used as version 1; rotating master keys needs the keyring file.
- Audit signing key (``load_or_create_signing_key``): the standard base64 of the raw 32-byte
  Ed25519 private key, one line.

Files are created with ``O_CREAT | O_EXCL`` and mode 0600 from the first byte, filled, then
linked into place, so no reader ever sees a half-written or world-readable key. Error
messages name the file and the problem, never the key material.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Final

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from privacy.vault import KEY_BYTES, MasterKeyring, VaultError

KEY_FILE_MODE: Final = 0o600
KEY_DIR_MODE: Final = 0o700


class KeyFileError(VaultError):
    """A key file or key string is missing, malformed or of the wrong size."""


def _decode_key(b64: str, what: str) -> bytes:
    """Decode standard base64 of exactly 32 bytes; the message never includes the input."""
    try:
        raw = base64.b64decode(b64.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise KeyFileError(f"{what} is not valid base64") from None
    if len(raw) != KEY_BYTES:
        raise KeyFileError(f"{what} must decode to exactly {KEY_BYTES} bytes, not {len(raw)}")
    return raw


def _encode_key(key: bytes) -> str:
    return base64.b64encode(key).decode("ascii")


def parse_master_key(b64: str) -> bytes:
    """Validate and decode a base64 master key (e.g. from ``ATTUNE_MASTER_KEY``)."""
    return _decode_key(b64, "the master key")


def _write_private(path: Path, content: bytes, *, replace: bool) -> bool:
    """Write a 0600 file via a temp file; return False if it existed and ``replace`` is off."""
    path.parent.mkdir(mode=KEY_DIR_MODE, parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, KEY_FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        if replace:
            os.replace(temp, path)
        else:
            try:
                os.link(temp, path)  # atomic "create if absent" with the full content
            except FileExistsError:
                return False
    finally:
        temp.unlink(missing_ok=True)
    _fsync_directory(path.parent)
    return True


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KeyFileError(f"{what} {path} does not exist") from None
    except UnicodeDecodeError:
        raise KeyFileError(f"{what} {path} is not UTF-8 text") from None
    except OSError as exc:
        raise KeyFileError(f"{what} {path} cannot be read: {exc.strerror}") from None


def _keyring_json(ring: MasterKeyring) -> bytes:
    keys = {str(v): _encode_key(ring.key(v)) for v in ring.versions}
    document = {"current": ring.current_version, "keys": keys}
    return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode("utf-8")


def load_keyring(path: Path) -> MasterKeyring:
    """Read and validate a keyring file."""
    what = "master keyring"
    try:
        document = json.loads(_read_text(path, what))
    except ValueError:
        raise KeyFileError(f"{what} {path} is not valid JSON") from None
    if not isinstance(document, dict) or set(document) != {"current", "keys"}:
        raise KeyFileError(f'{what} {path} must be an object with exactly "current" and "keys"')
    current, entries = document["current"], document["keys"]
    if not isinstance(entries, dict) or not entries:
        raise KeyFileError(f'{what} {path}: "keys" must be a non-empty object')
    keys: dict[int, bytes] = {}
    for name, b64 in entries.items():
        if not (name.isascii() and name.isdigit() and name == str(int(name)) and int(name) >= 1):
            raise KeyFileError(f"{what} {path}: key version {name!r} is not a positive integer")
        if not isinstance(b64, str):
            raise KeyFileError(f"{what} {path}: key version {name} is not a base64 string")
        keys[int(name)] = _decode_key(b64, f"{what} {path}, key version {name},")
    if isinstance(current, bool) or not isinstance(current, int) or current not in keys:
        raise KeyFileError(f'{what} {path}: "current" must name one of the key versions')
    try:
        return MasterKeyring(keys, current_version=current)
    except ValueError as exc:
        raise KeyFileError(f"{what} {path}: {exc}") from None


def save_keyring(path: Path, ring: MasterKeyring) -> None:
    """Write a keyring file atomically (temp file 0600, fsync, rename)."""
    _write_private(path, _keyring_json(ring), replace=True)


def load_or_create_keyring(path: Path) -> tuple[MasterKeyring, bool]:
    """Load the keyring file, or create one with a random version-1 key (bool: created)."""
    created = _load_or_create(
        path, lambda: _keyring_json(MasterKeyring.from_single(secrets.token_bytes(KEY_BYTES)))
    )
    return load_keyring(path), created


def _load_or_create(path: Path, make: Callable[[], bytes]) -> bool:
    """Create the file with ``make()`` unless it already exists; True if created here."""
    if path.exists():
        return False
    return _write_private(path, make(), replace=False)


def load_or_create_signing_key(path: Path) -> Ed25519PrivateKey:
    """Load the audit checkpoint signing key, or create a random one."""
    _load_or_create(path, lambda: (_encode_key(secrets.token_bytes(KEY_BYTES)) + "\n").encode())
    raw = _decode_key(_read_text(path, "signing key file"), f"signing key file {path}")
    return Ed25519PrivateKey.from_private_bytes(raw)


def load_or_create_secret(path: Path, what: str = "secret key file") -> bytes:
    """Load a random 32-byte secret (base64, mode 0600), creating it on first use."""
    _load_or_create(path, lambda: (_encode_key(secrets.token_bytes(KEY_BYTES)) + "\n").encode())
    return _decode_key(_read_text(path, what), f"{what} {path}")


def encode_public_key(public_key: Ed25519PublicKey) -> str:
    """The raw 32-byte public key in base64, for ``attune audit verify`` elsewhere."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return _encode_key(raw)


def parse_public_key(b64: str) -> Ed25519PublicKey:
    """Decode a base64 raw Ed25519 public key."""
    return Ed25519PublicKey.from_public_bytes(_decode_key(b64, "the public key"))

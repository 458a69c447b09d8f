"""Random bearer tokens: only their SHA-256 is ever stored."""

from __future__ import annotations

import hashlib
import secrets

TOKEN_BYTES = 32
MAX_TOKEN_CHARS = 64


def new_token() -> str:
    """32 random bytes as base64url without padding (43 characters)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    """Hex SHA-256 of a token: what the database keeps instead of the token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_id() -> str:
    """An unguessable identifier for rows (128 bits, hex)."""
    return secrets.token_hex(16)


def looks_like_token(value: str) -> bool:
    """Cheap shape check before touching the database (bounded length, base64url alphabet)."""
    if not 20 <= len(value) <= MAX_TOKEN_CHARS:
        return False
    return all(ch.isascii() and (ch.isalnum() or ch in "-_") for ch in value)

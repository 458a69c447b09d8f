"""Time-based one-time codes (RFC 6238, 30 s, 6 digits, SHA-1: what authenticator apps speak)
and one-time recovery codes. Pure: the time is passed in."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from typing import Final

import pyotp

STEP_SECONDS: Final = 30
DIGITS: Final = 6
# A code of the step before or after is accepted too (clock drift, slow typing).
DRIFT_STEPS: Final = 1
RECOVERY_CODE_COUNT: Final = 10
_RECOVERY_ALPHABET: Final = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i
_RECOVERY_CHARS: Final = 16  # about 78 bits each


def new_secret() -> str:
    """A fresh base32 seed of 160 bits."""
    return pyotp.random_base32(32)


def provisioning_uri(secret: str, account_name: str, issuer: str) -> str:
    """The `otpauth://` URI an authenticator app reads from the QR code."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).provisioning_uri(
        name=account_name, issuer_name=issuer
    )


def grouped(secret: str) -> str:
    """The seed in groups of four, for typing it by hand."""
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def normalize_code(raw: str) -> str:
    """Digits only (people type spaces); empty when it cannot be a code."""
    code = "".join(raw.split())
    return code if len(code) == DIGITS and code.isascii() and code.isdigit() else ""


def step_of(now: datetime) -> int:
    """The time step a moment falls in."""
    return int(now.timestamp()) // STEP_SECONDS


def matching_step(secret: str, raw_code: str, now: datetime, last_step: int | None) -> int | None:
    """The time step whose code `raw_code` is (within the drift), if that step is later than
    `last_step`: a code, once accepted, is refused for the rest of its window (no replay)."""
    code = normalize_code(raw_code)
    if not code:
        return None
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS)
    current = step_of(now)
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        if last_step is not None and step <= last_step:
            continue
        if secrets.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def new_recovery_codes() -> list[str]:
    """Ten fresh one-time codes, shown once, as `xxxx-xxxx-xxxx-xxxx`."""
    codes = []
    for _ in range(RECOVERY_CODE_COUNT):
        raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(_RECOVERY_CHARS))
        codes.append("-".join(raw[i : i + 4] for i in range(0, _RECOVERY_CHARS, 4)))
    return codes


def recovery_code_hash(raw: str) -> str:
    """What is stored for a recovery code: SHA-256 of its normalised form (78 random bits
    make a fast hash enough: there is nothing to guess from it)."""
    normalized = "".join(ch for ch in raw.lower() if ch.isalnum())
    return hashlib.sha256(f"attune-recovery-v1:{normalized}".encode()).hexdigest()


def looks_like_recovery_code(raw: str) -> bool:
    """True for input shaped like a recovery code rather than a six-digit code."""
    normalized = "".join(ch for ch in raw.lower() if ch.isalnum())
    return len(normalized) == _RECOVERY_CHARS and all(ch in _RECOVERY_ALPHABET for ch in normalized)

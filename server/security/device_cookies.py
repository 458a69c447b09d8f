"""Device cookies (OWASP "Slow Down Online Guessing Attacks with Device Cookies"): a browser
that once signed in to an account carries a signed proof of it, so it can still sign in while
strangers guessing that account's password are being slowed down.

A cookie names its account only as a keyed hash of the email, so it reveals nothing to whoever
reads it, and can be checked before we know whether the email exists (pure; the key is given).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

DEVICE_COOKIE_DAYS = 180
_VERSION = "d1"
_MAX_CHARS = 200


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def login_subject(email: str) -> str:
    """The login name as the throttles see it: trimmed and case-folded."""
    return email.strip().lower()


@dataclass(frozen=True)
class DeviceCookies:
    """Issues and verifies device cookies with one secret key."""

    key: bytes
    lifetime_seconds: int = DEVICE_COOKIE_DAYS * 86_400

    def _mac(self, label: str, text: str) -> str:
        return _b64(hmac.new(self.key, f"{label}\0{text}".encode(), hashlib.sha256).digest())

    def subject_key(self, email: str) -> str:
        """A keyed hash of the login name: the per-account throttling key, and the cookie's
        reference to its account."""
        return self._mac("subject", login_subject(email))[:32]

    def issue(self, email: str, now: float) -> str:
        """A fresh cookie value for a browser that just signed in as `email`."""
        payload = f"{_VERSION}.{self.subject_key(email)}.{secrets.token_hex(16)}.{int(now)}"
        return f"{payload}.{self._mac('device', payload)}"

    def device_id(self, value: str | None, email: str, now: float) -> str | None:
        """The cookie's device id when it is genuine, unexpired and issued for `email`."""
        if not value or len(value) > _MAX_CHARS:
            return None
        parts = value.split(".")
        if len(parts) != 5 or parts[0] != _VERSION:
            return None
        payload, signature = ".".join(parts[:4]), parts[4]
        if not hmac.compare_digest(signature.encode(), self._mac("device", payload).encode()):
            return None
        _, subject, nonce, issued = parts[:4]
        if not hmac.compare_digest(subject.encode(), self.subject_key(email).encode()):
            return None
        if not issued.isdigit() or not 0 <= now - int(issued) < self.lifetime_seconds:
            return None
        return nonce

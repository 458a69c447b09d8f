"""Failure throttling: a pure sliding-window rule plus a bounded in-memory store.

Keys are never raw addresses: callers pass `address_key()` values, a keyed hash whose salt
rotates daily, so nothing here can be turned back into a client's IP address.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import OrderedDict, deque
from dataclasses import dataclass


@dataclass(frozen=True)
class Limit:
    """At most `max_failures` within `window_seconds`."""

    max_failures: int
    window_seconds: float


def retry_after(failures: deque[float], now: float, limit: Limit) -> int | None:
    """Seconds to wait when the window is full, else None (pure; prunes old entries)."""
    while failures and failures[0] <= now - limit.window_seconds:
        failures.popleft()
    if len(failures) < limit.max_failures:
        return None
    return max(1, int(failures[0] + limit.window_seconds - now + 0.999))


class FailureThrottle:
    """Remembers recent failures per key; forgets the oldest keys beyond `max_keys`."""

    def __init__(self, limit: Limit, *, max_keys: int = 100_000) -> None:
        self.limit = limit
        self._max_keys = max_keys
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def blocked_for(self, key: str, now: float) -> int | None:
        """Seconds this key must wait before trying again, or None."""
        failures = self._failures.get(key)
        if failures is None:
            return None
        wait = retry_after(failures, now, self.limit)
        if not failures:
            del self._failures[key]
        return wait

    def record_failure(self, key: str, now: float) -> None:
        """Count one failure for this key."""
        failures = self._failures.get(key)
        if failures is None:
            failures = deque(maxlen=self.limit.max_failures)
            self._failures[key] = failures
            while len(self._failures) > self._max_keys:
                self._failures.popitem(last=False)
        else:
            self._failures.move_to_end(key)
        failures.append(now)

    def reset(self, key: str) -> None:
        """Forget a key's failures (after a successful sign-in)."""
        self._failures.pop(key, None)


class AddressHasher:
    """Keyed hash of client addresses with a salt that rotates every `rotate_seconds`."""

    def __init__(self, rotate_seconds: float = 86_400) -> None:
        self._rotate_seconds = rotate_seconds
        self._epoch = -1
        self._salt = b""

    def key(self, address: str, now: float) -> str:
        """A short pseudonymous key for `address`, stable within one salt period."""
        epoch = int(now // self._rotate_seconds)
        if epoch != self._epoch:
            self._epoch, self._salt = epoch, secrets.token_bytes(32)
        return hmac.new(self._salt, address.encode(), hashlib.sha256).hexdigest()[:32]

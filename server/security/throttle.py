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


@dataclass(frozen=True)
class Backoff:
    """After `free_failures`, each failure doubles the wait from `first_wait_seconds` up to
    `max_wait_seconds`; a key is forgotten `forget_after_seconds` after its last failure.

    The wait is always finite, so a throttled account is slowed down, never locked out.
    """

    free_failures: int
    first_wait_seconds: float
    max_wait_seconds: float
    forget_after_seconds: float = 86_400

    def wait_after(self, failures: int) -> float:
        """Seconds to wait after `failures` consecutive failures (pure)."""
        if failures < self.free_failures:
            return 0.0
        doublings = min(failures - self.free_failures, 40)
        return float(min(self.max_wait_seconds, self.first_wait_seconds * 2**doublings))


class BackoffThrottle:
    """Failure counts per key with exponential back-off; forgets the oldest keys beyond
    `max_keys` so a flood of keys cannot exhaust memory."""

    def __init__(self, backoff: Backoff, *, max_keys: int = 100_000) -> None:
        self.backoff = backoff
        self._max_keys = max_keys
        self._state: OrderedDict[str, tuple[int, float]] = OrderedDict()

    def blocked_for(self, key: str, now: float) -> int | None:
        """Whole seconds this key must still wait, or None."""
        state = self._state.get(key)
        if state is None:
            return None
        failures, last = state
        if now - last >= self.backoff.forget_after_seconds:
            del self._state[key]
            return None
        remaining = last + self.backoff.wait_after(failures) - now
        return max(1, int(remaining + 0.999)) if remaining > 0 else None

    def record_failure(self, key: str, now: float) -> None:
        """Count one failure for this key (callers check blocked_for first)."""
        failures, last = self._state.pop(key, (0, now))
        if now - last >= self.backoff.forget_after_seconds:
            failures = 0
        self._state[key] = (failures + 1, now)
        while len(self._state) > self._max_keys:
            self._state.popitem(last=False)

    def reset(self, key: str) -> None:
        """Forget a key (its holder proved who they are)."""
        self._state.pop(key, None)

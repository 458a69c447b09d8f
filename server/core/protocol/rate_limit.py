"""The per-connection rate limit (pure: the time is passed in)."""

from __future__ import annotations

from server.core.protocol.codes import RATE_LIMIT_BURST, RATE_LIMIT_PER_SECOND


class RateLimiter:
    """A token bucket per connection: `per_second` messages sustained, `burst` at once."""

    __slots__ = ("_burst", "_per_ms", "_tokens", "_updated_ms")

    def __init__(
        self, now_ms: int, *, per_second: int = RATE_LIMIT_PER_SECOND, burst: int = RATE_LIMIT_BURST
    ) -> None:
        self._per_ms = per_second / 1000
        self._burst = float(burst)
        self._tokens = float(burst)
        self._updated_ms = now_ms

    def allow(self, now_ms: int) -> bool:
        """Spend one token if there is one; False means answer `rate-limited` and drop it."""
        # Asked for every frame: plain comparisons rather than max() and min() calls
        if now_ms > self._updated_ms:
            tokens = self._tokens + (now_ms - self._updated_ms) * self._per_ms
            self._tokens = tokens if tokens < self._burst else self._burst
            self._updated_ms = now_ms
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

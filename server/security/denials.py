"""How often a refused request may write to the audit trail (pure): a flood of refusals must
not fill the trail, yet the entries that are written say how many were left out."""

from __future__ import annotations

from collections import OrderedDict


class DenialLimiter:
    """At most one entry per (actor, route, reason) per `per_key_seconds`, and at most
    `max_per_window` entries per `window_seconds` overall; refusals left out are counted and
    reported by the next entry that is written."""

    def __init__(
        self,
        *,
        per_key_seconds: float = 60.0,
        max_per_window: int = 60,
        window_seconds: float = 60.0,
        max_keys: int = 10_000,
    ) -> None:
        self._per_key_seconds = per_key_seconds
        self._max_per_window = max_per_window
        self._window_seconds = window_seconds
        self._max_keys = max_keys
        self._last: OrderedDict[tuple[str, str, str], float] = OrderedDict()
        self._window_start = float("-inf")
        self._in_window = 0
        self._suppressed = 0

    def admit(self, key: tuple[str, str, str], now: float) -> int | None:
        """None when this refusal is left out; else how many were left out before it."""
        last = self._last.get(key)
        if last is not None and now - last < self._per_key_seconds:
            self._suppressed += 1
            return None
        if now - self._window_start >= self._window_seconds:
            self._window_start, self._in_window = now, 0
        if self._in_window >= self._max_per_window:
            self._suppressed += 1
            return None
        self._in_window += 1
        self._last.pop(key, None)
        self._last[key] = now
        while len(self._last) > self._max_keys:
            self._last.popitem(last=False)
        suppressed, self._suppressed = self._suppressed, 0
        return suppressed

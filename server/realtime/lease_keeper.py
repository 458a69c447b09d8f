"""Lease renewal from a thread of its own, so a busy event loop cannot make it late.

The bus renews its room leases from the event loop (`RedisBus._renew_loop`), where a renewal
waits behind every socket frame queued before it. On a CPU-starved host that wait passed 2 s
(docs/architecture.md, "Leases and renewal"): 3 s leases lapsed, another process claimed the
rooms, and their sockets were closed mid-call, hundreds at a time. The keeper renews the same
leases (and this process's liveness key) every `lease_ms / 3` from a daemon thread with its
own blocking Redis connection: it needs the GIL for well under a millisecond per renewal, and
a thread waiting for the GIL gets it within the interpreter's switch interval (5 ms), however
much work the loop has queued.

A slow loop keeps its rooms; a stuck one does not: each tick the keeper asks the loop to note
that it turned (`call_soon_threadsafe`), and it renews nothing while the loop has not done so
for `stuck_s` (10 s), so the leases of a process whose loop is wedged lapse `lease_ms` later.
A killed process's thread dies with it, so its leases lapse as before (and the first action
for one of its rooms lifts its lease at once: its channel has no listener).

The keeper only ever *extends* leases that are still this process's (the bus's Lua
check-and-`PEXPIRE`); deciding that a lease was lost, re-claiming and writing state stay with
the loop's own renewal. The time a lease was renewed until is handed back to the loop, so the
bus's own clock (`RedisBus.owns`) keeps trusting it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from redis import Redis

log = logging.getLogger("attune.bus")

LOOP_STUCK_S = 10.0
"""An event loop that has not turned for this long is wedged, not slow: stop renewing for it."""
RENEWALS_PER_SCRIPT = 500
"""Rooms per renewal script call (all calls of one renewal go in one pipeline)."""

Renewed = Callable[[float, list[str]], None]
"""Told, on the loop, when a renewal was sent (monotonic) and which rooms it renewed."""


class LeaseKeeper:
    """Renews a process's leases from a daemon thread (see the module's docstring)."""

    def __init__(
        self,
        redis: Redis,
        script: str,
        *,
        lease_ms: int,
        state_ttl_ms: int,
        stuck_s: float = LOOP_STUCK_S,
    ) -> None:
        """`script` is the bus's renew-many Lua script (KEYS: owner, state, owner, state, …;
        ARGV: process id, lease ms, state TTL ms; one 1/0 per room)."""
        self._redis = redis
        self._script = redis.register_script(script)
        self._lease_ms = lease_ms
        self._state_ttl_ms = state_ttl_ms
        self._stuck_s = stuck_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop_seen = time.monotonic()  # written on the loop, read by the thread
        self.loop_lag_s = 0.0  # the last measured wait of a callback on the loop
        self.loop_lag_max_s = 0.0

    def start(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        process_id: str,
        alive_key: str,
        keys: Callable[[str], tuple[str, str]],
        rooms: Callable[[], Sequence[str]],
        enabled: Callable[[], bool],
        renewed: Renewed,
        lag: Callable[[float], None] = lambda _seconds: None,
    ) -> None:
        """Renew from now on. `keys` gives a room's owner and state keys; `rooms` is read
        from the thread: it must return a copy taken in one step (`list(d.copy())` of a dict
        is, under the GIL); `enabled` likewise (tests switch renewal off to play a frozen
        process); `lag` hears each measured wait of a callback on the loop, in seconds."""
        self._loop_seen = time.monotonic()

        def seen(posted: float) -> None:
            now = time.monotonic()
            self._loop_seen = now
            self.loop_lag_s = now - posted
            self.loop_lag_max_s = max(self.loop_lag_max_s, self.loop_lag_s)
            lag(self.loop_lag_s)

        def run() -> None:
            interval = self._lease_ms / 3000
            while not self._stop.wait(interval):
                posted = time.monotonic()
                try:
                    loop.call_soon_threadsafe(seen, posted)
                except RuntimeError:  # the loop is closed: nothing left to renew for
                    return
                if not enabled() or posted - self._loop_seen > self._stuck_s:
                    continue
                owned = list(rooms())
                try:
                    done = self._renew(process_id, alive_key, keys, owned)
                except Exception as exc:  # Redis away: the loop's renewal says so, once
                    log.debug("the lease keeper's renewal failed: %s", type(exc).__name__)
                    continue
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(renewed, posted, done)

        self._stop.clear()
        self._thread = threading.Thread(target=run, name="attune-lease-keeper", daemon=True)
        self._thread.start()

    def _renew(
        self,
        process_id: str,
        alive_key: str,
        keys_of: Callable[[str], tuple[str, str]],
        owned: list[str],
    ) -> list[str]:
        """One round trip: the liveness key and every lease still ours; the rooms renewed."""
        with self._redis.pipeline(transaction=False) as pipe:
            pipe.set(alive_key, "1", px=self._lease_ms)
            for at in range(0, len(owned), RENEWALS_PER_SCRIPT):
                keys: list[str] = []
                for session_id in owned[at : at + RENEWALS_PER_SCRIPT]:
                    keys += keys_of(session_id)
                self._script(
                    keys=keys,
                    args=[process_id, self._lease_ms, self._state_ttl_ms],
                    client=pipe,
                )
            answers: list[Any] = pipe.execute()
        flags = [int(ok) for answer in answers[1:] for ok in answer]
        return [session_id for session_id, ok in zip(owned, flags, strict=True) if ok]

    async def stop(self) -> None:
        """Stop renewing (a renewal under way finishes first) and close the connection."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            await asyncio.to_thread(thread.join, 10.0)
        with contextlib.suppress(Exception):
            self._redis.close()

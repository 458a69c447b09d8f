"""Rate limits on everything a client cookie writes (or exports), per client cookie.

A link is a bearer credential; whoever holds its cookie must not be able to post check-ins,
flip consents, export or erase in a loop. Each kind of write has its own sliding window per
client cookie (keyed by its access id, never the token); over it the answer is 429 with
Retry-After.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Final

from server.core.languages import N_
from server.errors import RateLimited
from server.security.throttle import FailureThrottle, Limit


class ClientWrite(StrEnum):
    """The kinds of client writes, each limited on its own."""

    CHECKIN = "checkin"
    CONSENT = "consent"
    EXPORT = "export"
    ERASE = "erase"
    CONNCHECK = "conncheck"
    SAFETY = "safety"
    GOAL = "goal"


CLIENT_WRITE_LIMITS: Final[Mapping[ClientWrite, Limit]] = MappingProxyType(
    {
        # a session has a before, a few pulses and an after; retries reuse their key
        ClientWrite.CHECKIN: Limit(20, 60),
        # three purposes, each granted or withdrawn in one step
        ClientWrite.CONSENT: Limit(10, 60),
        ClientWrite.EXPORT: Limit(3, 60),
        ClientWrite.ERASE: Limit(3, 60),
        ClientWrite.CONNCHECK: Limit(5, 60),
        # the safety check is answered once per visit; a few retries after a correction
        ClientWrite.SAFETY: Limit(10, 60),
        # adding, rewording and marking up to five shared goals in a session
        ClientWrite.GOAL: Limit(30, 60),
    }
)
"""At most `max_failures` writes of a kind per client cookie within `window_seconds`."""

CLIENT_WRITE_OPERATIONS: Final[Mapping[str, ClientWrite]] = MappingProxyType(
    {
        "clientSubmitCheckin": ClientWrite.CHECKIN,
        "clientSubmitMeasure": ClientWrite.CHECKIN,  # measures count with the check-ins
        "linkSubmitMeasure": ClientWrite.CHECKIN,
        "clientDecide": ClientWrite.CONSENT,
        "clientExport": ClientWrite.EXPORT,
        "clientErase": ClientWrite.ERASE,
        "startConnectionCheck": ClientWrite.CONNCHECK,
        "clientSubmitSafety": ClientWrite.SAFETY,
    }
)
"""The API operations that count against a client's write limits (the pages use the same)."""


class ClientWriteLimiter:
    """Counts each client cookie's writes per kind; bounded in memory like every throttle."""

    def __init__(
        self, limits: Mapping[ClientWrite, Limit] = CLIENT_WRITE_LIMITS, *, scale: float = 1.0
    ) -> None:
        self._throttles = {
            kind: FailureThrottle(
                Limit(max(1, round(limit.max_failures * scale)), limit.window_seconds)
            )
            for kind, limit in limits.items()
        }

    def spend(self, kind: ClientWrite, access_id: str, now: float) -> None:
        """Count one write, or raise RateLimited (429 with Retry-After) when over the limit."""
        throttle = self._throttles[kind]
        wait = throttle.blocked_for(access_id, now)
        if wait is not None:
            raise RateLimited(
                N_("Too many requests from this link; please wait a moment."), retry_after=wait
            )
        throttle.record_failure(access_id, now)

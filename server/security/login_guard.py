"""Who may try a password now (pure): per address, per address and account, per account with
exponential back-off, and per device cookie.

A browser holding a valid device cookie for the account is judged only by its own failures, so
an attack on an account (from anywhere, behind any proxy) never locks out the person whose
browser has signed in before. Everyone else shares the account's back-off, which only slows
guessing down: every wait ends. Unknown emails are throttled exactly like known ones.
"""

from __future__ import annotations

from dataclasses import dataclass

from server.security.device_cookies import DeviceCookies, login_subject
from server.security.throttle import Backoff, BackoffThrottle, FailureThrottle, Limit


@dataclass(frozen=True)
class Attempt:
    """The throttling keys of one sign-in attempt (never a raw address or email)."""

    account_key: str
    address_key: str
    device_id: str | None

    @property
    def pair_key(self) -> str:
        """Per address and account."""
        return f"{self.address_key}:{self.account_key}"

    @property
    def device_key(self) -> str:
        """Per device cookie (only meaningful with a device id)."""
        return f"{self.account_key}:{self.device_id}"


class LoginGuard:
    """The sign-in throttles of one process, and the device cookies that bypass the shared ones."""

    def __init__(
        self,
        cookies: DeviceCookies,
        *,
        per_pair: Limit,
        per_address: Limit,
        per_account: Backoff,
        per_device: Backoff,
    ) -> None:
        self.cookies = cookies
        self._pairs = FailureThrottle(per_pair)
        self._addresses = FailureThrottle(per_address)
        self._accounts = BackoffThrottle(per_account)
        self._devices = BackoffThrottle(per_device)
        self._codes = BackoffThrottle(per_account)

    def attempt(
        self, email: str, address_key: str, device_cookie: str | None, wall_now: float
    ) -> Attempt:
        """Classify an attempt: from a trusted device of this account, or from anywhere else."""
        subject = login_subject(email)
        return Attempt(
            account_key=self.cookies.subject_key(subject),
            address_key=address_key,
            device_id=self.cookies.device_id(device_cookie, subject, wall_now),
        )

    def blocked_for(
        self, attempt: Attempt, now: float, *, account_backoff: bool = True
    ) -> int | None:
        """Seconds to wait before this attempt may check a password, or None. Without
        `account_backoff`, only this address's own limits count: for an attempt that brings a
        second-factor code too (see `server/web/api/auth.py: sign_in`)."""
        if attempt.device_id is not None:
            return self._devices.blocked_for(attempt.device_key, now)
        waits = [
            self._pairs.blocked_for(attempt.pair_key, now),
            self._addresses.blocked_for(attempt.address_key, now),
        ]
        if account_backoff:
            waits.append(self._accounts.blocked_for(attempt.account_key, now))
        return max((wait for wait in waits if wait), default=None)

    def failed_from_address(self, attempt: Attempt, now: float) -> None:
        """Count a failed password-plus-code attempt against this address only (counting it
        against the account would let an attacker block the owner's way around the back-off)."""
        if attempt.device_id is not None:
            self._devices.record_failure(attempt.device_key, now)
            return
        self._pairs.record_failure(attempt.pair_key, now)
        self._addresses.record_failure(attempt.address_key, now)

    def code_blocked_for(self, account_id: str, now: float) -> int | None:
        """Seconds to wait before another second-factor code may be tried for the account
        (after its password): wrong codes back off exponentially, every wait ends."""
        return self._codes.blocked_for(account_id, now)

    def code_failed(self, account_id: str, now: float) -> None:
        """Count a wrong second-factor code."""
        self._codes.record_failure(account_id, now)

    def failed(self, attempt: Attempt, now: float) -> None:
        """Count a wrong password against the device, or against address, pair and account."""
        if attempt.device_id is not None:
            self._devices.record_failure(attempt.device_key, now)
            return
        self._pairs.record_failure(attempt.pair_key, now)
        # A wider per-address budget catches one place trying many accounts.
        self._addresses.record_failure(attempt.address_key, now)
        self._accounts.record_failure(attempt.account_key, now)

    def succeeded(self, attempt: Attempt, now: float) -> None:
        """The right password: forget this browser's own failures (the account's back-off
        against everyone else stays, or an attacker could clear it by watching for success)."""
        self._pairs.reset(attempt.pair_key)
        if attempt.device_id is not None:
            self._devices.reset(attempt.device_key)

"""Sign-in throttling: guessing slows down without end, and never locks the owner out."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from server.security.device_cookies import DeviceCookies
from server.security.login_guard import LoginGuard
from server.security.throttle import Backoff, BackoffThrottle, Limit

KEY = bytes(range(32))
BACKOFF = Backoff(free_failures=5, first_wait_seconds=30, max_wait_seconds=900)


def guard() -> LoginGuard:
    return LoginGuard(
        DeviceCookies(KEY),
        per_pair=Limit(5, 900),
        per_address=Limit(20, 900),
        per_account=BACKOFF,
        per_device=BACKOFF,
    )


@pytest.mark.parametrize(
    ("failures", "wait"),
    [(0, 0), (4, 0), (5, 30), (6, 60), (7, 120), (9, 480), (10, 900), (99, 900)],
)
def test_the_wait_doubles_after_the_free_failures_and_is_capped(failures: int, wait: int) -> None:
    assert BACKOFF.wait_after(failures) == wait


def test_an_attacker_who_waits_each_time_still_only_gets_a_slowing_trickle() -> None:
    throttle, now = BackoffThrottle(BACKOFF), 0.0
    waits = []
    for _ in range(10):
        wait = throttle.blocked_for("acct", now)
        if wait:
            waits.append(wait)
            now += wait
        throttle.record_failure("acct", now)
    assert waits == [30, 60, 120, 240, 480]
    assert throttle.blocked_for("acct", now) == 900
    assert throttle.blocked_for("acct", now + 900) is None  # every wait ends


def test_the_count_is_forgotten_a_day_after_the_last_failure() -> None:
    throttle = BackoffThrottle(BACKOFF)
    for _ in range(8):
        throttle.record_failure("acct", 0.0)
    throttle.record_failure("acct", 86_400.0)
    assert throttle.blocked_for("acct", 86_400.0) is None


def test_thirty_wrong_passwords_from_six_addresses_are_slowed_per_account() -> None:
    g, checked = guard(), 0
    for address in range(6):
        for _ in range(5):
            attempt = g.attempt("ana@example.org", f"addr{address}", None, 1000.0)
            if g.blocked_for(attempt, 0.0) is None:
                checked += 1
                g.failed(attempt, 0.0)
    assert checked == 5


def test_an_unknown_email_is_throttled_exactly_like_a_known_one() -> None:
    g = guard()
    for email in ("ana@example.org", "nobody@example.org"):
        for _ in range(5):
            g.failed(g.attempt(email, "a", None, 0.0), 0.0)
    waits = {
        g.blocked_for(g.attempt(e, "b", None, 0.0), 0.0)
        for e in ("ana@example.org", "nobody@example.org")
    }
    assert waits == {30}


def test_the_owners_device_cookie_signs_in_while_the_account_is_under_attack() -> None:
    g = guard()
    cookie = g.cookies.issue("Ana@Example.org", 1000.0)
    for address in range(50):
        g.failed(g.attempt("ana@example.org", f"addr{address}", None, 1000.0), 0.0)
    assert g.blocked_for(g.attempt("ana@example.org", "home", None, 1000.0), 0.0)
    owner = g.attempt("ana@example.org", "addr0", cookie, 2000.0)
    assert owner.device_id is not None
    assert g.blocked_for(owner, 0.0) is None


def test_a_device_cookie_is_throttled_on_its_own_when_it_guesses() -> None:
    g = guard()
    cookie = g.cookies.issue("ana@example.org", 0.0)
    holder = g.attempt("ana@example.org", "a", cookie, 0.0)
    for _ in range(5):
        g.failed(holder, 0.0)
    assert g.blocked_for(holder, 0.0) == 30
    stranger = g.attempt("ana@example.org", "b", None, 0.0)
    assert g.blocked_for(stranger, 0.0) is None  # its failures did not touch the account


@pytest.mark.parametrize(
    "tamper",
    [
        lambda c: c[:-2] + ("AA" if not c.endswith("AA") else "BB"),
        lambda c: c.replace("d1.", "d2.", 1),
        lambda c: "",
        lambda c: c + ".x",
        lambda c: "x" * 5000,
    ],
)
def test_a_forged_or_altered_device_cookie_is_not_trusted(tamper: Callable[[str], str]) -> None:
    cookies = DeviceCookies(KEY)
    value = cookies.issue("ana@example.org", 0.0)
    assert cookies.device_id(value, "ana@example.org", 0.0)
    assert cookies.device_id(tamper(value), "ana@example.org", 0.0) is None


def test_a_device_cookie_of_one_account_does_not_vouch_for_another() -> None:
    cookies = DeviceCookies(KEY)
    value = cookies.issue("mallory@example.org", 0.0)
    assert cookies.device_id(value, "ana@example.org", 0.0) is None
    assert DeviceCookies(bytes(32)).device_id(value, "mallory@example.org", 0.0) is None


def test_a_device_cookie_expires_after_its_lifetime() -> None:
    cookies = DeviceCookies(KEY)
    value = cookies.issue("ana@example.org", 0.0)
    assert cookies.device_id(value, "ana@example.org", cookies.lifetime_seconds - 1.0)
    assert cookies.device_id(value, "ana@example.org", float(cookies.lifetime_seconds)) is None


def test_a_device_cookie_does_not_reveal_the_email() -> None:
    value = DeviceCookies(KEY).issue("ana@example.org", 0.0)
    assert "ana" not in value and "example" not in value

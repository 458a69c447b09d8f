"""A flood of refusals cannot fill the audit trail, and what was left out is counted."""

from __future__ import annotations

from server.security.denials import DenialLimiter

KEY = ("anonymous", "/api/v1/clients/{client_id}", "not_found")


def test_the_same_refusal_is_written_once_a_minute_and_the_rest_counted() -> None:
    limiter = DenialLimiter()
    assert limiter.admit(KEY, 0.0) == 0
    assert [limiter.admit(KEY, t) for t in (1.0, 30.0, 59.9)] == [None, None, None]
    assert limiter.admit(KEY, 60.0) == 3


def test_a_flood_of_distinct_refusals_is_capped_per_minute_overall() -> None:
    limiter = DenialLimiter(max_per_window=10)
    written = [limiter.admit(("anonymous", f"/r{n}", "csrf"), 0.5) for n in range(1000)]
    assert sum(1 for w in written if w is not None) == 10
    assert limiter.admit(("anonymous", "/fresh", "csrf"), 61.0) == 990


def test_different_actors_routes_and_reasons_are_separate_refusals() -> None:
    limiter = DenialLimiter()
    keys = [KEY, ("account:a", KEY[1], KEY[2]), (KEY[0], "/x", KEY[2]), (KEY[0], KEY[1], "csrf")]
    assert [limiter.admit(k, 0.0) for k in keys] == [0, 0, 0, 0]


def test_remembered_keys_are_bounded() -> None:
    limiter = DenialLimiter(max_keys=5, max_per_window=10_000)
    for n in range(100):
        limiter.admit(("anonymous", f"/r{n}", "x"), 0.0)
    assert limiter.admit(("anonymous", "/r0", "x"), 1.0) == 0  # forgotten, so written again

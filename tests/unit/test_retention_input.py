"""How people's input becomes a retention policy, and when the purge job first runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from privacy.retention import Action, Category, Policy
from server.errors import InvalidInput
from server.jobs.purge import STARTUP_DELAY_SECONDS, first_delay
from server.services.retention import BatchSizer, clean_reason, parse_client_id, parse_policy

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
HOUR = 3600.0


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param(("cue", "7", None, None), Policy(Category.CUE, 7, Action.DELETE), id="days"),
        pytest.param(
            ("session_meta", 3653, None, None),
            Policy(Category.SESSION_META, 3653, Action.ANONYMIZE),
            id="action defaults to the category's default",
        ),
        pytest.param(
            ("account", " 10 ", "delete", None),
            Policy(Category.ACCOUNT, 10, Action.DELETE),
            id="spaces around days",
        ),
        pytest.param(
            ("audit", "30", None, "  court   order 17 "),
            Policy(Category.AUDIT, 30, Action.DELETE, "court order 17"),
            id="override reason, whitespace collapsed",
        ),
    ],
)
def test_parse_policy_accepts(
    args: tuple[str, str | int, str | None, str | None], expected: Policy
) -> None:
    assert parse_policy(*args) == expected


@pytest.mark.parametrize(
    ("args", "says"),
    [
        pytest.param(("notes", "7", None, None), "category: one of", id="unknown category"),
        pytest.param(
            ("cue", "7", "shred", None), "action: delete or anonymize", id="unknown action"
        ),
        pytest.param(("cue", "-1", None, None), "whole number", id="negative"),
        pytest.param(("cue", "1e3", None, None), "whole number", id="not an integer"),
        pytest.param(("cue", "9999999", None, None), "at most 36500", id="absurdly long"),
        pytest.param(("cue", "40000", None, None), "between 0 and 36500", id="over 100 years"),
        pytest.param(("consent", "30", None, None), "at least 2192 days", id="below floor"),
        pytest.param(("consent", "30", None, "   "), "at least 2192 days", id="blank override"),
        pytest.param(("checkin", "30", "anonymize", None), "allowed: delete", id="not allowed"),
        pytest.param(("audit", "30", None, "x" * 501), "under 500", id="reason too long"),
    ],
)
def test_parse_policy_refuses_with_a_message_naming_the_problem(
    args: tuple[str, str, str | None, str | None], says: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_policy(*args)

    assert says in refused.value.message


@pytest.mark.parametrize(
    ("raw", "ok"),
    [
        pytest.param("0123456789abcdef0123456789abcdef", True, id="as written"),
        pytest.param(" 0123456789abcdef0123456789abcdef ", True, id="pasted with spaces"),
        pytest.param("0123456789ABCDEF0123456789ABCDEF", False, id="upper case"),
        pytest.param("client:0123456789abcdef0123456789abcdef", False, id="audit form"),
        pytest.param("", False, id="empty"),
    ],
)
def test_parse_client_id(raw: str, ok: bool) -> None:
    if ok:
        assert parse_client_id(raw) == raw.strip()
    else:
        with pytest.raises(InvalidInput):
            parse_client_id(raw)


@pytest.mark.parametrize(
    ("raw", "cleaned"),
    [
        pytest.param("litigation  hold\n2026", "litigation hold 2026", id="one line"),
        pytest.param("   ", None, id="blank"),
        pytest.param(None, None, id="missing"),
    ],
)
def test_clean_reason(raw: str | None, cleaned: str | None) -> None:
    if cleaned is None:
        with pytest.raises(InvalidInput):
            clean_reason(raw)
    else:
        assert clean_reason(raw) == cleaned


@pytest.mark.parametrize(
    ("last_started", "delay"),
    [
        pytest.param(None, HOUR, id="fresh install: one interval after start"),
        pytest.param(NOW - timedelta(minutes=20), 40 * 60.0, id="one interval after the last run"),
        pytest.param(
            NOW - timedelta(days=3), STARTUP_DELAY_SECONDS, id="overdue: soon after start"
        ),
        pytest.param(NOW - timedelta(minutes=59, seconds=50), STARTUP_DELAY_SECONDS, id="due now"),
        pytest.param(NOW + timedelta(days=1), HOUR, id="clock stepped back: at most an interval"),
    ],
)
def test_first_delay(last_started: datetime | None, delay: float) -> None:
    assert first_delay(last_started, NOW, HOUR) == pytest.approx(delay)


@pytest.mark.parametrize(
    ("size", "rows", "seconds", "next_size"),
    [
        pytest.param(500, 500, 0.02, 1000, id="quick batch: double"),
        pytest.param(4000, 4000, 0.02, 5000, id="never above the largest"),
        pytest.param(500, 500, 0.07, 500, id="within budget: keep"),
        pytest.param(500, 500, 0.30, 250, id="over budget: halve"),
        pytest.param(150, 150, 0.30, 100, id="never below the smallest"),
        pytest.param(500, 120, 0.001, 500, id="a short last batch says nothing"),
    ],
)
def test_batch_sizes_follow_the_write_budget(
    size: int, rows: int, seconds: float, next_size: int
) -> None:
    sizer = BatchSizer(size=size, smallest=100, largest=5000, budget_seconds=0.1)

    sizer.after(rows, seconds)

    assert sizer.size == next_size

"""Which reminders are due when, how retries back off, and what subjects say (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from server.core.email_schedule import (
    EmailKind,
    OutboxStatus,
    UpcomingSession,
    after_temporary_failure,
    due_reminders,
    reminder_key,
    retry_delay,
    subject_line,
)

START = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)  # a Wednesday
BOOKED = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
OFFSETS = (1440, 10)


def _session(announced: datetime = BOOKED, starts: datetime = START) -> UpcomingSession:
    return UpcomingSession("s1", "c1", starts, announced)


def _offsets_due(now: datetime, **kw: datetime) -> list[int]:
    return [d.offset_minutes for d in due_reminders([_session(**kw)], OFFSETS, frozenset(), now)]


@pytest.mark.parametrize(
    ("before_start", "expected"),
    [
        pytest.param(timedelta(days=3), [], id="three-days-before-nothing"),
        pytest.param(timedelta(hours=24, seconds=1), [], id="a-second-before-the-day-before"),
        pytest.param(timedelta(hours=24), [1440], id="exactly-a-day-before"),
        pytest.param(
            timedelta(hours=5), [1440], id="late-in-the-day-before-still-the-day-reminder"
        ),
        pytest.param(timedelta(minutes=10), [10], id="ten-minutes-before"),
        pytest.param(timedelta(minutes=3), [10], id="both-passed-only-the-closest-goes"),
        pytest.param(timedelta(0), [], id="at-the-start-nothing"),
        pytest.param(-timedelta(minutes=5), [], id="after-the-start-nothing"),
    ],
)
def test_a_reminder_is_due_from_its_offset_until_the_session_starts(
    before_start: timedelta, expected: list[int]
) -> None:
    assert _offsets_due(START - before_start) == expected


def test_a_session_booked_inside_a_reminder_window_gets_no_reminder_for_it() -> None:
    booked_late = START - timedelta(hours=2)
    assert _offsets_due(START - timedelta(hours=1), announced=booked_late) == []
    assert _offsets_due(START - timedelta(minutes=10), announced=booked_late) == [10]


def test_a_reminder_already_queued_is_not_queued_again() -> None:
    now = START - timedelta(hours=23)
    key = reminder_key("s1", 1440, START)
    assert due_reminders([_session()], OFFSETS, frozenset({key}), now) == []


def test_a_rescheduled_session_gets_its_reminders_again_for_the_new_time() -> None:
    moved = START + timedelta(days=1)
    old_key = reminder_key("s1", 1440, START)
    due = due_reminders(
        [_session(starts=moved)], OFFSETS, frozenset({old_key}), moved - timedelta(hours=20)
    )
    assert [d.dedupe_key for d in due] == [reminder_key("s1", 1440, moved)]


def test_no_offsets_means_no_reminders() -> None:
    assert due_reminders([_session()], (), frozenset(), START - timedelta(minutes=5)) == []


@pytest.mark.parametrize(
    ("attempts", "seconds"),
    [(1, 60), (2, 120), (3, 240), (8, 7680), (9, 15360), (20, 21600), (1000, 21600)],
)
def test_retries_back_off_exponentially_up_to_a_cap(attempts: int, seconds: int) -> None:
    assert retry_delay(attempts, 60, 21600) == timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("attempts", "status"),
    [(1, OutboxStatus.RETRYING), (7, OutboxStatus.RETRYING), (8, OutboxStatus.FAILED)],
)
def test_a_message_is_given_up_after_its_last_attempt(attempts: int, status: OutboxStatus) -> None:
    assert after_temporary_failure(attempts, 8) is status


@pytest.mark.parametrize(
    ("kind", "subject"),
    [
        (EmailKind.INVITATION, "Your appointment on Wednesday 25 November"),
        (EmailKind.REMINDER, "Reminder: your appointment on Wednesday 25 November"),
        (EmailKind.RESCHEDULE, "Your appointment has moved to Wednesday 25 November"),
        (EmailKind.CANCELLATION, "Your appointment on Wednesday 25 November is cancelled"),
    ],
)
def test_subjects_name_only_the_day(kind: EmailKind, subject: str) -> None:
    assert subject_line(kind, START) == subject

"""When a client is asked an outcome measure (pure): the therapist's plan and the sessions.

A plan names measures and one frequency. A measure is due in a session when it has not been
answered in that session already and:

- ``every-session``: always;
- ``every-2nd-session``: it was not answered in the session before (so sessions 1, 3, 5 …
  when the client answers each time it is asked);
- ``monthly``: it was last answered in a session that started 28 days or more before this one,
  and not answered by an emailed link (below) in the 28 days before this session.

Sessions are the client's sessions that were not cancelled, by their scheduled start.

Between sessions (``between_sessions_due``): a ``monthly`` plan is about time, not sessions, so
when a month passes without a session the client is sent a link to answer by email. At ``now``
the plan's measures are due by link when all of these hold:

- the plan is ``monthly`` (the other frequencies are counted in sessions: the visit page asks);
- the client's course has begun: a session of theirs started before ``now`` (the answers are
  filed under the latest one);
- no session of theirs starts within ``NEXT_SESSION_WINDOW`` (7 days) before or after ``now``:
  the visit page of that session asked, or will ask, soon enough;
- the measure was not answered (on a visit page or by link) in the last 28 days;
- no link was sent to the client in the last 28 days (one email a month at most).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final


class Frequency(StrEnum):
    """How often the measures of a plan are asked."""

    EVERY_SESSION = "every-session"
    EVERY_2ND_SESSION = "every-2nd-session"
    MONTHLY = "monthly"


FREQUENCY_LABELS: Final[Mapping[Frequency, str]] = {
    Frequency.EVERY_SESSION: "Every session",
    Frequency.EVERY_2ND_SESSION: "Every 2nd session",
    Frequency.MONTHLY: "Monthly (28 days or more apart)",
}
MONTH: Final = timedelta(days=28)
NEXT_SESSION_WINDOW: Final = timedelta(days=7)
"""A session this close (before or after) asks on its visit page: no emailed link."""
LINK_LIFETIME: Final = timedelta(days=7)
"""How long an emailed measures link works (it also stops after its first opening)."""
MAX_PLAN_MEASURES: Final = 5


class PlanError(ValueError):
    """A plan that cannot be saved; the message says why, for the therapist."""


@dataclass(frozen=True)
class Plan:
    """Which measures a client is asked, and how often (no measures: none are asked)."""

    measures: tuple[str, ...]
    frequency: Frequency


NO_PLAN: Final = Plan((), Frequency.EVERY_SESSION)


def parse_plan(measures: Sequence[str], frequency: str, known: Sequence[str]) -> Plan:
    """A plan from a form: known measure ids (each once, in the known order) and a frequency."""
    chosen = set(measures)
    unknown = sorted(chosen - set(known))
    if unknown:
        raise PlanError(f"Unknown measure: {', '.join(unknown)}.")
    if len(chosen) > MAX_PLAN_MEASURES:
        raise PlanError(f"Choose at most {MAX_PLAN_MEASURES} measures.")
    try:
        parsed = Frequency(frequency)
    except ValueError:
        raise PlanError("Choose how often: every session, every 2nd session or monthly.") from None
    return Plan(tuple(m for m in known if m in chosen), parsed)


def due_measures(
    plan: Plan,
    session_start: datetime,
    session_starts: Sequence[datetime],
    answered_in: Mapping[str, Sequence[datetime]],
    answered_by_link: Mapping[str, Sequence[datetime]] | None = None,
) -> tuple[str, ...]:
    """The plan's measures due in the session starting at ``session_start``.

    ``session_starts`` are the client's (not cancelled) session starts; ``answered_in`` gives,
    per measure, the starts of the sessions in which it was answered; ``answered_by_link``,
    per measure, when it was answered from an emailed link (counted by ``monthly`` only).
    """
    earlier = sorted(s for s in session_starts if s < session_start)
    previous = earlier[-1] if earlier else None
    due: list[str] = []
    for measure_id in plan.measures:
        answered = answered_in.get(measure_id, ())
        if session_start in answered:
            continue
        before = [s for s in answered if s < session_start]
        if plan.frequency is Frequency.EVERY_2ND_SESSION and previous in before:
            continue
        if plan.frequency is Frequency.MONTHLY:
            if before and session_start - max(before) < MONTH:
                continue
            by_link = (answered_by_link or {}).get(measure_id, ())
            if any(timedelta(0) <= session_start - at < MONTH for at in by_link):
                continue
        due.append(measure_id)
    return tuple(due)


def between_sessions_due(
    plan: Plan,
    now: datetime,
    session_starts: Sequence[datetime],
    last_answered: Mapping[str, datetime],
    last_link_sent: datetime | None,
) -> tuple[str, ...]:
    """The plan's measures to send by an emailed link at ``now`` (module docstring's rule).

    ``session_starts`` are the client's (not cancelled) session starts, past and future;
    ``last_answered`` is, per measure, when it was last answered (visit page or link);
    ``last_link_sent`` is when the client was last sent a link, if ever.
    """
    if plan.frequency is not Frequency.MONTHLY or not plan.measures:
        return ()
    if not any(s <= now for s in session_starts):
        return ()
    if any(abs(s - now) < NEXT_SESSION_WINDOW for s in session_starts):
        return ()
    if last_link_sent is not None and now - last_link_sent < MONTH:
        return ()
    return tuple(
        m for m in plan.measures if m not in last_answered or now - last_answered[m] >= MONTH
    )


def session_number(session_start: datetime, session_starts: Sequence[datetime]) -> int:
    """The session's number in the client's course (1 for the first)."""
    return max(1, sum(1 for s in session_starts if s <= session_start))

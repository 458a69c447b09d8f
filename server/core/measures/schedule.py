"""When a client is asked an outcome measure (pure): the therapist's plan and the sessions.

A plan names measures and one frequency. A measure is due in a session when it has not been
answered in that session already and:

- ``every-session``: always;
- ``every-2nd-session``: it was not answered in the session before (so sessions 1, 3, 5 …
  when the client answers each time it is asked);
- ``monthly``: it was last answered in a session that started 28 days or more before this one.

Sessions are the client's sessions that were not cancelled, by their scheduled start.
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
) -> tuple[str, ...]:
    """The plan's measures due in the session starting at ``session_start``.

    ``session_starts`` are the client's (not cancelled) session starts; ``answered_in`` gives,
    per measure, the starts of the sessions in which it was answered.
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
        if plan.frequency is Frequency.MONTHLY and before and session_start - max(before) < MONTH:
            continue
        due.append(measure_id)
    return tuple(due)


def session_number(session_start: datetime, session_starts: Sequence[datetime]) -> int:
    """The session's number in the client's course (1 for the first)."""
    return max(1, sum(1 for s in session_starts if s <= session_start))

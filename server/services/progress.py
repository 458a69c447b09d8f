"""A client's progress as the charts show it: outcome measures, goals and alliance answers.

Two readers: the therapist's client page (severity bands, the reliable-change band, flags with
reasons) and the client's own progress page (plain words, no severity labels). Both read the
same stored data; neither writes. The caller audits the therapist's read.

Outcome-measure totals come from `Measures.history` (the measures' own table); the
not-on-track flags are the measures service's (`Measures.flags`), shown with its plan form.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from server.core.goals import Goal
from server.services.checkins import CheckinResult
from server.services.goals import Goals
from server.services.measures import Measures


@dataclass(frozen=True, slots=True)
class MeasurePoint:
    """One outcome-measure total: all the charts need of a `MeasureResult`."""

    at: datetime
    measure_id: str
    total: int


async def measure_points(measures: Measures, client_id: str) -> list[MeasurePoint]:
    """Every complete outcome-measure total of a client, oldest first (from the measures'
    own history; incomplete forms have no total and are left out)."""
    return [
        MeasurePoint(result.submitted_at, result.measure.id, result.score.total)
        for result in await measures.history(client_id)
        if result.score.total is not None
    ]


@dataclass(frozen=True)
class GoalProgress:
    """A goal with its progress answers, oldest first."""

    goal: Goal
    points: tuple[tuple[datetime, int], ...]

    @property
    def latest(self) -> int | None:
        """The most recent answer, if any."""
        return self.points[-1][1] if self.points else None


async def goal_progress(goals: Goals, client_id: str) -> list[GoalProgress]:
    """Each goal (active first, then reached, then set aside) with its progress answers."""
    progress = await goals.progress(client_id)
    order = {"active": 0, "reached": 1, "dropped": 2}
    listed = sorted(await goals.goals(client_id), key=lambda g: (order[g.status.value], g.position))
    return [GoalProgress(g, tuple(progress.get(g.id, ()))) for g in listed]


def alliance_points(results: Sequence[CheckinResult]) -> list[tuple[datetime, int, int]]:
    """(date, alliance total, its maximum) of each stored after-session check-in."""
    return [
        (r.submitted_at, r.scores.alliance_total, r.scores.alliance_max or 40)
        for r in results
        if r.instrument.kind == "after" and r.scores.alliance_total is not None
    ]

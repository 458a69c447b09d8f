"""A client's progress as the charts show it: outcome measures, goals and alliance answers.

Two readers: the therapist's client page (severity bands, the reliable-change band, flags with
reasons) and the client's own progress page (plain words, no severity labels). Both read the
same stored data; neither writes. The caller audits the therapist's read.

PROVISIONAL (issue #18, part 2 is another branch): outcome-measure totals are read here from
the check-in table (kind ``measure``, as `Measures.submit` stores them today). When
`Measures.history(client_id)` and its flags function land, `measure_points` and `flags` should
call them instead; the charts only need (date, measure id, total).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from privacy.vault import FieldContext
from server.core.goals import Goal
from server.core.measures import (
    Flag,
    Measure,
    MeasureAnswerError,
    ScorePoint,
    not_on_track,
    score_measure,
    validate_measure_answers,
)
from server.db import checkins as checkin_rows
from server.db.engine import Database
from server.services.checkins import CheckinResult
from server.services.goals import Goals
from server.vault_store import ClientVault


@dataclass(frozen=True, slots=True)
class MeasurePoint:
    """One outcome-measure total: all the charts need of a `MeasureResult`."""

    at: datetime
    measure_id: str
    total: int


async def measure_points(
    db: Database, vault: ClientVault, measures: Mapping[str, Measure], client_id: str
) -> list[MeasurePoint]:
    """Every complete outcome-measure total of a client, oldest first (provisional, above)."""
    points: list[MeasurePoint] = []
    async with db.read() as conn:
        for row in await checkin_rows.for_client(conn, client_id):
            measure = measures.get(row.instrument_id)
            if measure is None:
                continue
            payload = await vault.decrypt_json(
                conn,
                FieldContext("checkin_responses", row.id, "payload", client_id),
                row.payload_ciphertext,
            )
            try:
                scored = score_measure(
                    measure, validate_measure_answers(measure, payload["answers"])
                )
            except (MeasureAnswerError, KeyError, ValueError):
                continue
            if scored.total is not None:
                points.append(MeasurePoint(row.submitted_at, measure.id, scored.total))
    return points


def flags(measures: Mapping[str, Measure], points: Sequence[MeasurePoint]) -> list[Flag]:
    """Not-on-track flags with reasons, per measure, computed with the pure core (each answer
    counted as the next session: provisional until the measures branch numbers sessions)."""
    found: list[Flag] = []
    for measure_id, measure in measures.items():
        totals = [p.total for p in points if p.measure_id == measure_id]
        scored = [ScorePoint(number, total) for number, total in enumerate(totals, start=1)]
        found.extend(not_on_track(measure, scored))
    return found


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

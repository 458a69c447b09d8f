"""Scoring of outcome measures (pure): totals, severity, reliable and clinically significant
change (Jacobson & Truax 1991, as NHS Talking Therapies applies it), and not-on-track flags.

Lower scores are better on both PHQ-9 and GAD-7: an improvement is a fall.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal, TypeAlias

from server.core.checkins.alerts import Alert
from server.core.measures.questionnaires import Measure, MeasureResponse

Direction: TypeAlias = Literal["improved", "worsened", "no-reliable-change"]
FlagReason: TypeAlias = Literal["reliably-worse", "not-improved-by-review"]
Z_95: Final = 1.96
DEFAULT_REVIEW_BY_SESSION: Final = 6


@dataclass(frozen=True)
class MeasureScore:
    """One completed measure, scored. ``total`` is None unless every item was answered."""

    measure_id: str
    total: int | None
    severity: str | None
    answered: int
    skipped: tuple[str, ...]
    safety_concern: bool


@dataclass(frozen=True)
class Change:
    """Change from a first score to a later one."""

    first: int
    latest: int
    direction: Direction
    recovered: bool
    reliable_recovery: bool

    @property
    def delta(self) -> int:
        """Later minus first: negative is an improvement."""
        return self.latest - self.first


@dataclass(frozen=True)
class ScorePoint:
    """A total at a session (numbered from 1 in the client's course)."""

    session_number: int
    total: int


@dataclass(frozen=True)
class Flag:
    """Why a client is not on track, in words for the therapist."""

    reason: FlagReason
    text: str


def score_measure(measure: Measure, response: MeasureResponse) -> MeasureScore:
    """Total and severity band; a skipped item leaves the total unknown (no prorating).

    The safety item counts whenever it was answered above its lowest option, whether or not
    the rest of the form was completed.
    """
    if (response.measure_id, response.measure_version) != (measure.id, measure.version):
        raise ValueError("the response belongs to another measure or version")
    scores: list[int] = []
    skipped: list[str] = []
    safety_concern = False
    for item in measure.items:
        code = response.code(item.link_id)
        if code is None:
            skipped.append(item.link_id)
            continue
        value = item.option(code).score
        scores.append(value)
        safety_concern = safety_concern or (item.safety and value > 0)
    total = sum(scores) if not skipped else None
    return MeasureScore(
        measure_id=measure.id,
        total=total,
        severity=None if total is None else severity(measure, total),
        answered=len(scores),
        skipped=tuple(skipped),
        safety_concern=safety_concern,
    )


def severity(measure: Measure, total: int) -> str:
    """The severity band's label for a total."""
    for band in measure.bands:
        if band.lower <= total <= band.upper:
            return band.label
    raise ValueError(f"{total} is outside 0..{measure.max_total}")


def reliable_change_threshold(sd: float, reliability: float, z: float = Z_95) -> float:
    """Jacobson–Truax: the smallest difference that is reliable, ``z · SD · √(2(1 − r))``.

    ``sd`` is the standard deviation of the baseline scores and ``reliability`` the
    test–retest reliability; a measure's ``reliable_change_at_least`` is this rounded up.
    """
    if sd <= 0 or not 0 <= reliability < 1 or z <= 0:
        raise ValueError("need sd > 0, 0 <= reliability < 1 and z > 0")
    return z * sd * math.sqrt(2 * (1 - reliability))


def reliable_change_index(first: float, latest: float, sd: float, reliability: float) -> float:
    """Jacobson–Truax RCI: ``(latest − first) / S_diff``; beyond ±1.96 is reliable."""
    return (latest - first) / reliable_change_threshold(sd, reliability, z=1.0)


def change(measure: Measure, first: int, latest: int) -> Change:
    """Reliable change (by the measure's threshold) and recovery across the caseness cut-off.

    Recovery, as NHS Talking Therapies counts it: at or above caseness first, below it later.
    Reliable recovery is recovery together with reliable improvement.
    """
    for total in (first, latest):
        if not 0 <= total <= measure.max_total:
            raise ValueError(f"{total} is outside 0..{measure.max_total}")
    delta = latest - first
    direction: Direction = "no-reliable-change"
    if delta <= -measure.reliable_change_at_least:
        direction = "improved"
    elif delta >= measure.reliable_change_at_least:
        direction = "worsened"
    recovered = first >= measure.caseness_at_least > latest
    return Change(first, latest, direction, recovered, recovered and direction == "improved")


def not_on_track(
    measure: Measure,
    points: Sequence[ScorePoint],
    review_by_session: int = DEFAULT_REVIEW_BY_SESSION,
) -> tuple[Flag, ...]:
    """Flags with reasons: reliably worse than the first score, at any time; or, from the
    review session on, not reliably better than a first score that was at or above caseness
    (a first score below caseness has little room to improve reliably, so only worsening
    counts there). ``points`` are in session order.
    """
    if review_by_session < 2:
        raise ValueError("review_by_session must be 2 or later")
    if len(points) < 2:
        return ()
    first, latest = points[0], points[-1]
    moved = change(measure, first.total, latest.total)
    flags: list[Flag] = []
    if moved.direction == "worsened":
        flags.append(
            Flag(
                "reliably-worse",
                f"{measure.title} rose from {first.total} to {latest.total} "
                f"(reliable change is {measure.reliable_change_at_least} points or more).",
            )
        )
    elif (
        latest.session_number >= review_by_session
        and moved.direction != "improved"
        and first.total >= measure.caseness_at_least
    ):
        flags.append(
            Flag(
                "not-improved-by-review",
                f"By session {latest.session_number}, {measure.title} has not fallen reliably "
                f"({first.total} to {latest.total}; reliable change is "
                f"{measure.reliable_change_at_least} points or more).",
            )
        )
    return tuple(flags)


def safety_alert(measure: Measure, result: MeasureScore) -> Alert | None:
    """The therapist's safety alert when the safety item was answered above its lowest option.

    The reason names the question, never the answer given; the move is to check in with the
    client about safety now.
    """
    item = measure.safety_item
    if item is None or not result.safety_concern:
        return None
    return Alert(
        code="measure-safety-item",
        category="safety",
        severity="attention",
        reason=safety_reason(measure.title),
        repair=SAFETY_REPAIR,
        items=(item.link_id,),
    )


SAFETY_REPAIR: Final = (
    "Ask about safety today, before anything else, and follow your risk protocol."
)


def safety_reason(measure_title: str) -> str:
    """The safety alert's reason: names the question, never the answer given."""
    return (
        f"On the {measure_title}, the client reported thoughts of being better off dead or "
        "of hurting themselves on at least several days."
    )

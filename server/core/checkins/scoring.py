"""Scores of one check-in response (pure): totals only from complete answers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from server.core.checkins.instruments import (
    REPAIR_ANSWERS,
    RUPTURE_LEVELS,
    Instrument,
    InstrumentKind,
    Item,
    RepairAnswer,
    Response,
    RuptureLevel,
    ScoreRole,
)


@dataclass(frozen=True)
class Scores:
    """What one response says, item by item and in totals.

    A total is None when any of its items was skipped (or not shown); ``skipped`` lists the
    items the client skipped, so the therapist can see why.
    """

    instrument_id: str
    instrument_version: str
    kind: InstrumentKind
    values: Mapping[str, int | str] = field(default_factory=dict)
    skipped: tuple[str, ...] = ()
    alliance_total: int | None = None
    alliance_max: int | None = None
    technology: int | None = None
    wellbeing_total: int | None = None
    wellbeing_max: int | None = None
    pulse: int | None = None
    rupture: RuptureLevel | None = None
    repair: RepairAnswer | None = None
    free_text: str | None = None


def score(instrument: Instrument, response: Response) -> Scores:
    """Score a validated response to this instrument."""
    if (response.instrument_id, response.instrument_version) != (
        instrument.id,
        instrument.version,
    ):
        raise ValueError(
            f"response is for {response.instrument_id} {response.instrument_version}, "
            f"not {instrument.id} {instrument.version}"
        )
    values = {a.link_id: a.value for a in response.answers if a.value is not None}
    alliance_total, alliance_max = _total(instrument, values, "alliance")
    wellbeing_total, wellbeing_max = _total(instrument, values, "wellbeing")
    rupture = _single(instrument, values, "rupture")
    repair = _single(instrument, values, "rupture-repair")
    free_text = [values.get(i.link_id) for i in instrument.items_with_role("free-text")]
    return Scores(
        instrument_id=instrument.id,
        instrument_version=instrument.version,
        kind=instrument.kind,
        values=values,
        skipped=response.skipped,
        alliance_total=alliance_total,
        alliance_max=alliance_max,
        technology=_single_int(instrument, values, "technology"),
        wellbeing_total=wellbeing_total,
        wellbeing_max=wellbeing_max,
        pulse=_single_int(instrument, values, "pulse"),
        rupture=next((level for level in RUPTURE_LEVELS if level == rupture), None),
        repair=next((answer for answer in REPAIR_ANSWERS if answer == repair), None),
        free_text="\n\n".join(str(text) for text in free_text if text) or None,
    )


def _total(
    instrument: Instrument, values: Mapping[str, int | str], role: ScoreRole
) -> tuple[int | None, int | None]:
    items = instrument.items_with_role(role)
    if not items:
        return None, None
    maximum = sum(_max(item) for item in items)
    answers = [values.get(item.link_id) for item in items]
    if all(isinstance(value, int) for value in answers):
        return sum(value for value in answers if isinstance(value, int)), maximum
    return None, maximum


def _max(item: Item) -> int:
    assert item.max_value is not None, "integer items always carry a range"
    return item.max_value


def _single(
    instrument: Instrument, values: Mapping[str, int | str], role: ScoreRole
) -> int | str | None:
    items = instrument.items_with_role(role)
    return values.get(items[0].link_id) if items else None


def _single_int(
    instrument: Instrument, values: Mapping[str, int | str], role: ScoreRole
) -> int | None:
    value = _single(instrument, values, role)
    return value if isinstance(value, int) else None


def alliance_values(instrument: Instrument, scores: Scores) -> Sequence[tuple[Item, int]]:
    """The answered alliance items with their values, in form order."""
    return [
        (item, value)
        for item in instrument.items_with_role("alliance")
        if isinstance(value := scores.values.get(item.link_id), int)
    ]

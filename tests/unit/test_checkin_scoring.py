"""Scoring a check-in: totals only from complete answers, technology kept apart."""

from __future__ import annotations

from typing import Any

import pytest

from server.core.checkins import load_builtin_instruments, score, validate_answers

BUILTINS = load_builtin_instruments()
AFTER, BEFORE, PULSE = BUILTINS["after"], BUILTINS["before"], BUILTINS["pulse"]
ALLIANCE_9s = {"bond": 9, "goals": 9, "approach": 9, "overall": 9}


def after_scores(**raw: Any) -> Any:
    return score(AFTER, validate_answers(AFTER, {k.replace("_", "-"): v for k, v in raw.items()}))


def test_alliance_total_is_bond_goals_approach_overall_without_technology() -> None:
    scores = after_scores(**ALLIANCE_9s, technology=2)
    assert scores.alliance_total == 36
    assert scores.alliance_max == 40
    assert scores.technology == 2


@pytest.mark.parametrize("skipped", ["bond", "goals", "approach", "overall"])
def test_alliance_total_needs_all_four_items(skipped: str) -> None:
    scores = after_scores(**{**ALLIANCE_9s, skipped: None})
    assert scores.alliance_total is None
    assert skipped in scores.skipped
    assert skipped not in scores.values


def test_skipping_technology_leaves_the_alliance_total_intact() -> None:
    scores = after_scores(**ALLIANCE_9s)
    assert scores.alliance_total == 36
    assert scores.technology is None
    assert "technology" in scores.skipped


@pytest.mark.parametrize(
    ("raw", "rupture", "repair"),
    [
        ({"rupture": "no"}, "no", None),
        ({"rupture": "a-little", "rupture_talked_through": "partly"}, "a-little", "partly"),
        ({"rupture": "quite-a-bit", "rupture_talked_through": "yes"}, "quite-a-bit", "yes"),
        ({}, None, None),
    ],
)
def test_rupture_level_and_repair_answer(
    raw: dict[str, str], rupture: str | None, repair: str | None
) -> None:
    scores = after_scores(**raw)
    assert (scores.rupture, scores.repair) == (rupture, repair)


def test_free_text_is_carried_for_the_therapist() -> None:
    assert after_scores(note="Less homework please").free_text == "Less homework please"
    assert after_scores().free_text is None


@pytest.mark.parametrize(
    ("raw", "total"),
    [
        ({"me-personally": 5, "close-relationships": 6, "work-school-social": 7, "overall": 6}, 24),
        ({"me-personally": 5, "close-relationships": 6, "overall": 6}, None),
    ],
)
def test_wellbeing_total_of_the_before_form(raw: dict[str, int], total: int | None) -> None:
    scores = score(BEFORE, validate_answers(BEFORE, raw))
    assert (scores.kind, scores.wellbeing_total, scores.wellbeing_max) == ("before", total, 40)
    assert scores.alliance_total is None


def test_pulse_value() -> None:
    scores = score(PULSE, validate_answers(PULSE, {"pulse": 4}))
    assert (scores.kind, scores.pulse) == ("pulse", 4)


def test_a_response_to_another_instrument_is_refused() -> None:
    with pytest.raises(ValueError, match="not after"):
        score(AFTER, validate_answers(PULSE, {"pulse": 4}))

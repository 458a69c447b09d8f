"""A cue engine carried to another process mid-session goes on exactly as if never moved."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import pytest

from server.core.cues import CueConfig, CueEngine, FeatureFrame, Prompt
from server.core.cues.synthetic import SCENARIOS, scenario_frames

MINUTE = 60_000


def _feed(engine: CueEngine, frames: Iterable[FeatureFrame]) -> list[Prompt]:
    return [prompt for frame in frames for prompt in engine.feed(frame)]


def _through_redis(engine: CueEngine) -> dict[str, Any]:
    """What travels: JSON text, as the room's state in Redis holds it."""
    carried: dict[str, Any] = json.loads(json.dumps(engine.carried_state()))
    return carried


def _taken_over(carried: dict[str, Any], config: CueConfig | None = None) -> CueEngine:
    engine = CueEngine(config)
    engine.restore_carried(carried)
    return engine


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_an_engine_taken_over_mid_session_raises_the_same_prompts_as_one_never_moved(
    scenario: str,
) -> None:
    frames = list(scenario_frames(scenario, seed=3))
    # mid-incident: the incidents start at 8 min (12 for withdrawal and slow responses)
    split = (
        next(i for i, f in enumerate(frames) if f.t_ms >= 13 * MINUTE)
        if len(frames) > 2 * 13 * 60
        else len(frames) * 3 // 4
    )
    never_moved, before = CueEngine(), CueEngine()
    expected = _feed(never_moved, frames)
    raised_before = _feed(before, frames[:split])
    moved = _taken_over(_through_redis(before))
    raised_after = _feed(moved, frames[split:])
    assert raised_before + raised_after == expected
    assert moved.carried_state() == never_moved.carried_state()


def test_a_withdrawal_under_way_is_seen_on_time_after_a_takeover_not_late_as_from_scratch() -> None:
    frames = list(scenario_frames("withdrawal", seed=0))
    (on_time,) = [p.t_ms for p in _feed(CueEngine(), frames) if p.category.value == "withdrawal"]
    split = next(i for i, f in enumerate(frames) if f.t_ms >= 13 * MINUTE)  # under way
    before = CueEngine()
    assert not _feed(before, frames[:split])  # calibrated on 12 calm minutes, nothing yet
    assert on_time > frames[split].t_ms
    carried = _through_redis(before)
    moved = _taken_over(carried)
    assert [(p.category.value, p.t_ms) for p in _feed(moved, frames[split:])] == [
        ("withdrawal", on_time)
    ]
    # With the prompt policy alone the new owner starts its windows and baselines afresh:
    # the unanswered openings before the takeover are forgotten, so the prompt comes late.
    policy_only = _taken_over({"seq": carried["seq"], "policy": carried["policy"]})
    late = [p.t_ms for p in _feed(policy_only, frames[split:])]
    assert late == [] or min(late) > on_time


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in _leaves(item)]
    if isinstance(value, list):
        return [leaf for item in value for leaf in _leaves(item)]
    return [value]


def test_what_travels_is_a_few_kilobytes_of_numbers_and_no_words() -> None:
    engine = CueEngine()
    _feed(engine, scenario_frames("balanced", minutes=30, seed=1))
    windows = engine.carried_state()["windows"]
    assert len(json.dumps(windows)) < 8_000  # measured: ~3.3 KB after 30 minutes
    texts = [leaf for leaf in _leaves(windows) if isinstance(leaf, str)]
    assert texts == []  # times, counts, sums and levels only


@pytest.mark.parametrize(
    "broken",
    [
        {"v": 2},
        {"v": 1, "_now": "soon"},
        {"v": 1},
        "not a mapping",
    ],
    ids=["another-version", "a-wrong-type", "fields-missing", "not-a-mapping"],
)
def test_carried_state_that_does_not_fit_is_refused_with_a_value_error(broken: object) -> None:
    carried = _through_redis(CueEngine())
    with pytest.raises(ValueError):
        _taken_over({**carried, "windows": broken})


def test_a_deque_longer_than_its_cap_is_refused() -> None:
    engine = CueEngine()
    _feed(engine, scenario_frames("slow_responses", minutes=14, seed=0))
    carried = _through_redis(engine)
    samples = carried["windows"]["_latency"]["_recent"]["_samples"]
    carried["windows"]["_latency"]["_recent"]["_samples"] = samples + [[1, 1]] * 200
    with pytest.raises(ValueError):
        _taken_over(carried)


def test_a_state_written_before_windows_travelled_restores_the_policy_alone() -> None:
    engine = CueEngine()
    _feed(engine, scenario_frames("high_lag", minutes=10, seed=0))
    moved = _taken_over(engine.policy_state())
    assert moved.policy_state() == engine.policy_state()

"""Whole synthetic sessions: each scenario raises exactly its prompts, and state stays flat."""

from __future__ import annotations

import dataclasses
from collections import deque
from itertools import islice
from random import Random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.core.cues import Category, CueConfig, CueEngine, FeatureFrame, NetStats
from server.core.cues.synthetic import SCENARIOS, scenario_frames
from server.core.protocol import SessionRole

EXPECTED: dict[str, set[Category]] = {
    "balanced": set(),
    "withdrawal": {Category.WITHDRAWAL},
    "monologue": {Category.TALK_IMBALANCE},
    "slow_responses": {Category.RESPONSE_LATENCY},
    "high_lag": {Category.LAG, Category.TALK_OVER},
    "severe_lag": {Category.LAG_SEVERE},
    "frozen_video": {Category.VIDEO},
    "still_silent": {Category.STILL_SILENT},
    "out_of_frame": {Category.OUT_OF_FRAME},
}
DIAGNOSTIC_WORDS = ("rupture", "diagnos", "is withdrawing", "disengaged", "you must", "you should")


def test_every_scenario_has_an_expectation() -> None:
    assert set(EXPECTED) == set(SCENARIOS)


@pytest.mark.parametrize(("scenario", "expected"), EXPECTED.items(), ids=list(EXPECTED))
@pytest.mark.parametrize("seed", [0, 1])
def test_a_scenario_raises_exactly_its_prompt_categories(
    scenario: str, expected: set[Category], seed: int
) -> None:
    engine = CueEngine()
    prompts = [p for frame in scenario_frames(scenario, seed=seed) for p in engine.feed(frame)]
    assert {p.category for p in prompts} == expected
    for prompt in prompts:  # suggestions, never diagnoses
        assert "Consider" in prompt.text
        assert not any(word in prompt.text.lower() for word in DIAGNOSTIC_WORDS)
        assert prompt.reasons


def test_scenarios_are_deterministic_for_a_seed() -> None:
    first = list(scenario_frames("high_lag", minutes=3, seed=7))
    again = list(scenario_frames("high_lag", minutes=3, seed=7))
    other = list(scenario_frames("high_lag", minutes=3, seed=8))
    assert first == again
    assert first != other


def test_scenario_frames_interleave_both_roles_in_time_order() -> None:
    frames = list(scenario_frames("balanced", minutes=2))
    assert [f.t_ms for f in frames] == sorted(f.t_ms for f in frames)
    assert {f.role for f in frames[:2]} == {SessionRole.THERAPIST, SessionRole.CLIENT}
    # one frame per role per second; the client's windows end 370 ms after the therapist's
    assert sum(f.role is SessionRole.THERAPIST for f in frames) == 120
    assert sum(f.role is SessionRole.CLIENT for f in frames) == 119


def test_scaled_thresholds_raise_the_same_prompts_in_a_fraction_of_the_time() -> None:
    engine = CueEngine(CueConfig().scaled(0.1))
    frames = scenario_frames("out_of_frame", minutes=9)
    prompts = [p for frame in frames for p in engine.feed(frame)]
    # out of frame from 8:00: the 10 s rule at 0.1 scale fires after 1 s; rate limit is 1 min
    assert [p.category for p in prompts] == [Category.OUT_OF_FRAME]
    assert 8 * 60_000 < prompts[0].t_ms <= 8 * 60_000 + 3_000


def held_items(obj: object, seen: set[int] | None = None) -> int:
    """Every item in every container reachable from the engine's slots (configs excluded)."""
    seen = set() if seen is None else seen
    if id(obj) in seen or isinstance(obj, int | float | str | bool | None | CueConfig):
        return 0
    seen.add(id(obj))
    if isinstance(obj, list | tuple | deque | set | frozenset):
        return len(obj) + sum(held_items(item, seen) for item in obj)
    if isinstance(obj, dict):
        return len(obj) + sum(held_items(k, seen) + held_items(v, seen) for k, v in obj.items())
    if type(obj).__module__.startswith("server.core.cues"):
        names = {name for cls in type(obj).__mro__ for name in getattr(cls, "__slots__", ())}
        return sum(held_items(getattr(obj, name, None), seen) for name in names)
    return 0


def test_engine_state_stays_flat_over_a_three_hour_session() -> None:
    engine = CueEngine()
    sizes: dict[int, tuple[int, int]] = {}
    for frame in scenario_frames("balanced", minutes=180, seed=1):
        engine.feed(frame)
        if frame.role is SessionRole.CLIENT and frame.t_ms // 1000 % 600 == 0:  # every 10 min
            sizes[frame.t_ms // 60_000] = (engine.state_size(), held_items(engine))
    at_30_min, later = sizes[30], [size for minute, size in sizes.items() if minute >= 30]
    assert max(minute for minute in sizes) == 170
    for buffered, held in later:
        assert abs(buffered - at_30_min[0]) <= 4  # a few turns or gaps more or less
        assert abs(held - at_30_min[1]) <= 16


def random_stream(rng: Random, length: int) -> list[FeatureFrame]:
    """Valid frames with arbitrary speech, gaps, absences, repeats and bad connections."""
    frames = []
    clock = {SessionRole.THERAPIST: 1000, SessionRole.CLIENT: 1000}
    for _ in range(length):
        role = rng.choice(list(SessionRole))
        window = rng.choice([500, 1000, 2000])
        clock[role] += rng.choice([-1000, 0, window, window, window, 7000])
        t = max(clock[role], window)
        cuts = sorted(set(rng.randint(t - window, t) for _ in range(rng.randint(0, 8))))
        net = rng.choice(
            [
                None,
                NetStats(rtt_ms=rng.choice([None, 40.0, 400.0, 1200.0])),
                NetStats(frames_decoded=rng.choice([0, 25]), frames_frozen=rng.choice([0, 1])),
            ]
        )
        frames.append(
            FeatureFrame(
                role=role,
                t_ms=t,
                window_ms=window,
                voiced=tuple(zip(cuts[0::2], cuts[1::2], strict=False)),
                level_dbfs=-40.0,
                motion=rng.choice([0.0, 0.1, 1.0]),
                frame_present=rng.choice([None, True, False]),
                frozen=rng.random() < 0.2,
                net=net,
            )
        )
    return frames


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32), st.integers(1, 400))
def test_any_valid_stream_is_absorbed_with_bounded_state(seed: int, length: int) -> None:
    engine = CueEngine(CueConfig().scaled(0.05))
    for frame in random_stream(Random(seed), length):
        for prompt in engine.feed(frame):
            assert prompt.t_ms >= frame.t_ms
        assert engine.state_size() <= 600


def test_a_stale_or_repeated_frame_is_ignored_and_counted() -> None:
    engine = CueEngine()
    frames = list(islice(scenario_frames("balanced", minutes=1), 10))
    for frame in frames:
        engine.feed(frame)
    engine.feed(frames[4])
    assert engine.stale_frames == 1


@pytest.mark.parametrize("off_by", ["client", "both"])
def test_video_switched_off_by_choice_never_reads_as_frozen_video(off_by: str) -> None:
    """Audio only (both browsers say `video_off`) or the client's camera turned off (the client
    says it; the therapist's browser then decodes nothing): no video prompt."""
    engine = CueEngine()
    prompts = []
    for frame in scenario_frames("frozen_video", seed=0):
        if off_by == "both" or frame.role is SessionRole.CLIENT:
            frame = dataclasses.replace(frame, video_off=True)
        prompts += engine.feed(frame)
    assert Category.VIDEO not in {p.category for p in prompts}


def test_video_that_returns_after_audio_only_is_a_fresh_start_not_degraded() -> None:
    """After audio only, the first seconds of returning video (few frames) raise nothing."""
    engine = CueEngine()
    frames = list(scenario_frames("balanced", minutes=3, seed=0))
    switched = []
    for frame in frames:
        net = frame.net
        if 60_000 <= frame.t_ms < 120_000:  # a minute of audio only
            frame = dataclasses.replace(frame, video_off=True)
        elif 120_000 <= frame.t_ms < 132_000 and net is not None:  # 12 s of video starting up
            frame = dataclasses.replace(frame, net=dataclasses.replace(net, frames_decoded=2))
        switched.append(frame)
    prompts = [p for frame in switched for p in engine.feed(frame)]
    assert Category.VIDEO not in {p.category for p in prompts}

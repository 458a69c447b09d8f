"""The prompt policy: one per category per 10 min, snooze, mute, and the therapist's feedback."""

from __future__ import annotations

import json
from dataclasses import replace
from itertools import pairwise

import pytest

from server.core.cues import (
    Category,
    CueEngine,
    CueError,
    FeatureFrame,
    FeedbackRecord,
    FeedbackTally,
    Prompt,
    UnknownPromptError,
    Verdict,
)
from server.core.cues.policy import PromptPolicy
from server.core.cues.prompts import Severity
from server.core.cues.synthetic import frames_from_speech

MIN = 60_000


def client_out_of_frame(minutes: int) -> list[FeatureFrame]:
    """A session in which the client stays out of frame the whole time: a steady trigger."""
    frames = frames_from_speech([(1000, 2000)], [], minutes * MIN)
    return [
        replace(frame, frame_present=False) if frame.role.value == "client" else frame
        for frame in frames
    ]


def feed_all(engine: CueEngine, frames: list[FeatureFrame]) -> list[Prompt]:
    return [prompt for frame in frames for prompt in engine.feed(frame)]


def prompt(prompt_id: str, category: Category, t_ms: int) -> Prompt:
    return Prompt(prompt_id, category, t_ms, "Consider ...", (), Severity.NOTICE)


def test_at_most_one_prompt_per_category_per_ten_minutes() -> None:
    prompts = feed_all(CueEngine(), client_out_of_frame(25))
    times = [p.t_ms for p in prompts]
    assert [p.category for p in prompts] == [Category.OUT_OF_FRAME] * 3
    assert times[0] < 15_000  # 10 s out of frame
    assert [later - earlier for earlier, later in pairwise(times)] == [
        10 * MIN,
        10 * MIN,
    ]


def test_prompt_ids_are_a_deterministic_sequence_per_engine() -> None:
    frames = client_out_of_frame(25)
    first = [p.id for p in feed_all(CueEngine(prompt_id_prefix="s7-"), frames)]
    again = [p.id for p in feed_all(CueEngine(prompt_id_prefix="s7-"), frames)]
    assert first == again == ["s7-1", "s7-2", "s7-3"]


def test_a_snoozed_category_waits_until_the_snooze_ends() -> None:
    engine = CueEngine()
    engine.snooze(Category.OUT_OF_FRAME, until_ms=5 * MIN)
    prompts = feed_all(engine, client_out_of_frame(8))
    assert [p.t_ms for p in prompts] == [5 * MIN]


def test_snoozing_one_category_leaves_the_others_alone() -> None:
    engine = CueEngine()
    engine.snooze(Category.VIDEO, until_ms=60 * MIN)
    assert [p.category for p in feed_all(engine, client_out_of_frame(1))] == [Category.OUT_OF_FRAME]


def test_a_muted_category_stays_silent_until_unmuted() -> None:
    engine = CueEngine()
    engine.mute(Category.OUT_OF_FRAME)
    frames = client_out_of_frame(8)
    assert feed_all(engine, frames[: len(frames) // 2]) == []
    engine.unmute(Category.OUT_OF_FRAME)
    assert [p.category for p in feed_all(engine, frames[len(frames) // 2 :])] == [
        Category.OUT_OF_FRAME
    ]


def test_feedback_is_recorded_and_returned_for_storage() -> None:
    engine = CueEngine()
    shown = feed_all(engine, client_out_of_frame(1))[0]
    record = engine.feedback(shown.id, "helpful", t_ms=70_000)
    assert record == FeedbackRecord(shown.id, Category.OUT_OF_FRAME, Verdict.HELPFUL, 70_000)
    assert engine.feedback_tally(Category.OUT_OF_FRAME) == FeedbackTally(helpful=1, not_now=0)


def test_a_second_verdict_on_the_same_prompt_replaces_the_first() -> None:
    policy = PromptPolicy(rate_limit_ms=10 * MIN)
    policy.record(prompt("p1", Category.WITHDRAWAL, 1000))
    policy.feedback("p1", Verdict.HELPFUL, 2000)
    policy.feedback("p1", "not-now", 3000)
    assert policy.tally(Category.WITHDRAWAL) == FeedbackTally(helpful=0, not_now=1)


@pytest.mark.parametrize(
    ("prompt_id", "verdict", "error"),
    [
        pytest.param("p9", "helpful", UnknownPromptError, id="unknown-prompt"),
        pytest.param("p1", "dismiss", CueError, id="unknown-verdict"),
    ],
)
def test_bad_feedback_is_refused(prompt_id: str, verdict: str, error: type[Exception]) -> None:
    policy = PromptPolicy(rate_limit_ms=10 * MIN)
    policy.record(prompt("p1", Category.WITHDRAWAL, 1000))
    with pytest.raises(error):
        policy.feedback(prompt_id, verdict, 2000)


def test_feedback_memory_is_capped_so_state_stays_flat() -> None:
    policy = PromptPolicy(rate_limit_ms=1)
    for i in range(200):
        policy.record(prompt(f"p{i}", Category.VIDEO, i * 10))
    assert policy.state_size() == 64
    with pytest.raises(UnknownPromptError):
        policy.feedback("p0", "helpful", 5000)
    assert policy.feedback("p199", "helpful", 5000).category is Category.VIDEO


@pytest.mark.parametrize(
    ("events", "open_at_12_min"),
    [
        pytest.param([], True, id="nothing-happened"),
        pytest.param([("record", 2 * MIN)], True, id="rate-limit-over-after-10-min"),
        pytest.param([("record", 5 * MIN)], False, id="rate-limited-until-15-min"),
        pytest.param([("snooze", 13 * MIN)], False, id="snoozed-past-12-min"),
        pytest.param([("snooze", 13 * MIN), ("snooze", 11 * MIN)], True, id="snooze-shortened"),
        pytest.param([("mute", 0)], False, id="muted"),
        pytest.param([("mute", 0), ("unmute", 0)], True, id="unmuted"),
        pytest.param([("cover", 5 * MIN)], False, id="covered-by-a-related-prompt"),
    ],
)
def test_policy_gate(events: list[tuple[str, int]], open_at_12_min: bool) -> None:
    policy = PromptPolicy(rate_limit_ms=10 * MIN)
    for action, t_ms in events:
        if action == "record":
            policy.record(prompt("p1", Category.LAG, t_ms))
        elif action == "snooze":
            policy.snooze(Category.LAG, t_ms)
        elif action == "cover":
            policy.cover(Category.LAG, t_ms)
        else:
            getattr(policy, action)(Category.LAG)
    assert policy.is_open(Category.LAG, 12 * MIN) is open_at_12_min


# --- what survives a takeover by another process --------------------------------------


def test_a_policy_rebuilt_from_its_state_keeps_cooldowns_snoozes_mutes_and_feedback() -> None:
    policy = PromptPolicy(10 * MIN)
    policy.record(prompt("p1", Category.OUT_OF_FRAME, 5_000))
    policy.record(prompt("p2", Category.LAG, 6_000))
    policy.snooze(Category.VIDEO, 30 * MIN)
    policy.mute(Category.TALK_OVER)
    policy.feedback("p2", Verdict.NOT_NOW, 7_000)

    state = json.loads(json.dumps(policy.to_state()))
    rebuilt = PromptPolicy.from_state(state, 10 * MIN)
    assert rebuilt.to_state() == policy.to_state()
    assert rebuilt.open_at == policy.open_at
    assert not rebuilt.is_open(Category.OUT_OF_FRAME, 5_000 + 10 * MIN - 1)
    assert rebuilt.is_open(Category.OUT_OF_FRAME, 5_000 + 10 * MIN)
    assert rebuilt.is_muted(Category.TALK_OVER)
    assert rebuilt.tally(Category.LAG) == FeedbackTally(helpful=0, not_now=1)
    assert rebuilt.category_of("p1") is Category.OUT_OF_FRAME
    record = rebuilt.feedback("p1", Verdict.HELPFUL, 8_000)
    assert record.category is Category.OUT_OF_FRAME


def test_an_engine_restored_from_its_policy_state_keeps_counting_and_holds_the_cooldown() -> None:
    frames = client_out_of_frame(12)
    first = CueEngine()
    early = [f for f in frames if f.t_ms <= 60_000]
    raised = feed_all(first, early)
    assert [p.category for p in raised] == [Category.OUT_OF_FRAME]
    second = CueEngine()
    second.restore_policy(first.policy_state())
    rest = [f for f in frames if f.t_ms > 60_000]
    later = feed_all(second, rest)
    unrestored = feed_all(CueEngine(), rest)
    assert later and unrestored[0].t_ms - raised[0].t_ms < 10 * MIN  # what the state prevents
    assert unrestored[0].id == "p1"
    # the fresh engine sees the client out of frame again, but the cooldown still holds: the
    # next prompt comes 10 min after the first, and its id follows the first one's
    assert [p.t_ms - raised[0].t_ms >= 10 * MIN for p in later] == [True] * len(later)
    assert [p.id for p in later] == [f"p{n}" for n in range(2, 2 + len(later))]
    assert second.category_of(raised[0].id) is Category.OUT_OF_FRAME


@pytest.mark.parametrize("state", [{}, {"last": {"nope": 1}}, {"last": [], "snoozed": {}}])
def test_a_state_that_is_not_a_policy_is_refused(state: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        PromptPolicy.from_state(state, 10 * MIN)

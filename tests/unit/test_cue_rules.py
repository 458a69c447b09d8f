"""Each live cue rule of DESIGN §7 in isolation, through the engine, on scripted sessions."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import pytest

from server.core.cues import Category, CueConfig, CueEngine, FeatureFrame, NetStats, Prompt
from server.core.cues.synthetic import frames_from_speech
from server.core.protocol import SessionRole

MIN = 60_000
THERAPIST, CLIENT = SessionRole.THERAPIST, SessionRole.CLIENT
Turn = tuple[SessionRole, int, int]  # who, silence before (ms), speech length (ms)
Speech = tuple[list[tuple[int, int]], list[tuple[int, int]]]

BALANCED: list[Turn] = [(THERAPIST, 500, 6000), (CLIENT, 500, 6000)]
# the therapist's opening meets silence, they try again, the client answers briefly
UNANSWERED: list[Turn] = [(THERAPIST, 500, 5000), (THERAPIST, 4000, 3000), (CLIENT, 500, 3000)]


def script(*parts: tuple[int, list[Turn]], start_ms: int = 1000) -> Speech:
    """Speech per role: each part repeats its cycle of turns for the given milliseconds."""
    speech: Speech = ([], [])
    t = start_ms
    for length_ms, cycle in parts:
        end = t + length_ms
        while t < end:
            for role, silence, length in cycle:
                t += silence
                speech[role is CLIENT].append((t, t + length))
                t += length
    return speech


def session(
    speech: Speech, duration_ms: int, adjust: Callable[[FeatureFrame], FeatureFrame] | None = None
) -> list[FeatureFrame]:
    return frames_from_speech(speech[0], speech[1], duration_ms, adjust=adjust)


def run(frames: Sequence[FeatureFrame], config: CueConfig | None = None) -> list[Prompt]:
    engine = CueEngine(config)
    return [prompt for frame in frames for prompt in engine.feed(frame)]


def categories(prompts: Sequence[Prompt]) -> set[Category]:
    return {prompt.category for prompt in prompts}


def first(prompts: Sequence[Prompt], category: Category) -> Prompt:
    return next(prompt for prompt in prompts if prompt.category is category)


def when(
    start_ms: int, end_ms: int, role: SessionRole, **changes: object
) -> Callable[[FeatureFrame], FeatureFrame]:
    """An adjustment: `role`'s frames ending in [start, end) get `changes`."""

    def adjust(frame: FeatureFrame) -> FeatureFrame:
        if frame.role is role and start_ms <= frame.t_ms < end_ms:
            return replace(frame, **changes)  # type: ignore[arg-type]
        return frame

    return adjust


def rtt(rtt_ms: float) -> Callable[[FeatureFrame], FeatureFrame]:
    """Every frame reports this round-trip time."""
    net = NetStats(rtt_ms=rtt_ms, jitter_ms=4.0, loss=0.0, frames_decoded=25, frames_frozen=0)
    return lambda frame: replace(frame, net=net)


def both(*adjustments: Callable[[FeatureFrame], FeatureFrame]) -> Callable[..., FeatureFrame]:
    def adjust(frame: FeatureFrame) -> FeatureFrame:
        for one in adjustments:
            frame = one(frame)
        return frame

    return adjust


# -- withdrawal --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("client_motion", "expected"),
    [
        pytest.param(0.3, {Category.WITHDRAWAL}, id="silences-plus-still-client-prompt"),
        pytest.param(1.0, set(), id="silences-alone-do-not-prompt"),
    ],
)
def test_withdrawal_by_silence_needs_a_second_signal(
    client_motion: float, expected: set[Category]
) -> None:
    speech = script((10 * MIN, BALANCED), (3 * MIN, UNANSWERED))
    frames = session(speech, 13 * MIN, when(10 * MIN, 13 * MIN, CLIENT, motion=client_motion))
    assert categories(run(frames)) == expected


def test_withdrawal_prompt_names_its_signals_and_comes_after_the_third_silence() -> None:
    speech = script((10 * MIN, BALANCED), (3 * MIN, UNANSWERED))
    # the client has been moving less for two minutes (recent motion is a 2-min average)
    frames = session(speech, 13 * MIN, when(8 * MIN, 13 * MIN, CLIENT, motion=0.3))
    prompt = first(run(frames), Category.WITHDRAWAL)
    signals = {reason.signal: reason for reason in prompt.reasons}
    assert signals["therapist_reentries_after_silence"].value == 3
    assert signals["therapist_reentries_after_silence"].threshold == 0  # calm calibration
    assert signals["client_motion_vs_baseline"].value < 0.6
    assert 10 * MIN + 30_000 < prompt.t_ms < 10 * MIN + 60_000  # three 15-s cycles
    assert "Consider checking in" in prompt.text


@pytest.mark.parametrize(
    ("calibration", "expected"),
    [
        pytest.param(BALANCED, {Category.WITHDRAWAL}, id="more-silences-than-usual-prompt"),
        pytest.param(UNANSWERED, set(), id="silences-are-this-pairs-usual-style"),
    ],
)
def test_withdrawal_by_silence_must_exceed_the_pairs_own_baseline(
    calibration: list[Turn], expected: set[Category]
) -> None:
    config = CueConfig(withdrawal_baseline_prior=1000.0)  # no prompts during calibration
    speech = script((10 * MIN, calibration), (4 * MIN, UNANSWERED))
    frames = session(speech, 14 * MIN, lambda frame: replace(frame, motion=0.3))
    assert categories(run(frames, config)) == expected


@pytest.mark.parametrize(
    ("replies_ms", "expected"),
    [
        pytest.param([600] * 4, {Category.WITHDRAWAL}, id="four-minimal-replies-in-a-row"),
        pytest.param([600] * 3, set(), id="three-are-not-enough"),
        pytest.param([600, 600, 600, 2000, 600, 600, 600], set(), id="a-full-reply-resets"),
        pytest.param([900] * 4, {Category.WITHDRAWAL}, id="just-under-a-second"),
        pytest.param([1100] * 4, set(), id="just-over-a-second"),
    ],
)
def test_minimal_replies(replies_ms: list[int], expected: set[Category]) -> None:
    cycle: list[Turn] = []
    for reply in replies_ms:
        cycle += [(THERAPIST, 500, 5000), (CLIENT, 500, reply)]
    cycle += [(THERAPIST, 500, 5000)]  # the therapist takes the floor: the last turn ends
    speech = script((1, cycle))
    prompts = run(session(speech, 120_000))
    assert categories(prompts) == expected
    if expected:
        assert first(prompts, Category.WITHDRAWAL).reasons[-1].signal == (
            "minimal_client_turns_in_a_row"
        )


# -- talk-time imbalance ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("therapist_ms", "client_ms", "minutes", "expected"),
    [
        pytest.param(8000, 2000, 12, {Category.TALK_IMBALANCE}, id="client-20-percent"),
        pytest.param(8000, 2000, 10, set(), id="not-yet-sustained-10-min"),
        pytest.param(7000, 3000, 12, set(), id="client-30-percent"),
    ],
)
def test_talk_imbalance_over_a_rolling_window_sustained(
    therapist_ms: int, client_ms: int, minutes: int, expected: set[Category]
) -> None:
    cycle: list[Turn] = [(THERAPIST, 500, therapist_ms), (CLIENT, 500, client_ms)]
    frames = session(script((minutes * MIN, cycle)), minutes * MIN)
    prompts = run(frames)
    assert categories(prompts) == expected
    if expected:
        assert first(prompts, Category.TALK_IMBALANCE).t_ms >= 10 * MIN


# -- response latency ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("later_gap_ms", "expected"),
    [
        pytest.param(2500, {Category.RESPONSE_LATENCY}, id="two-seconds-slower"),
        pytest.param(1400, set(), id="under-a-second-slower"),
    ],
)
def test_response_latency_against_the_pairs_baseline_plus_one_second(
    later_gap_ms: int, expected: set[Category]
) -> None:
    later: list[Turn] = [(THERAPIST, 500, 6000), (CLIENT, later_gap_ms, 6000)]
    frames = session(script((10 * MIN, BALANCED), (3 * MIN, later)), 13 * MIN)
    prompts = run(frames)
    assert categories(prompts) == expected
    if expected:
        reasons = first(prompts, Category.RESPONSE_LATENCY).reasons
        assert reasons[0].value == later_gap_ms
        assert reasons[1].value == 550  # the calibration median, read from its 100 ms bin


def test_slow_answers_from_the_start_are_the_baseline_not_a_cue() -> None:
    slow: list[Turn] = [(THERAPIST, 500, 6000), (CLIENT, 2500, 6000)]
    assert run(session(script((14 * MIN, slow)), 14 * MIN)) == []


# -- lag, and the timing rules it switches off --------------------------------------------


@pytest.mark.parametrize(
    ("rtt_ms", "expected"),
    [
        pytest.param(200.0, set(), id="100-ms-each-way-is-fine"),
        pytest.param(400.0, {Category.LAG}, id="200-ms-suggest-hand-offs"),
        pytest.param(900.0, {Category.LAG_SEVERE}, id="450-ms-warn-and-pause-timing"),
    ],
)
def test_lag_bands(rtt_ms: float, expected: set[Category]) -> None:
    frames = session(script((2 * MIN, BALANCED)), 2 * MIN, rtt(rtt_ms))
    prompts = run(frames)
    assert categories(prompts) == expected
    for prompt in prompts:
        assert prompt.t_ms >= 10_000  # the band must hold for lag_sustain_ms


def test_severe_lag_switches_timing_rules_off_while_it_lasts() -> None:
    engine = CueEngine()
    severe = NetStats(rtt_ms=900.0)
    frames = session(script((3 * MIN, BALANCED)), 3 * MIN, rtt(80.0))
    activity = []
    for frame in frames:
        if MIN <= frame.t_ms < 90_000:
            frame = replace(frame, net=severe)
        engine.feed(frame)
        activity.append((frame.t_ms, engine.timing_rules_active))
    assert all(active for t, active in activity if 2000 <= t < MIN)  # once both are here
    assert not any(active for t, active in activity if MIN + 1000 <= t < 90_000 + 10_000)
    # back on once the delay has stayed normal for lag_recover_ms (10 s)
    assert all(active for t, active in activity if t >= 90_000 + 15_000)


@pytest.mark.parametrize(
    ("rtt_ms", "expected"),
    [
        pytest.param(80.0, {Category.WITHDRAWAL}, id="normal-link-withdrawal-prompts"),
        pytest.param(900.0, {Category.LAG_SEVERE}, id="severe-lag-only-the-lag-warning"),
    ],
)
def test_severe_lag_silences_the_withdrawal_by_silence_rule(
    rtt_ms: float, expected: set[Category]
) -> None:
    speech = script((10 * MIN, BALANCED), (3 * MIN, UNANSWERED))
    adjust = both(rtt(80.0), when(9 * MIN, 13 * MIN, CLIENT, motion=0.3))
    lagged = both(adjust, when(10 * MIN, 14 * MIN, THERAPIST, net=NetStats(rtt_ms=rtt_ms)))
    frames = session(speech, 13 * MIN, lagged)
    assert categories(run(frames)) == expected


@pytest.mark.parametrize(
    ("rtt_ms", "expected"),
    [
        pytest.param(80.0, set(), id="overlaps-on-a-fast-link-are-not-flagged"),
        pytest.param(400.0, {Category.LAG, Category.TALK_OVER}, id="overlaps-with-lag"),
        pytest.param(900.0, {Category.LAG_SEVERE}, id="severe-lag-the-warning-says-it-all"),
    ],
)
def test_talk_over_needs_high_lag(rtt_ms: float, expected: set[Category]) -> None:
    # both start together; the client yields after a second (inside the therapist's speech)
    speech: Speech = ([], [])
    for start in range(1000, 3 * MIN, 20_000):
        speech[0].append((start, start + 8000))
        speech[1].append((start + 100, start + 1100))
        speech[1].append((start + 9000, start + 15_000))
    prompts = run(session(speech, 3 * MIN, rtt(rtt_ms)))
    assert categories(prompts) == expected
    if Category.TALK_OVER in expected:
        text = first(prompts, Category.TALK_OVER).text
        assert "probably the delay, not interruption" in text


# -- video ---------------------------------------------------------------------------------

FROZEN_INBOUND = NetStats(rtt_ms=80.0, frames_decoded=0, frames_frozen=1)


@pytest.mark.parametrize(
    ("adjust", "expected_text"),
    [
        pytest.param(
            when(MIN, MIN + 10_000, CLIENT, frozen=True), "The client's video", id="client-camera"
        ),
        pytest.param(
            when(MIN, MIN + 10_000, THERAPIST, net=FROZEN_INBOUND),
            "The client's video",
            id="therapist-receives-no-frames",
        ),
        pytest.param(
            when(MIN, MIN + 10_000, CLIENT, net=FROZEN_INBOUND),
            "Your video",
            id="client-receives-no-frames",
        ),
        pytest.param(when(MIN, MIN + 5_000, CLIENT, frozen=True), None, id="a-5-s-freeze-passes"),
        pytest.param(
            when(0, 20_000, THERAPIST, net=NetStats(frames_decoded=0)), None, id="startup"
        ),
    ],
)
def test_degraded_video_in_either_direction(
    adjust: Callable[[FeatureFrame], FeatureFrame], expected_text: str | None
) -> None:
    prompts = run(session(script((2 * MIN, BALANCED)), 2 * MIN, adjust))
    if expected_text is None:
        assert prompts == []
    else:
        assert categories(prompts) == {Category.VIDEO}
        assert expected_text in prompts[0].text
        assert "may not come through" in prompts[0].text
        assert "in words" in prompts[0].text


# -- presence ------------------------------------------------------------------------------


def monologue_with_client(**changes: object) -> Callable[[FeatureFrame], FeatureFrame]:
    return when(MIN, MIN + 70_000, CLIENT, **changes)


@pytest.mark.parametrize(
    ("therapist_talks_on", "adjust", "expected"),
    [
        pytest.param(True, monologue_with_client(motion=0.05), {Category.STILL_SILENT}, id="70s"),
        pytest.param(
            True,
            when(MIN, MIN + 50_000, CLIENT, motion=0.05),
            set(),
            id="50-s-still-is-not-long-enough",
        ),
        pytest.param(True, monologue_with_client(motion=0.5), set(), id="moving-while-listening"),
        pytest.param(
            True,
            monologue_with_client(motion=0.0, frozen=True),
            {Category.VIDEO},
            id="a-frozen-camera-is-a-video-problem",
        ),
        pytest.param(
            False,
            monologue_with_client(frame_present=False),
            {Category.OUT_OF_FRAME},
            id="out-of-frame-for-70-s",
        ),
        pytest.param(
            False,
            when(MIN, MIN + 8_000, CLIENT, frame_present=False),
            set(),
            id="out-of-frame-for-8-s",
        ),
        pytest.param(
            False,
            monologue_with_client(frame_present=None),
            set(),
            id="browser-cannot-tell-presence",
        ),
    ],
)
def test_client_still_and_silent_or_out_of_frame(
    therapist_talks_on: bool,
    adjust: Callable[[FeatureFrame], FeatureFrame],
    expected: set[Category],
) -> None:
    middle: list[Turn] = [(THERAPIST, 500, 5000)] if therapist_talks_on else BALANCED
    speech = script((MIN - 1000, BALANCED), (75_000, middle), (MIN, BALANCED))
    frames = session(speech, 3 * MIN, adjust)
    assert categories(run(frames)) == expected

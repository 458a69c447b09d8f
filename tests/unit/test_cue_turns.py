"""Turn-taking from both browsers' voiced segments: pauses, switches, back-channels, overlaps."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from server.core.cues.features import CLIENT, THERAPIST, FeatureFrame
from server.core.cues.synthetic import frames_from_speech
from server.core.cues.turns import TurnTracker
from server.core.protocol import SessionRole

Event = tuple[object, ...]


class Recorder:
    """A TurnListener that writes every event down."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def on_pause(self, role: int, pause_ms: int, t_ms: int) -> None:
        self.events.append(("pause", role, pause_ms, t_ms))

    def on_switch(self, from_role: int, to_role: int, gap_ms: int, t_ms: int) -> None:
        self.events.append(("switch", from_role, to_role, gap_ms, t_ms))

    def on_turn_end(self, role: int, speech_ms: int, t_ms: int) -> None:
        self.events.append(("turn_end", role, speech_ms, t_ms))

    def on_overlap(self, role: int, overlap_ms: int, t_ms: int) -> None:
        self.events.append(("overlap", role, overlap_ms, t_ms))


def track(frames: Sequence[FeatureFrame], tracker: TurnTracker | None = None) -> list[Event]:
    tracker = tracker or TurnTracker(join_ms=300, max_skew_ms=3000, max_run_ms=30_000)
    recorder = Recorder()
    for frame in frames:
        role = CLIENT if frame.role is SessionRole.CLIENT else THERAPIST
        tracker.add(role, frame.t_ms, frame.voiced, recorder)
    return recorder.events


def conversation(
    therapist: Sequence[tuple[int, int]], client: Sequence[tuple[int, int]], seconds: int = 20
) -> list[FeatureFrame]:
    return frames_from_speech(therapist, client, seconds * 1000)


@pytest.mark.parametrize(
    ("therapist", "client", "expected"),
    [
        pytest.param(
            [(1000, 3000)],
            [(3500, 5000)],
            [("turn_end", THERAPIST, 2000, 3000), ("switch", THERAPIST, CLIENT, 500, 3500)],
            id="client-answers-after-half-a-second",
        ),
        pytest.param(
            [(1000, 2000), (5500, 6000)],
            [],
            [("pause", THERAPIST, 3500, 5500)],
            id="therapist-speaks-again-after-silence",
        ),
        pytest.param(
            [(1000, 6000)],
            [(2000, 2400)],
            [("overlap", CLIENT, 400, 2000)],
            id="back-channel-keeps-the-floor",
        ),
        pytest.param(
            [(1000, 3000)],
            [(2800, 5000)],
            [
                ("overlap", CLIENT, 200, 2800),
                ("turn_end", THERAPIST, 2000, 3000),
                ("switch", THERAPIST, CLIENT, -200, 2800),
            ],
            id="client-starts-before-therapist-stops",
        ),
        pytest.param(
            [(1000, 2000), (6000, 7000)],
            [(2500, 2900)],
            [
                ("turn_end", THERAPIST, 1000, 2000),
                ("switch", THERAPIST, CLIENT, 500, 2500),
                ("turn_end", CLIENT, 400, 2900),
                ("switch", CLIENT, THERAPIST, 3100, 6000),
            ],
            id="short-client-turn-between-therapist-turns",
        ),
    ],
)
def test_turn_taking_events(
    therapist: list[tuple[int, int]], client: list[tuple[int, int]], expected: list[Event]
) -> None:
    assert track(conversation(therapist, client)) == expected


def test_speech_split_at_window_edges_is_one_run() -> None:
    # 1.5 s to 4.5 s crosses three window edges; the browser reports four pieces
    events = track(conversation([(1500, 4500), (4700, 5000)], []))
    assert events == []  # a 200 ms gap is inside one run: no pause, no switch


def test_a_breath_pause_is_a_pause_within_the_turn() -> None:
    assert track(conversation([(1000, 2000), (2500, 3000)], [])) == [
        ("pause", THERAPIST, 500, 2500)
    ]


def test_late_client_frames_give_the_same_events_as_in_order_frames() -> None:
    frames = conversation([(1000, 3000), (9000, 9500)], [(3500, 5000)])
    in_order = track(frames)
    # the client's browser lags 2 s behind: its frames arrive two therapist frames late
    therapist = [f for f in frames if f.role is SessionRole.THERAPIST]
    client = [f for f in frames if f.role is SessionRole.CLIENT]
    late = sorted(
        therapist + client,
        key=lambda f: f.t_ms + (2000 if f.role is SessionRole.CLIENT else 0),
    )
    assert track(late) == in_order
    assert in_order[1] == ("switch", THERAPIST, CLIENT, 500, 3500)


def test_a_silent_or_absent_client_delays_events_by_the_skew_at_most() -> None:
    frames = conversation([(1000, 2000), (5500, 6000)], [], 12)
    events = track([f for f in frames if f.role is SessionRole.THERAPIST])  # the client never joins
    assert events == [("pause", THERAPIST, 3500, 5500)]


def test_segments_older_than_the_watermark_are_dropped_and_counted() -> None:
    tracker = TurnTracker(join_ms=300, max_skew_ms=3000, max_run_ms=30_000)
    recorder = Recorder()
    for t in range(1000, 10_001, 1000):
        tracker.add(THERAPIST, t, (), recorder)
    tracker.add(CLIENT, 3000, ((2100, 2900),), recorder)  # 7 s late: placed would reorder
    assert tracker.dropped_segments == 1
    assert recorder.events == []


def test_a_run_longer_than_the_cap_is_cut_so_analysis_never_waits_forever() -> None:
    tracker = TurnTracker(join_ms=300, max_skew_ms=3000, max_run_ms=5_000)
    events = track(conversation([(1000, 12_000)], [(12_500, 13_000)], 20), tracker)
    assert ("pause", THERAPIST, 0, 6000) in events  # the cut shows as a zero pause
    assert events[-1] == ("switch", THERAPIST, CLIENT, 500, 12_500)
    assert tracker.state_size() == 0


def test_buffered_runs_stay_few_while_waiting_for_the_other_role() -> None:
    tracker = TurnTracker(join_ms=300, max_skew_ms=3000, max_run_ms=30_000)
    recorder = Recorder()
    for t in range(1000, 60_001, 1000):  # the therapist talks in short bursts, no client
        tracker.add(THERAPIST, t, ((t - 900, t - 400),), recorder)
        assert tracker.state_size() <= 5

"""The after-session summary: talk share, turn gaps, timeline, connection, loudness, synchrony."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from server.core.cues import Category, CueEngine, FeatureFrame, NetStats, Verdict
from server.core.cues.policy import FeedbackRecord
from server.core.cues.summary import (
    ClientSignal,
    SummaryBuilder,
    build_summary,
    talk_share_per_person,
)
from server.core.cues.synthetic import frames_from_speech, scenario_frames
from server.core.protocol import SessionRole

MIN = 60_000


def alternating(minutes: int, therapist_ms: int, client_ms: int, gap_ms: int) -> list[FeatureFrame]:
    therapist, client = [], []
    t = 1000
    while t < minutes * MIN:
        therapist.append((t, t + therapist_ms))
        t += therapist_ms + gap_ms
        client.append((t, t + client_ms))
        t += client_ms + gap_ms
    return frames_from_speech(therapist, client, minutes * MIN)


def test_talk_share_per_minute() -> None:
    frames = alternating(3, 6000, 6000, 500)
    summary = build_summary(frames)
    assert [bucket.start_ms for bucket in summary.talk_share] == [0, MIN, 2 * MIN]
    for bucket in summary.talk_share:
        assert bucket.client_share == pytest.approx(0.5, abs=0.1)


def test_a_minute_nobody_spoke_has_no_share() -> None:
    summary = build_summary(frames_from_speech([], [], 2 * MIN))
    assert [bucket.client_share for bucket in summary.talk_share] == [None, None]


def test_turn_gap_histograms_per_direction() -> None:
    summary = build_summary(alternating(3, 6000, 6000, 600))
    to_client, to_therapist = summary.turn_gaps
    assert (to_client.direction, to_therapist.direction) == (
        "therapist_to_client",
        "client_to_therapist",
    )
    assert to_client.median_ms == to_therapist.median_ms == 600
    counts = {(low, high): count for low, high, count in to_client.bins if count}
    assert counts == {(500, 750): to_client.count}
    assert to_client.count == 13  # 180 s of 13.2-s exchanges


def test_timeline_orders_prompts_and_signals_and_carries_feedback() -> None:
    frames = list(scenario_frames("out_of_frame", minutes=9))
    engine = CueEngine()
    prompts = [p for frame in frames for p in engine.feed(frame)]
    verdict = engine.feedback(prompts[0].id, Verdict.HELPFUL, prompts[0].t_ms + 5000)
    signals = [ClientSignal(9 * MIN - 1000, "need-moment"), ClientSignal(30_000, "slow-down")]
    summary = build_summary(frames, prompts, signals, [verdict])
    assert [(e.kind, e.label, e.feedback) for e in summary.timeline] == [
        ("signal", "slow-down", None),
        ("prompt", Category.OUT_OF_FRAME.value, "helpful"),
        ("signal", "need-moment", None),
    ]


def test_connection_quality_per_minute() -> None:
    laggy = NetStats(rtt_ms=300.0, loss=0.02, jitter_ms=12.0, frames_decoded=20, frames_frozen=1)

    def second_minute_is_bad(frame: FeatureFrame) -> FeatureFrame:
        return replace(frame, net=laggy) if MIN < frame.t_ms <= 2 * MIN else frame

    frames = frames_from_speech([], [], 3 * MIN, adjust=second_minute_is_bad)
    first, second, _ = build_summary(frames).connection
    assert (first.one_way_ms, first.video_freezes) == (40.0, 0)
    assert second.one_way_ms == 150.0
    assert second.loss == pytest.approx(0.02)
    assert second.jitter_ms == 12.0
    assert second.video_freezes >= 118  # one per window, both browsers


def test_loudness_trend_per_role_while_speaking() -> None:
    def client_gets_louder(frame: FeatureFrame) -> FeatureFrame:
        if frame.role is SessionRole.CLIENT and frame.voiced:
            return replace(frame, level_dbfs=-40.0 + frame.t_ms / MIN)  # +1 dB per minute
        return frame

    frames = [client_gets_louder(f) for f in alternating(10, 6000, 6000, 500)]
    therapist, client = build_summary(frames).loudness
    assert therapist.slope_db_per_10_min == pytest.approx(0.0, abs=1e-9)
    assert client.slope_db_per_10_min == pytest.approx(10.0, abs=0.5)
    assert client.role is SessionRole.CLIENT


def test_synchrony_is_included_and_marked_experimental() -> None:
    summary = build_summary(scenario_frames("balanced", minutes=6))
    assert summary.synchrony.experimental
    assert len(summary.synchrony.windows) >= 4
    assert "Experimental" in summary.synchrony.note


def test_the_summary_is_plain_json_ready_data() -> None:
    frames = list(scenario_frames("frozen_video", minutes=10))
    engine = CueEngine()
    prompts = [p for frame in frames for p in engine.feed(frame)]
    record = FeedbackRecord(prompts[0].id, prompts[0].category, Verdict.NOT_NOW, 1)
    data = build_summary(frames, prompts, [], [record]).to_dict()
    assert json.loads(json.dumps(data)) == data
    assert set(data) == {
        "duration_ms",
        "talk_share",
        "turn_gaps",
        "timeline",
        "connection",
        "loudness",
        "synchrony",
    }
    assert data["timeline"][0]["feedback"] == "not-now"


def test_the_builder_ignores_stale_frames_like_the_engine() -> None:
    frames = frames_from_speech([(1000, 5000)], [], MIN)
    builder = SummaryBuilder()
    for frame in frames + frames[:10]:
        builder.add_frame(frame)
    assert builder.build().talk_share[0].therapist_ms == 4000


def test_talk_share_per_person_counts_each_clients_own_speech_and_the_therapist_once() -> None:
    def stored(therapist_ms: int, client_ms: int) -> dict[str, object]:
        return {"talk_share": [{"therapist_ms": therapist_ms, "client_ms": client_ms}]}

    shares = talk_share_per_person({"J.M.": stored(40_000, 50_000), "R.M.": stored(30_000, 10_000)})
    assert shares == [("Therapist", 40_000, 0.4), ("J.M.", 50_000, 0.5), ("R.M.", 10_000, 0.1)]
    assert talk_share_per_person({"J.M.": {"talk_share": []}}) == [
        ("Therapist", 0, None),
        ("J.M.", 0, None),
    ]

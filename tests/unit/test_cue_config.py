"""Cue thresholds: DESIGN §7 defaults, validation, and test scaling."""

from __future__ import annotations

from dataclasses import fields

import pytest

from server.core.cues import CueConfig


def test_defaults_follow_design_section_7() -> None:
    config = CueConfig()
    assert (config.withdrawal_silence_ms, config.withdrawal_min_count) == (3000, 3)
    assert config.withdrawal_window_ms == 5 * 60_000
    assert (config.minimal_turn_ms, config.minimal_turn_count) == (1000, 4)
    assert (config.talk_share_min, config.talk_window_ms) == (0.25, 5 * 60_000)
    assert config.talk_sustain_ms == 10 * 60_000
    assert (config.latency_margin_ms, config.latency_window_ms) == (1000, 2 * 60_000)
    assert (config.lag_handoff_ms, config.lag_severe_ms) == (150, 400)
    assert (config.still_silent_ms, config.out_of_frame_ms) == (60_000, 10_000)
    assert config.rate_limit_ms == 10 * 60_000


def test_scaling_shortens_windows_but_not_conversational_timing_or_network_limits() -> None:
    config = CueConfig().scaled(0.1)
    assert config.talk_sustain_ms == 60_000
    assert config.rate_limit_ms == 60_000
    assert config.still_silent_ms == 6_000
    assert config.withdrawal_silence_ms == 3000  # a 3 s silence is still a 3 s silence
    assert config.minimal_turn_ms == 1000
    assert config.lag_severe_ms == 400


def test_every_field_is_either_scaled_or_deliberately_not() -> None:
    scaled = set(CueConfig.scaled_fields())
    assert scaled <= {spec.name for spec in fields(CueConfig)}
    assert {"calibration_ms", "talk_window_ms", "rate_limit_ms"} <= scaled
    assert not scaled & {"withdrawal_silence_ms", "lag_handoff_ms", "run_join_ms"}


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"talk_share_min": 0.0}, id="zero-share"),
        pytest.param({"talk_share_min": 1.5}, id="share-above-1"),
        pytest.param({"lag_handoff_ms": 500}, id="handoff-above-severe"),
        pytest.param({"video_degraded_min_ms": 30_000}, id="more-degraded-than-the-window"),
        pytest.param({"minimal_turn_count": -1}, id="negative-count"),
    ],
)
def test_inconsistent_thresholds_are_refused(changes: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        CueConfig(**changes)  # type: ignore[arg-type]


@pytest.mark.parametrize("factor", [0.0, -1.0], ids=["zero", "negative"])
def test_scale_factor_must_be_positive(factor: float) -> None:
    with pytest.raises(ValueError):
        CueConfig().scaled(factor)

"""The `features` message: what a valid one looks like and how every bad one is refused."""

from __future__ import annotations

import json
from typing import Any

import pytest

from server.core.cues import FeatureError, FeatureFrame, NetStats, parse_features
from server.core.protocol import SessionRole

EXAMPLE: dict[str, Any] = {
    "type": "features",
    "role": "client",
    "t_ms": 123000,
    "window_ms": 1000,
    "voiced": [[122050, 122420]],
    "level_dbfs": -32.5,
    "motion": 0.8,
    "frame_present": True,
    "frozen": False,
    "net": {"rtt_ms": 80, "jitter_ms": 6, "loss": 0.01, "frames_decoded": 20, "frames_frozen": 0},
}


def with_(**changes: Any) -> dict[str, Any]:
    message = {**EXAMPLE, **changes}
    return {key: value for key, value in message.items() if value is not _DROP}


_DROP = object()


def test_the_documented_example_parses_into_a_frame() -> None:
    frame = parse_features(EXAMPLE)
    assert frame == FeatureFrame(
        role=SessionRole.CLIENT,
        t_ms=123000,
        window_ms=1000,
        voiced=((122050, 122420),),
        level_dbfs=-32.5,
        motion=0.8,
        frame_present=True,
        frozen=False,
        net=NetStats(rtt_ms=80.0, jitter_ms=6.0, loss=0.01, frames_decoded=20, frames_frozen=0),
    )
    assert frame.voiced_ms == 370


def test_optional_fields_may_be_left_out() -> None:
    frame = parse_features(with_(frame_present=_DROP, frozen=_DROP, net=_DROP))
    assert (frame.frame_present, frame.frozen, frame.net) == (None, False, None)


def test_net_fields_are_each_optional() -> None:
    frame = parse_features(with_(net={"rtt_ms": 120}))
    assert frame.net == NetStats(rtt_ms=120.0)


def test_to_message_is_the_inverse_of_parse_through_json() -> None:
    frame = parse_features(EXAMPLE)
    assert parse_features(json.loads(json.dumps(frame.to_message()))) == frame


@pytest.mark.parametrize(
    ("message", "complaint"),
    [
        pytest.param([1, 2], "expected a JSON object", id="not-an-object"),
        pytest.param(with_(motion=_DROP), "missing field(s) motion", id="missing-field"),
        pytest.param(with_(face=True), "unknown field(s) face", id="unknown-field"),
        pytest.param(with_(type="signal"), "type: expected 'features'", id="wrong-type"),
        pytest.param(with_(role="admin"), "role: expected one of", id="unknown-role"),
        pytest.param(with_(t_ms=123000.5), "t_ms: expected an integer", id="fractional-time"),
        pytest.param(with_(t_ms=True), "t_ms: expected an integer", id="bool-is-not-a-time"),
        pytest.param(with_(t_ms=500, voiced=[]), "t_ms: 500 is outside", id="window-before-zero"),
        pytest.param(with_(window_ms=100), "window_ms: 100 is outside", id="window-too-short"),
        pytest.param(with_(window_ms=6000), "window_ms: 6000 is outside", id="window-too-long"),
        pytest.param(with_(voiced="yes"), "voiced: expected a list", id="voiced-not-a-list"),
        pytest.param(with_(voiced=[[1, 2, 3]]), "voiced[0]: expected [start, end]", id="triple"),
        pytest.param(
            with_(voiced=[[122500, 122400]]), "voiced[0]: segment", id="segment-ends-before-start"
        ),
        pytest.param(with_(voiced=[[122500, 122500]]), "voiced[0]: segment", id="empty-segment"),
        pytest.param(
            with_(voiced=[[121900, 122100]]), "voiced[0]: segment", id="segment-before-window"
        ),
        pytest.param(
            with_(voiced=[[122900, 123100]]), "voiced[0]: segment", id="segment-after-window"
        ),
        pytest.param(
            with_(voiced=[[122500, 122600], [122100, 122200]]),
            "voiced[1]: segment",
            id="segments-out-of-order",
        ),
        pytest.param(
            with_(voiced=[[122100, 122600], [122500, 122700]]),
            "voiced[1]: segment",
            id="segments-overlap",
        ),
        pytest.param(
            with_(voiced=[[122000 + 10 * i, 122005 + 10 * i] for i in range(51)]),
            "at most 50 segments",
            id="too-many-segments",
        ),
        pytest.param(with_(level_dbfs=3.0), "level_dbfs: 3.0 is outside", id="level-above-0"),
        pytest.param(with_(level_dbfs="-30"), "level_dbfs: expected a number", id="level-string"),
        pytest.param(with_(motion=-0.1), "motion: -0.1 is outside", id="negative-motion"),
        pytest.param(with_(motion=101), "motion: 101.0 is outside", id="motion-above-100"),
        pytest.param(with_(frame_present="yes"), "frame_present: expected", id="presence-string"),
        pytest.param(with_(frozen=None), "frozen: expected true or false", id="frozen-null"),
        pytest.param(with_(net=[80]), "net: expected an object", id="net-not-an-object"),
        pytest.param(with_(net={"rtt": 80}), "net: unknown field(s) rtt", id="net-unknown"),
        pytest.param(with_(net={"rtt_ms": -1}), "net.rtt_ms: -1.0 is outside", id="negative-rtt"),
        pytest.param(with_(net={"loss": 1.5}), "net.loss: 1.5 is outside", id="loss-above-1"),
        pytest.param(
            with_(net={"frames_decoded": 2.5}), "net.frames_decoded: expected an integer", id="fps"
        ),
    ],
)
def test_a_bad_message_is_refused_with_a_clear_reason(message: Any, complaint: str) -> None:
    with pytest.raises(FeatureError) as refused:
        parse_features(message)
    assert complaint in str(refused.value)


@pytest.mark.parametrize("value", [float("nan"), float("inf")], ids=["nan", "infinity"])
def test_non_finite_numbers_are_refused(value: float) -> None:
    with pytest.raises(FeatureError, match="finite"):
        parse_features(with_(level_dbfs=value))


def test_a_frame_built_in_code_is_validated_too() -> None:
    with pytest.raises(FeatureError, match="voiced"):
        FeatureFrame(SessionRole.THERAPIST, 2000, 1000, ((500, 900),), -30.0, 1.0)


def test_fifty_segments_are_allowed() -> None:
    voiced = [[122000 + 10 * i, 122005 + 10 * i] for i in range(50)]
    assert len(parse_features(with_(voiced=voiced)).voiced) == 50

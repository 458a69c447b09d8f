"""Replaying a JSONL feature log: the prompts a live engine would have raised, or a clear error."""

from __future__ import annotations

import json

import pytest

from server.core.cues import CueConfig, CueEngine, ReplayError, replay
from server.core.cues.synthetic import scenario_frames


def jsonl(scenario: str, minutes: float) -> list[str]:
    return [json.dumps(frame.to_message()) for frame in scenario_frames(scenario, minutes=minutes)]


def test_replay_yields_the_prompts_of_a_live_engine_as_json_ready_dicts() -> None:
    lines = jsonl("out_of_frame", 9)
    engine = CueEngine()
    live = [p.to_dict() for f in scenario_frames("out_of_frame", minutes=9) for p in engine.feed(f)]
    replayed = list(replay(lines))
    assert replayed == live
    assert [(p["category"], p["id"]) for p in replayed] == [("out_of_frame", "p1")]
    assert json.loads(json.dumps(replayed)) == replayed
    assert set(replayed[0]) == {"id", "category", "t_ms", "severity", "text", "reasons"}


def test_blank_lines_are_skipped() -> None:
    lines = jsonl("out_of_frame", 9)
    spaced = [line for pair in zip(lines, [""] * len(lines), strict=True) for line in pair]
    assert list(replay(["\n", *spaced, "   "])) == list(replay(lines))


def test_replay_takes_a_config_for_test_scaled_thresholds() -> None:
    prompts = list(replay(jsonl("out_of_frame", 9), CueConfig().scaled(0.1)))
    assert [p["category"] for p in prompts] == ["out_of_frame"]


@pytest.mark.parametrize(
    ("bad_line", "complaint"),
    [
        pytest.param("{not json", "line 3: not JSON", id="not-json"),
        pytest.param('{"type": "features"}', "line 3: features: missing field(s)", id="invalid"),
        pytest.param('{"type": "ping"}', "line 3:", id="another-message-type"),
    ],
)
def test_a_bad_line_stops_the_replay_with_its_line_number(bad_line: str, complaint: str) -> None:
    lines = jsonl("balanced", 1)
    with pytest.raises(ReplayError) as stopped:
        list(replay([lines[0], "", bad_line, *lines[1:]]))
    assert stopped.value.line == 3
    assert str(stopped.value).startswith(complaint)

"""`attune cues replay` turns a feature log into the prompts the engine would raise."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from server.cli import main
from server.core.cues.synthetic import scenario_frames


def _log(path: Path, scenario: str, minutes: float) -> Path:
    lines = [json.dumps(f.to_message()) for f in scenario_frames(scenario, minutes=minutes, seed=1)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_a_laggy_session_replays_into_lag_prompts_with_their_times(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["cues", "replay", str(_log(tmp_path / "lag.jsonl", "high_lag", 2))]) == 0
    prompts = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert prompts and prompts[0]["category"] == "lag"
    assert all(isinstance(p["t_ms"], int) and p["text"] for p in prompts)


def test_a_balanced_session_replays_into_no_prompts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["cues", "replay", str(_log(tmp_path / "ok.jsonl", "balanced", 3))]) == 0
    assert capsys.readouterr().out == ""


def test_a_bad_line_is_reported_with_its_number(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = _log(tmp_path / "bad.jsonl", "balanced", 0.1)
    log.write_text(log.read_text() + '{"type": "features"}\n')
    assert main(["cues", "replay", str(log)]) == 2
    err = capsys.readouterr().err
    assert "line " in err and "missing field" in err

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


@pytest.mark.parametrize(
    ("scenario", "expected"),
    [
        ("couple_balanced", set()),
        (
            "couple_dominant",
            {("couple_balance", ("partner-a",)), ("talk_imbalance", ("partner-b",))},
        ),
        ("couple_talk_over", {("client_talk_over", ("partner-a", "partner-b"))}),
    ],
)
def test_couple_scenarios_with_a_guest_replay_from_the_command_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    scenario: str,
    expected: set[tuple[str, tuple[str, ...]]],
) -> None:
    assert main(["cues", "scenario", scenario, "--seed", "1"]) == 0
    log = tmp_path / f"{scenario}.jsonl"
    log.write_text(capsys.readouterr().out, encoding="utf-8")
    kinds = {json.loads(line)["kind"] for line in log.read_text(encoding="utf-8").splitlines()}
    assert kinds == {"therapist", "client", "guest"}  # two clients and an interpreter
    assert main(["cues", "replay", str(log)]) == 0
    prompts = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {(p["category"], tuple(p.get("peers", ()))) for p in prompts} == expected


def test_an_unknown_scenario_is_refused_with_the_known_names(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["cues", "scenario", "nonsense"]) == 2
    assert "couple_dominant" in capsys.readouterr().err

"""Replaying a JSONL feature log: the prompts a live engine would have raised, or a clear error."""

from __future__ import annotations

import json

import pytest

from server.core.cues import CueConfig, CueEngine, ReplayError, replay
from server.core.cues.group import GroupCueEngine
from server.core.cues.group_synthetic import group_scenario, to_jsonl
from server.core.cues.synthetic import scenario_frames
from server.core.participants import PersonKind


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


# -- logs of sessions with several people ----------------------------------------------------


def group_jsonl(scenario: str, **kwargs: float) -> list[str]:
    return list(to_jsonl(group_scenario(scenario, **kwargs)))


def test_a_couple_log_replays_into_the_prompts_of_a_live_group_engine() -> None:
    engine = GroupCueEngine()
    live = [
        p.to_dict()
        for peer, kind, frame in group_scenario("couple_dominant")
        if kind is not PersonKind.GUEST
        for p in engine.feed(peer, frame)
    ]
    replayed = list(replay(group_jsonl("couple_dominant")))
    assert replayed == live
    assert ("couple_balance", ["partner-a"]) in [(p["category"], p.get("peers")) for p in replayed]


def test_a_guests_lines_are_never_analysed() -> None:
    as_client = list(replay(jsonl("withdrawal", 22)))
    assert "withdrawal" in {p["category"] for p in as_client}
    as_guest = [
        json.dumps({**json.loads(line), "kind": "guest", "peer": "interpreter"})
        if json.loads(line)["role"] == "client"
        else line
        for line in jsonl("withdrawal", 22)
    ]
    assert list(replay(as_guest)) == []


@pytest.mark.parametrize(
    ("extra", "complaint"),
    [
        pytest.param({"kind": "visitor"}, "kind: expected", id="unknown-kind"),
        pytest.param({"kind": "therapist"}, "does not fit role", id="kind-against-role"),
        pytest.param({"peer": ""}, "peer: expected", id="empty-peer"),
        pytest.param({"peer": "x" * 65}, "peer: expected", id="long-peer"),
        pytest.param({"peer": "therapist"}, "does not match role", id="client-as-therapist"),
        pytest.param({"kind": "guest", "motion": 200}, "motion", id="a-guest-line-still-checked"),
    ],
)
def test_a_bad_peer_or_kind_stops_the_replay_with_its_line_number(
    extra: dict[str, object], complaint: str
) -> None:
    lines = jsonl("balanced", 1)
    client_line = next(line for line in lines if json.loads(line)["role"] == "client")
    bad = json.dumps({**json.loads(client_line), **extra})
    with pytest.raises(ReplayError) as stopped:
        list(replay([*lines[:4], bad]))
    assert stopped.value.line == 5
    assert complaint in str(stopped.value)


def test_a_fourth_client_in_a_log_is_refused() -> None:
    lines = jsonl("balanced", 1)
    client = json.loads(next(line for line in lines if json.loads(line)["role"] == "client"))
    four = [json.dumps({**client, "peer": f"c{n}", "kind": "client"}) for n in range(4)]
    with pytest.raises(ReplayError, match="line 4: at most 3 clients"):
        list(replay(four))

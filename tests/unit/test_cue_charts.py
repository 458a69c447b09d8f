"""The summary's cue charts draw whatever data a session left, and never fail on gaps."""

from __future__ import annotations

from typing import Any

import pytest

from server.web.cue_charts import connection_chart, cue_charts

FULL: dict[str, Any] = {
    "duration_ms": 180_000,
    "talk_share": [
        {"start_ms": 0, "client_share": 0.4},
        {"start_ms": 60_000, "client_share": None},
    ],
    "turn_gaps": [{"direction": "therapist_to_client", "bins": [[0, 250, 3], [250, 500, 1]]}],
    "timeline": [{"kind": "signal", "t_ms": 30_000, "label": "slow-down"}],
    "connection": [
        {"start_ms": 0, "one_way_ms": 40.0},
        {"start_ms": 60_000, "one_way_ms": None},
        {"start_ms": 120_000, "one_way_ms": 60.0},
    ],
    "loudness": [{"role": "therapist", "levels": [[0, -30.0], [60_000, None]]}],
}


def test_a_minute_without_rtt_breaks_the_delay_line_instead_of_failing() -> None:
    chart = connection_chart(FULL)
    assert [len(points) for _css, points in chart.lines] == [1, 1]
    assert "Gaps are minutes without a measurement" in chart.description


def test_a_session_without_any_rtt_says_so() -> None:
    chart = connection_chart({"duration_ms": 60_000, "connection": [{"start_ms": 0}]})
    assert chart.lines == []
    assert "No delay was measured" in chart.description


@pytest.mark.parametrize(
    "summary",
    [
        {},
        {"duration_ms": None},
        {"duration_ms": 5_000},  # a session cut short
        {"connection": None, "talk_share": "x", "timeline": [None, 3], "loudness": [{}]},
        {"turn_gaps": [{"direction": "therapist_to_client", "bins": [[0, 1], "x", None]}]},
        {"timeline": [{"kind": "prompt"}], "connection": [{"one_way_ms": float("nan")}]},
        FULL,
    ],
)
def test_every_chart_renders_from_missing_or_partial_data(summary: dict[str, Any]) -> None:
    charts = cue_charts(summary)
    assert len(charts) == 5
    assert all(svg.startswith("<svg") and svg.endswith("</svg>") for _h, svg in charts)

"""The progress charts' geometry: severity bands tile the scale, the reliable-change band sits
around the first score, higher scores are drawn higher, and goal lines share one date axis."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from xml.etree import ElementTree

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.core.measures import load_builtin_measures
from server.web.progress_charts import (
    HEIGHT,
    PAD_BOTTOM,
    PAD_TOP,
    Chart,
    goals_chart,
    measure_chart,
    svg,
    y_of,
)

T0 = datetime(2026, 10, 1, tzinfo=UTC)
PHQ9 = load_builtin_measures()["phq9"]
PHQ9_BANDS = [(b.lower, b.upper, b.label) for b in PHQ9.bands]


def _phq9_chart(*totals: int) -> Chart:
    return measure_chart(
        key="t",
        title="PHQ-9",
        maximum=PHQ9.max_total,
        bands=PHQ9_BANDS,
        reliable_change=PHQ9.reliable_change_at_least,
        points=[(T0 + timedelta(weeks=i), t) for i, t in enumerate(totals)],
    )


def test_the_scale_runs_from_the_bottom_of_the_plot_to_its_top() -> None:
    assert y_of(0, 27) == HEIGHT - PAD_BOTTOM
    assert y_of(27, 27) == PAD_TOP
    assert y_of(40, 27) == PAD_TOP  # clamped, never drawn outside


def test_phq9_severity_bands_tile_the_whole_scale_without_gaps() -> None:
    chart = _phq9_chart(12)
    bands = sorted(chart.bands, key=lambda b: b.lower)

    assert [b.label for b in bands][:2] == ["minimal", "mild"]
    assert bands[0].y_bottom == y_of(0, 27) and bands[-1].y_top == y_of(27, 27)
    for lower, upper in itertools.pairwise(bands):
        assert lower.y_top == pytest.approx(upper.y_bottom)  # touching: no gap, no overlap


def test_the_reliable_change_band_covers_changes_smaller_than_the_threshold() -> None:
    chart = _phq9_chart(15, 12, 8)
    band = chart.change_band
    assert band is not None

    assert (band.lower, band.upper) == (15 - 5, 15 + 5)  # 6 points or more is reliable
    first = chart.series[0].dots[0]
    assert band.y_top < first.y < band.y_bottom
    reliable = chart.series[0].dots[2]
    assert reliable.y > band.y_bottom  # 8 is 7 lower: drawn below the band


def test_the_band_is_clipped_at_the_ends_of_the_scale() -> None:
    band = _phq9_chart(2).change_band
    assert band is not None
    assert band.lower == 0 and band.y_bottom == y_of(0, 27)


@given(st.lists(st.integers(0, 27), min_size=2, max_size=12))
def test_a_higher_total_is_always_drawn_higher_and_later_answers_further_right(
    totals: list[int],
) -> None:
    dots = _phq9_chart(*totals).series[0].dots
    for a, b in itertools.pairwise(dots):
        assert a.x < b.x
        assert (a.value > b.value) == (a.y < b.y)


def test_the_client_sees_no_severity_labels() -> None:
    chart = measure_chart(
        key="my-phq9",
        title="Mood over the past two weeks",
        maximum=27,
        bands=PHQ9_BANDS,
        reliable_change=6,
        points=[(T0, 20)],
        show_bands=False,
    )
    drawn = svg(chart)
    assert chart.bands == () and "severe" not in drawn and "moderate" not in drawn


def test_goal_lines_share_one_date_axis_and_run_from_0_to_10() -> None:
    chart = goals_chart(
        key="g",
        title="Goals",
        goals=[
            ("Sleep", [(T0, 2), (T0 + timedelta(weeks=2), 6)]),
            ("Choir", [(T0 + timedelta(weeks=1), 10)]),
        ],
    )
    sleep, choir = chart.series
    assert len(chart.x_labels) == 3
    assert sleep.dots[0].x < choir.dots[0].x < sleep.dots[1].x
    assert choir.dots[0].y == y_of(10, 10) == PAD_TOP


def test_every_chart_is_well_formed_svg_with_a_title_and_a_description() -> None:
    root = ElementTree.fromstring(svg(_phq9_chart(14, 9, 3)))
    ns = "{http://www.w3.org/2000/svg}"
    assert root.get("role") == "img"
    assert root.find(f"{ns}title") is not None and root.find(f"{ns}desc") is not None
    assert root.get("aria-labelledby") == "t-title t-desc"

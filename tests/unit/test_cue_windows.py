"""Fixed-size rolling windows: they forget on time and never grow."""

from __future__ import annotations

import pytest

from server.core.cues.windows import EventWindow, Histogram, RollingSum, ValueWindow


@pytest.mark.parametrize(
    ("adds", "now_ms", "total"),
    [
        pytest.param([(500, 3)], 500, 3, id="one-value"),
        pytest.param([(500, 3), (2500, 4)], 2500, 7, id="two-buckets"),
        pytest.param([(500, 3), (5500, 4)], 5500, 4, id="first-fell-out-of-5-s"),
        pytest.param([(500, 3)], 60_000, 0, id="long-silence-clears-all"),
        pytest.param([(4500, 4), (3200, 1)], 4500, 5, id="late-value-inside-window"),
        pytest.param([(9500, 4), (3200, 1)], 9500, 4, id="late-value-too-old"),
    ],
)
def test_rolling_sum_over_five_seconds(
    adds: list[tuple[int, int]], now_ms: int, total: int
) -> None:
    window = RollingSum(5000)
    for t_ms, value in adds:
        window.add(t_ms, value)
    window.advance(now_ms)
    assert window.total == total
    assert len(window) == 5


def test_a_span_is_split_across_the_buckets_it_covers() -> None:
    window = RollingSum(3000)
    window.add_span(1500, 3500)  # 500 + 1000 + 500 ms
    window.advance(4200)  # the bucket of second 1 falls out
    assert window.total == 1500


def test_event_window_forgets_old_events_and_is_capped() -> None:
    events = EventWindow(span_ms=10_000, capacity=3)
    for t_ms in (1000, 2000, 3000, 4000):
        events.add(t_ms)
    assert events.count(4000) == 3  # capacity: the oldest was dropped
    assert events.count(12_500) == 2  # 2000 and 3000 are older than 10 s
    events.clear()
    assert events.count(12_500) == 0


def test_value_window_median_follows_expiry() -> None:
    values = ValueWindow(span_ms=10_000, capacity=8)
    for t_ms, value in ((1000, 5000), (2000, 100), (3000, 200), (4000, 300)):
        values.add(t_ms, value)
    assert values.count(4000) == 4
    assert values.median() == 250
    assert values.count(11_500) == 3
    assert values.median() == 200


def test_histogram_median_is_the_centre_of_the_middle_bin() -> None:
    histogram = Histogram(low=-1000, high=1000, width=100)
    for value in (120, 150, 180, -5000, 9000):
        histogram.add(value)
    assert histogram.median() == 150
    bins = histogram.bins()
    assert bins[0] == (-1000, -900, 1) and bins[-1] == (900, 1000, 1)  # the tails

"""Movement synchrony (experimental): lagged cross-correlation against shuffled surrogates."""

from __future__ import annotations

import json
from random import Random

import pytest

from server.core.cues.synchrony import SynchronyConfig, motion_synchrony, pearson


def noise(seed: int, length: int) -> list[float]:
    rng = Random(seed)
    return [rng.uniform(0.0, 2.0) for _ in range(length)]


@pytest.mark.parametrize(
    ("xs", "ys", "r"),
    [
        pytest.param([1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 6.0, 8.0], 1.0, id="in-step"),
        pytest.param([1.0, 2.0, 3.0, 4.0], [4.0, 3.0, 2.0, 1.0], -1.0, id="opposed"),
        pytest.param([1.0, 1.0, 1.0, 1.0], [1.0, 2.0, 3.0, 4.0], None, id="flat-is-undefined"),
        pytest.param([1.0, None, 3.0, 4.0], [2.0, 9.0, 6.0, 8.0], 1.0, id="missing-pairs-skipped"),
        pytest.param([1.0, 2.0], [1.0, 2.0], None, id="too-short"),
    ],
)
def test_pearson(xs: list[float | None], ys: list[float | None], r: float | None) -> None:
    result = pearson(xs, ys)
    assert result == (None if r is None else pytest.approx(r))


def test_a_client_who_follows_two_seconds_later_shows_synchrony_at_lag_two() -> None:
    therapist = noise(1, 600)
    jitter = noise(2, 600)
    client = [0.0, 0.0] + [t + 0.2 * j for t, j in zip(therapist, jitter[2:], strict=False)]
    result = motion_synchrony(therapist, client[:600])
    assert len(result.windows) == 9
    assert {window.lag_s for window in result.windows} == {2}
    assert result.mean_peak_r is not None and result.mean_peak_r > 0.9
    assert result.above_surrogate is not None and result.above_surrogate > 0.5
    assert result.experimental


def test_independent_movement_is_no_better_than_its_surrogates() -> None:
    result = motion_synchrony(noise(3, 900), noise(4, 900))
    assert result.above_surrogate is not None
    assert abs(result.above_surrogate) < 0.1
    assert result.surrogate_p95_r is not None and result.surrogate_p95_r < 0.6


def test_windows_with_too_much_missing_motion_are_skipped() -> None:
    therapist = noise(5, 600)
    client: list[float | None] = list(noise(6, 600))
    client[100:200] = [None] * 100  # the client's picture was gone for 100 s
    result = motion_synchrony(therapist, client)
    starts = [window.start_s for window in result.windows]
    assert all(not 35 < start < 205 for start in starts)
    assert len(starts) == 6


def test_flat_or_short_series_give_no_windows_and_no_estimate() -> None:
    result = motion_synchrony([1.0] * 300, [1.0] * 300)
    assert (result.windows, result.mean_peak_r, result.above_surrogate) == ((), None, None)
    assert motion_synchrony([1.0] * 20, [1.0] * 20).windows == ()


def test_surrogates_are_seeded() -> None:
    config = SynchronyConfig(window_s=30, step_s=30, max_lag_s=3, surrogates=5, seed=11)
    first = motion_synchrony(noise(7, 300), noise(8, 300), config)
    again = motion_synchrony(noise(7, 300), noise(8, 300), config)
    assert first == again
    assert json.loads(json.dumps(first.to_dict()))["window_s"] == 30


@pytest.mark.parametrize(
    "settings",
    [
        pytest.param({"window_s": 30, "max_lag_s": 15}, id="lag-half-the-window"),
        pytest.param({"surrogates": 0}, id="no-surrogates"),
        pytest.param({"max_missing": 1.0}, id="all-missing-allowed"),
    ],
)
def test_unusable_settings_are_refused(settings: dict[str, int | float]) -> None:
    with pytest.raises(ValueError):
        SynchronyConfig(**settings)  # type: ignore[arg-type]

"""Movement synchrony (EXPERIMENTAL, after-session only): lagged cross-correlation of motion.

Method (after Ramseyer & Tschacher's motion energy analysis): cut both 1 Hz motion series
into windows; in each window correlate the therapist's motion with the client's shifted by
every lag in ±`max_lag_s` and keep the peak Pearson r. To tell coupling from coincidence,
the same is done for surrogate pairs, the client's windows shuffled so that each therapist
window meets a client window from another time (segment shuffling, seeded); synchrony is
the real peaks' mean above the surrogates' mean.

The evidence that movement synchrony tracks alliance is weak (meta-analytic r ≈ .03), so this
is descriptive only and must never drive a live prompt.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

EXPERIMENTAL_NOTE: Final = (
    "Experimental: movement synchrony is weakly related to alliance (meta-analytic r ≈ .03); "
    "describe, do not judge."
)


@dataclass(frozen=True, slots=True)
class SynchronyConfig:
    """Window, lag and surrogate settings (series are sampled at 1 Hz)."""

    window_s: int = 60  # DESIGN: 30–60 s windows
    step_s: int = 60  # window start every step (step < window: overlapping windows)
    max_lag_s: int = 5  # DESIGN: ±3–5 s
    surrogates: int = 20
    seed: int = 0
    max_missing: float = 0.1  # a window with more missing seconds than this is skipped

    def __post_init__(self) -> None:
        if self.window_s < 4 or self.step_s < 1 or self.surrogates < 1:
            raise ValueError("window_s >= 4, step_s >= 1 and surrogates >= 1 are required")
        if not 0 <= self.max_lag_s < self.window_s // 2:
            raise ValueError("max_lag_s must be below half the window")
        if not 0 <= self.max_missing < 1:
            raise ValueError("max_missing must be in [0, 1)")


@dataclass(frozen=True, slots=True)
class SynchronyWindow:
    """One window's peak correlation and the lag (s) at which it occurred."""

    start_s: int
    peak_r: float
    lag_s: int  # positive: the client's movement follows the therapist's


@dataclass(frozen=True, slots=True)
class SynchronyResult:
    """Per-window peaks, their mean, and the shuffled-surrogate baseline."""

    windows: tuple[SynchronyWindow, ...]
    mean_peak_r: float | None
    surrogate_mean_r: float | None
    surrogate_p95_r: float | None
    config: SynchronyConfig
    experimental: bool = True
    note: str = EXPERIMENTAL_NOTE

    @property
    def above_surrogate(self) -> float | None:
        """Mean real peak minus mean surrogate peak (the synchrony estimate)."""
        if self.mean_peak_r is None or self.surrogate_mean_r is None:
            return None
        return self.mean_peak_r - self.surrogate_mean_r

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "experimental": self.experimental,
            "note": self.note,
            "window_s": self.config.window_s,
            "max_lag_s": self.config.max_lag_s,
            "surrogates": self.config.surrogates,
            "windows": [
                {"start_s": w.start_s, "peak_r": round(w.peak_r, 4), "lag_s": w.lag_s}
                for w in self.windows
            ],
            "mean_peak_r": _rounded(self.mean_peak_r),
            "surrogate_mean_r": _rounded(self.surrogate_mean_r),
            "surrogate_p95_r": _rounded(self.surrogate_p95_r),
            "above_surrogate": _rounded(self.above_surrogate),
        }


def motion_synchrony(
    therapist: Sequence[float | None],
    client: Sequence[float | None],
    config: SynchronyConfig | None = None,
) -> SynchronyResult:
    """Windowed lagged cross-correlation of two 1 Hz motion series against surrogates."""
    cfg = config if config is not None else SynchronyConfig()
    length = min(len(therapist), len(client))
    starts = [
        start
        for start in range(cfg.max_lag_s, length - cfg.window_s - cfg.max_lag_s + 1, cfg.step_s)
        if _usable(therapist, start - cfg.max_lag_s, cfg.window_s + 2 * cfg.max_lag_s, cfg)
        and _usable(client, start - cfg.max_lag_s, cfg.window_s + 2 * cfg.max_lag_s, cfg)
    ]
    windows = []
    for start in starts:
        peak = _peak(therapist, client, start, start, cfg)
        if peak is not None:
            windows.append(SynchronyWindow(start, peak[0], peak[1]))
    surrogate_peaks = _surrogate_peaks(therapist, client, starts, cfg)
    return SynchronyResult(
        windows=tuple(windows),
        mean_peak_r=_mean([w.peak_r for w in windows]),
        surrogate_mean_r=_mean(surrogate_peaks),
        surrogate_p95_r=_percentile(surrogate_peaks, 0.95),
        config=cfg,
    )


def _surrogate_peaks(
    therapist: Sequence[float | None],
    client: Sequence[float | None],
    starts: list[int],
    cfg: SynchronyConfig,
) -> list[float]:
    if len(starts) < 2:
        return []
    rng = random.Random(cfg.seed)  # noqa: S311 -- a reproducible shuffle, not secrecy
    peaks = []
    for _ in range(cfg.surrogates):
        shuffled = starts[:]
        rng.shuffle(shuffled)
        for own, other in zip(starts, shuffled, strict=True):
            if own == other:  # a window paired with itself is not a surrogate
                continue
            peak = _peak(therapist, client, own, other, cfg)
            if peak is not None:
                peaks.append(peak[0])
    return peaks


def _peak(
    therapist: Sequence[float | None],
    client: Sequence[float | None],
    therapist_start: int,
    client_start: int,
    cfg: SynchronyConfig,
) -> tuple[float, int] | None:
    """The highest r over all lags, and its lag; None if every lag was undefined."""
    xs = therapist[therapist_start : therapist_start + cfg.window_s]
    best: tuple[float, int] | None = None
    for lag in range(-cfg.max_lag_s, cfg.max_lag_s + 1):
        offset = client_start + lag
        r = pearson(xs, client[offset : offset + cfg.window_s])
        if r is not None and (best is None or r > best[0]):
            best = (r, lag)
    return best


def pearson(xs: Sequence[float | None], ys: Sequence[float | None]) -> float | None:
    """Pearson r over the pairs where both are known; None if undefined (flat or too short)."""
    pairs = [(x, y) for x, y in zip(xs, ys, strict=False) if x is not None and y is not None]
    n = len(pairs)
    if n < 3:
        return None
    mean_x = sum(x for x, _ in pairs) / n
    mean_y = sum(y for _, y in pairs) / n
    sxx = syy = sxy = 0.0
    for x, y in pairs:
        dx, dy = x - mean_x, y - mean_y
        sxx += dx * dx
        syy += dy * dy
        sxy += dx * dy
    if sxx <= 1e-12 or syy <= 1e-12:
        return None
    return sxy / math.sqrt(sxx * syy)


def _usable(series: Sequence[float | None], start: int, length: int, cfg: SynchronyConfig) -> bool:
    chunk = series[max(0, start) : start + length]
    missing = sum(1 for value in chunk if value is None) + (length - len(chunk))
    return missing <= cfg.max_missing * length


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)

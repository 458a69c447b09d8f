"""Progress charts drawn on the server as SVG: outcome measures with their severity bands and
the reliable-change band around the first score, and goal progress lines.

The geometry is pure (plain data in, plain data out) so a test can check where a band or a
point falls; `svg()` turns it into markup. Every chart has a title and a description, and the
pages show the same numbers in a table beside it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape
from typing import Final

from babel.dates import format_date

WIDTH: Final = 560
HEIGHT: Final = 220
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 36, 12, 14, 34


@dataclass(frozen=True, slots=True)
class Band:
    """A horizontal band: scores `lower..upper` inclusive, drawn from y_top to y_bottom."""

    lower: int
    upper: int
    label: str
    y_top: float
    y_bottom: float


@dataclass(frozen=True, slots=True)
class Dot:
    """A plotted value."""

    x: float
    y: float
    value: int
    label: str


@dataclass(frozen=True, slots=True)
class Series:
    """One line of dots (a measure, or one goal)."""

    name: str
    css: str
    dots: tuple[Dot, ...]


@dataclass(frozen=True, slots=True)
class Chart:
    """Everything a chart shows, in SVG coordinates."""

    key: str  # unique within the page: element ids derive from it
    title: str
    description: str
    maximum: int
    bands: tuple[Band, ...]
    change_band: Band | None
    series: tuple[Series, ...]
    x_labels: tuple[tuple[float, str], ...]
    ticks: tuple[tuple[float, int], ...]


def y_of(value: float, maximum: int) -> float:
    """The y coordinate of a value on a 0..maximum scale (0 at the bottom)."""
    if maximum <= 0:
        raise ValueError("maximum must be positive")
    plot_h = HEIGHT - PAD_TOP - PAD_BOTTOM
    clamped = min(max(value, 0), maximum)
    return PAD_TOP + plot_h * (1 - clamped / maximum)


def x_of(index: int, count: int) -> float:
    """The x coordinate of the index-th of `count` evenly spread positions."""
    plot_w = WIDTH - PAD_LEFT - PAD_RIGHT
    return PAD_LEFT + plot_w * (index + 0.5) / max(count, 1)


def _band(lower: int, upper: int, label: str, maximum: int) -> Band:
    # a band covers its whole scores: from lower - 0.5 to upper + 0.5, clipped to the scale
    return Band(lower, upper, label, y_of(upper + 0.5, maximum), y_of(max(lower - 0.5, 0), maximum))


def _ticks(maximum: int) -> tuple[tuple[float, int], ...]:
    step = 5 if maximum > 12 else 2
    return tuple((y_of(v, maximum), v) for v in range(0, maximum + 1, step))


def _same(message: str) -> str:
    return message


def date_label(at: datetime, language: str = "en") -> str:
    """How a date reads under a chart, in the page's language: "04 Dec", "04 dic", "04 Dez"."""
    if language == "en":
        return at.strftime("%d %b")
    return format_date(at, "dd MMM", locale=language).rstrip(".")


def measure_chart(
    *,
    key: str,
    title: str,
    maximum: int,
    bands: Sequence[tuple[int, int, str]],
    reliable_change: int,
    points: Sequence[tuple[datetime, int]],
    show_bands: bool = True,
    gettext: Callable[[str], str] = _same,
    language: str = "en",
) -> Chart:
    """A measure's totals over time, the severity bands behind them, and the band of
    no reliable change (first score ± the reliable-change threshold); its words in
    ``language`` through ``gettext`` (the client's page)."""
    ordered = sorted(points)
    n = len(ordered)
    dots = tuple(
        Dot(x_of(i, n), y_of(total, maximum), total, date_label(at, language))
        for i, (at, total) in enumerate(ordered)
    )
    change_band = None
    if ordered and reliable_change > 0:
        first = ordered[0][1]
        low, high = max(first - reliable_change + 1, 0), min(first + reliable_change - 1, maximum)
        change_band = Band(
            low,
            high,
            gettext("no reliable change"),
            y_of(high + 0.5, maximum),
            y_of(low - 0.5, maximum),
        )
    drawn = tuple(_band(lo, hi, label, maximum) for lo, hi, label in bands) if show_bands else ()
    band_words = ", ".join(f"{b.label} {b.lower}–{b.upper}" for b in drawn)
    description = gettext("{title} total (0 to {maximum}) on each date it was answered.").format(
        title=title, maximum=maximum
    )
    if band_words:
        description += f" Bands: {band_words}."
    if change_band is not None:
        description += " " + gettext(
            "The shaded band around the first score ({first}) marks changes smaller than"
            " {points} points, which may be chance."
        ).format(first=ordered[0][1], points=reliable_change)
    return Chart(
        key=key,
        title=title,
        description=description,
        maximum=maximum,
        bands=drawn,
        change_band=change_band,
        series=(Series(title, "series-measure", dots),),
        x_labels=tuple((d.x, d.label) for d in dots),
        ticks=_ticks(maximum),
    )


def goals_chart(
    *,
    key: str,
    title: str,
    goals: Sequence[tuple[str, Sequence[tuple[datetime, int]]]],
    gettext: Callable[[str], str] = _same,
    language: str = "en",
) -> Chart:
    """One line per goal: progress 0–10 on each date the after-session form asked."""
    dates = sorted({at for _name, points in goals for at, _ in points})
    index = {at: i for i, at in enumerate(dates)}
    n = len(dates)
    series = tuple(
        Series(
            name,
            f"series-goal series-goal-{number % 5}",
            tuple(
                Dot(x_of(index[at], n), y_of(score, 10), score, date_label(at, language))
                for at, score in sorted(points)
            ),
        )
        for number, (name, points) in enumerate(goals)
    )
    return Chart(
        key=key,
        title=title,
        description=gettext(
            "Progress on each goal from 0 (no progress yet) to 10 (fully there), "
            "as given after each session."
        ),
        maximum=10,
        bands=(),
        change_band=None,
        series=series,
        x_labels=tuple((x_of(i, n), date_label(at, language)) for i, at in enumerate(dates)),
        ticks=_ticks(10),
    )


def svg(chart: Chart) -> str:
    """The chart as an accessible SVG (role img, title and description)."""
    k = escape(chart.key)
    parts = [
        f'<svg class="trend progress-chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="{k}-title {k}-desc" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{k}-title">{escape(chart.title)}</title>',
        f'<desc id="{k}-desc">{escape(chart.description)}</desc>',
    ]
    right = WIDTH - PAD_RIGHT
    for number, band in enumerate(chart.bands):
        parts.append(
            f'<rect class="band band-{number}" x="{PAD_LEFT}" y="{band.y_top:.1f}" '
            f'width="{right - PAD_LEFT}" height="{band.y_bottom - band.y_top:.1f}">'
            f"<title>{escape(band.label)}: {band.lower}–{band.upper}</title></rect>"
        )
        parts.append(
            f'<text class="band-label" x="{right - 4}" y="{band.y_top + 11:.1f}" '
            f'text-anchor="end">{escape(band.label)}</text>'
        )
    if chart.change_band is not None:
        cb = chart.change_band
        parts.append(
            f'<rect class="change-band" x="{PAD_LEFT}" y="{cb.y_top:.1f}" '
            f'width="{right - PAD_LEFT}" height="{cb.y_bottom - cb.y_top:.1f}"/>'
        )
    for y, value in chart.ticks:
        parts.append(f'<line class="grid" x1="{PAD_LEFT}" x2="{right}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(
            f'<text class="axis" x="{PAD_LEFT - 6}" y="{y + 4:.1f}" '
            f'text-anchor="end">{value}</text>'
        )
    for series in chart.series:
        if len(series.dots) > 1:
            path = " ".join(f"{d.x:.1f},{d.y:.1f}" for d in series.dots)
            parts.append(f'<polyline class="{series.css}" points="{path}"/>')
        for d in series.dots:
            parts.append(
                f'<circle class="{series.css}" cx="{d.x:.1f}" cy="{d.y:.1f}" r="4">'
                f"<title>{escape(series.name)}, {escape(d.label)}: {d.value}</title></circle>"
            )
    for x, label in chart.x_labels:
        parts.append(
            f'<text class="axis" x="{x:.1f}" y="{HEIGHT - 12}" text-anchor="middle">'
            f"{escape(label)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)

"""SVG pictures of the after-session cue summary (server-rendered; numbers also shown as text).

Every chart is a plain function of the summary's plain data, so it is easy to test and never
needs a script or an external library in the browser.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any

_W, _H, _L, _R, _T, _B = 560, 180, 44, 12, 12, 30


@dataclass
class Chart:
    """What one chart shows; `render()` turns it into accessible SVG."""

    title: str
    description: str
    x_max: float
    y_min: float
    y_max: float
    y_ticks: Sequence[float]
    x_label: str = "minutes"
    lines: list[tuple[str, list[tuple[float, float]]]] = field(default_factory=list)
    bars: list[tuple[str, float, float, float]] = field(default_factory=list)  # css, x0, x1, y
    rules: list[tuple[str, float]] = field(default_factory=list)  # css, y
    marks: list[tuple[str, float, str]] = field(default_factory=list)  # css, x, label
    x_tick_every: float = 5.0

    def _x(self, value: float) -> float:
        span = self.x_max or 1.0
        return _L + (_W - _L - _R) * min(max(value / span, 0.0), 1.0)

    def _y(self, value: float) -> float:
        span = (self.y_max - self.y_min) or 1.0
        clamped = min(max(value, self.y_min), self.y_max)
        return _T + (_H - _T - _B) * (1 - (clamped - self.y_min) / span)

    def render(self, chart_id: str) -> str:
        """The SVG, with a title and description for screen readers."""
        out = [
            f'<svg class="cue-chart" viewBox="0 0 {_W} {_H}" role="img" '
            f'aria-labelledby="{chart_id}-t {chart_id}-d" xmlns="http://www.w3.org/2000/svg">',
            f'<title id="{chart_id}-t">{escape(self.title)}</title>',
            f'<desc id="{chart_id}-d">{escape(self.description)}</desc>',
        ]
        for tick in self.y_ticks:
            y = self._y(tick)
            out.append(f'<line class="grid" x1="{_L}" x2="{_W - _R}" y1="{y:.1f}" y2="{y:.1f}"/>')
            out.append(
                f'<text class="axis" x="{_L - 5}" y="{y + 4:.1f}" text-anchor="end">{tick:g}</text>'
            )
        tick = 0.0
        while tick <= self.x_max + 1e-9:
            out.append(
                f'<text class="axis" x="{self._x(tick):.1f}" y="{_H - 10}" '
                f'text-anchor="middle">{tick:g}</text>'
            )
            tick += self.x_tick_every
        out.append(
            f'<text class="axis" x="{_W - _R}" y="{_H - 1}" text-anchor="end">'
            f"{escape(self.x_label)}</text>"
        )
        for css, x0, x1, y in self.bars:
            top, base = self._y(y), self._y(max(self.y_min, 0.0))
            out.append(
                f'<rect class="{css}" x="{self._x(x0):.1f}" y="{min(top, base):.1f}" '
                f'width="{max(self._x(x1) - self._x(x0) - 1, 1):.1f}" '
                f'height="{abs(base - top):.1f}"/>'
            )
        for css, y in self.rules:
            out.append(
                f'<line class="{css}" x1="{_L}" x2="{_W - _R}" y1="{self._y(y):.1f}" '
                f'y2="{self._y(y):.1f}"/>'
            )
        for css, points in self.lines:
            if points:
                path = " ".join(f"{self._x(x):.1f},{self._y(y):.1f}" for x, y in points)
                out.append(f'<polyline class="{css}" points="{path}"/>')
        for css, x, label in self.marks:
            out.append(
                f'<g class="{css}"><line x1="{self._x(x):.1f}" x2="{self._x(x):.1f}" '
                f'y1="{_T}" y2="{_H - _B}"/><title>{escape(label)}</title></g>'
            )
        out.append("</svg>")
        return "".join(out)


def _minutes(ms: float) -> float:
    return ms / 60_000


def _number(value: object) -> float | None:
    """A finite number from stored JSON, or None (a missing measurement is not zero)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if number == number and abs(number) != float("inf") else None


def _rows(summary: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    """The summary's list under `key`, keeping only objects (partial data draws what it has)."""
    rows = summary.get(key)
    if not isinstance(rows, list):
        return []
    return [row for row in rows if isinstance(row, Mapping)]


def _duration_minutes(summary: Mapping[str, Any]) -> float:
    return max(_minutes(_number(summary.get("duration_ms")) or 0.0), 1.0)


def talk_share_chart(summary: Mapping[str, Any]) -> Chart:
    """The client's share of speech per minute, with the 25 % line the imbalance rule uses."""
    chart = Chart(
        "Client's share of talk, minute by minute",
        "Bars show the client's share of all speech in each minute; the line marks 25 percent.",
        x_max=_duration_minutes(summary),
        y_min=0,
        y_max=100,
        y_ticks=(0, 25, 50, 75, 100),
    )
    for bucket in _rows(summary, "talk_share"):
        share, start_ms = _number(bucket.get("client_share")), _number(bucket.get("start_ms"))
        if share is not None and start_ms is not None:
            start = _minutes(start_ms)
            chart.bars.append(("bar-client", start, start + 1, share * 100))
    chart.rules.append(("guide", 25))
    return chart


def turn_gap_chart(summary: Mapping[str, Any]) -> Chart:
    """How long the client took to answer (negative: they started before the therapist ended)."""
    gaps = next(
        (g for g in _rows(summary, "turn_gaps") if g.get("direction") == "therapist_to_client"),
        None,
    )
    bins: list[tuple[float, float, float]] = []
    for entry in (gaps or {}).get("bins") or []:
        if isinstance(entry, list | tuple) and len(entry) == 3:
            low, high, count = (_number(v) for v in entry)
            if low is not None and high is not None and count is not None:
                bins.append((low, high, count))
    most = max((b[2] for b in bins), default=1) or 1
    chart = Chart(
        "Client's response gaps",
        "How many of the client's turns started after each "
        "gap, in seconds, after the therapist stopped speaking.",
        x_max=4.0,
        y_min=0,
        y_max=most,
        y_ticks=(0, most),
        x_label="seconds",
        x_tick_every=1.0,
    )
    for low, high, count in bins:
        if low >= 0:
            chart.bars.append(("bar-gap", low / 1000, high / 1000, count))
    return chart


def timeline_chart(summary: Mapping[str, Any]) -> Chart:
    """Prompts and the client's signals along the session."""
    chart = Chart(
        "Prompts and signals over the session",
        "Each mark is a prompt shown to you "
        "or a signal button the client pressed; hover for its words.",
        x_max=_duration_minutes(summary),
        y_min=0,
        y_max=1,
        y_ticks=(),
    )
    for event in _rows(summary, "timeline"):
        at = _number(event.get("t_ms"))
        if at is None:
            continue
        css = "mark-signal" if event.get("kind") == "signal" else "mark-prompt"
        chart.marks.append((css, _minutes(at), str(event.get("text") or event.get("label", ""))))
    return chart


def connection_chart(summary: Mapping[str, Any]) -> Chart:
    """One-way delay per minute, with the 150 ms and 400 ms lag tiers.

    A minute without a round-trip measurement (a reconnect, one side's stats missing) breaks
    the line rather than drawing a zero delay.
    """
    points: list[tuple[float, float] | None] = []
    for row in _rows(summary, "connection"):
        start, delay = _number(row.get("start_ms")), _number(row.get("one_way_ms"))
        points.append(None if start is None or delay is None else (_minutes(start) + 0.5, delay))
    measured = [p for p in points if p is not None]
    description = (
        "One-way delay each minute in milliseconds; lines mark "
        "150 ms (hand-offs get harder) and 400 ms (timing cues switched off)."
    )
    if not measured:
        description += " No delay was measured in this session."
    elif len(measured) < len(points):
        description += " Gaps are minutes without a measurement (for example a reconnect)."
    chart = Chart(
        "Connection delay",
        description,
        x_max=_duration_minutes(summary),
        y_min=0,
        y_max=max([500.0, *(delay for _x, delay in measured)]),
        y_ticks=(0, 150, 400),
    )
    segment: list[tuple[float, float]] = []
    for point in [*points, None]:
        if point is not None:
            segment.append(point)
        elif segment:
            chart.lines.append(("line-delay", segment))
            segment = []
    chart.rules += [("guide", 150), ("guide-strong", 400)]
    return chart


def loudness_chart(summary: Mapping[str, Any]) -> Chart:
    """Voice level per minute for both people."""
    chart = Chart(
        "Voice level",
        "Average voice level in dBFS each minute; the teal line is "
        "the therapist, the amber line the client.",
        x_max=_duration_minutes(summary),
        y_min=-60,
        y_max=0,
        y_ticks=(-60, -40, -20, 0),
    )
    for trend in _rows(summary, "loudness"):
        css = "line-therapist" if trend.get("role") == "therapist" else "line-client"
        points: list[tuple[float, float]] = []
        for entry in trend.get("levels") or []:
            if isinstance(entry, list | tuple) and len(entry) == 2:
                at, level = _number(entry[0]), _number(entry[1])
                if at is not None and level is not None:
                    points.append((_minutes(at), level))
        chart.lines.append((css, points))
    return chart


def cue_charts(summary: Mapping[str, Any], id_prefix: str = "cue") -> list[tuple[str, str]]:
    """(heading, svg) pairs for the session summary page (`id_prefix` keeps the charts' ids
    apart when a page shows several clients' summaries)."""
    builders = (
        ("Talk share", talk_share_chart),
        ("Response gaps", turn_gap_chart),
        ("Prompts and signals", timeline_chart),
        ("Connection", connection_chart),
        ("Voice level", loudness_chart),
    )
    return [
        (heading, build(summary).render(f"{id_prefix}-{n}"))
        for n, (heading, build) in enumerate(builders)
    ]

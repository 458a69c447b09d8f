"""Small server-rendered SVG charts (no JavaScript, no external library)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

_W, _H, _PAD_L, _PAD_R, _PAD_T, _PAD_B = 560, 220, 36, 12, 14, 34


def trend_svg(points: Sequence[Mapping[str, Any]], *, cutoff: int, maximum: int) -> str:
    """Before (wellbeing) and after (alliance) totals per session, with the alliance cutoff.

    Each point has `label`, `before` and `after` (int or None). Returns an accessible SVG with
    a title and description; the page also shows the same numbers as a table.
    """
    plot_w, plot_h = _W - _PAD_L - _PAD_R, _H - _PAD_T - _PAD_B
    n = max(len(points), 1)

    def x(i: int) -> float:
        return _PAD_L + (plot_w * (i + 0.5) / n)

    def y(value: float) -> float:
        return _PAD_T + plot_h * (1 - value / maximum)

    parts = [
        f'<svg class="trend" viewBox="0 0 {_W} {_H}" role="img" '
        'aria-labelledby="trend-title trend-desc" xmlns="http://www.w3.org/2000/svg">',
        '<title id="trend-title">Check-in totals across sessions</title>',
        f'<desc id="trend-desc">After-session alliance total (0 to {maximum}) and before-session '
        f"wellbeing total per session; the dashed line marks {cutoff}, below which an alert "
        "is raised.</desc>",
    ]
    for tick in range(0, maximum + 1, 10):
        parts.append(
            f'<line class="grid" x1="{_PAD_L}" x2="{_W - _PAD_R}" y1="{y(tick):.1f}" '
            f'y2="{y(tick):.1f}"/>'
        )
        parts.append(
            f'<text class="axis" x="{_PAD_L - 6}" y="{y(tick) + 4:.1f}" '
            f'text-anchor="end">{tick}</text>'
        )
    parts.append(
        f'<line class="cutoff" x1="{_PAD_L}" x2="{_W - _PAD_R}" y1="{y(cutoff):.1f}" '
        f'y2="{y(cutoff):.1f}"/>'
    )
    for series, css in (("after", "series-after"), ("before", "series-before")):
        coords = [(x(i), y(p[series])) for i, p in enumerate(points) if p.get(series) is not None]
        if len(coords) > 1:
            path = " ".join(f"{cx:.1f},{cy:.1f}" for cx, cy in coords)
            parts.append(f'<polyline class="{css}" points="{path}"/>')
        for cx, cy in coords:
            parts.append(f'<circle class="{css}" cx="{cx:.1f}" cy="{cy:.1f}" r="4"/>')
    for i, p in enumerate(points):
        parts.append(
            f'<text class="axis" x="{x(i):.1f}" y="{_H - 12}" text-anchor="middle">'
            f"{escape(str(p['label']))}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)

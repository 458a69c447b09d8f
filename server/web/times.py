"""Times on pages: rendered in UTC with the zone named, and rewritten by `localtime.js` into
the viewer's own zone (so a page without JavaScript still tells the truth)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from markupsafe import Markup, escape

TimeStyle = Literal["datetime", "date", "time"]
_FORMATS: dict[TimeStyle, str] = {
    "datetime": "%a %d %b %Y, %H:%M UTC",
    "date": "%d %b %Y",
    "time": "%H:%M UTC",
}


def utc_text(moment: datetime, style: TimeStyle = "datetime") -> str:
    """The no-JavaScript text of a time: UTC, to the minute, with the zone named."""
    return moment.astimezone(UTC).strftime(_FORMATS[style])


def time_element(moment: datetime | None, style: TimeStyle = "datetime") -> Markup:
    """`<time datetime=… data-local=…>` with the UTC text; empty for no time."""
    if moment is None:
        return Markup("")
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    iso = aware.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    return Markup('<time datetime="{}" data-local="{}">{}</time>').format(
        iso, style, escape(utc_text(aware, style))
    )

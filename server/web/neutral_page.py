"""The quick exit's neutral page (`/weather`): a plain, generic weather page.

A client who leaves in a hurry lands here (unless `quick_exit_url` names another page). It
must not look like Attune — no name, no logo, no links back — and it fetches nothing from
elsewhere. The forecast is generic text; only the day names follow the calendar.
"""

from __future__ import annotations

from typing import Any, Final

import aiohttp_jinja2
from aiohttp import web

from server.keys import CLOCK

_SKIES: Final = (
    ("Sunny spells", 9, 16),
    ("Cloudy", 8, 13),
    ("Light rain", 7, 12),
    ("Partly cloudy", 8, 15),
    ("Sunny", 10, 17),
)


@aiohttp_jinja2.template("weather.html")
async def weather_page(request: web.Request) -> dict[str, Any]:
    """Today and the next five days, generic; no session, no cookies read or set."""
    today = request.app[CLOCK]().date()
    days = [
        {
            "name": (today.fromordinal(today.toordinal() + n)).strftime("%A"),
            "sky": sky,
            "low": low,
            "high": high,
        }
        for n, (sky, low, high) in enumerate(_SKIES, start=1)
    ]
    return {"today": f"{today:%A} {today.day} {today:%B}", "days": days}


def add_neutral_page_routes(app: web.Application) -> None:
    """Register the neutral page at `/weather` (the default `quick_exit_url`)."""
    app.router.add_get("/weather", weather_page)

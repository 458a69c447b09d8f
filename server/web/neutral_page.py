"""The quick exit's neutral page (`/weather`): a plain, generic weather page.

A client who leaves in a hurry lands here (unless `quick_exit_url` names another page). It
must not look like Attune — no name, no logo, no links back — and it fetches nothing from
elsewhere. The forecast is generic text; only the day names follow the calendar.
"""

from __future__ import annotations

from typing import Any, Final

import aiohttp_jinja2
from aiohttp import web
from babel.dates import format_date

from server.core.languages import N_
from server.keys import CLOCK
from server.web.i18n import LANGUAGE, translate

_SKIES: Final = (
    (N_("Sunny spells"), 9, 16),
    (N_("Cloudy"), 8, 13),
    (N_("Light rain"), 7, 12),
    (N_("Partly cloudy"), 8, 15),
    (N_("Sunny"), 10, 17),
)

# "Monday 23 November" as each language writes it (CLDR patterns).
_TODAY: Final = {"en": "EEEE d MMMM", "es": "EEEE, d 'de' MMMM", "de": "EEEE, d. MMMM"}


@aiohttp_jinja2.template("weather.html")
async def weather_page(request: web.Request) -> dict[str, Any]:
    """Today and the next five days, generic; no session, no cookies read or set."""
    today = request.app[CLOCK]().date()
    locale = request[LANGUAGE]
    days = [
        {
            "name": format_date(today.fromordinal(today.toordinal() + n), "EEEE", locale=locale),
            "sky": translate(request, sky),
            "low": low,
            "high": high,
        }
        for n, (sky, low, high) in enumerate(_SKIES, start=1)
    ]
    pattern = _TODAY.get(locale, "full")
    return {"today": format_date(today, pattern, locale=locale), "days": days}


def add_neutral_page_routes(app: web.Application) -> None:
    """Register the neutral page at `/weather` (the default `quick_exit_url`)."""
    app.router.add_get("/weather", weather_page)

"""Times on pages: rendered in UTC with the zone named, and rewritten by `localtime.js` into
the viewer's own zone (so a page without JavaScript still tells the truth)."""

from __future__ import annotations

import gettext
from datetime import UTC, datetime
from typing import Literal

import jinja2
from babel.dates import format_skeleton
from babel.numbers import format_decimal
from markupsafe import Markup, escape

TimeStyle = Literal["datetime", "date", "time"]
_FORMATS: dict[TimeStyle, str] = {
    "datetime": "%a %d %b %Y, %H:%M UTC",
    "date": "%d %b %Y",
    "time": "%H:%M UTC",
}


# The same shapes in each language's own words and order (CLDR skeletons, through Babel).
_DATE_SKELETONS: dict[TimeStyle, str] = {"datetime": "yMMMEd", "date": "yMMMd"}


def utc_text(moment: datetime, style: TimeStyle = "datetime", locale: str = "en") -> str:
    """The no-JavaScript text of a time: UTC, to the minute, with the zone named, in the
    page's language (English keeps its long-standing shape)."""
    if locale == "en":
        return moment.astimezone(UTC).strftime(_FORMATS[style])
    clock = format_skeleton("Hm", moment, tzinfo=UTC, locale=locale) + " UTC"
    if style == "time":
        return clock
    day = format_skeleton(_DATE_SKELETONS[style], moment, tzinfo=UTC, locale=locale)
    return day if style == "date" else f"{day}, {clock}"


def time_element(
    moment: datetime | str | None, style: TimeStyle = "datetime", locale: str = "en"
) -> Markup:
    """`<time datetime=… data-local=…>` with the UTC text (to the minute: never microseconds);
    empty for no time. An ISO string is read first; one that is not a time is shown as is."""
    if moment is None:
        return Markup("")
    if isinstance(moment, str):
        try:
            moment = datetime.fromisoformat(moment)
        except ValueError:
            return Markup("{}").format(moment)
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    iso = aware.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    return Markup('<time datetime="{}" data-local="{}">{}</time>').format(
        iso, style, escape(utc_text(aware, style, locale))
    )


@jinja2.pass_context
def when(
    context: jinja2.runtime.Context,
    moment: datetime | str | None,
    style: TimeStyle = "datetime",
) -> Markup:
    """`time_element` for templates, in the page's language (`lang`)."""
    return time_element(moment, style, str(context.get("lang", "en")))


@jinja2.pass_context
def number(context: jinja2.runtime.Context, value: int | float) -> str:
    """A number written the page's language's way (`1,234` in English, `1.234` in German)."""
    return format_decimal(value, locale=str(context.get("lang", "en")))


def duration_words(
    days: int, translations: gettext.NullTranslations | None = None, locale: str = "en"
) -> str:
    """A retention period as people say it: "7 days", "3 weeks", "6 months", "about 6 years"
    (never "about 0 years"), in the language of `translations` and `locale` (English without)."""
    words = translations or _ENGLISH
    if days < 21:
        return words.ngettext("%(num)s day", "%(num)s days", days) % {"num": days}
    if days < 60:
        weeks = round(days / 7)
        return words.ngettext("about %(num)s week", "about %(num)s weeks", weeks) % {"num": weeks}
    if days < 365:
        months = round(days / 30.44)
        return words.ngettext("about %(num)s month", "about %(num)s months", months) % {
            "num": months
        }
    years = days / 365.25
    whole = abs(years - round(years)) < 0.05
    shown = format_decimal(round(years) if whole else round(years, 1), "0.#", locale=locale)
    count = round(years) if whole else 2  # "about 1.5 years": a fraction is plural
    return words.ngettext("about %(num)s year", "about %(num)s years", count) % {"num": shown}


_ENGLISH = gettext.NullTranslations()

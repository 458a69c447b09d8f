"""Times and durations as pages show them."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import jinja2
import pytest

from server.web.catalogues import load_catalogues
from server.web.times import duration_words, number, time_element, utc_text

LOCALES = Path(__file__).resolve().parents[2] / "client_web" / "locales"


def test_a_time_is_rendered_in_utc_with_the_zone_named_for_the_browser_to_localise() -> None:
    html = str(time_element(datetime(2026, 12, 4, 13, 16, 42, 123456, tzinfo=UTC), "time"))
    assert html == '<time datetime="2026-12-04T13:16:42Z" data-local="time">13:16 UTC</time>'


@pytest.mark.parametrize(
    ("locale", "style", "text"),
    [
        ("en", "datetime", "Fri 04 Dec 2026, 09:05 UTC"),
        ("es", "datetime", "vie, 4 dic 2026, 9:05 UTC"),
        ("de", "datetime", "Fr., 4. Dez. 2026, 09:05 UTC"),
        ("es", "date", "4 dic 2026"),
        ("de", "date", "4. Dez. 2026"),
        ("de", "time", "09:05 UTC"),
    ],
)
def test_the_no_javascript_text_of_a_time_follows_the_page_language(
    locale: str, style: str, text: str
) -> None:
    moment = datetime(2026, 12, 4, 9, 5, tzinfo=UTC)
    assert utc_text(moment, style, locale) == text  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("days", "words"),
    [
        (1, "1 day"),
        (7, "7 days"),
        (30, "about 4 weeks"),
        (90, "about 3 months"),
        (365, "about 1 year"),
        (2192, "about 6 years"),
        (3653, "about 10 years"),
        (500, "about 1.4 years"),
    ],
)
def test_a_retention_period_reads_as_people_say_it_never_about_0_years(
    days: int, words: str
) -> None:
    assert duration_words(days) == words


def test_a_receipt_time_given_as_iso_text_shows_no_microseconds() -> None:
    html = str(time_element("2026-12-04T13:16:42.123456+00:00"))
    assert "123456" not in html.split(">", 1)[1] and "Fri 04 Dec 2026, 13:16 UTC" in html
    assert str(time_element("not a time")) == "not a time"


@pytest.mark.parametrize(
    ("days", "language", "words"),
    [
        (1, "de", "1 Tag"),
        (7, "es", "7 días"),
        (30, "de", "etwa 4 Wochen"),
        (90, "es", "unos 3 meses"),
        (365, "es", "alrededor de 1 año"),
        (2192, "de", "etwa 6 Jahre"),
        (500, "de", "etwa 1,4 Jahre"),  # the language's own decimal comma
        (500, "es", "unos 1,4 años"),
    ],
)
def test_a_retention_period_reads_as_people_say_it_in_spanish_and_german(
    days: int, language: str, words: str
) -> None:
    catalogues = load_catalogues(LOCALES)
    assert duration_words(days, catalogues[language].translations, language) == words


def test_a_number_is_written_the_pages_languages_way() -> None:
    env = jinja2.Environment(autoescape=True)
    env.globals["number"] = number
    template = env.from_string("{{ number(12345) }}")
    assert [template.render(lang=code) for code in ("en", "de", "es")] == [
        "12,345",
        "12.345",
        "12.345",
    ]

"""The languages Attune speaks, and which one a page is shown in (pure).

The client's own choice wins, then the browser's `Accept-Language`, then the clinic's
`default_language`. Only whole languages are offered (no regional variants): a browser asking
for `de-AT` gets German.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


def N_(message: str) -> str:
    """Mark a message for the catalogue (`make messages` finds it); it is translated where it
    is shown: `translate(request, text)`, or on an error page."""
    return message


@dataclass(frozen=True)
class Language:
    """One offered language: its code (BCP 47, as in `<html lang>`), its own name, its
    writing direction."""

    code: str
    name: str
    direction: str = "ltr"


LANGUAGES: Final = (
    Language("en", "English"),
    Language("es", "Español"),
    Language("de", "Deutsch"),
)
"""Offered languages in the order the switcher lists them; English is the source language."""

SOURCE_LANGUAGE: Final = "en"
LANGUAGE_CODES: Final = frozenset(language.code for language in LANGUAGES)
_BY_CODE: Final = {language.code: language for language in LANGUAGES}

# An Accept-Language header longer than this is not read at all (no browser sends one).
_MAX_HEADER = 1000
_MAX_RANGES = 40


def language(code: str) -> Language:
    """The offered language with this code (KeyError for one not offered)."""
    return _BY_CODE[code]


def offered(code: str | None) -> str | None:
    """The offered language a tag names (`es`, `ES`, `es-MX` → `es`), or None."""
    if not code:
        return None
    primary = code.strip().split("-", 1)[0].lower()
    return primary if primary in LANGUAGE_CODES else None


def accept_language_ranges(header: str | None) -> list[tuple[str, float]]:
    """The language ranges of an `Accept-Language` header, most wanted first (ties keep the
    header's order); ranges with q=0, malformed ranges and `*` are left out."""
    if not header or len(header) > _MAX_HEADER:
        return []
    ranges: list[tuple[int, str, float]] = []
    for position, part in enumerate(header.split(",")[:_MAX_RANGES]):
        tag, _, params = part.strip().partition(";")
        tag = tag.strip()
        if not tag or tag == "*" or not all(c.isalnum() or c == "-" for c in tag):
            continue
        quality = 1.0
        params = params.strip()
        if params:
            name, _, value = params.partition("=")
            if name.strip().lower() != "q":
                continue
            try:
                quality = float(value.strip())
            except ValueError:
                continue
            if not 0.0 <= quality <= 1.0:
                continue
        if quality > 0:
            ranges.append((position, tag, quality))
    ranges.sort(key=lambda item: (-item[2], item[0]))
    return [(tag, quality) for _, tag, quality in ranges]


def negotiate(choice: str | None, accept_language: str | None, default: str) -> str:
    """The language to show: the person's own choice, else the first offered language their
    browser asks for, else the clinic's default (itself offered, or English)."""
    chosen = offered(choice)
    if chosen:
        return chosen
    for tag, _quality in accept_language_ranges(accept_language):
        wanted = offered(tag)
        if wanted:
            return wanted
    return offered(default) or SOURCE_LANGUAGE

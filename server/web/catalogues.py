"""Message catalogues: Babel `.po` files read (and compiled) once at start, per language.

Catalogues live in `client_web/locales/<lang>/LC_MESSAGES/`: `messages.po` for templates (and
Python), `js.po` for the ES modules' `t("…")` strings. `make` compiles `.mo` files next to them;
a `.po` without a fresh `.mo` (a fresh checkout, an installed wheel) is compiled in memory at
start, so the `.po` text is always what is shown. English is the source language: its
catalogue is the message ids themselves.
"""

from __future__ import annotations

import gettext
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

import jinja2
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations
from markupsafe import Markup

from server.core.languages import LANGUAGES, SOURCE_LANGUAGE, language

log = logging.getLogger("attune")

DOMAINS: Final = ("messages", "js")


@dataclass(frozen=True)
class Catalogue:
    """One language's strings: gettext for templates, a plain map for the browser modules."""

    code: str
    translations: gettext.NullTranslations
    js_messages: Mapping[str, str]


def _compiled(po_file: Path, mo_file: Path) -> gettext.NullTranslations:
    """The `.mo` beside the `.po` when it is at least as new, else the `.po` compiled now."""
    if mo_file.is_file() and mo_file.stat().st_mtime >= po_file.stat().st_mtime:
        with mo_file.open("rb") as handle:
            return Translations(handle, domain="messages")
    with po_file.open("rb") as handle:
        catalog = read_po(handle)
    buffer = BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)
    buffer.seek(0)
    return Translations(buffer, domain="messages")


def read_js_messages(po_file: Path) -> dict[str, str]:
    """The translated, non-fuzzy entries of a `js.po` as {English: translation}."""
    with po_file.open("rb") as handle:
        catalog = read_po(handle)
    return {
        str(message.id): str(message.string)
        for message in catalog
        if message.id and isinstance(message.string, str) and message.string
        if not message.fuzzy
    }


def load_catalogues(locales: Path) -> dict[str, Catalogue]:
    """Every offered language's catalogue; a missing file leaves that language's strings in
    English (and says so in the log) rather than stopping the start."""
    catalogues = {
        SOURCE_LANGUAGE: Catalogue(SOURCE_LANGUAGE, gettext.NullTranslations(), {}),
    }
    for offered_language in LANGUAGES:
        code = offered_language.code
        if code == SOURCE_LANGUAGE:
            continue
        directory = locales / code / "LC_MESSAGES"
        po_file, js_file = directory / "messages.po", directory / "js.po"
        if not po_file.is_file() or not js_file.is_file():
            log.warning("no message catalogue for %s: its pages stay in English", code)
            catalogues[code] = Catalogue(code, gettext.NullTranslations(), {})
            continue
        catalogues[code] = Catalogue(
            code,
            _compiled(po_file, directory / "messages.mo"),
            MappingProxyType(read_js_messages(js_file)),
        )
    return catalogues


def _newstyle(translations: gettext.NullTranslations) -> dict[str, Any]:
    """gettext and ngettext as jinja2's new-style i18n calls them: `%(name)s` placeholders
    filled from keyword arguments, the result escaped like any other value."""

    @jinja2.pass_context
    def gettext_(context: jinja2.runtime.Context, message: str, **variables: Any) -> str:
        text = translations.gettext(message)
        if context.eval_ctx.autoescape:
            text = Markup(text)  # noqa: S704 (our catalogue, as jinja2.ext.i18n trusts it)
        return text % variables if variables else text

    @jinja2.pass_context
    def ngettext_(
        context: jinja2.runtime.Context,
        singular: str,
        plural: str,
        number: int,
        **variables: Any,
    ) -> str:
        variables.setdefault("num", number)
        text = translations.ngettext(singular, plural, number)
        if context.eval_ctx.autoescape:
            text = Markup(text)  # noqa: S704 (our catalogue, as jinja2.ext.i18n trusts it)
        return text % variables

    # a message made elsewhere (an error's text): translated when the catalogue has it, and
    # escaped like any value, never trusted as markup
    return {
        "gettext": gettext_,
        "_": gettext_,
        "ngettext": ngettext_,
        "translated": translations.gettext,
    }


@dataclass(frozen=True)
class PageLanguages:
    """What templates need per language, built once at start."""

    catalogues: Mapping[str, Catalogue]
    template_context: Mapping[str, Mapping[str, Any]]

    @classmethod
    def build(cls, catalogues: Mapping[str, Catalogue]) -> PageLanguages:
        """The catalogues and, per language, the variables every template receives."""
        context: dict[str, Mapping[str, Any]] = {}
        for code, catalogue in catalogues.items():
            spoken = language(code)
            context[code] = MappingProxyType(
                {
                    "lang": code,
                    "dir": spoken.direction,
                    "languages": LANGUAGES,
                    "js_messages": dict(catalogue.js_messages),
                    **_newstyle(catalogue.translations),
                }
            )
        return cls(MappingProxyType(catalogues), MappingProxyType(context))

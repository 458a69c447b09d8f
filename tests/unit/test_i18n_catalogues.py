"""The message catalogues are complete: every string marked for translation in the templates,
the Python code and the browser modules has a Spanish and a German translation, none fuzzy,
with the same placeholders; every catalogue compiles; every consent notice has its Spanish and
German text with the same shape as the English one."""

from __future__ import annotations

import re
from io import BytesIO
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog, Message
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

from privacy.consent import SOURCE_LANGUAGE, load_notices
from server.core.languages import LANGUAGE_CODES
from server.web.catalogues import load_catalogues, read_js_messages
from server.web.i18n import TRANSLATED_ROUTES

ROOT = Path(__file__).resolve().parents[2]
LOCALES = ROOT / "client_web" / "locales"
TRANSLATIONS = sorted(LANGUAGE_CODES - {SOURCE_LANGUAGE})
PLACEHOLDER = re.compile(r"%\((\w+)\)s|\{(\w+)\}")


def _marked(config: str, keywords: dict[str, None] | None = None) -> set[str]:
    """Every message id marked in the source, as `make messages` extracts it."""
    with (ROOT / config).open() as handle:
        method_map, options_map = parse_mapping_cfg(handle)
    found = extract_from_dir(
        str(ROOT),
        method_map,
        options_map,
        **({"keywords": keywords} if keywords is not None else {}),
    )
    return {message if isinstance(message, str) else message[0] for _, _, message, _, _ in found}


MARKED = {
    "messages": _marked("babel.cfg"),
    "js": _marked("babel-js.cfg", {"t": None}),
}


def _catalog(language: str, domain: str) -> Catalog:
    with (LOCALES / language / "LC_MESSAGES" / f"{domain}.po").open("rb") as handle:
        return read_po(handle)


def _placeholders(text: str) -> set[str]:
    return {a or b for a, b in PLACEHOLDER.findall(text)}


def _msgid(message: Message) -> str:
    """A message's id; a plural message is known by its singular (as extraction lists it)."""
    return message.id if isinstance(message.id, str) else str(message.id[0])


def _forms(message: Message) -> list[str]:
    """Every translated form of a message (one, or one per plural form), empty ones included."""
    return [message.string] if isinstance(message.string, str) else list(message.string)


def test_the_client_join_path_has_strings_marked_in_both_catalogues() -> None:
    assert "Waiting room" in MARKED["messages"]
    assert "Your connection is good for video." in MARKED["js"]
    assert {"/visit", "/join/{token}", "/weather"} <= TRANSLATED_ROUTES


@pytest.mark.parametrize("domain", ["messages", "js"])
@pytest.mark.parametrize("language", TRANSLATIONS)
def test_every_marked_string_is_translated_and_none_is_fuzzy(language: str, domain: str) -> None:
    catalog = _catalog(language, domain)
    translated = {_msgid(message): message for message in catalog if message.id}
    missing = sorted(
        msgid
        for msgid in MARKED[domain]
        if msgid not in translated or not all(_forms(translated[msgid]))
    )
    fuzzy = sorted(msgid for msgid, message in translated.items() if message.fuzzy)
    assert missing == [], f"{language}/{domain}.po lacks translations (run `make messages`)"
    assert fuzzy == [], f"{language}/{domain}.po has fuzzy entries to review"


@pytest.mark.parametrize("domain", ["messages", "js"])
@pytest.mark.parametrize("language", TRANSLATIONS)
def test_translations_keep_every_placeholder(language: str, domain: str) -> None:
    for message in _catalog(language, domain):
        if not message.id:
            continue
        ids = [message.id] if isinstance(message.id, str) else list(message.id)
        # a plural's forms each say the same as its English plural (the number included)
        for form in (f for f in _forms(message) if f):
            assert _placeholders(form) == _placeholders(str(ids[-1])), message.id


@pytest.mark.parametrize("domain", ["messages", "js"])
def test_the_templates_pot_files_are_up_to_date(domain: str) -> None:
    """The `.pot` a translator starts from holds exactly what the source marks."""
    with (LOCALES / f"{domain}.pot").open("rb") as handle:
        template = {_msgid(m) for m in read_po(handle) if m.id}
    assert template == MARKED[domain], "run `make messages`"


@pytest.mark.parametrize("language", TRANSLATIONS)
def test_every_catalogue_compiles(language: str) -> None:
    buffer = BytesIO()
    write_mo(buffer, _catalog(language, "messages"), use_fuzzy=False)
    buffer.seek(0)
    translations = Translations(buffer)
    assert translations.gettext("Waiting room") != "Waiting room"
    js = read_js_messages(LOCALES / language / "LC_MESSAGES" / "js.po")
    assert set(js) == MARKED["js"]


def test_the_server_loads_a_catalogue_for_every_offered_language(tmp_path: Path) -> None:
    catalogues = load_catalogues(LOCALES)
    assert set(catalogues) == LANGUAGE_CODES
    assert catalogues["de"].translations.gettext("Waiting room") == "Wartezimmer"
    assert catalogues["es"].js_messages["Yes, I agree: {title}"].startswith("Sí")
    # a missing catalogue leaves that language's strings in English instead of failing
    assert load_catalogues(tmp_path)["es"].translations.gettext("Waiting room") == "Waiting room"


def _shape(text: str) -> list[str]:
    """A notice's structure: its headings, list items and paragraphs, by kind only."""
    kinds = []
    for block in re.split(r"\n\s*\n", text.strip()):
        if block.startswith("#"):
            kinds.append("heading")
        elif block.lstrip().startswith("- "):
            kinds.append(f"list:{block.count(chr(10) + '- ') + 1}")
        else:
            kinds.append("paragraph")
    return kinds


def test_every_notice_version_is_published_in_every_language_with_the_same_shape() -> None:
    catalog = load_notices()
    for purpose in catalog.purposes():
        for version in catalog.versions(purpose):
            assert catalog.languages(purpose, version) == tuple(sorted(LANGUAGE_CODES))
            english = catalog.get(purpose, version).text
            for language in TRANSLATIONS:
                translated = catalog.get(purpose, version, language)
                assert translated.sha256 != catalog.get(purpose, version).sha256
                assert _shape(translated.text) == _shape(english), (purpose, language)

"""A Questionnaire's wording in other languages (pure): FHIR `translation` extensions.

Every text a client reads — the title, each item's text, each answer option's display, and the
strings of the intro, client-note and slider-anchor extensions — carries its other languages on
the primitive's `_` element, as FHIR R4 writes a primitive's extensions::

    "text": "Did it get talked through?",
    "_text": {"extension": [{"url": TRANSLATION, "extension": [
        {"url": "lang", "valueCode": "es"}, {"url": "content", "valueString": "¿Se habló de ello?"}
    ]}]}

An instrument is translated into a language completely or not at all (`languages` refuses a
file where one text lacks a language another text has), so a form is never shown half in one
language. `localized` gives the Questionnaire as a client reads it in one language; the export
builds its QuestionnaireResponse from that, so the record keeps the wording that was shown.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Mapping
from typing import Any, Final

ATTUNE_SD: Final = "https://attune.example/fhir/StructureDefinition/"
TRANSLATION: Final = "http://hl7.org/fhir/StructureDefinition/translation"
SOURCE_LANGUAGE: Final = "en"
"""The language of a Questionnaire that does not name its own (`Questionnaire.language`)."""

TRANSLATED_EXTENSIONS: Final = frozenset(
    ATTUNE_SD + name for name in ("intro", "client-note", "anchor-low", "anchor-high")
)
"""Our extensions whose `valueString` a client reads (the therapist's label and repair hint
stay in the clinic's language)."""

_LANGUAGE_CODE: Final = re.compile(r"[a-z]{2,3}(-[A-Za-z0-9]{1,8})*")


class TranslationError(ValueError):
    """A translation extension is malformed, or a text lacks a language the others have."""


def source_language(resource: Mapping[str, Any]) -> str:
    """The language the Questionnaire's own texts are written in."""
    language = resource.get("language")
    return language if isinstance(language, str) and language else SOURCE_LANGUAGE


def _texts(resource: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any], str]]:
    """(where, the element holding the text, the text's key) for every client-facing text."""
    yield "title", resource, "title"
    for extension in _list(resource.get("extension")):
        if isinstance(extension, Mapping) and extension.get("url") in TRANSLATED_EXTENSIONS:
            yield f"extension {extension['url'].rsplit('/', 1)[-1]}", extension, "valueString"
    for item in _list(resource.get("item")):
        if not isinstance(item, Mapping):
            continue
        where = f"item {item.get('linkId')!r}"
        yield where, item, "text"
        for extension in _list(item.get("extension")):
            if isinstance(extension, Mapping) and extension.get("url") in TRANSLATED_EXTENSIONS:
                name = extension["url"].rsplit("/", 1)[-1]
                yield f"{where} {name}", extension, "valueString"
        for option in _list(item.get("answerOption")):
            coding = option.get("valueCoding") if isinstance(option, Mapping) else None
            if isinstance(coding, Mapping):
                yield f"{where} option {coding.get('code')!r}", coding, "display"


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def translations_of(element: Mapping[str, Any], key: str, where: str = "") -> dict[str, str]:
    """A text's translations by language code, from its `_key` element's extensions."""
    extras = element.get(f"_{key}")
    if extras is None:
        return {}
    if not isinstance(extras, Mapping) or not isinstance(extras.get("extension", []), list):
        raise TranslationError(f"{where}: '_{key}' must be an object with an extension list")
    found: dict[str, str] = {}
    for extension in extras.get("extension", []):
        if not isinstance(extension, Mapping) or extension.get("url") != TRANSLATION:
            continue
        parts = {
            part.get("url"): part
            for part in _list(extension.get("extension"))
            if isinstance(part, Mapping)
        }
        lang = parts.get("lang", {}).get("valueCode")
        content = parts.get("content", {}).get("valueString")
        if not isinstance(lang, str) or not _LANGUAGE_CODE.fullmatch(lang):
            raise TranslationError(f"{where}: a translation needs a language code ('lang')")
        if not isinstance(content, str) or not content.strip():
            raise TranslationError(f"{where}: the {lang!r} translation has no text ('content')")
        if lang in found:
            raise TranslationError(f"{where}: two {lang!r} translations")
        found[lang] = content
    return found


def languages(resource: Mapping[str, Any]) -> frozenset[str]:
    """The languages a client can read the whole Questionnaire in (its own and every language
    all of its texts are translated into); TranslationError when a text lacks one that
    another text has, or a translation is malformed."""
    source = source_language(resource)
    per_text = [
        (where, set(translations_of(element, key, where)))
        for where, element, key in _texts(resource)
    ]
    everywhere = set().union(*(langs for _, langs in per_text)) - {source}
    for where, langs in per_text:
        missing = sorted(everywhere - langs)
        if missing:
            raise TranslationError(f"{where}: no {', '.join(map(repr, missing))} translation")
    return frozenset({source, *everywhere})


def localized(resource: Mapping[str, Any], language: str) -> dict[str, Any]:
    """The Questionnaire as a client reads it in `language` (a fresh copy): every translated
    text replaced by its translation, `language` set; the translations stay on the texts."""
    copied: dict[str, Any] = copy.deepcopy(dict(resource))
    if language == source_language(copied):
        return copied
    for where, element, key in list(_texts(copied)):
        text = translations_of(element, key, where).get(language)
        if text is not None:
            assert isinstance(element, dict)
            element[key] = text
    copied["language"] = language
    return copied


def translated(text_by_language: Mapping[str, str]) -> dict[str, Any]:
    """The `_` element carrying a text's translations (for Questionnaire items made in code)."""
    return {
        "extension": [
            {
                "url": TRANSLATION,
                "extension": [
                    {"url": "lang", "valueCode": lang},
                    {"url": "content", "valueString": content},
                ],
            }
            for lang, content in text_by_language.items()
        ]
    }

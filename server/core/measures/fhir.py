"""FHIR R4 export of outcome measures (pure): the Questionnaire and a QuestionnaireResponse.

Answers carry their LOINC answer coding; the computed total goes in the read-only ``total``
item only when every question was answered. Skipped items carry the check-ins' ``skipped``
extension, so a skip stays distinguishable from an answer.

Wording in other languages rides on the shipped Questionnaire as FHIR ``translation``
extensions (``_text``, ``_display``; docs/languages.md). ``localized_questionnaire`` gives the
form a copy whose texts are in the client's language, and a response records the language it
was answered in, so its export keeps the wording the client was shown.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from server.core.checkins.fhir import bundle, fhir_datetime
from server.core.checkins.instruments import EXT_SKIPPED
from server.core.languages import SOURCE_LANGUAGE
from server.core.measures.questionnaires import (
    LOINC,
    TOTAL_LINK_ID,
    Measure,
    MeasureResponse,
    validate_measure_answers,
)
from server.core.measures.scoring import score_measure

FHIR_TRANSLATION = "http://hl7.org/fhir/StructureDefinition/translation"


def measure_questionnaire(measure: Measure) -> dict[str, Any]:
    """The measure's R4 Questionnaire, exactly as shipped (a fresh copy)."""
    resource: dict[str, Any] = json.loads(measure.resource_json)
    return resource


def translated(element: Mapping[str, Any], key: str, language: str) -> str | None:
    """The ``translation`` extension's content for ``language`` on primitive ``key`` (from
    ``_key``), or None when there is none."""
    carrier = element.get(f"_{key}")
    if not isinstance(carrier, Mapping):
        return None
    for entry in carrier.get("extension", []):
        if not isinstance(entry, Mapping) or entry.get("url") != FHIR_TRANSLATION:
            continue
        parts = {p.get("url"): p for p in entry.get("extension", []) if isinstance(p, Mapping)}
        if parts.get("lang", {}).get("valueCode") == language:
            content = parts.get("content", {}).get("valueString")
            if isinstance(content, str) and content.strip():
                return content
    return None


def measure_languages(measure: Measure) -> frozenset[str]:
    """The languages every question, option and the stem of a measure are translated into,
    plus the source language."""
    resource = measure_questionnaire(measure)
    found: set[str] | None = None
    for item in resource.get("item", []):
        elements = [(item, "text")] + [
            (option["valueCoding"], "display") for option in item.get("answerOption", [])
        ]
        for element, key in elements:
            carrier = element.get(f"_{key}", {})
            langs = {
                part.get("valueCode")
                for entry in carrier.get("extension", [])
                if entry.get("url") == FHIR_TRANSLATION
                for part in entry.get("extension", [])
                if part.get("url") == "lang"
            }
            found = langs if found is None else found & langs
    return frozenset((found or set()) | {SOURCE_LANGUAGE})


def localized_questionnaire(measure: Measure, language: str) -> dict[str, Any]:
    """The Questionnaire with every text in ``language`` where a translation exists (the
    translations stay on it); ``language`` is set only when the form is fully translated."""
    resource = measure_questionnaire(measure)
    if language == SOURCE_LANGUAGE or language not in measure_languages(measure):
        return resource
    for item in resource.get("item", []):
        item["text"] = translated(item, "text", language) or item.get("text")
        for option in item.get("answerOption", []):
            coding = option["valueCoding"]
            coding["display"] = translated(coding, "display", language) or coding.get("display")
    resource["language"] = language
    return resource


def measure_response(
    measure: Measure,
    response: MeasureResponse,
    *,
    response_id: str,
    subject_ref: str,
    authored: datetime,
    language: str = SOURCE_LANGUAGE,
) -> dict[str, Any]:
    """A completed R4 QuestionnaireResponse; ``authored`` must be aware. Item texts and answer
    displays are in ``language``, the wording the client was shown."""
    total = score_measure(measure, response).total
    shown = {item["linkId"]: item for item in localized_questionnaire(measure, language)["item"]}
    items: list[dict[str, Any]] = []
    for item in measure.items:
        form_item = shown[item.link_id]
        entry: dict[str, Any] = {"linkId": item.link_id, "text": form_item["text"]}
        code = response.code(item.link_id)
        if code is None:
            entry["extension"] = [{"url": EXT_SKIPPED, "valueBoolean": True}]
        else:
            option = item.option(code)
            display = next(
                o["valueCoding"]["display"]
                for o in form_item["answerOption"]
                if o["valueCoding"]["code"] == option.code
            )
            coding = {"system": LOINC, "code": option.code, "display": display}
            entry["answer"] = [{"valueCoding": coding}]
        items.append(entry)
    if total is not None:
        items.append(
            {
                "linkId": TOTAL_LINK_ID,
                "text": shown[TOTAL_LINK_ID]["text"],
                "answer": [{"valueInteger": total}],
            }
        )
    resource: dict[str, Any] = {
        "resourceType": "QuestionnaireResponse",
        "id": response_id,
        "questionnaire": measure.canonical,
        "status": "completed",
        "subject": {"reference": subject_ref},
        "authored": fhir_datetime(authored),
        "item": items,
    }
    if language != SOURCE_LANGUAGE:
        resource["language"] = language
    return resource


def measures_bundle(
    measures: Mapping[str, Measure],
    responses: Sequence[tuple[Any, ...]],
    *,
    subject_ref: str,
    bundle_id: str,
    timestamp: datetime,
) -> dict[str, Any]:
    """A ``collection`` Bundle of the answered measures' Questionnaires (with their LOINC
    codes) and one QuestionnaireResponse per ``(id, measure id, authored, answers)`` (and the
    language it was answered in, when known); answers to a measure this server no longer knows
    are left out."""
    used: dict[str, Measure] = {}
    resources: list[dict[str, Any]] = []
    for row in responses:
        response_id, measure_id, authored, answers = row[:4]
        language = str(row[4]) if len(row) > 4 else SOURCE_LANGUAGE
        measure = measures.get(measure_id)
        if measure is None:
            continue
        used[measure_id] = measure
        parsed = validate_measure_answers(measure, answers)
        resources.append(
            measure_response(
                measure,
                parsed,
                response_id=response_id,
                subject_ref=subject_ref,
                authored=authored,
                language=language,
            )
        )
    questionnaires = [measure_questionnaire(m) for m in used.values()]
    return bundle(questionnaires, resources, bundle_id=bundle_id, timestamp=timestamp)

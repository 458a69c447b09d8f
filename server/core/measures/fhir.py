"""FHIR R4 export of outcome measures (pure): the Questionnaire and a QuestionnaireResponse.

Answers carry their LOINC answer coding; the computed total goes in the read-only ``total``
item only when every question was answered. Skipped items carry the check-ins' ``skipped``
extension, so a skip stays distinguishable from an answer.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from server.core.checkins.fhir import bundle, fhir_datetime
from server.core.checkins.instruments import EXT_SKIPPED
from server.core.measures.questionnaires import (
    LOINC,
    TOTAL_LINK_ID,
    Measure,
    MeasureResponse,
    validate_measure_answers,
)
from server.core.measures.scoring import score_measure


def measure_questionnaire(measure: Measure) -> dict[str, Any]:
    """The measure's R4 Questionnaire, exactly as shipped (a fresh copy)."""
    resource: dict[str, Any] = json.loads(measure.resource_json)
    return resource


def measure_response(
    measure: Measure,
    response: MeasureResponse,
    *,
    response_id: str,
    subject_ref: str,
    authored: datetime,
) -> dict[str, Any]:
    """A completed R4 QuestionnaireResponse; ``authored`` must be aware."""
    total = score_measure(measure, response).total
    items: list[dict[str, Any]] = []
    for item in measure.items:
        entry: dict[str, Any] = {"linkId": item.link_id, "text": item.text}
        code = response.code(item.link_id)
        if code is None:
            entry["extension"] = [{"url": EXT_SKIPPED, "valueBoolean": True}]
        else:
            option = item.option(code)
            coding = {"system": LOINC, "code": option.code, "display": option.display}
            entry["answer"] = [{"valueCoding": coding}]
        items.append(entry)
    if total is not None:
        items.append(
            {"linkId": TOTAL_LINK_ID, "text": "Total score", "answer": [{"valueInteger": total}]}
        )
    return {
        "resourceType": "QuestionnaireResponse",
        "id": response_id,
        "questionnaire": measure.canonical,
        "status": "completed",
        "subject": {"reference": subject_ref},
        "authored": fhir_datetime(authored),
        "item": items,
    }


def measures_bundle(
    measures: Mapping[str, Measure],
    responses: Sequence[tuple[str, str, datetime, Mapping[str, Any]]],
    *,
    subject_ref: str,
    bundle_id: str,
    timestamp: datetime,
) -> dict[str, Any]:
    """A ``collection`` Bundle of the answered measures' Questionnaires (with their LOINC
    codes) and one QuestionnaireResponse per ``(id, measure id, authored, answers)``; answers
    to a measure this server no longer knows are left out."""
    used: dict[str, Measure] = {}
    resources: list[dict[str, Any]] = []
    for response_id, measure_id, authored, answers in responses:
        measure = measures.get(measure_id)
        if measure is None:
            continue
        used[measure_id] = measure
        parsed = validate_measure_answers(measure, answers)
        resources.append(
            measure_response(
                measure, parsed, response_id=response_id, subject_ref=subject_ref, authored=authored
            )
        )
    questionnaires = [measure_questionnaire(m) for m in used.values()]
    return bundle(questionnaires, resources, bundle_id=bundle_id, timestamp=timestamp)

"""FHIR R4 export of check-ins (pure): Questionnaire, QuestionnaireResponse, Bundle.

Skipped items are carried, not omitted: the response item has no ``answer`` and an
extension ``EXT_SKIPPED`` with ``valueBoolean: true``, so a skip stays distinguishable from
an item the form never showed (those are left out).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from server.core.checkins.instruments import EXT_SKIPPED, Instrument, Item, Response

RESPONSE_STATUSES: Final = ("in-progress", "completed", "amended", "entered-in-error", "stopped")


def questionnaire_resource(instrument: Instrument) -> dict[str, Any]:
    """The instrument's R4 Questionnaire, exactly as shipped (a fresh copy)."""
    resource: dict[str, Any] = json.loads(instrument.resource_json)
    return resource


def questionnaire_response(
    instrument: Instrument,
    response: Response,
    *,
    response_id: str,
    subject_ref: str,
    authored: datetime,
    status: str = "completed",
) -> dict[str, Any]:
    """An R4 QuestionnaireResponse for a validated response; ``authored`` must be aware. Its
    item texts and answer displays are the instrument's: pass ``instrument.in_language(lang)``
    for the wording a client read in another language (``language`` then says which)."""
    if (response.instrument_id, response.instrument_version) != (
        instrument.id,
        instrument.version,
    ):
        raise ValueError("the response belongs to another instrument or version")
    if status not in RESPONSE_STATUSES:
        raise ValueError(f"status must be one of {', '.join(RESPONSE_STATUSES)}")
    items = [
        _response_item(instrument.item(answer.link_id), answer.value) for answer in response.answers
    ]
    resource: dict[str, Any] = {
        "resourceType": "QuestionnaireResponse",
        "id": response_id,
        "language": instrument.language,
        "questionnaire": instrument.canonical,
        "status": status,
        "subject": {"reference": subject_ref},
        "authored": fhir_datetime(authored),
    }
    if items:
        resource["item"] = items
    return resource


def bundle(
    questionnaires: Sequence[Mapping[str, Any]],
    responses: Sequence[Mapping[str, Any]],
    *,
    bundle_id: str,
    timestamp: datetime,
) -> dict[str, Any]:
    """A ``collection`` Bundle of Questionnaire and QuestionnaireResponse resources."""
    return {
        "resourceType": "Bundle",
        "id": bundle_id,
        "type": "collection",
        "timestamp": fhir_datetime(timestamp),
        "entry": [{"resource": dict(resource)} for resource in (*questionnaires, *responses)],
    }


def _response_item(item: Item, value: int | str | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"linkId": item.link_id, "text": item.text}
    if value is None:
        entry["extension"] = [{"url": EXT_SKIPPED, "valueBoolean": True}]
    elif isinstance(value, int):
        entry["answer"] = [{"valueInteger": value}]
    elif item.type == "choice":
        option = item.option(value)
        coding = {"code": option.code, "display": option.display}
        if option.system is not None:
            coding = {"system": option.system, **coding}
        entry["answer"] = [{"valueCoding": coding}]
    else:
        entry["answer"] = [{"valueString": value}]
    return entry


def fhir_datetime(moment: datetime) -> str:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("FHIR date-times need a time zone: pass an aware datetime")
    text = moment.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text

"""FHIR export: shipped Questionnaires, responses and bundles validate as R4(B) resources."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from importlib import resources
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.questionnaire import Questionnaire
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse

from server.core.checkins import (
    Instrument,
    bundle,
    load_builtin_instruments,
    questionnaire_resource,
    questionnaire_response,
    validate_answers,
)
from server.core.checkins.instruments import EXT_SKIPPED
from tests.fhir_r4b import r4b_valid

BUILTINS = load_builtin_instruments()
AFTER, PULSE = BUILTINS["after"], BUILTINS["pulse"]
AUTHORED = datetime(2025, 3, 4, 17, 30, tzinfo=UTC)
FULL_AFTER = {
    "bond": 9,
    "goals": 10,
    "approach": 8,
    "technology": 7,
    "overall": 9,
    "rupture": "a-little",
    "rupture-talked-through": "yes",
    "note": "Thank you.",
}


def export(instrument: Instrument, raw: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    return questionnaire_response(
        instrument,
        validate_answers(instrument, raw),
        response_id="resp-1",
        subject_ref="Patient/client-7",
        authored=kwargs.pop("authored", AUTHORED),
        **kwargs,
    )


@pytest.mark.parametrize("instrument", BUILTINS.values(), ids=BUILTINS.keys())
def test_each_shipped_questionnaire_is_valid_r4_and_exported_as_shipped(
    instrument: Instrument,
) -> None:
    resource = questionnaire_resource(instrument)
    shipped = resources.files("server.core.checkins").joinpath(f"instruments/{instrument.id}.json")
    assert resource == json.loads(shipped.read_text(encoding="utf-8"))
    parsed = r4b_valid(Questionnaire, resource)
    assert (parsed.url, parsed.version) == (instrument.url, instrument.version)


def test_the_exported_questionnaire_is_a_fresh_copy() -> None:
    questionnaire_resource(AFTER)["title"] = "changed"
    assert questionnaire_resource(AFTER)["title"] == AFTER.title


def test_a_full_response_carries_typed_answers() -> None:
    resource = export(AFTER, FULL_AFTER)
    parsed = QuestionnaireResponse.model_validate(resource)
    assert parsed.questionnaire == "https://attune.example/fhir/Questionnaire/after|1.0.0"
    assert parsed.status == "completed"
    assert resource["authored"] == "2025-03-04T17:30:00Z"
    answers = {item["linkId"]: item["answer"][0] for item in resource["item"]}
    assert answers["bond"] == {"valueInteger": 9}
    assert answers["rupture"]["valueCoding"]["code"] == "a-little"
    assert answers["rupture-talked-through"]["valueCoding"]["display"] == "Yes"
    assert answers["note"] == {"valueString": "Thank you."}


def test_skips_are_carried_with_an_extension_and_hidden_items_left_out() -> None:
    resource = export(AFTER, {"bond": 9, "rupture": "no"})
    QuestionnaireResponse.model_validate(resource)
    by_id = {item["linkId"]: item for item in resource["item"]}
    assert "rupture-talked-through" not in by_id
    assert by_id["goals"]["extension"] == [{"url": EXT_SKIPPED, "valueBoolean": True}]
    assert "answer" not in by_id["goals"]
    assert "extension" not in by_id["bond"]


@pytest.mark.parametrize(
    ("authored", "expected"),
    [
        pytest.param(AUTHORED, "2025-03-04T17:30:00Z", id="utc"),
        pytest.param(
            datetime(2025, 3, 4, 18, 30, tzinfo=timezone(timedelta(hours=1))),
            "2025-03-04T18:30:00+01:00",
            id="offset",
        ),
    ],
)
def test_authored_keeps_its_time_zone(authored: datetime, expected: str) -> None:
    assert export(PULSE, {"pulse": 3}, authored=authored)["authored"] == expected


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        pytest.param({"authored": datetime(2025, 3, 4, 17, 30)}, "time zone", id="naive-time"),
        pytest.param({"status": "done"}, "status", id="unknown-status"),
    ],
)
def test_a_bad_export_request_is_refused(kwargs: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        export(PULSE, {"pulse": 3}, **kwargs)


def test_a_response_for_another_instrument_is_refused() -> None:
    with pytest.raises(ValueError, match="another instrument"):
        questionnaire_response(
            AFTER,
            validate_answers(PULSE, {"pulse": 3}),
            response_id="r",
            subject_ref="Patient/p",
            authored=AUTHORED,
        )


def test_a_collection_bundle_of_questionnaires_and_responses_is_valid() -> None:
    responses = [export(AFTER, FULL_AFTER), export(PULSE, {"pulse": 2})]
    questionnaires = [questionnaire_resource(i) for i in (AFTER, PULSE)]
    resource = bundle(questionnaires, responses, bundle_id="export-1", timestamp=AUTHORED)
    parsed = r4b_valid(Bundle, resource)
    assert parsed.type == "collection"
    assert len(parsed.entry or []) == 4
    assert [entry["resource"]["resourceType"] for entry in resource["entry"]] == [
        "Questionnaire",
        "Questionnaire",
        "QuestionnaireResponse",
        "QuestionnaireResponse",
    ]

"""Check-in wording per language: FHIR `translation` extensions on every client-facing text,
a form translated completely or not at all, and the wording shown kept for the export."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from fhir.resources.R4B.questionnaire import Questionnaire
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse

from server.core.checkins import (
    Instrument,
    InstrumentError,
    load_builtin_instruments,
    load_instrument,
    questionnaire_resource,
    questionnaire_response,
    score,
    validate_answers,
)
from server.core.checkins.translations import (
    TRANSLATION,
    TranslationError,
    languages,
    localized,
    translated,
    translations_of,
)
from server.core.goals import Goal, GoalStatus, with_goal_items
from server.core.models import SessionRole
from tests.fhir_r4b import r4b_valid

BUILTINS = load_builtin_instruments()
SD = "https://attune.example/fhir/StructureDefinition/"
CLIENT_EXTENSIONS = {SD + "intro", SD + "client-note", SD + "anchor-low", SD + "anchor-high"}


def _client_texts(resource: dict[str, Any]) -> list[tuple[dict[str, Any], str]]:
    """Every text a client reads, found independently of the module under test."""
    found: list[tuple[dict[str, Any], str]] = [(resource, "title")]
    found += [(e, "valueString") for e in resource["extension"] if e["url"] in CLIENT_EXTENSIONS]
    for item in resource["item"]:
        found.append((item, "text"))
        found += [
            (e, "valueString") for e in item.get("extension", []) if e["url"] in CLIENT_EXTENSIONS
        ]
        found += [(o["valueCoding"], "display") for o in item.get("answerOption", [])]
    return found


@pytest.mark.parametrize("instrument", BUILTINS.values(), ids=BUILTINS.keys())
def test_every_text_a_client_reads_is_in_spanish_and_german(instrument: Instrument) -> None:
    assert instrument.languages == {"en", "es", "de"}
    resource = questionnaire_resource(instrument)
    texts = _client_texts(resource)
    assert len(texts) > 5
    for element, key in texts:
        shown = translations_of(element, key)
        assert set(shown) == {"es", "de"}, (element[key], shown)
        assert all(text.strip() for text in shown.values())
    # the therapist's labels and hints are not the client's: they stay in the clinic's words
    for item in resource["item"]:
        for extension in item.get("extension", []):
            if extension["url"] in (SD + "therapist-label", SD + "repair-hint"):
                assert "_valueString" not in extension


def _codes(resource: dict[str, Any]) -> list[tuple[str, list[str]]]:
    return [
        (i["linkId"], [o["valueCoding"]["code"] for o in i.get("answerOption", [])])
        for i in resource["item"]
    ]


@pytest.mark.parametrize("language", ["es", "de"])
@pytest.mark.parametrize("instrument", BUILTINS.values(), ids=BUILTINS.keys())
def test_the_localized_questionnaire_is_valid_r4_with_every_text_replaced(
    instrument: Instrument, language: str
) -> None:
    resource = questionnaire_resource(instrument)
    shown = localized(resource, language)
    r4b_valid(Questionnaire, shown)
    assert shown["language"] == language
    for (before, key), (after, _) in zip(
        _client_texts(resource), _client_texts(shown), strict=True
    ):
        assert after[key] == translations_of(before, key)[language]
    # codes, ranges and link ids are untouched: scoring reads the same answers
    assert _codes(shown) == _codes(resource)
    assert resource != shown and questionnaire_resource(instrument) == resource  # a copy


def test_the_instrument_in_spanish_scores_the_same_answers_the_same() -> None:
    after = BUILTINS["after"]
    spanish = after.in_language("es")
    answers = {"bond": 9, "goals": 7, "rupture": "a-little", "rupture-talked-through": "no"}
    assert score(spanish, validate_answers(spanish, answers)) == score(
        after, validate_answers(after, answers)
    )
    assert spanish.item("rupture").option("quite-a-bit").display == "Bastante"
    assert spanish.language == "es" and after.language == "en"
    with pytest.raises(KeyError):
        after.in_language("fr")


def test_a_response_read_in_german_carries_the_german_wording_and_its_language() -> None:
    german = BUILTINS["pulse"].in_language("de")
    resource = questionnaire_response(
        german,
        validate_answers(german, {"pulse": 4}),
        response_id="r-1",
        subject_ref="Patient/p-1",
        authored=datetime(2026, 12, 4, 20, 0, tzinfo=UTC),
    )
    QuestionnaireResponse.model_validate(resource)
    assert resource["language"] == "de"
    assert resource["item"] == [
        {
            "linkId": "pulse",
            "text": "Wie geht es Ihnen gerade mit dem Gespräch?",
            "answer": [{"valueInteger": 4}],
        }
    ]


def _with_title_in_spanish_only() -> dict[str, Any]:
    resource = json.loads(BUILTINS["pulse"].resource_json)
    # strip every translation, then translate only the title
    for element, key in _client_texts(resource):
        element.pop(f"_{key}", None)
    resource["_title"] = translated({"es": "Pregunta rápida"})
    return resource


def test_a_form_translated_only_in_part_is_refused_naming_the_text() -> None:
    with pytest.raises(InstrumentError, match=r"partial.json: extension intro: no 'es' transl"):
        load_instrument(_with_title_in_spanish_only(), source="partial.json")
    resource = json.loads(BUILTINS["pulse"].resource_json)
    del resource["item"][0]["_text"]
    with pytest.raises(InstrumentError, match=r"item 'pulse': no 'de', 'es' translation"):
        load_instrument(resource)


def test_a_form_without_translations_is_english_only() -> None:
    resource = _with_title_in_spanish_only()
    del resource["_title"]
    assert load_instrument(resource).languages == {"en"}
    assert languages(resource) == {"en"}


def test_a_form_written_in_german_names_its_own_language() -> None:
    resource = _with_title_in_spanish_only()
    del resource["_title"]
    resource["language"] = "de"
    instrument = load_instrument(resource)
    assert (instrument.language, instrument.languages) == ("de", {"de"})


@pytest.mark.parametrize(
    ("extension", "problem"),
    [
        ([{"url": "content", "valueString": "Hola"}], "needs a language code"),
        (
            [{"url": "lang", "valueCode": "Spanish!"}, {"url": "content", "valueString": "x"}],
            "needs a language code",
        ),
        ([{"url": "lang", "valueCode": "es"}], "has no text"),
        (
            [{"url": "lang", "valueCode": "es"}, {"url": "content", "valueString": " "}],
            "has no text",
        ),
    ],
)
def test_a_malformed_translation_is_refused(extension: list[dict[str, Any]], problem: str) -> None:
    resource = copy.deepcopy(json.loads(BUILTINS["pulse"].resource_json))
    resource["_title"] = {"extension": [{"url": TRANSLATION, "extension": extension}]}
    with pytest.raises(InstrumentError, match=problem):
        load_instrument(resource)
    with pytest.raises(TranslationError):
        languages(resource)


def test_two_translations_into_one_language_are_refused() -> None:
    resource = json.loads(BUILTINS["pulse"].resource_json)
    resource["_title"] = {
        "extension": [*resource["_title"]["extension"], *translated({"es": "Otra"})["extension"]]
    }
    with pytest.raises(InstrumentError, match="two 'es' translations"):
        load_instrument(resource)


def test_goal_items_in_the_after_form_are_translated_around_the_goals_own_words() -> None:
    goal = Goal(
        id="g1",
        text="Sleep before midnight",
        status=GoalStatus.ACTIVE,
        position=0,
        created_at=datetime(2026, 12, 1, tzinfo=UTC),
        updated_at=datetime(2026, 12, 1, tzinfo=UTC),
        updated_by=SessionRole.THERAPIST,
    )
    form = with_goal_items(questionnaire_resource(BUILTINS["after"]), [goal])
    assert languages(form) == {"en", "es", "de"}
    spanish = localized(form, "es")
    (item,) = [i for i in spanish["item"] if i["linkId"] == "goal-g1"]
    assert item["text"] == "Avance en su objetivo: «Sleep before midnight»"

"""PHQ-9 and GAD-7: published wording and LOINC codes, scoring, change and not-on-track flags."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from fhir.resources.R4B.questionnaire import Questionnaire
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse
from hypothesis import given
from hypothesis import strategies as st

from server.core.measures import (
    Measure,
    MeasureAnswerError,
    MeasureError,
    ScorePoint,
    change,
    load_builtin_measures,
    load_measure,
    measure_questionnaire,
    measure_response,
    not_on_track,
    reliable_change_index,
    reliable_change_threshold,
    safety_alert,
    score_measure,
    severity,
    validate_measure_answers,
)
from server.core.measures.fhir import localized_questionnaire, measure_languages

MEASURES = load_builtin_measures()
PHQ9, GAD7 = MEASURES["phq9"], MEASURES["gad7"]
CODES = ("LA6568-5", "LA6569-3", "LA6570-1", "LA6571-9")  # Not at all … Nearly every day
AUTHORED = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)


def answers(measure: Measure, *scores: int | None) -> dict[str, str | None]:
    """``{linkId: code}`` from item scores in form order (None skips)."""
    assert len(scores) == len(measure.items)
    return {
        item.link_id: None if value is None else CODES[value]
        for item, value in zip(measure.items, scores, strict=True)
    }


def scored(measure: Measure, *scores: int | None) -> Any:
    return score_measure(measure, validate_measure_answers(measure, answers(measure, *scores)))


def test_the_shipped_measures_are_phq9_and_gad7_with_their_loinc_panels() -> None:
    assert sorted(MEASURES) == ["gad7", "phq9"]
    assert (PHQ9.loinc, PHQ9.total_loinc, len(PHQ9.items), PHQ9.max_total) == (
        "44249-1",
        "44261-6",
        9,
        27,
    )
    assert (GAD7.loinc, GAD7.total_loinc, len(GAD7.items), GAD7.max_total) == (
        "69737-5",
        "70274-6",
        7,
        21,
    )


def test_each_question_carries_its_published_text_and_loinc_item_code() -> None:
    phq9 = [(item.loinc, item.text.split()[0]) for item in PHQ9.items]
    assert phq9 == [
        ("44250-9", "Little"),
        ("44255-8", "Feeling"),
        ("44259-0", "Trouble"),
        ("44254-1", "Feeling"),
        ("44251-7", "Poor"),
        ("44258-2", "Feeling"),
        ("44252-5", "Trouble"),
        ("44253-3", "Moving"),
        ("44260-8", "Thoughts"),
    ]
    assert [item.loinc for item in GAD7.items] == [
        "69725-0",
        "68509-9",
        "69733-4",
        "69734-2",
        "69735-9",
        "69689-8",
        "69736-7",
    ]
    assert PHQ9.stem.startswith("Over the last 2 weeks, how often have you been bothered")
    assert [o.display for o in PHQ9.items[0].options] == [
        "Not at all",
        "Several days",
        "More than half the days",
        "Nearly every day",
    ]


def test_only_phq9_item_9_is_a_safety_item() -> None:
    assert PHQ9.safety_item is not None and PHQ9.safety_item.loinc == "44260-8"
    assert GAD7.safety_item is None


@pytest.mark.parametrize(
    ("measure", "total", "band"),
    [
        (PHQ9, 0, "minimal"),
        (PHQ9, 4, "minimal"),
        (PHQ9, 5, "mild"),
        (PHQ9, 9, "mild"),
        (PHQ9, 10, "moderate"),
        (PHQ9, 14, "moderate"),
        (PHQ9, 15, "moderately severe"),
        (PHQ9, 19, "moderately severe"),
        (PHQ9, 20, "severe"),
        (PHQ9, 27, "severe"),
        (GAD7, 0, "minimal"),
        (GAD7, 4, "minimal"),
        (GAD7, 5, "mild"),
        (GAD7, 9, "mild"),
        (GAD7, 10, "moderate"),
        (GAD7, 14, "moderate"),
        (GAD7, 15, "severe"),
        (GAD7, 21, "severe"),
    ],
)
def test_severity_bands_follow_the_published_cut_points(
    measure: Measure, total: int, band: str
) -> None:
    assert severity(measure, total) == band


@pytest.mark.parametrize(
    ("measure", "item_scores", "total", "band"),
    [
        # Kroenke, Spitzer & Williams 2001: the total is the sum of the nine items (0–3 each).
        (PHQ9, (0, 0, 0, 0, 0, 0, 0, 0, 0), 0, "minimal"),
        (PHQ9, (1, 1, 1, 1, 1, 1, 1, 1, 1), 9, "mild"),
        (PHQ9, (2, 2, 1, 1, 1, 1, 1, 1, 0), 10, "moderate"),
        (PHQ9, (3, 3, 2, 2, 2, 1, 1, 1, 0), 15, "moderately severe"),
        (PHQ9, (3, 3, 3, 3, 3, 3, 3, 3, 3), 27, "severe"),
        (GAD7, (1, 1, 1, 1, 1, 0, 0), 5, "mild"),
        (GAD7, (2, 2, 2, 1, 1, 1, 1), 10, "moderate"),
        (GAD7, (3, 3, 3, 3, 3, 3, 3), 21, "severe"),
    ],
)
def test_the_total_is_the_sum_of_item_scores_with_its_band(
    measure: Measure, item_scores: tuple[int, ...], total: int, band: str
) -> None:
    result = scored(measure, *item_scores)
    assert (result.total, result.severity, result.answered) == (total, band, len(item_scores))


def test_a_skipped_question_leaves_the_total_unknown_rather_than_guessed() -> None:
    result = scored(PHQ9, 3, 3, 3, None, 3, 3, 3, 3, 0)
    assert (result.total, result.severity, result.skipped) == (None, None, ("phq9-4",))


@pytest.mark.parametrize("item9", [1, 2, 3])
def test_thoughts_of_self_harm_on_any_day_are_a_safety_concern(item9: int) -> None:
    assert scored(PHQ9, 0, 0, 0, 0, 0, 0, 0, 0, item9).safety_concern


def test_a_safety_concern_counts_even_when_other_questions_were_skipped() -> None:
    result = scored(PHQ9, None, None, None, None, None, None, None, None, 1)
    assert result.safety_concern and result.total is None


def test_not_at_all_or_skipped_on_item_9_is_no_safety_concern() -> None:
    assert not scored(PHQ9, 3, 3, 3, 3, 3, 3, 3, 3, 0).safety_concern
    assert not scored(PHQ9, 3, 3, 3, 3, 3, 3, 3, 3, None).safety_concern
    assert not scored(GAD7, 3, 3, 3, 3, 3, 3, 3).safety_concern


def test_a_safety_concern_is_a_safety_alert_that_names_the_question_not_the_answer() -> None:
    alert = safety_alert(PHQ9, scored(PHQ9, 0, 0, 0, 0, 0, 0, 0, 0, 3))
    assert alert is not None
    assert (alert.category, alert.code, alert.items) == (
        "safety",
        "measure-safety-item",
        ("phq9-9",),
    )
    assert "Nearly every day" not in alert.reason
    assert safety_alert(PHQ9, scored(PHQ9, 3, 3, 3, 3, 3, 3, 3, 3, 0)) is None
    assert safety_alert(GAD7, scored(GAD7, 3, 3, 3, 3, 3, 3, 3)) is None


def test_answers_outside_the_options_or_to_unknown_items_are_refused() -> None:
    with pytest.raises(MeasureAnswerError, match="phq9-1"):
        validate_measure_answers(PHQ9, {"phq9-1": "3"})
    with pytest.raises(MeasureAnswerError, match="phq9-1"):
        validate_measure_answers(PHQ9, {"phq9-1": 3})
    with pytest.raises(MeasureAnswerError, match="gad7-1"):
        validate_measure_answers(PHQ9, {"gad7-1": CODES[0]})


def test_the_shipped_thresholds_are_the_nhs_talking_therapies_ones() -> None:
    assert (PHQ9.caseness_at_least, PHQ9.reliable_change_at_least) == (10, 6)
    assert (GAD7.caseness_at_least, GAD7.reliable_change_at_least) == (8, 4)


def test_the_jacobson_truax_threshold_is_z_times_sd_times_root_two_one_minus_r() -> None:
    # SD 5, r = 0.84: S_diff = 5 · √(2 · 0.16) = 2.828…; 1.96 · S_diff = 5.543…
    assert reliable_change_threshold(5.0, 0.84) == pytest.approx(5.5437, abs=1e-4)
    assert reliable_change_index(20, 14, 5.0, 0.84) == pytest.approx(-2.1213, abs=1e-4)
    with pytest.raises(ValueError):
        reliable_change_threshold(5.0, 1.0)


@pytest.mark.parametrize(
    ("measure", "first", "latest", "direction", "recovered", "reliable_recovery"),
    [
        (PHQ9, 18, 12, "improved", False, False),
        (PHQ9, 18, 13, "no-reliable-change", False, False),
        (PHQ9, 15, 9, "improved", True, True),
        (PHQ9, 11, 9, "no-reliable-change", True, False),
        (PHQ9, 9, 15, "worsened", False, False),
        (PHQ9, 9, 14, "no-reliable-change", False, False),
        (GAD7, 12, 8, "improved", False, False),
        (GAD7, 12, 7, "improved", True, True),
        (GAD7, 8, 7, "no-reliable-change", True, False),
        (GAD7, 4, 8, "worsened", False, False),
    ],
)
def test_change_is_reliable_past_the_threshold_and_recovery_crosses_caseness(
    measure: Measure,
    first: int,
    latest: int,
    direction: str,
    recovered: bool,
    reliable_recovery: bool,
) -> None:
    moved = change(measure, first, latest)
    assert (moved.direction, moved.recovered, moved.reliable_recovery) == (
        direction,
        recovered,
        reliable_recovery,
    )


def series(*totals: int) -> list[ScorePoint]:
    return [ScorePoint(number, total) for number, total in enumerate(totals, start=1)]


def test_three_sessions_of_worsening_scores_are_not_on_track() -> None:
    flags = not_on_track(PHQ9, series(12, 15, 18))
    assert [flag.reason for flag in flags] == ["reliably-worse"]
    assert "from 12 to 18" in flags[0].text


def test_reliable_worsening_is_flagged_before_the_review_session() -> None:
    assert not_on_track(GAD7, series(9, 13), review_by_session=8)


def test_no_reliable_improvement_by_the_review_session_is_not_on_track() -> None:
    assert not_on_track(PHQ9, series(16, 15, 14, 13), review_by_session=5) == ()
    flags = not_on_track(PHQ9, series(16, 15, 14, 13, 12), review_by_session=5)
    assert [flag.reason for flag in flags] == ["not-improved-by-review"]
    assert "session 5" in flags[0].text


def test_reliable_improvement_by_the_review_session_is_on_track() -> None:
    assert not_on_track(PHQ9, series(16, 14, 12, 11, 10), review_by_session=5) == ()


def test_a_first_score_below_caseness_is_flagged_only_for_worsening() -> None:
    assert not_on_track(PHQ9, series(6, 6, 6, 6, 6, 6)) == ()
    assert not_on_track(PHQ9, series(6, 9, 12))[0].reason == "reliably-worse"


def test_one_score_is_never_a_flag() -> None:
    assert not_on_track(PHQ9, series(27)) == ()


item_score = st.integers(min_value=0, max_value=3)
maybe_score = st.one_of(st.none(), item_score)


@given(st.lists(maybe_score, min_size=9, max_size=9))
def test_any_phq9_answers_score_within_0_to_27(scores: list[int | None]) -> None:
    result = scored(PHQ9, *scores)
    answered = [value for value in scores if value is not None]
    assert result.answered == len(answered)
    if result.total is not None:
        assert 0 <= result.total <= 27
        assert result.total == sum(answered)
        assert result.severity == severity(PHQ9, result.total)
    assert result.safety_concern == (scores[8] is not None and scores[8] > 0)


@given(st.lists(item_score, min_size=7, max_size=7))
def test_any_complete_gad7_answers_score_within_0_to_21(scores: list[int]) -> None:
    result = scored(GAD7, *scores)
    assert result.total is not None and 0 <= result.total <= 21


@given(
    st.integers(0, 27),
    st.integers(0, 27),
    st.floats(0.5, 10.0),
    st.floats(0.0, 0.99),
)
def test_the_reliable_change_index_is_antisymmetric(
    first: int, latest: int, sd: float, reliability: float
) -> None:
    forward = reliable_change_index(first, latest, sd, reliability)
    assert forward == pytest.approx(-reliable_change_index(latest, first, sd, reliability))


@given(st.sampled_from([PHQ9, GAD7]), st.data())
def test_reliable_change_is_symmetric_between_improving_and_worsening(
    measure: Measure, data: st.DataObject
) -> None:
    first = data.draw(st.integers(0, measure.max_total))
    latest = data.draw(st.integers(0, measure.max_total))
    mirror = {"improved": "worsened", "worsened": "improved"}
    forward, backward = change(measure, first, latest), change(measure, latest, first)
    assert forward.delta == -backward.delta
    assert backward.direction == mirror.get(forward.direction, forward.direction)


@pytest.mark.parametrize("measure", [PHQ9, GAD7], ids=["phq9", "gad7"])
def test_the_questionnaires_are_valid_fhir_r4(measure: Measure) -> None:
    resource = measure_questionnaire(measure)
    parsed = Questionnaire.model_validate(resource)
    assert parsed.code is not None and parsed.code[0].code == measure.loinc
    assert "No permission required" in (resource.get("copyright") or "")


@pytest.mark.parametrize(
    ("measure", "scores"),
    [(PHQ9, (1, 2, 0, 3, 1, None, 0, 0, 1)), (GAD7, (1, 1, 1, 1, 1, 1, 1))],
    ids=["phq9-with-a-skip", "gad7-complete"],
)
def test_responses_export_as_valid_fhir_with_loinc_answers(
    measure: Measure, scores: tuple[int | None, ...]
) -> None:
    response = validate_measure_answers(measure, answers(measure, *scores))
    resource = measure_response(
        measure, response, response_id="r1", subject_ref="Patient/p1", authored=AUTHORED
    )
    QuestionnaireResponse.model_validate(resource)
    by_link = {item["linkId"]: item for item in resource["item"]}
    first = by_link[measure.items[0].link_id]["answer"][0]["valueCoding"]
    assert first == {"system": "http://loinc.org", "code": "LA6569-3", "display": "Several days"}
    total = by_link.get("total")
    if None in scores:
        assert total is None
    else:
        assert total == {"linkId": "total", "text": "Total score", "answer": [{"valueInteger": 7}]}


def broken(change_it: Any) -> dict[str, Any]:
    data: dict[str, Any] = copy.deepcopy(json.loads(PHQ9.resource_json))
    change_it(data)
    return data


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["item"][1].pop("code"), "LOINC"),
        (lambda d: d["item"][1].update(required=True), "optional"),
        (lambda d: d["item"][1]["answerOption"].reverse(), "0, 1, 2"),
        (lambda d: d["item"][-1].pop("readOnly"), "readOnly"),
        (lambda d: d["item"].pop(0), "display stem"),
        (lambda d: d["extension"].pop(1), "severity bands"),
        (lambda d: d["extension"][0]["extension"].pop(0), "caseness_at_least"),
        (
            lambda d: d["item"][2].update(extension=d["item"][9]["extension"]),
            "at most one item",
        ),
    ],
)
def test_a_malformed_measure_file_is_refused_with_a_reason(edit: Any, message: str) -> None:
    with pytest.raises(MeasureError, match=message):
        load_measure(broken(edit), source="phq9.json")


SPANISH_ITEM_9 = "Pensamientos de que estaría mejor muerto(a) o de lastimarse de alguna manera"
GERMAN_ITEM_9 = "Gedanken, dass Sie lieber tot wären oder sich Leid zufügen möchten"


@pytest.mark.parametrize("measure", [PHQ9, GAD7], ids=["phq9", "gad7"])
def test_every_text_of_the_shipped_measures_is_translated_into_spanish_and_german(
    measure: Measure,
) -> None:
    assert measure_languages(measure) == {"en", "es", "de"}
    for language in ("es", "de"):
        localized = localized_questionnaire(measure, language)
        Questionnaire.model_validate(localized)  # the translation extensions are valid FHIR
        assert localized["language"] == language
        english = measure_questionnaire(measure)
        for shown, source in zip(localized["item"], english["item"], strict=True):
            assert shown["text"] != source["text"], (language, shown["linkId"])
            for option, source_option in zip(
                shown.get("answerOption", []), source.get("answerOption", []), strict=True
            ):
                assert option["valueCoding"]["code"] == source_option["valueCoding"]["code"]
                assert option["valueCoding"]["display"] != source_option["valueCoding"]["display"]


def test_item_9_reads_in_the_published_spanish_and_german_wording() -> None:
    items = {lang: localized_questionnaire(PHQ9, lang)["item"][9] for lang in ("es", "de")}
    assert items["es"]["text"] == SPANISH_ITEM_9
    assert items["de"]["text"] == GERMAN_ITEM_9
    assert [o["valueCoding"]["display"] for o in items["es"]["answerOption"]] == [
        "Ningún día",
        "Varios días",
        "Más de la mitad de los días",
        "Casi todos los días",
    ]


def test_a_language_without_a_translation_keeps_the_english_form() -> None:
    assert localized_questionnaire(PHQ9, "fr") == measure_questionnaire(PHQ9)


def test_a_spanish_response_exports_the_wording_the_client_was_shown() -> None:
    response = validate_measure_answers(PHQ9, answers(PHQ9, 1, 1, 0, 0, 0, 0, 0, 0, 2))
    resource = measure_response(
        PHQ9,
        response,
        response_id="r1",
        subject_ref="Patient/p1",
        authored=AUTHORED,
        language="es",
    )
    QuestionnaireResponse.model_validate(resource)
    assert resource["language"] == "es"
    item9 = resource["item"][8]
    assert item9["text"] == SPANISH_ITEM_9
    assert item9["answer"][0]["valueCoding"] == {
        "system": "http://loinc.org",
        "code": "LA6570-1",
        "display": "Más de la mitad de los días",
    }
    assert resource["item"][-1]["text"] == "Puntuación total"

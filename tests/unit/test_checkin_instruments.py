"""Check-in instruments as data: the shipped forms, file validation, admin files, answers."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from server.core.checkins import (
    AfterRules,
    Answer,
    AnswerError,
    Instrument,
    InstrumentError,
    load_builtin_instruments,
    load_instrument,
    load_instruments_dir,
    validate_answers,
)
from server.core.checkins.fhir import questionnaire_resource

SD = "https://attune.example/fhir/StructureDefinition/"
BUILTINS = load_builtin_instruments()
AFTER = BUILTINS["after"]
PULSE = BUILTINS["pulse"]

# --- the shipped instruments -----------------------------------------------------------


def test_the_three_shipped_instruments_load_by_id() -> None:
    assert {name: instrument.kind for name, instrument in BUILTINS.items()} == {
        "before": "before",
        "pulse": "pulse",
        "after": "after",
    }


@pytest.mark.parametrize("instrument", BUILTINS.values(), ids=BUILTINS.keys())
def test_each_shipped_instrument_reassures_the_client(instrument: Instrument) -> None:
    note = instrument.client_note.lower()
    assert "only to your own therapist" in note
    assert "honest" in note
    assert "skip" in note
    assert instrument.intro and instrument.title and instrument.version
    assert instrument.canonical == f"{instrument.url}|{instrument.version}"


@pytest.mark.parametrize(
    "item",
    [
        item
        for instrument in BUILTINS.values()
        for item in instrument.items
        if item.type == "integer"
    ],
    ids=lambda item: item.link_id,
)
def test_every_scale_item_has_a_range_and_both_anchors(item: Any) -> None:
    assert item.min_value is not None and item.max_value is not None
    assert item.min_value < item.max_value
    assert item.anchor_low and item.anchor_high


@pytest.mark.parametrize(
    ("instrument_id", "expected"),
    [
        ("before", [("wellbeing", 0, 10)] * 4),
        ("pulse", [("pulse", 1, 5)]),
        (
            "after",
            [("alliance", 0, 10)] * 3
            + [("technology", 0, 10), ("alliance", 0, 10)]
            + [("rupture", None, None), ("rupture-repair", None, None), ("free-text", None, None)],
        ),
    ],
)
def test_shipped_items_have_the_designed_roles_and_ranges(
    instrument_id: str, expected: list[tuple[str, int | None, int | None]]
) -> None:
    items = BUILTINS[instrument_id].items
    assert [(item.role, item.min_value, item.max_value) for item in items] == expected


def test_after_form_asks_about_rupture_then_repair_only_if_there_was_one() -> None:
    rupture = AFTER.item("rupture")
    repair = AFTER.item("rupture-talked-through")
    assert rupture.option_codes == ("no", "a-little", "quite-a-bit")
    assert set(repair.option_codes) == {"yes", "partly", "no"}
    assert {(c.question, c.operator, c.answer) for c in repair.enable_when} == {
        ("rupture", "=", "a-little"),
        ("rupture", "=", "quite-a-bit"),
    }
    assert repair.enable_behavior == "any"
    assert AFTER.item("note").max_length == 2000


def test_shipped_rules_are_the_design_defaults() -> None:
    assert AFTER.rules == AfterRules(36, 8, 2, 6, 3)


# Phrases of the copyrighted SRS/ORS/WAI forms; our wording must not reuse them.
LICENSED_PHRASES = [
    "heard, understood, and respected",
    "what i wanted to work on",
    "good fit for me",
    "something missing",
    "individually",
    "interpersonally",
    "general sense of well-being",
]


@pytest.mark.parametrize("phrase", LICENSED_PHRASES)
def test_shipped_wording_is_our_own(phrase: str) -> None:
    texts = json.dumps([questionnaire_resource(i) for i in BUILTINS.values()]).lower()
    assert phrase not in texts


# --- bad instrument files --------------------------------------------------------------


def scale(link_id: str, role: str = "alliance", low: int = 0, high: int = 10) -> dict[str, Any]:
    """A minimal valid slider item."""
    return {
        "linkId": link_id,
        "text": f"Question {link_id}",
        "type": "integer",
        "extension": [
            {"url": SD + "score-role", "valueCode": role},
            {"url": "http://hl7.org/fhir/StructureDefinition/minValue", "valueInteger": low},
            {"url": "http://hl7.org/fhir/StructureDefinition/maxValue", "valueInteger": high},
            {"url": SD + "anchor-low", "valueString": "Not at all"},
            {"url": SD + "anchor-high", "valueString": "Completely"},
        ],
    }


def choice(link_id: str, role: str, codes: list[str]) -> dict[str, Any]:
    """A minimal valid choice item."""
    return {
        "linkId": link_id,
        "text": f"Question {link_id}",
        "type": "choice",
        "extension": [{"url": SD + "score-role", "valueCode": role}],
        "answerOption": [{"valueCoding": {"code": c, "display": c.title()}} for c in codes],
    }


def document(*items: dict[str, Any], rules: dict[str, int] | None = None) -> dict[str, Any]:
    """A minimal valid after-kind Questionnaire around the given items."""
    extensions: list[dict[str, Any]] = [
        {"url": SD + "instrument-kind", "valueCode": "after"},
        {"url": SD + "intro", "valueString": "How did it go?"},
        {"url": SD + "client-note", "valueString": "Only your therapist sees this."},
    ]
    if rules is not None:
        extensions.append(
            {
                "url": SD + "alert-rules",
                "extension": [{"url": k, "valueInteger": v} for k, v in rules.items()],
            }
        )
    return {
        "resourceType": "Questionnaire",
        "id": "tiny",
        "url": "https://example.org/Questionnaire/tiny",
        "version": "1",
        "title": "Tiny",
        "status": "active",
        "extension": extensions,
        "item": list(items) or [scale("a")],
    }


def follow_up(question: str, code: str = "a-little") -> dict[str, Any]:
    item = choice("repair", "rupture-repair", ["yes", "partly", "no"])
    item["enableWhen"] = [{"question": question, "operator": "=", "answerCoding": {"code": code}}]
    return item


def without_anchor(item: dict[str, Any]) -> dict[str, Any]:
    item["extension"] = [e for e in item["extension"] if e["url"] != SD + "anchor-high"]
    return item


def with_two_conditions_and_no_behavior() -> dict[str, Any]:
    item = follow_up("rupture")
    item["enableWhen"] *= 2
    return item


RUPTURE = choice("rupture", "rupture", ["no", "a-little", "quite-a-bit"])

BAD_DOCUMENTS = [
    pytest.param(document(scale("a"), scale("a")), "'a'", "not unique", id="duplicate-linkId"),
    pytest.param(document(scale("a", low=5, high=5)), "'a'", "range", id="empty-range"),
    pytest.param(document(scale("a", low=10, high=0)), "'a'", "range", id="reversed-range"),
    pytest.param(document(without_anchor(scale("a"))), "'a'", "anchor-high", id="anchor-missing"),
    pytest.param(
        document(rules={"alliance_total_under": 30}),
        "tiny",
        "unknown alert rule",
        id="unknown-rule-key",
    ),
    pytest.param(
        document(rules={"pulse_at_or_below": 2}),
        "tiny",
        "unknown alert rule",
        id="rule-of-another-kind",
    ),
    pytest.param(
        document(rules={"alliance_total_below": -1}), "tiny", "0 or more", id="negative-threshold"
    ),
    pytest.param(
        document(scale("a"), follow_up("rupture"), RUPTURE),
        "'repair'",
        "not an earlier item",
        id="enableWhen-forward-reference",
    ),
    pytest.param(
        document(scale("a"), RUPTURE, follow_up("nowhere")),
        "'repair'",
        "not an earlier item",
        id="enableWhen-unknown-question",
    ),
    pytest.param(
        document(scale("a"), RUPTURE, follow_up("rupture", code="maybe")),
        "'repair'",
        "answerCoding",
        id="enableWhen-unknown-code",
    ),
    pytest.param(
        document(scale("a"), RUPTURE, with_two_conditions_and_no_behavior()),
        "'repair'",
        "enableBehavior",
        id="two-conditions-no-behavior",
    ),
    pytest.param(
        document(scale("a"), choice("rupture", "rupture", ["no", "yes"])),
        "'rupture'",
        "exactly the codes",
        id="rupture-codes",
    ),
    pytest.param(
        document(scale("a"), {**scale("b"), "type": "date"}),
        "'b'",
        "not one of",
        id="unsupported-type",
    ),
    pytest.param(
        document(scale("a", role="technology"), scale("b", role="technology")),
        "tiny",
        "at most one",
        id="two-technology-items",
    ),
    pytest.param(
        document(scale("a"), {**scale("b"), "required": True}),
        "'b'",
        "optional",
        id="required-item",
    ),
    pytest.param(document(scale("a", role="lucky")), "'a'", "not one of", id="unknown-role"),
    pytest.param(
        document(scale("a", role="wellbeing")),
        "tiny",
        "'alliance'",
        id="after-without-alliance-item",
    ),
    pytest.param(
        document(scale("a"), {**choice("t", "free-text", ["x"]), "type": "text"}),
        "'t'",
        "maxLength",
        id="text-without-maxLength",
    ),
    pytest.param(
        {**document(), "resourceType": "Patient"}, "tiny", "resourceType", id="not-a-questionnaire"
    ),
]


@pytest.mark.parametrize(("data", "names", "problem"), BAD_DOCUMENTS)
def test_a_bad_instrument_is_refused_with_the_item_named(
    data: dict[str, Any], names: str, problem: str
) -> None:
    with pytest.raises(InstrumentError) as caught:
        load_instrument(data, source="tiny")
    assert names in str(caught.value)
    assert problem in str(caught.value)


def test_an_unknown_extension_of_ours_is_a_typo_but_foreign_ones_are_kept() -> None:
    data = document()
    data["item"][0]["extension"].append({"url": "http://other.example/x", "valueString": "ok"})
    assert load_instrument(data).item("a").role == "alliance"
    data["item"][0]["extension"].append({"url": SD + "anchor-middle", "valueString": "?"})
    with pytest.raises(InstrumentError, match="anchor-middle"):
        load_instrument(data)


def test_missing_rule_keys_take_the_defaults() -> None:
    assert load_instrument(document(rules={"alliance_total_below": 30})).rules == AfterRules(
        alliance_total_below=30
    )


# --- admin instruments from a folder ---------------------------------------------------


def licensed_copy(instrument_id: str = "licensed-after") -> dict[str, Any]:
    data = copy.deepcopy(questionnaire_resource(AFTER))
    data["id"] = instrument_id
    data["url"] = f"https://clinic.example/Questionnaire/{instrument_id}"
    return data


def test_an_admin_instrument_loads_from_a_folder(tmp_path: Path) -> None:
    (tmp_path / "licensed.json").write_text(json.dumps(licensed_copy()), encoding="utf-8")
    (tmp_path / "README.txt").write_text("not an instrument", encoding="utf-8")
    loaded = load_instruments_dir(tmp_path)
    assert list(loaded) == ["licensed-after"]
    assert loaded["licensed-after"].source.endswith("licensed.json")
    assert loaded["licensed-after"].items == AFTER.items


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        pytest.param(json.dumps(licensed_copy("after")), "already used", id="id-clash-builtin"),
        pytest.param(
            json.dumps({**licensed_copy(), "url": AFTER.url}), "already used", id="url-clash"
        ),
        pytest.param("{not json", "not valid JSON", id="broken-json"),
        pytest.param("[]", "JSON object", id="not-an-object"),
    ],
)
def test_a_bad_admin_file_is_refused_naming_the_file(
    tmp_path: Path, content: str, problem: str
) -> None:
    (tmp_path / "clinic.json").write_text(content, encoding="utf-8")
    with pytest.raises(InstrumentError, match=problem) as caught:
        load_instruments_dir(tmp_path)
    assert "clinic.json" in str(caught.value)


def test_a_missing_admin_folder_is_an_error_not_silence(tmp_path: Path) -> None:
    with pytest.raises(InstrumentError, match="is not a folder"):
        load_instruments_dir(tmp_path / "typo")


def test_two_admin_files_with_one_id_clash(tmp_path: Path) -> None:
    for name in ("a.json", "b.json"):
        (tmp_path / name).write_text(json.dumps(licensed_copy("same")), encoding="utf-8")
    with pytest.raises(InstrumentError, match=r"b\.json: id 'same' is already used by"):
        load_instruments_dir(tmp_path)


# --- answers ---------------------------------------------------------------------------

FULL_AFTER = {
    "bond": 9,
    "goals": 10,
    "approach": 8,
    "technology": 7,
    "overall": 9,
    "rupture": "a-little",
    "rupture-talked-through": "partly",
    "note": "The sound cut out twice.",
}


def test_a_full_answer_set_is_kept_in_form_order() -> None:
    response = validate_answers(AFTER, FULL_AFTER)
    assert response.as_raw() == FULL_AFTER
    assert list(response.as_raw()) == [item.link_id for item in AFTER.items]
    assert response.skipped == ()


@pytest.mark.parametrize(
    ("raw", "skipped"),
    [
        pytest.param(
            {"bond": 9},
            ["goals", "approach", "technology", "overall", "rupture", "note"],
            id="missing-items-are-skips",
        ),
        pytest.param({**FULL_AFTER, "goals": None}, ["goals"], id="explicit-None-is-a-skip"),
        pytest.param({**FULL_AFTER, "note": "  \n"}, ["note"], id="blank-text-is-a-skip"),
        pytest.param(
            {**FULL_AFTER, "rupture-talked-through": None},
            ["rupture-talked-through"],
            id="skipped-follow-up",
        ),
    ],
)
def test_skips_are_recorded_as_skips(raw: dict[str, Any], skipped: list[str]) -> None:
    response = validate_answers(AFTER, raw)
    assert list(response.skipped) == skipped
    assert all(response.get(link_id) == Answer(link_id, None, True) for link_id in skipped)


@pytest.mark.parametrize(
    ("rupture", "follow_up_shown"),
    [("no", False), (None, False), ("a-little", True), ("quite-a-bit", True)],
)
def test_the_repair_question_is_shown_only_after_a_rupture(
    rupture: str | None, follow_up_shown: bool
) -> None:
    response = validate_answers(AFTER, {"rupture": rupture})
    assert (response.get("rupture-talked-through") is not None) is follow_up_shown


@pytest.mark.parametrize(
    ("raw", "link_id", "problem"),
    [
        pytest.param({"bond": 11}, "bond", "outside 0..10", id="above-range"),
        pytest.param({"bond": -1}, "bond", "outside 0..10", id="below-range"),
        pytest.param({"bond": "9"}, "bond", "whole number", id="text-for-a-slider"),
        pytest.param({"bond": 9.0}, "bond", "whole number", id="float-for-a-slider"),
        pytest.param({"bond": True}, "bond", "whole number", id="bool-for-a-slider"),
        pytest.param({"rupture": 1}, "rupture", "expected text", id="number-for-a-choice"),
        pytest.param({"rupture": "lots"}, "rupture", "not one of", id="unknown-choice"),
        pytest.param({"note": "x" * 2001}, "note", "longer than 2000", id="text-too-long"),
        pytest.param({"mood": 3}, "mood", "no such item", id="unknown-linkId"),
        pytest.param(
            {"rupture": "no", "rupture-talked-through": "yes"},
            "rupture-talked-through",
            "does not show",
            id="answer-to-hidden-follow-up",
        ),
    ],
)
def test_a_bad_answer_is_refused_naming_the_item(
    raw: dict[str, Any], link_id: str, problem: str
) -> None:
    with pytest.raises(AnswerError, match=problem) as caught:
        validate_answers(AFTER, raw)
    assert caught.value.link_id == link_id


def test_text_at_the_limit_is_accepted() -> None:
    assert validate_answers(AFTER, {"note": "x" * 2000}).value("note") == "x" * 2000


def test_pulse_bounds_come_from_the_instrument() -> None:
    assert validate_answers(PULSE, {"pulse": 1}).value("pulse") == 1
    with pytest.raises(AnswerError, match=r"outside 1\.\.5"):
        validate_answers(PULSE, {"pulse": 0})


@pytest.mark.parametrize(("value", "skipped"), [(None, False), (3, True)])
def test_an_answer_is_either_a_value_or_a_skip(value: int | None, skipped: bool) -> None:
    with pytest.raises(ValueError, match="either skipped"):
        Answer("bond", value, skipped)

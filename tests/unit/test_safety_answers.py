"""The safety check's answers (pure core): what is accepted, tidied or refused, and why."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.core.safety import (
    _REFUSALS,
    MAX_CODE_WORD_CHARS,
    MAX_CONTACT_NAME_CHARS,
    MAX_LOCATION_CHARS,
    MAX_PHONE_CHARS,
    SafetyAnswerError,
    SafetyAnswers,
    check_answers,
    is_phone_number,
)
from server.settings import Settings, SettingsError

GOOD: dict[str, Any] = {
    "location": "At home, Hauptstr. 5, Berlin",
    "private": True,
    "contact_name": "Anna (sister)",
    "contact_phone": "+49 (171) 555-1234",
}


def with_(**changes: Any) -> dict[str, Any]:
    return {**GOOD, **changes}


def test_good_answers_are_kept_as_the_client_gave_them() -> None:
    assert check_answers(with_(code_word="blue umbrella")) == SafetyAnswers(
        location="At home, Hauptstr. 5, Berlin",
        private=True,
        contact_name="Anna (sister)",
        contact_phone="+49 (171) 555-1234",
        code_word="blue umbrella",
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(with_(location="  at   work\n room 4 "), "at work room 4", id="one-line"),
        pytest.param(with_(location="near 52.52, 13.40"), "near 52.52, 13.40", id="coarse"),
        pytest.param(with_(location="x" * MAX_LOCATION_CHARS), "x" * 200, id="longest"),
        pytest.param(with_(location="Café Ümlaut, Zürich"), "Café Ümlaut, Zürich", id="accents"),
        pytest.param(
            with_(location="Casa de mamá \U0001f468\u200d\U0001f469\u200d\U0001f467"),
            "Casa de mamá \U0001f468\u200d\U0001f469\u200d\U0001f467",
            id="emoji-family-with-joiners",
        ),
        pytest.param(
            with_(location="\u0628\u064a\u062a\u200f 12"),
            "\u0628\u064a\u062a\u200f 12",
            id="right-to-left-mark",
        ),
        pytest.param(with_(location="home \U0001faef"), "home \U0001faef", id="newer-emoji"),
    ],
)
def test_the_place_is_tidied_to_one_line(raw: dict[str, Any], expected: str) -> None:
    assert check_answers(raw).location == expected


def test_the_code_word_is_optional() -> None:
    assert check_answers(GOOD).code_word == ""
    assert check_answers(with_(code_word=None)).code_word == ""
    assert check_answers(with_(code_word="   ")).code_word == ""


# case -> (answers, the field to correct, words in the message)
REFUSED = {
    "no-place": (with_(location=""), "location", "Please fill in where you are"),
    "only-spaces": (with_(location="   \n "), "location", "Please fill in"),
    "place-missing": ({k: v for k, v in GOOD.items() if k != "location"}, "location", "fill in"),
    "place-too-long": (with_(location="x" * 201), "location", "at most 200 characters"),
    "place-not-text": (with_(location=52.5), "location", "must be text"),
    "place-control-char": (with_(location="home\u0000"), "location", "not plain text"),
    "place-bidi-override": (with_(location="home\u202e"), "location", "not plain text"),
    "place-bidi-isolate": (with_(location="home\u2066"), "location", "not plain text"),
    "place-byte-order-mark": (with_(location="home\ufeff"), "location", "not plain text"),
    "place-noncharacter": (with_(location="home\uffff"), "location", "not plain text"),
    "privacy-unanswered": ({**GOOD, "private": None}, "private", "talk freely"),
    "privacy-as-text": (with_(private="yes"), "private", "talk freely"),
    "no-contact": (with_(contact_name=""), "contact_name", "emergency contact's name"),
    "contact-too-long": (with_(contact_name="A" * 101), "contact_name", "at most 100"),
    "no-phone": (with_(contact_phone=""), "contact_phone", "fill in"),
    "phone-with-letters": (with_(contact_phone="call Anna"), "contact_phone", "digits only"),
    "phone-too-short": (with_(contact_phone="+1"), "contact_phone", "digits only"),
    "phone-markup": (with_(contact_phone="<b>112</b>"), "contact_phone", "digits only"),
    "phone-too-long": (with_(contact_phone="1" * 41), "contact_phone", "at most 40"),
    "code-word-too-long": (with_(code_word="w" * 41), "code_word", "at most 40"),
    "code-word-not-text": (with_(code_word=7), "code_word", "must be text"),
}


@pytest.mark.parametrize(("raw", "field", "words"), REFUSED.values(), ids=REFUSED.keys())
def test_answers_to_correct_name_their_field_in_plain_words(
    raw: dict[str, Any], field: str, words: str
) -> None:
    with pytest.raises(SafetyAnswerError) as refused:
        check_answers(raw)
    assert refused.value.field == field
    assert words in refused.value.message


@given(
    st.fixed_dictionaries(
        {
            "location": st.text(max_size=300),
            "private": st.one_of(st.booleans(), st.none(), st.text(max_size=3)),
            "contact_name": st.text(max_size=150),
            "contact_phone": st.text(alphabet="0123456789+-() x", max_size=50),
            "code_word": st.one_of(st.none(), st.text(max_size=60)),
        }
    )
)
def test_any_input_is_either_good_answers_within_bounds_or_a_named_correction(
    raw: dict[str, Any],
) -> None:
    try:
        answers = check_answers(raw)
    except SafetyAnswerError as refused:
        assert refused.field in raw
        return
    assert 0 < len(answers.location) <= 200
    assert 0 < len(answers.contact_name) <= 100
    assert is_phone_number(answers.contact_phone)
    assert len(answers.code_word) <= 40
    assert "\n" not in answers.location


@pytest.mark.parametrize(
    ("text", "ok"),
    [("112", True), ("+49 30 112", True), ("(030) 555-12", True), ("", True), ("112a", False)],
)
def test_the_phone_rule_is_the_clinics_emergency_number_rule(text: str, ok: bool) -> None:
    assert is_phone_number(text) is ok
    if ok:
        assert Settings(clinic_emergency_number=text).clinic_emergency_number == text
    else:
        with pytest.raises(SettingsError, match="clinic_emergency_number"):
            Settings(clinic_emergency_number=text)


def test_the_safety_check_is_on_unless_a_clinic_switches_it_off() -> None:
    assert Settings().safety_check is True
    assert Settings(safety_check=False).safety_check is False


def test_each_refusal_names_the_limit_the_rules_apply() -> None:
    """The refusals are whole sentences (so the catalogues can translate them): the limits
    written in them are the limits checked."""
    limits = {
        "location": MAX_LOCATION_CHARS,
        "contact_name": MAX_CONTACT_NAME_CHARS,
        "contact_phone": MAX_PHONE_CHARS,
        "code_word": MAX_CODE_WORD_CHARS,
    }
    for field, limit in limits.items():
        assert f"at most {limit} characters." in _REFUSALS[field]["long"], field
        with pytest.raises(SafetyAnswerError) as refused:
            check_answers(with_(**{field: "x" * (limit + 1)}))
        assert (refused.value.field, refused.value.message) == (field, _REFUSALS[field]["long"])

"""Who may join a session: guest labels, the room's size, each client once."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.core.participant_rules import (
    MAX_GUEST_LABEL_CHARS,
    ParticipantRefused,
    check_new_client,
    clean_guest_label,
    next_position,
)
from server.core.participants import DEFAULT_MAX_PEOPLE


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("Interpreter", "Interpreter"),
        ("  Mother  of   J. ", "Mother of J."),
        ("Intérprete", "Intérprete"),
        ("x" * MAX_GUEST_LABEL_CHARS, "x" * MAX_GUEST_LABEL_CHARS),
    ],
)
def test_a_guest_label_is_trimmed_to_single_spaces(raw: str, clean: str) -> None:
    assert clean_guest_label(raw) == clean


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("", "Enter a label"),
        ("   \t ", "Enter a label"),
        ("x" * (MAX_GUEST_LABEL_CHARS + 1), "60 characters"),
        ("Inter\u0000preter", "cannot be shown"),
        ("Inter\u202epreter", "cannot be shown"),  # a bidi override would disguise the label
    ],
)
def test_a_guest_label_that_cannot_be_shown_is_refused_with_a_reason(raw: str, why: str) -> None:
    with pytest.raises(ParticipantRefused, match=why):
        clean_guest_label(raw)


@given(st.text(max_size=200))
def test_a_cleaned_label_is_never_empty_too_long_or_padded(raw: str) -> None:
    try:
        label = clean_guest_label(raw)
    except ParticipantRefused:
        return
    assert 1 <= len(label) <= MAX_GUEST_LABEL_CHARS
    assert label == label.strip() and "  " not in label


@pytest.mark.parametrize(
    ("taken", "max_people", "position"),
    [
        ([], DEFAULT_MAX_PEOPLE, 1),
        ([1], DEFAULT_MAX_PEOPLE, 2),
        ([1, 3], DEFAULT_MAX_PEOPLE, 2),  # a removed person's place is free again
        ([1, 2], DEFAULT_MAX_PEOPLE, 3),
        ([], 2, 1),
    ],
)
def test_the_next_person_takes_the_first_free_place(
    taken: list[int], max_people: int, position: int
) -> None:
    assert next_position(taken, max_people) == position


@pytest.mark.parametrize(("taken", "max_people"), [([1, 2, 3], 4), ([1], 2), ([1, 2], 3)])
def test_a_full_session_refuses_one_more_person_counting_the_therapist(
    taken: list[int], max_people: int
) -> None:
    with pytest.raises(ParticipantRefused, match=f"at most {max_people} people"):
        next_position(taken, max_people)


def test_a_client_takes_part_once() -> None:
    check_new_client("b" * 32, ["a" * 32])
    with pytest.raises(ParticipantRefused, match="already takes part"):
        check_new_client("a" * 32, ["a" * 32])

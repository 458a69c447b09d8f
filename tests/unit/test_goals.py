"""Shared goals: the rules for a goal's words, how many may be active, status changes, the
after-session progress items and the FHIR R4 `Goal` export."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fhir.resources.R4B.goal import Goal as FhirGoal
from fhir.resources.R4B.questionnaire import Questionnaire
from hypothesis import given
from hypothesis import strategies as st

from server.core.checkins import load_builtin_instruments, questionnaire_resource
from server.core.goals import (
    MAX_ACTIVE_GOALS,
    MAX_GOAL_CHARS,
    Goal,
    GoalChange,
    GoalError,
    GoalStatus,
    check_can_add,
    clean_goal_text,
    goal_link_id,
    goal_resource,
    split_goal_answers,
    status_change,
    with_goal_items,
)
from server.core.models import SessionRole
from tests.fhir_r4b import r4b_valid

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def goal(n: int, status: GoalStatus = GoalStatus.ACTIVE, text: str = "Sleep better") -> Goal:
    return Goal(
        id=f"{n:032x}",
        text=text,
        status=status,
        position=n,
        created_at=T0,
        updated_at=T0,
        updated_by=SessionRole.CLIENT,
    )


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("Sleep better", "Sleep better"),
        ("  Go back to the\n choir  ", "Go back to the choir"),
        ("Café au lait with Sam", "Café au lait with Sam"),
        ("x" * MAX_GOAL_CHARS, "x" * MAX_GOAL_CHARS),
    ],
)
def test_a_goal_keeps_the_clients_words_with_tidy_white_space(raw: str, stored: str) -> None:
    assert clean_goal_text(raw) == stored


@pytest.mark.parametrize(
    "raw",
    ["", "   \n\t", "x" * (MAX_GOAL_CHARS + 1), "bell\x07", "zero\u200bwidth", 5, None],
)
def test_empty_overlong_or_unprintable_goals_are_refused(raw: object) -> None:
    with pytest.raises(GoalError):
        clean_goal_text(raw)


@given(st.text(max_size=400))
def test_a_cleaned_goal_is_never_empty_nor_too_long(raw: str) -> None:
    try:
        text = clean_goal_text(raw)
    except GoalError:
        return
    assert 0 < len(text) <= MAX_GOAL_CHARS
    assert text == text.strip()


def test_at_most_five_goals_are_active_and_reached_ones_leave_room() -> None:
    five = [goal(i) for i in range(MAX_ACTIVE_GOALS)]
    with pytest.raises(GoalError, match="reached or dropped first"):
        check_can_add(five)
    check_can_add([*five[:4], goal(9, GoalStatus.REACHED)])


def test_status_changes_name_their_history_entry() -> None:
    g = goal(1)
    assert status_change(g, GoalStatus.REACHED, [g]) is GoalChange.REACHED
    assert status_change(g, GoalStatus.DROPPED, [g]) is GoalChange.DROPPED
    reached = goal(1, GoalStatus.REACHED)
    assert status_change(reached, GoalStatus.ACTIVE, [reached]) is GoalChange.REOPENED
    with pytest.raises(GoalError, match="already"):
        status_change(g, GoalStatus.ACTIVE, [g])


def test_a_goal_is_made_active_again_only_while_there_is_room() -> None:
    dropped = goal(9, GoalStatus.DROPPED)
    full = [goal(i) for i in range(MAX_ACTIVE_GOALS)] + [dropped]
    with pytest.raises(GoalError):
        status_change(dropped, GoalStatus.ACTIVE, full)


def test_the_after_form_asks_about_each_active_goal_before_the_closing_note() -> None:
    after = questionnaire_resource(load_builtin_instruments()["after"])
    goals = [goal(1, text="Sleep better"), goal(2, GoalStatus.REACHED), goal(3, text="Call Mum")]

    form = with_goal_items(after, goals)
    link_ids = [item["linkId"] for item in form["item"]]

    assert link_ids[-1] == after["item"][-1]["linkId"]  # the optional note stays last
    assert link_ids[-3:-1] == [goal_link_id(f"{1:032x}"), goal_link_id(f"{3:032x}")]
    assert "Sleep better" in form["item"][-3]["text"]
    assert with_goal_items(after, []) == after


def _in(element: dict[str, object], language: str) -> object:
    """The `content` of a FHIR translation extension for `language`."""
    for entry in element["extension"]:  # type: ignore[attr-defined]
        parts = {part["url"]: part for part in entry["extension"]}
        if parts["lang"]["valueCode"] == language:
            return parts["content"]["valueString"]
    raise AssertionError(f"no {language} translation")


@pytest.mark.parametrize(
    ("language", "text", "low", "high"),
    [
        (
            "es",
            "Avance en su objetivo: «Dormir mejor»",
            "sin avances todavía",
            "plenamente conseguido",
        ),
        (
            "de",
            "Fortschritt bei Ihrem Ziel: „Dormir mejor“",
            "noch kein Fortschritt",
            "ganz erreicht",
        ),
    ],
)
def test_the_goal_items_carry_the_clients_wording_around_the_goals_own_words(
    language: str, text: str, low: str, high: str
) -> None:
    after = questionnaire_resource(load_builtin_instruments()["after"])
    form = with_goal_items(after, [goal(1, text="Dormir mejor")])
    r4b_valid(Questionnaire, form)  # the translation extensions are valid FHIR
    [item] = [i for i in form["item"] if i["linkId"] == goal_link_id(f"{1:032x}")]
    assert item["text"] == "Progress on your goal: “Dormir mejor”"  # English is the source
    anchors = {e["url"].rsplit("/", 1)[1]: e for e in item["extension"]}
    assert (anchors["anchor-low"]["valueString"], anchors["anchor-high"]["valueString"]) == (
        "no progress yet",
        "fully there",
    )
    assert _in(item["_text"], language) == text
    assert _in(anchors["anchor-low"]["_valueString"], language) == low
    assert _in(anchors["anchor-high"]["_valueString"], language) == high


def test_progress_answers_are_split_off_and_checked() -> None:
    a, b = f"{1:032x}", f"{2:032x}"
    answers = {"bond": 8, goal_link_id(a): 6, goal_link_id(b): None}

    rest, progress = split_goal_answers(answers, [a, b])

    assert rest == {"bond": 8}
    assert progress == {a: 6, b: None}


@pytest.mark.parametrize("value", [11, -1, True, "7", 6.5])
def test_progress_outside_zero_to_ten_is_refused(value: object) -> None:
    a = f"{1:032x}"
    with pytest.raises(GoalError, match="0 to 10"):
        split_goal_answers({goal_link_id(a): value}, [a])


def test_progress_on_a_goal_the_client_does_not_have_is_refused() -> None:
    with pytest.raises(GoalError, match="no such goal"):
        split_goal_answers({goal_link_id(f"{7:032x}"): 5}, [f"{1:032x}"])


@pytest.mark.parametrize(
    ("status", "lifecycle", "achievement"),
    [
        (GoalStatus.ACTIVE, "active", "in-progress"),
        (GoalStatus.REACHED, "completed", "achieved"),
        (GoalStatus.DROPPED, "cancelled", "not-achieved"),
    ],
)
def test_goals_export_as_valid_fhir_r4_goals(
    status: GoalStatus, lifecycle: str, achievement: str
) -> None:
    resource = goal_resource(
        goal(1, status, "Go back to the choir"),
        subject_ref="Patient/abc",
        progress=[(T0, 4), (T0.replace(day=8), 6)],
    )

    parsed = FhirGoal.model_validate(resource)

    assert parsed.lifecycleStatus == lifecycle
    assert parsed.achievementStatus.coding[0].code == achievement
    assert parsed.description.text == "Go back to the choir"
    assert [e.extension[1].valueInteger for e in parsed.extension] == [4, 6]

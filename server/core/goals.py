"""Shared goals (issue #18): the rules, pure — no database, no clock, no I/O.

A client has at most `MAX_ACTIVE_GOALS` active goals, each in their own words (at most
`MAX_GOAL_CHARS` characters, one line). A goal is active, reached or dropped; reached and
dropped goals stay as history and may be made active again while there is room. The
after-session check-in asks about progress on each active goal (0–10): its items are built
here and its answers split off here before the alliance instrument sees them.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final

from server.core.checkins.translations import translated
from server.core.models import SessionRole

MAX_ACTIVE_GOALS: Final = 5
MAX_GOAL_CHARS: Final = 200
PROGRESS_MIN: Final = 0
PROGRESS_MAX: Final = 10
GOAL_ITEM_PREFIX: Final = "goal-"
GOAL_ID: Final = re.compile(r"[0-9a-f]{32}")

FHIR_EXT: Final = "https://attune.example/fhir/StructureDefinition/"


class GoalError(ValueError):
    """A goal change that the rules refuse; the message is shown to the person who asked."""


class GoalStatus(StrEnum):
    """Where a goal stands."""

    ACTIVE = "active"
    REACHED = "reached"
    DROPPED = "dropped"


class GoalChange(StrEnum):
    """What happened to a goal, as its history records it (never its text)."""

    ADDED = "added"
    EDITED = "edited"
    REACHED = "reached"
    DROPPED = "dropped"
    REOPENED = "reopened"


@dataclass(frozen=True, slots=True)
class Goal:
    """One goal as both people see it."""

    id: str
    text: str
    status: GoalStatus
    position: int
    created_at: datetime
    updated_at: datetime
    updated_by: SessionRole

    def to_json(self) -> dict[str, Any]:
        """The goal as the `goals` message and the pages carry it."""
        return {
            "id": self.id,
            "text": self.text,
            "status": self.status.value,
            "updated_by": self.updated_by.value,
            "updated_at_ms": int(self.updated_at.timestamp() * 1000),
        }


def clean_goal_text(raw: object) -> str:
    """A goal's text as stored: NFC, trimmed, inner runs of white space made one space; refused
    when empty, too long or holding control characters."""
    if not isinstance(raw, str):
        raise GoalError("Write the goal as text.")
    text = " ".join(unicodedata.normalize("NFC", raw).split())
    if not text:
        raise GoalError("Write a few words for the goal.")
    if len(text) > MAX_GOAL_CHARS:
        raise GoalError(f"A goal has at most {MAX_GOAL_CHARS} characters.")
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn") for ch in text):
        raise GoalError("The goal holds characters that cannot be shown.")
    return text


def check_can_add(goals: Sequence[Goal]) -> None:
    """Room for one more active goal, or GoalError."""
    active = sum(1 for g in goals if g.status is GoalStatus.ACTIVE)
    if active >= MAX_ACTIVE_GOALS:
        raise GoalError(
            f"There are already {MAX_ACTIVE_GOALS} active goals; mark one reached or dropped first."
        )


def status_change(goal: Goal, new: GoalStatus, goals: Sequence[Goal]) -> GoalChange:
    """The history entry for moving `goal` to `new`, or GoalError when it cannot move."""
    if goal.status is new:
        raise GoalError(f"The goal is already {new.value}.")
    if new is GoalStatus.ACTIVE:
        check_can_add(goals)
        return GoalChange.REOPENED
    return GoalChange.REACHED if new is GoalStatus.REACHED else GoalChange.DROPPED


def goal_link_id(goal_id: str) -> str:
    """The after-session item that asks about one goal."""
    return f"{GOAL_ITEM_PREFIX}{goal_id}"


# The after-session goal item's words per language (docs/languages.md); English is the source
# and the form carries the others as FHIR translations, so the page shows the client's language
# and the export keeps the wording shown (docs/checkins.md, "Languages").
GOAL_ITEM_WORDS: Final[Mapping[str, tuple[str, str, str]]] = {
    "en": ("Progress on your goal: “{goal}”", "no progress yet", "fully there"),
    "es": ("Avance en su objetivo: «{goal}»", "sin avances todavía", "plenamente conseguido"),
    "de": ("Fortschritt bei Ihrem Ziel: „{goal}“", "noch kein Fortschritt", "ganz erreicht"),
}


def _worded(index: int, goal: str = "") -> tuple[str, dict[str, Any]]:
    """The English text and its `_` element with every other language's wording; the goal's
    own words stay as the client wrote them, only the sentence around them is translated."""
    english, *_rest = (words[index].format(goal=goal) for words in GOAL_ITEM_WORDS.values())
    others = {
        lang: words[index].format(goal=goal)
        for lang, words in GOAL_ITEM_WORDS.items()
        if lang != "en"
    }
    return english, translated(others)


def goal_items(goals: Sequence[Goal]) -> list[dict[str, Any]]:
    """FHIR Questionnaire items (0–10 sliders) for each active goal, in the goals' order."""
    items = []
    low, low_translations = _worded(1)
    high, high_translations = _worded(2)
    for g in goals:
        if g.status is not GoalStatus.ACTIVE:
            continue
        text, text_translations = _worded(0, g.text)
        items.append(
            {
                "linkId": goal_link_id(g.id),
                "text": text,
                "_text": text_translations,
                "type": "integer",
                "required": False,
                "extension": [
                    {"url": f"{FHIR_EXT}therapist-label", "valueString": "Goal progress"},
                    {"url": "http://hl7.org/fhir/StructureDefinition/minValue", "valueInteger": 0},
                    {"url": "http://hl7.org/fhir/StructureDefinition/maxValue", "valueInteger": 10},
                    {
                        "url": f"{FHIR_EXT}anchor-low",
                        "valueString": low,
                        "_valueString": low_translations,
                    },
                    {
                        "url": f"{FHIR_EXT}anchor-high",
                        "valueString": high,
                        "_valueString": high_translations,
                    },
                    {
                        "url": "http://hl7.org/fhir/StructureDefinition/questionnaire-itemControl",
                        "valueCodeableConcept": {"coding": [{"code": "slider"}]},
                    },
                ],
            }
        )
    return items


def with_goal_items(questionnaire: Mapping[str, Any], goals: Sequence[Goal]) -> dict[str, Any]:
    """The after-session Questionnaire with a progress item per active goal, placed before the
    optional note (the last item) so the note stays the form's last word."""
    items = list(questionnaire.get("item", []))
    extra = goal_items(goals)
    if not extra:
        return dict(questionnaire)
    cut = len(items) - 1 if items and items[-1].get("type") == "text" else len(items)
    return {**questionnaire, "item": [*items[:cut], *extra, *items[cut:]]}


def split_goal_answers(
    answers: Mapping[str, object], goal_ids: Sequence[str]
) -> tuple[dict[str, object], dict[str, int | None]]:
    """(the alliance instrument's answers, {goal id: progress 0–10 or None for a skip}).

    A goal item for a goal the client does not have is refused; so is a value that is not an
    integer 0–10 or null. A goal marked reached or dropped after the form opened still takes
    its answer: the client's view of the progress is worth keeping, and a refusal would make
    the form's outbox retry forever.
    """
    rest: dict[str, object] = {}
    progress: dict[str, int | None] = {}
    known = set(goal_ids)
    for link_id, value in answers.items():
        if not link_id.startswith(GOAL_ITEM_PREFIX):
            rest[link_id] = value
            continue
        goal_id = link_id[len(GOAL_ITEM_PREFIX) :]
        if goal_id not in known:
            raise GoalError(f"{link_id}: no such goal.")
        if value is not None and (
            isinstance(value, bool)
            or not isinstance(value, int)
            or not PROGRESS_MIN <= value <= PROGRESS_MAX
        ):
            raise GoalError(f"{link_id}: progress is a whole number from 0 to 10.")
        progress[goal_id] = value
    return rest, progress


_LIFECYCLE: Final = {
    GoalStatus.ACTIVE: "active",
    GoalStatus.REACHED: "completed",
    GoalStatus.DROPPED: "cancelled",
}
_ACHIEVEMENT: Final = {
    GoalStatus.ACTIVE: ("in-progress", "In Progress"),
    GoalStatus.REACHED: ("achieved", "Achieved"),
    GoalStatus.DROPPED: ("not-achieved", "Not Achieved"),
}


def _fhir_time(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def goal_resource(
    goal: Goal, *, subject_ref: str, progress: Sequence[tuple[datetime, int]] = ()
) -> dict[str, Any]:
    """A FHIR R4 `Goal`: the client's words as the description, the status as lifecycle and
    achievement, and each progress answer (0–10) as a `goal-progress` extension."""
    code, display = _ACHIEVEMENT[goal.status]
    resource: dict[str, Any] = {
        "resourceType": "Goal",
        "id": goal.id,
        "lifecycleStatus": _LIFECYCLE[goal.status],
        "achievementStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/goal-achievement",
                    "code": code,
                    "display": display,
                }
            ]
        },
        "description": {"text": goal.text},
        "subject": {"reference": subject_ref},
        "startDate": goal.created_at.astimezone(UTC).date().isoformat(),
        "statusDate": goal.updated_at.astimezone(UTC).date().isoformat(),
    }
    if progress:
        resource["extension"] = [
            {
                "url": f"{FHIR_EXT}goal-progress",
                "extension": [
                    {"url": "answered", "valueDateTime": _fhir_time(at)},
                    {"url": "score", "valueInteger": score},
                ],
            }
            for at, score in progress
        ]
    return resource

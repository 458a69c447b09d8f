"""docs/privacy.md's retention table states every category's default policy and its reason."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from privacy.retention import ALLOWED_ACTIONS, DEFAULT_POLICIES, DEFAULT_REASONS, Action, Category

DOCS = Path(__file__).resolve().parents[2] / "docs" / "privacy.md"


def defaults_table() -> dict[str, list[str]]:
    """Rows of the table under '### Defaults, and why', by category."""
    text = DOCS.read_text(encoding="utf-8")
    table = text.split("\n### Defaults, and why\n", 1)[1].strip().split("\n\n", 1)[0]
    rows = [line.strip("|").split(" | ") for line in table.splitlines()[2:]]
    return {row[0].strip(" `"): [cell.strip() for cell in row] for row in rows}


@pytest.mark.parametrize("category", list(Category), ids=str)
def test_each_category_documents_its_default_days_action_and_reason(category: Category) -> None:
    row = defaults_table()[category.value]
    policy = DEFAULT_POLICIES[category]

    assert re.match(rf"{policy.keep_days} days\b", row[3])
    assert row[4] == policy.action.value
    assert row[5] == DEFAULT_REASONS[category]


def test_the_docs_name_exactly_the_categories_that_may_be_anonymised() -> None:
    anonymizable = sorted(c.value for c, a in ALLOWED_ACTIONS.items() if Action.ANONYMIZE in a)
    text = DOCS.read_text(encoding="utf-8")
    section = text.split("**Which categories may be anonymised", 1)[1].split("\n\n", 2)[1]
    named = sorted(re.findall(r"^- `(\w+)`:", section, flags=re.MULTILINE))

    assert named == anonymizable

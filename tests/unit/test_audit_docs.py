"""docs/privacy.md's audit section lists exactly the actions Attune records."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from privacy.audit import AUDIT_ACTIONS

DOCS = Path(__file__).resolve().parents[2] / "docs" / "privacy.md"
ACTION_ROW = re.compile(r"^\|\s*`([^`]+)`\s*\|\s*(\S.*?)\s*\|\s*$")


def audit_section() -> str:
    """The text from '## Audit trail' to the next second-level heading."""
    text = DOCS.read_text(encoding="utf-8")
    start = text.index("\n## Audit trail\n")
    following = text.find("\n## ", start + 1)
    return text[start : following if following != -1 else len(text)]


def documented_actions() -> Counter[str]:
    """Actions in the rows of the table under '### Actions', counted."""
    actions_table = audit_section().split("\n### Actions\n", 1)[1].split("\n### ", 1)[0]
    rows = (ACTION_ROW.match(line) for line in actions_table.splitlines())
    return Counter(row.group(1) for row in rows if row)


def test_every_recorded_action_is_documented() -> None:
    missing = sorted(set(AUDIT_ACTIONS) - set(documented_actions()))
    assert not missing, f"add these actions to docs/privacy.md: {missing}"


def test_every_documented_action_is_recorded() -> None:
    unknown = sorted(set(documented_actions()) - set(AUDIT_ACTIONS))
    assert not unknown, f"docs/privacy.md lists actions AUDIT_ACTIONS lacks: {unknown}"


def test_each_action_is_documented_once() -> None:
    repeated = sorted(action for action, n in documented_actions().items() if n > 1)
    assert not repeated

"""docs/security.md cites tests as its evidence: every cited test file and test exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "security.md").read_text(encoding="utf-8")
FOLDER = r"(?:tests/(?:unit|integration|browser|multiproc)/)?"
CITED_TEST = re.compile(rf"`{FOLDER}(test_[a-z_0-9]+\.py)::(test_[a-z_0-9]+)`")
CITED_FILE = re.compile(rf"`{FOLDER}(test_[a-z_0-9]+\.py)`")


def _files(name: str) -> list[Path]:
    return list((ROOT / "tests").glob(f"**/{name}"))


def test_every_test_the_threat_model_cites_exists() -> None:
    cited = CITED_TEST.findall(DOC)
    assert len(cited) > 20
    missing = [
        f"{name}::{test}"
        for name, test in cited
        if not any(f"def {test}(" in path.read_text(encoding="utf-8") for path in _files(name))
    ]
    assert missing == []


def test_every_test_file_the_threat_model_cites_exists() -> None:
    assert [name for name in set(CITED_FILE.findall(DOC)) if not _files(name)] == []

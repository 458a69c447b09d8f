"""docs/cues.md stays in step with the code: every threshold, category and wire field."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from server.core.cues import Category, CueConfig, NetStats
from server.core.cues.features import MESSAGE_FIELDS

DOC = (Path(__file__).resolve().parents[2] / "docs" / "cues.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", [spec.name for spec in fields(CueConfig)])
def test_every_threshold_is_documented(name: str) -> None:
    assert f"`{name}`" in DOC


@pytest.mark.parametrize("category", [category.value for category in Category])
def test_every_prompt_category_is_documented(category: str) -> None:
    assert f"`{category}`" in DOC


@pytest.mark.parametrize(
    "field",
    [*MESSAGE_FIELDS, *(f"net.{spec.name}" for spec in fields(NetStats))],
)
def test_every_wire_field_is_documented(field: str) -> None:
    assert f"| `{field}` |" in DOC

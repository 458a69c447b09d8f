"""The depth scanner judges nesting the way a JSON parser would, without recursing itself."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.security.json_depth import JsonTooDeep, check_json_depth, json_depth_exceeds


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ("null", 0),
        ("[]", 1),
        ('{"a": [1, {"b": []}]}', 4),
        ('"[[[[[[[["', 0),
        ('["\\"[[[["]', 1),
        ('{"k\\\\": [[]]}', 3),
        ('["ünïcödé [[[", {"ß": {}}]', 3),
        ("]]]][[", 2),
    ],
)
def test_depth_counts_brackets_outside_strings_only(text: str, depth: int) -> None:
    assert not json_depth_exceeds(text, depth)
    assert json_depth_exceeds(text, depth - 1) == (depth > 0)


def test_stray_closing_brackets_cannot_bank_depth_for_later_openers() -> None:
    assert json_depth_exceeds("]" * 100 + "[" * 40, 32)


def test_thirty_thousand_open_brackets_are_refused_before_any_parser_recurses() -> None:
    with pytest.raises(JsonTooDeep):
        check_json_depth("[" * 30_000, 32)
    with pytest.raises(JsonTooDeep):
        check_json_depth(b'{"a":' * 30_000, 32)


def test_bytes_and_text_are_judged_alike() -> None:
    text = '{"ä": ["[", {"b": [[]]}]}'
    assert json_depth_exceeds(text, 4) is json_depth_exceeds(text.encode(), 4) is True
    assert json_depth_exceeds(text, 5) is json_depth_exceeds(text.encode(), 5) is False


def _depth(value: object) -> int:
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    return 0


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\ab, '),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(alphabet='[]{}"\\ab'), inner, max_size=3)
    ),
    max_leaves=20,
)


@given(_json)
def test_the_scanner_agrees_with_the_parsed_depth_of_any_document(value: object) -> None:
    text = json.dumps(value)
    depth = _depth(value)
    assert not json_depth_exceeds(text, depth)
    if depth:
        assert json_depth_exceeds(text, depth - 1)

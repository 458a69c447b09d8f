"""The browser's protocol contract is generated from the Python protocol and kept in step."""

from __future__ import annotations

import re

import pytest

from server.core.protocol import (
    CLIENT_MESSAGE_CLASSES,
    CLIENT_MESSAGE_TYPES,
    NO_RECONNECT_CLOSE_CODES,
    PROTOCOL_VERSION,
    SERVER_MESSAGE_CLASSES,
    SERVER_MESSAGE_TYPES,
    CloseCode,
)
from server.core.protocol.js_types import COMMAND, TARGET, js_types, typedef_name

TEXT = js_types()
TYPEDEF = re.compile(r"@typedef \{.*\} (\w+)$", re.MULTILINE)


def test_the_committed_protocol_types_file_is_the_generated_one() -> None:
    committed = TARGET.read_text(encoding="utf-8") if TARGET.exists() else ""
    assert committed == TEXT, f"{TARGET.name} is out of date: run `{COMMAND}`"


def test_the_file_says_it_is_generated_and_how_to_regenerate_it() -> None:
    assert TEXT.startswith("// @ts-check\n")
    assert "GENERATED" in TEXT
    assert COMMAND in TEXT


@pytest.mark.parametrize(
    ("type_name", "expected"),
    [
        ("welcome", "WelcomeMessage"),
        ("checkin-result", "CheckinResultMessage"),
        ("prompt-feedback", "PromptFeedbackMessage"),
        ("sent-back", "SentBackMessage"),
    ],
)
def test_a_typedef_is_named_after_its_message_type(type_name: str, expected: str) -> None:
    assert typedef_name(type_name) == expected


@pytest.mark.parametrize(
    ("union", "types"),
    [("ServerMessage", SERVER_MESSAGE_TYPES), ("ClientMessage", CLIENT_MESSAGE_TYPES)],
)
def test_every_message_type_has_a_typedef_and_a_place_in_its_union(
    union: str, types: frozenset[str]
) -> None:
    names = {typedef_name(type_name) for type_name in types}
    defined = set(TYPEDEF.findall(TEXT))
    assert not sorted(names - defined)
    members = re.search(rf"@typedef \{{([^}}]*)\}} {union}$", TEXT, re.MULTILINE)
    assert members is not None
    assert set(members.group(1).split(" | ")) == names


def test_the_message_classes_are_exactly_the_known_types() -> None:
    assert {cls.TYPE for cls in SERVER_MESSAGE_CLASSES} == SERVER_MESSAGE_TYPES
    assert {cls.TYPE for cls in CLIENT_MESSAGE_CLASSES} == CLIENT_MESSAGE_TYPES


def test_every_typedef_name_is_defined_once() -> None:
    names = TYPEDEF.findall(TEXT)
    assert sorted({n for n in names if names.count(n) > 1}) == []


def test_each_message_typedef_pins_its_type_literal() -> None:
    for cls in (*SERVER_MESSAGE_CLASSES, *CLIENT_MESSAGE_CLASSES):
        pinned = f' * @property {{"{cls.TYPE}"}} type\n' in TEXT
        assert pinned or f'{{type: "{cls.TYPE}"' in TEXT, cls.TYPE


def test_optional_fields_are_optional_and_enums_are_unions_of_their_values() -> None:
    assert " * @property {string} [resume_token]\n" in TEXT
    assert " * @property {string} [ref]\n" in TEXT
    assert ' * @property {"therapist" | "client"} role\n' in TEXT
    assert " * @property {Array<LobbyEntry>} waiting\n" in TEXT


def test_the_constants_are_the_python_ones() -> None:
    assert f"export const PROTOCOL_VERSION = {PROTOCOL_VERSION};" in TEXT
    for code in CloseCode:
        assert f"  {code.name}: {code.value},\n" in TEXT
    numbers = ", ".join(str(code.value) for code in sorted(NO_RECONNECT_CLOSE_CODES))
    assert f"export const NO_RECONNECT_CLOSE_CODES = Object.freeze([{numbers}]);" in TEXT
    assert "export const PING_AFTER_IDLE_MS = 20000;" in TEXT

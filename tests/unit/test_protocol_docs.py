"""docs/protocol.md documents exactly the messages, errors and close codes the code knows."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from server.core.protocol import (
    CLIENT_MESSAGE_TYPES,
    DROP_AFTER_IDLE_S,
    HARD_FRAME_LIMIT_BYTES,
    HELLO_TIMEOUT_S,
    MAX_CANDIDATE_BYTES,
    MAX_FEATURES_BYTES,
    MAX_FRAME_BYTES,
    MAX_SDP_BYTES,
    PING_AFTER_IDLE_S,
    RATE_LIMIT_BURST,
    RATE_LIMIT_PER_SECOND,
    SERVER_MESSAGE_TYPES,
    CloseCode,
    ErrorCode,
    parse_client_message,
    server_message,
)
from server.core.rooms import RESUME_GRACE_MS

DOCS = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
TEXT = DOCS.read_text(encoding="utf-8")
TYPE_HEADING = re.compile(r"^### `([^`]+)`\s*$", re.MULTILINE)
CODE_ROW = re.compile(r"^\|\s*`([^`]+)`\s*\|", re.MULTILINE)
JSON_BLOCK = re.compile(r"```json\n(.*?)```", re.DOTALL)

CLIENT_SECTION = "## Client → server messages"
SERVER_SECTION = "## Server → client messages"


def section(heading: str) -> str:
    """The text under a second-level heading, up to the next one."""
    start = TEXT.index(f"\n{heading}\n")
    following = TEXT.find("\n## ", start + 1)
    return TEXT[start : following if following != -1 else len(TEXT)]


def documented_types(heading: str) -> Counter[str]:
    return Counter(TYPE_HEADING.findall(section(heading)))


def examples(heading: str) -> list[tuple[str, dict[str, Any]]]:
    """(heading type, example message) for every JSON line under each `### type`."""
    parts = TYPE_HEADING.split(section(heading))[1:]
    found = []
    for type_name, body in zip(parts[::2], parts[1::2], strict=True):
        for block in JSON_BLOCK.findall(body):
            found += [(type_name, json.loads(line)) for line in block.splitlines() if line]
    return found


@pytest.mark.parametrize(
    ("heading", "known"),
    [(CLIENT_SECTION, CLIENT_MESSAGE_TYPES), (SERVER_SECTION, SERVER_MESSAGE_TYPES)],
    ids=["client-to-server", "server-to-client"],
)
def test_every_message_type_is_documented_once_in_its_direction(
    heading: str, known: frozenset[str]
) -> None:
    documented = documented_types(heading)
    assert not sorted(known - set(documented)), f"add to docs/protocol.md {heading!r}"
    assert not sorted(set(documented) - known), "docs/protocol.md lists types the code lacks"
    assert [name for name, count in documented.items() if count > 1] == []


@pytest.mark.parametrize(
    ("heading", "known"),
    [(CLIENT_SECTION, CLIENT_MESSAGE_TYPES), (SERVER_SECTION, SERVER_MESSAGE_TYPES)],
    ids=["client-to-server", "server-to-client"],
)
def test_every_message_type_has_an_example(heading: str, known: frozenset[str]) -> None:
    assert {type_name for type_name, _ in examples(heading)} == known


@pytest.mark.parametrize(
    ("type_name", "example"),
    examples(CLIENT_SECTION),
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_each_client_example_is_a_valid_message_of_its_type(
    type_name: str, example: dict[str, Any]
) -> None:
    assert example["type"] == type_name
    parsed_type = parse_client_message(json.dumps(example)).TYPE
    assert parsed_type == type_name


@pytest.mark.parametrize(
    ("type_name", "example"),
    examples(SERVER_SECTION),
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_each_server_example_is_what_the_server_would_build(
    type_name: str, example: dict[str, Any]
) -> None:
    fields = {name: value for name, value in example.items() if name != "type"}
    assert example["type"] == type_name
    assert server_message(type_name, **fields) == example


@pytest.mark.parametrize(
    ("heading", "known"),
    [
        ("## Error codes", {code.value for code in ErrorCode}),
        ("## Close codes", {str(code.value) for code in CloseCode}),
    ],
    ids=["error-codes", "close-codes"],
)
def test_error_and_close_code_tables_match_the_code(heading: str, known: set[str]) -> None:
    assert Counter(CODE_ROW.findall(section(heading))) == Counter(known)


@pytest.mark.parametrize(
    "phrase",
    [
        f"{MAX_FRAME_BYTES // 1024} KiB (UTF-8 bytes)",
        f"| hard read limit | {HARD_FRAME_LIMIT_BYTES // 1024} KiB |",
        f"| `features` frame | {MAX_FEATURES_BYTES // 1024} KiB |",
        f"| SDP in a description | {MAX_SDP_BYTES // 1024} KiB |",
        f"| ICE candidate string | {MAX_CANDIDATE_BYTES // 1024} KiB |",
        f"{RATE_LIMIT_PER_SECOND} messages/s per connection, bursts of {RATE_LIMIT_BURST}",
        f"`hello` within {HELLO_TIMEOUT_S} s",
        f"after {PING_AFTER_IDLE_S} s without a frame",
        f"after {DROP_AFTER_IDLE_S} s of silence",
        f"| resume grace | {RESUME_GRACE_MS // 1000} s |",
    ],
)
def test_the_documented_limits_are_the_codes_limits(phrase: str) -> None:
    assert phrase in TEXT

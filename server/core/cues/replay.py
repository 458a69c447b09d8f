"""Replay a JSONL log of `features` messages through a fresh engine and list its prompts."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from server.core.cues.config import CueConfig
from server.core.cues.engine import CueEngine
from server.core.cues.features import CueError, FeatureError, parse_features


class ReplayError(CueError):
    """A line of the log that is not a valid `features` message."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line


def replay(lines: Iterable[str], config: CueConfig | None = None) -> Iterator[dict[str, Any]]:
    """Feed each non-blank JSONL line to one engine; yield every prompt as a JSON-ready dict."""
    engine = CueEngine(config)
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            message = json.loads(line)
        except json.JSONDecodeError as error:
            raise ReplayError(number, f"not JSON ({error.msg} at column {error.colno})") from error
        try:
            frame = parse_features(message)
        except FeatureError as error:
            raise ReplayError(number, str(error)) from error
        for prompt in engine.feed(frame):
            yield prompt.to_dict()

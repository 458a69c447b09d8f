"""Replay a JSONL log of `features` messages through a fresh engine and list its prompts.

A line is a `features` message. In a log of a session with several people, a line may also
carry `peer` (whose frame: the therapist's peer id is "therapist", a client's any short id)
and `kind` ("therapist", "client" or "guest"). A guest's lines are skipped: a guest's
features are never analysed. Without them, a line is the therapist's or the one client's.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Final

from server.core.cues.config import CueConfig
from server.core.cues.features import CueError, FeatureError, parse_features
from server.core.cues.group import GroupCueEngine, UnknownPeerError
from server.core.participants import THERAPIST_PEER_ID, PersonKind

DEFAULT_CLIENT_PEER: Final = "client"
_PEER_ID: Final = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


class ReplayError(CueError):
    """A line of the log that is not a valid `features` message."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line


def replay(lines: Iterable[str], config: CueConfig | None = None) -> Iterator[dict[str, Any]]:
    """Feed each non-blank JSONL line to one engine; yield every prompt as a JSON-ready dict."""
    engine = GroupCueEngine(config)
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            message = json.loads(line)
        except json.JSONDecodeError as error:
            raise ReplayError(number, f"not JSON ({error.msg} at column {error.colno})") from error
        try:
            peer, kind, body = _who(message)
            if kind is PersonKind.GUEST:
                parse_features(body)  # a guest's line must still be a valid line
                continue
            prompts = engine.feed(peer, parse_features(body))
        except (FeatureError, UnknownPeerError) as error:
            raise ReplayError(number, str(error)) from error
        for prompt in prompts:
            yield prompt.to_dict()


def _who(message: Any) -> tuple[str, PersonKind, Any]:
    """(peer id, kind, the bare `features` message) of one log line."""
    if not isinstance(message, Mapping):
        raise FeatureError(f"features: expected a JSON object, got {type(message).__name__}")
    if "peer" not in message and "kind" not in message:
        therapist = message.get("role") == "therapist"
        peer = THERAPIST_PEER_ID if therapist else DEFAULT_CLIENT_PEER
        return peer, PersonKind.THERAPIST if therapist else PersonKind.CLIENT, message
    body = {k: v for k, v in message.items() if k not in ("peer", "kind")}
    raw_kind = message.get("kind", "therapist" if body.get("role") == "therapist" else "client")
    try:
        kind = PersonKind(raw_kind)
    except ValueError:
        raise FeatureError(f"kind: expected therapist, client or guest, got {raw_kind!r}") from None
    if (kind is PersonKind.THERAPIST) != (body.get("role") == "therapist"):
        raise FeatureError(f"kind: {kind.value} does not fit role {body.get('role')!r}")
    default = THERAPIST_PEER_ID if kind is PersonKind.THERAPIST else DEFAULT_CLIENT_PEER
    peer = message.get("peer", default)
    if not isinstance(peer, str) or not _PEER_ID.fullmatch(peer):
        raise FeatureError("peer: expected 1 to 64 letters, digits or . _ : -")
    return peer, kind, body

"""What the engine tells the therapist: categories, severities, reasons and prompts."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Category(StrEnum):
    """One kind of prompt; rate limits, snoozes and mutes work per category."""

    WITHDRAWAL = "withdrawal"
    TALK_IMBALANCE = "talk_imbalance"
    RESPONSE_LATENCY = "response_latency"
    LAG = "lag"
    LAG_SEVERE = "lag_severe"
    TALK_OVER = "talk_over"
    VIDEO = "video"
    STILL_SILENT = "still_silent"
    OUT_OF_FRAME = "out_of_frame"
    COUPLE_BALANCE = "couple_balance"  # one client holds most of the clients' speech
    CLIENT_TALK_OVER = "client_talk_over"  # two clients speak over each other


class Severity(StrEnum):
    """How much attention a prompt asks for."""

    INFO = "info"  # a practical tip (explicit hand-offs)
    NOTICE = "notice"  # worth a look: a relational or presence cue
    WARNING = "warning"  # the connection is bad enough to change how the engine works


@dataclass(frozen=True, slots=True)
class Reason:
    """One signal that took part in a prompt: its measured value against its threshold."""

    signal: str
    value: float
    threshold: float
    unit: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "signal": self.signal,
            "value": self.value,
            "threshold": self.threshold,
            "unit": self.unit,
        }


@dataclass(frozen=True, slots=True)
class Finding:
    """A rule's conclusion before the prompt policy has had its say."""

    category: Category
    severity: Severity
    text: str
    reasons: tuple[Reason, ...]


@dataclass(frozen=True, slots=True)
class Prompt:
    """A suggestion shown in the therapist's private side panel."""

    id: str
    category: Category
    t_ms: int
    text: str
    reasons: tuple[Reason, ...]
    severity: Severity
    # whom it is about in a session of several clients (their peer ids); empty with one
    peers: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, as sent in a `prompt` message and printed by replay."""
        shown: dict[str, Any] = {
            "id": self.id,
            "category": self.category.value,
            "t_ms": self.t_ms,
            "severity": self.severity.value,
            "text": self.text,
            "reasons": [reason.to_dict() for reason in self.reasons],
        }
        if self.peers:
            shown["peers"] = list(self.peers)
        return shown

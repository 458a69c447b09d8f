"""The prompt policy: one prompt per category per rate-limit period, snooze, mute, feedback."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from server.core.cues.features import CueError
from server.core.cues.prompts import Category, Prompt

_FOREVER: Final = 2**62
_REMEMBERED_PROMPTS: Final = 64  # feedback is accepted for this many recent prompts


class Verdict(StrEnum):
    """The therapist's answer to a prompt."""

    HELPFUL = "helpful"
    NOT_NOW = "not-now"


class UnknownPromptError(CueError, LookupError):
    """Feedback for a prompt this engine never raised (or forgot long ago)."""


@dataclass(frozen=True, slots=True)
class FeedbackRecord:
    """One piece of feedback, ready to store with the session's cue data."""

    prompt_id: str
    category: Category
    verdict: Verdict
    t_ms: int


@dataclass(frozen=True, slots=True)
class FeedbackTally:
    """How often the therapist found a category's prompts helpful or untimely."""

    helpful: int = 0
    not_now: int = 0


class PromptPolicy:
    """Decides whether a category may prompt now; remembers recent prompts for feedback."""

    __slots__ = ("_last", "_muted", "_rate_limit_ms", "_recent", "_snoozed", "_tally", "open_at")

    def __init__(self, rate_limit_ms: int) -> None:
        self._rate_limit_ms = rate_limit_ms
        # the earliest time each category may prompt again (read directly on the hot path)
        self.open_at: dict[Category, int] = dict.fromkeys(Category, 0)
        self._last: dict[Category, int] = {}
        self._snoozed: dict[Category, int] = {}
        self._muted: set[Category] = set()
        self._recent: OrderedDict[str, tuple[Category, Verdict | None]] = OrderedDict()
        self._tally: dict[Category, FeedbackTally] = dict.fromkeys(Category, FeedbackTally())

    def is_open(self, category: Category, now_ms: int) -> bool:
        """True if a prompt of this category may be shown at `now_ms`."""
        return now_ms >= self.open_at[category]

    def record(self, prompt: Prompt) -> None:
        """Note a prompt that was shown: it starts its category's rate-limit period."""
        self._last[prompt.category] = prompt.t_ms
        self._reopen(prompt.category)
        self._recent[prompt.id] = (prompt.category, None)
        if len(self._recent) > _REMEMBERED_PROMPTS:
            self._recent.popitem(last=False)

    def cover(self, category: Category, t_ms: int) -> None:
        """Start a category's rate-limit period because another prompt already said it."""
        self._last[category] = max(t_ms, self._last.get(category, t_ms))
        self._reopen(category)

    def snooze(self, category: Category, until_ms: int) -> None:
        """Hold back this category's prompts until `until_ms` (a later call replaces it)."""
        self._snoozed[category] = until_ms
        self._reopen(category)

    def mute(self, category: Category) -> None:
        """Hold back this category's prompts for the rest of the session."""
        self._muted.add(category)
        self._reopen(category)

    def unmute(self, category: Category) -> None:
        """Allow a muted category again."""
        self._muted.discard(category)
        self._reopen(category)

    def is_muted(self, category: Category) -> bool:
        """True if the therapist muted this category."""
        return category in self._muted

    def feedback(self, prompt_id: str, verdict: Verdict | str, t_ms: int) -> FeedbackRecord:
        """Record the therapist's verdict on a prompt; a second verdict replaces the first."""
        try:
            category, previous = self._recent[prompt_id]
        except KeyError:
            raise UnknownPromptError(f"no recent prompt with id {prompt_id!r}") from None
        try:
            verdict = Verdict(verdict)
        except ValueError:
            allowed = ", ".join(v.value for v in Verdict)
            raise CueError(f"verdict must be one of {allowed}, got {verdict!r}") from None
        tally = self._tally[category]
        helpful = tally.helpful + (verdict is Verdict.HELPFUL) - (previous is Verdict.HELPFUL)
        not_now = tally.not_now + (verdict is Verdict.NOT_NOW) - (previous is Verdict.NOT_NOW)
        self._tally[category] = FeedbackTally(helpful=helpful, not_now=not_now)
        self._recent[prompt_id] = (category, verdict)
        return FeedbackRecord(prompt_id=prompt_id, category=category, verdict=verdict, t_ms=t_ms)

    def tally(self, category: Category) -> FeedbackTally:
        """Feedback counts for a category so far."""
        return self._tally[category]

    def state_size(self) -> int:
        """Remembered prompts (the only part that grows, up to a cap)."""
        return len(self._recent)

    def category_of(self, prompt_id: str) -> Category | None:
        """The category of a recent prompt, or None."""
        found = self._recent.get(prompt_id)
        return found[0] if found else None

    def to_state(self) -> dict[str, Any]:
        """Cooldowns, snoozes, mutes, recent prompts and tallies as plain JSON data."""
        return {
            "last": {c.value: t for c, t in self._last.items()},
            "snoozed": {c.value: t for c, t in self._snoozed.items()},
            "muted": sorted(c.value for c in self._muted),
            "recent": [
                [pid, c.value, v.value if v else None] for pid, (c, v) in self._recent.items()
            ],
            "tally": {c.value: [t.helpful, t.not_now] for c, t in self._tally.items()},
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any], rate_limit_ms: int) -> PromptPolicy:
        """The policy `to_state` described (ValueError for anything else)."""
        policy = cls(rate_limit_ms)
        try:
            policy._last = {Category(c): int(t) for c, t in state["last"].items()}
            policy._snoozed = {Category(c): int(t) for c, t in state["snoozed"].items()}
            policy._muted = {Category(c) for c in state["muted"]}
            for pid, category, verdict in state["recent"][-_REMEMBERED_PROMPTS:]:
                policy._recent[str(pid)] = (
                    Category(category),
                    Verdict(verdict) if verdict else None,
                )
            for c, (helpful, not_now) in state["tally"].items():
                policy._tally[Category(c)] = FeedbackTally(int(helpful), int(not_now))
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not a prompt policy state: {exc!r}") from None
        for category in Category:
            policy._reopen(category)
        return policy

    def _reopen(self, category: Category) -> None:
        if category in self._muted:
            self.open_at[category] = _FOREVER
            return
        last = self._last.get(category)
        rate_limited_until = last + self._rate_limit_ms if last is not None else 0
        self.open_at[category] = max(rate_limited_until, self._snoozed.get(category, 0))

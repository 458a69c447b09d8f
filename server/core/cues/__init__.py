"""Nonverbal-cue engine (DESIGN §7), pure: feature frames in, therapist prompts out.

Modules, one job each:
- features: the `features` wire message, FeatureFrame, strict validation
- config: CueConfig, every threshold with its default
- windows: fixed-size rolling windows (flat memory)
- turns: turn-taking (runs, floor, pauses, switches, overlaps) from both roles' speech
- rules: the live rules and their wording
- policy: rate limit, snooze, mute, feedback
- engine: CueEngine, which wires the above per session
- replay: JSONL feature logs → prompts
- synthetic: seeded feature streams for tests and benchmarks
- synchrony, summary: the after-session summary (never live)
"""

from server.core.cues.config import CueConfig
from server.core.cues.engine import CueEngine
from server.core.cues.features import (
    CueError,
    FeatureError,
    FeatureFrame,
    NetStats,
    parse_features,
)
from server.core.cues.policy import FeedbackRecord, FeedbackTally, UnknownPromptError, Verdict
from server.core.cues.prompts import Category, Prompt, Reason, Severity
from server.core.cues.replay import ReplayError, replay
from server.core.cues.summary import ClientSignal, SessionSummary, SummaryBuilder, build_summary

__all__ = [
    "Category",
    "ClientSignal",
    "CueConfig",
    "CueEngine",
    "CueError",
    "FeatureError",
    "FeatureFrame",
    "FeedbackRecord",
    "FeedbackTally",
    "NetStats",
    "Prompt",
    "Reason",
    "ReplayError",
    "SessionSummary",
    "Severity",
    "SummaryBuilder",
    "UnknownPromptError",
    "Verdict",
    "build_summary",
    "parse_features",
    "replay",
]

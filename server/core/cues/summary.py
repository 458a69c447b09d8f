"""The after-session summary (pure): what the session's features, prompts and signals show.

Built from the same frames the live engine saw, plus its prompts, the therapist's feedback
and the client's signal buttons. Plain data for the therapist's summary page (rendered as SVG
by the web layer): talk share per minute, turn-gap histograms, a timeline of prompts and
signals, connection quality per minute, loudness trends per role, and movement synchrony
(experimental). Nothing here feeds back into live prompts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from statistics import median
from typing import Any, Final

from server.core.cues.config import CueConfig
from server.core.cues.features import CLIENT, THERAPIST, FeatureFrame
from server.core.cues.policy import FeedbackRecord
from server.core.cues.prompts import Prompt
from server.core.cues.synchrony import SynchronyConfig, SynchronyResult, motion_synchrony
from server.core.cues.turns import TurnTracker
from server.core.cues.windows import Histogram
from server.core.protocol import SessionRole

_ROLES: Final = (SessionRole.THERAPIST, SessionRole.CLIENT)


@dataclass(frozen=True, slots=True)
class ClientSignal:
    """A nonverbal signal button the client pressed ("need-moment", "confused", ...)."""

    t_ms: int
    kind: str


@dataclass(frozen=True, slots=True)
class SummaryConfig:
    """Bucket widths and histogram ranges of the summary."""

    bucket_ms: int = 60_000
    gap_bin_ms: int = 250
    gap_low_ms: int = -1_000
    gap_high_ms: int = 5_000
    synchrony: SynchronyConfig = field(default_factory=SynchronyConfig)

    def __post_init__(self) -> None:
        if self.bucket_ms < 1000 or self.gap_bin_ms < 1 or self.gap_high_ms <= self.gap_low_ms:
            raise ValueError("bucket_ms >= 1000, gap_bin_ms >= 1 and gap_low < gap_high needed")


@dataclass(frozen=True, slots=True)
class TalkShare:
    """Speech per role in one time bucket."""

    start_ms: int
    therapist_ms: int
    client_ms: int

    @property
    def client_share(self) -> float | None:
        """Client's share of the speech in the bucket; None if nobody spoke."""
        total = self.therapist_ms + self.client_ms
        return self.client_ms / total if total else None


@dataclass(frozen=True, slots=True)
class GapHistogram:
    """Distribution of the gaps when the floor passes in one direction (ms; <0: overlap)."""

    direction: str  # "therapist_to_client" or "client_to_therapist"
    bins: tuple[tuple[int, int, int], ...]  # (low, high, count); the end bins take the tails
    count: int
    median_ms: float | None


@dataclass(frozen=True, slots=True)
class TimelineEvent:
    """A prompt or a client signal, in session time."""

    t_ms: int
    kind: str  # "prompt" or "signal"
    label: str  # the prompt category or the signal kind
    text: str | None = None
    severity: str | None = None
    feedback: str | None = None  # the therapist's verdict on a prompt, if any


@dataclass(frozen=True, slots=True)
class ConnectionQuality:
    """Connection in one time bucket, worst of both browsers' reports."""

    start_ms: int
    one_way_ms: float | None  # median RTT / 2
    loss: float | None  # mean inbound loss fraction
    jitter_ms: float | None  # highest jitter reported
    video_freezes: int
    camera_frozen_ms: int


@dataclass(frozen=True, slots=True)
class LoudnessTrend:
    """Mean voice level while speaking, per bucket, and its linear trend."""

    role: SessionRole
    levels: tuple[tuple[int, float | None], ...]  # (bucket start, mean dBFS)
    slope_db_per_10_min: float | None


@dataclass(frozen=True, slots=True)
class SessionSummary:
    """Everything the after-session cue summary shows."""

    duration_ms: int
    talk_share: tuple[TalkShare, ...]
    turn_gaps: tuple[GapHistogram, ...]
    timeline: tuple[TimelineEvent, ...]
    connection: tuple[ConnectionQuality, ...]
    loudness: tuple[LoudnessTrend, ...]
    synchrony: SynchronyResult

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "duration_ms": self.duration_ms,
            "talk_share": [
                {
                    "start_ms": b.start_ms,
                    "therapist_ms": b.therapist_ms,
                    "client_ms": b.client_ms,
                    "client_share": _round(b.client_share),
                }
                for b in self.talk_share
            ],
            "turn_gaps": [
                {
                    "direction": h.direction,
                    "bins": [list(b) for b in h.bins],
                    "count": h.count,
                    "median_ms": h.median_ms,
                }
                for h in self.turn_gaps
            ],
            "timeline": [
                {
                    "t_ms": e.t_ms,
                    "kind": e.kind,
                    "label": e.label,
                    "text": e.text,
                    "severity": e.severity,
                    "feedback": e.feedback,
                }
                for e in self.timeline
            ],
            "connection": [
                {
                    "start_ms": c.start_ms,
                    "one_way_ms": _round(c.one_way_ms),
                    "loss": _round(c.loss),
                    "jitter_ms": _round(c.jitter_ms),
                    "video_freezes": c.video_freezes,
                    "camera_frozen_ms": c.camera_frozen_ms,
                }
                for c in self.connection
            ],
            "loudness": [
                {
                    "role": trend.role.value,
                    "levels": [[start, _round(level)] for start, level in trend.levels],
                    "slope_db_per_10_min": _round(trend.slope_db_per_10_min),
                }
                for trend in self.loudness
            ],
            "synchrony": self.synchrony.to_dict(),
        }


class _Bucket:
    """Running totals for one time bucket."""

    __slots__ = (
        "camera_frozen_ms",
        "freezes",
        "jitter_max",
        "level_n",
        "level_sum",
        "loss_n",
        "loss_sum",
        "rtts",
        "speech_ms",
    )

    def __init__(self) -> None:
        self.speech_ms = [0, 0]
        self.rtts: list[float] = []
        self.loss_sum, self.loss_n = 0.0, 0
        self.jitter_max: float | None = None
        self.freezes = 0
        self.camera_frozen_ms = 0
        self.level_sum, self.level_n = [0.0, 0.0], [0, 0]


class _GapCollector:
    """Turn listener that keeps the floor-passing gaps per direction."""

    def __init__(self, cfg: SummaryConfig) -> None:
        self.gaps = (
            Histogram(cfg.gap_low_ms, cfg.gap_high_ms, cfg.gap_bin_ms),
            Histogram(cfg.gap_low_ms, cfg.gap_high_ms, cfg.gap_bin_ms),
        )
        self.values: tuple[list[int], list[int]] = ([], [])

    def on_pause(self, role: int, pause_ms: int, t_ms: int) -> None:
        """Pauses within a turn are not gaps between turns."""

    def on_switch(self, from_role: int, to_role: int, gap_ms: int, t_ms: int) -> None:
        """Count the gap under the direction of the hand-over."""
        self.gaps[from_role].add(gap_ms)
        self.values[from_role].append(gap_ms)

    def on_turn_end(self, role: int, speech_ms: int, t_ms: int) -> None:
        """Turn lengths are not part of the summary."""

    def on_overlap(self, role: int, overlap_ms: int, t_ms: int) -> None:
        """Overlaps show as negative gaps."""


class SummaryBuilder:
    """Collects a session's frames (in arrival order), prompts and signals; then `build()`."""

    def __init__(
        self, config: SummaryConfig | None = None, cue_config: CueConfig | None = None
    ) -> None:
        self._cfg = config if config is not None else SummaryConfig()
        cues = cue_config if cue_config is not None else CueConfig()
        self._turns = TurnTracker(
            join_ms=cues.run_join_ms, max_skew_ms=cues.max_skew_ms, max_run_ms=cues.max_run_ms
        )
        self._gaps = _GapCollector(self._cfg)
        self._buckets: dict[int, _Bucket] = {}
        self._motion: tuple[dict[int, float], dict[int, float]] = ({}, {})
        self._last_seen = [-1, -1]
        self._end_ms = 0
        self._events: list[TimelineEvent] = []
        self._prompts: list[Prompt] = []
        self._verdicts: dict[str, str] = {}

    def add_frame(self, frame: FeatureFrame) -> None:
        """Take one frame; a stale one (not newer than its role's last) is ignored."""
        role = CLIENT if frame.role is SessionRole.CLIENT else THERAPIST
        if frame.t_ms <= self._last_seen[role]:
            return
        self._last_seen[role] = frame.t_ms
        self._end_ms = max(self._end_ms, frame.t_ms)
        bucket = self._bucket(frame.t_ms - 1)
        for start, end in frame.voiced:
            self._bucket(start).speech_ms[role] += end - start
        if frame.voiced:
            bucket.level_sum[role] += frame.level_dbfs
            bucket.level_n[role] += 1
        if frame.frame_present is not False and not frame.frozen:
            self._motion[role][(frame.t_ms - 1) // 1000] = frame.motion
        if frame.frozen:
            bucket.camera_frozen_ms += frame.window_ms
        net = frame.net
        if net is not None:
            if net.rtt_ms is not None:
                bucket.rtts.append(net.rtt_ms)
            if net.loss is not None:
                bucket.loss_sum += net.loss
                bucket.loss_n += 1
            if net.jitter_ms is not None:
                bucket.jitter_max = max(bucket.jitter_max or 0.0, net.jitter_ms)
            bucket.freezes += net.frames_frozen or 0
        self._turns.add(role, frame.t_ms, frame.voiced, self._gaps)

    def add_prompt(self, prompt: Prompt) -> None:
        """A prompt the engine raised during the session."""
        self._prompts.append(prompt)

    def add_feedback(self, record: FeedbackRecord) -> None:
        """The therapist's verdict on a prompt (the latest one counts)."""
        self._verdicts[record.prompt_id] = record.verdict.value

    def add_signal(self, signal: ClientSignal) -> None:
        """A signal button the client pressed."""
        self._events.append(TimelineEvent(signal.t_ms, "signal", signal.kind))

    def build(self) -> SessionSummary:
        """The summary of everything added so far."""
        cfg = self._cfg
        count = self._end_ms // cfg.bucket_ms + (1 if self._end_ms % cfg.bucket_ms else 0)
        buckets = [(i * cfg.bucket_ms, self._buckets.get(i, _Bucket())) for i in range(count)]
        timeline = self._events + [
            TimelineEvent(
                p.t_ms,
                "prompt",
                p.category.value,
                p.text,
                p.severity.value,
                self._verdicts.get(p.id),
            )
            for p in self._prompts
        ]
        seconds = self._end_ms // 1000 + 1
        motion = [[series.get(second) for second in range(seconds)] for series in self._motion]
        return SessionSummary(
            duration_ms=self._end_ms,
            talk_share=tuple(
                TalkShare(start, b.speech_ms[0], b.speech_ms[1]) for start, b in buckets
            ),
            turn_gaps=tuple(
                GapHistogram(
                    direction,
                    tuple(histogram.bins()),
                    histogram.count,
                    median(values) if values else None,
                )
                for direction, histogram, values in zip(
                    ("therapist_to_client", "client_to_therapist"),
                    self._gaps.gaps,
                    self._gaps.values,
                    strict=True,
                )
            ),
            timeline=tuple(sorted(timeline, key=lambda event: (event.t_ms, event.kind))),
            connection=tuple(_connection(start, b) for start, b in buckets),
            loudness=tuple(_loudness(role, buckets, cfg.bucket_ms) for role in _ROLES),
            synchrony=motion_synchrony(motion[THERAPIST], motion[CLIENT], cfg.synchrony),
        )

    def _bucket(self, t_ms: int) -> _Bucket:
        index = max(0, t_ms) // self._cfg.bucket_ms
        bucket = self._buckets.get(index)
        if bucket is None:
            bucket = self._buckets[index] = _Bucket()
        return bucket


def build_summary(
    frames: Iterable[FeatureFrame],
    prompts: Iterable[Prompt] = (),
    signals: Iterable[ClientSignal] = (),
    feedback: Iterable[FeedbackRecord] = (),
    *,
    config: SummaryConfig | None = None,
    cue_config: CueConfig | None = None,
) -> SessionSummary:
    """Summarise a finished session from its frames (arrival order), prompts and signals."""
    builder = SummaryBuilder(config, cue_config)
    for frame in frames:
        builder.add_frame(frame)
    for prompt in prompts:
        builder.add_prompt(prompt)
    for signal in signals:
        builder.add_signal(signal)
    for record in feedback:
        builder.add_feedback(record)
    return builder.build()


def _connection(start_ms: int, bucket: _Bucket) -> ConnectionQuality:
    return ConnectionQuality(
        start_ms=start_ms,
        one_way_ms=median(bucket.rtts) / 2 if bucket.rtts else None,
        loss=bucket.loss_sum / bucket.loss_n if bucket.loss_n else None,
        jitter_ms=bucket.jitter_max,
        video_freezes=bucket.freezes,
        camera_frozen_ms=bucket.camera_frozen_ms,
    )


def _loudness(
    role: SessionRole, buckets: list[tuple[int, _Bucket]], bucket_ms: int
) -> LoudnessTrend:
    index = CLIENT if role is SessionRole.CLIENT else THERAPIST
    levels = tuple(
        (start, b.level_sum[index] / b.level_n[index] if b.level_n[index] else None)
        for start, b in buckets
    )
    points = [(start / 600_000, level) for start, level in levels if level is not None]
    return LoudnessTrend(role, levels, _slope(points))


def _slope(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope; None with fewer than three points or no spread in x."""
    if len(points) < 3:
        return None
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    sxx = sum((x - mean_x) ** 2 for x, _ in points)
    if sxx == 0:
        return None
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / sxx


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def talk_share_per_person(
    summaries: Mapping[str, Mapping[str, Any]], therapist: str = "Therapist"
) -> list[tuple[str, int, float | None]]:
    """(name, speech ms, share of everyone's speech) for a session of several clients, from
    each client's stored summary (`to_dict()` form) by name: each client's own speech, and the
    therapist's as the summary that heard most of it counted it (each client's summary starts
    with that client). Share None when nobody spoke."""
    spoken: list[tuple[str, int]] = []
    therapist_ms = 0
    for name, summary in summaries.items():
        buckets = summary.get("talk_share") or []
        spoken.append((name, sum(int(b.get("client_ms") or 0) for b in buckets)))
        therapist_ms = max(therapist_ms, sum(int(b.get("therapist_ms") or 0) for b in buckets))
    people = [(therapist, therapist_ms), *spoken]
    total = sum(ms for _, ms in people)
    return [(name, ms, ms / total if total else None) for name, ms in people]

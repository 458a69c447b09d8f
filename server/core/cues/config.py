"""Every threshold of the cue engine in one frozen dataclass, with DESIGN §7 defaults."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

_SCALED = {"scaled": True}


def _window(default: int) -> Any:
    """An observation window or persistence time: shortened by `CueConfig.scaled`."""
    return field(default=default, metadata=_SCALED)


@dataclass(frozen=True, slots=True)
class CueConfig:
    """Thresholds in milliseconds, shares in 0..1, motion in percent of pixels changed.

    Conversational micro-timing (the 3 s silence, the 1 s minimal reply, the +1 s latency
    margin) and network thresholds are properties of people and links, so `scaled()` leaves
    them alone; it shortens only the observation windows and persistence times.
    """

    # -- turn-taking: how voiced segments become runs and turns --------------------------
    run_join_ms: int = 300  # same-role speech closer than this is one run
    max_run_ms: int = 30_000  # a longer run is cut so turn analysis never waits on it
    max_skew_ms: int = 3_000  # how long to wait for the slower browser's frames
    presence_timeout_ms: int = 5_000  # a role that sent nothing for this long is away

    # -- withdrawal -----------------------------------------------------------------------
    withdrawal_silence_ms: int = 3_000  # therapist speaks, silence of at least this, again
    withdrawal_min_count: int = 3  # ... at least this many times in the window
    withdrawal_window_ms: int = _window(300_000)
    withdrawal_baseline_prior: float = 1.0  # per window, used until calibration completes
    withdrawal_baseline_factor: float = 1.5  # "above baseline": more than baseline x this
    withdrawal_talk_share_max: float = 0.35  # second signal: client talk share below this
    withdrawal_motion_ratio: float = 0.6  # or: client motion below this x their baseline
    minimal_turn_ms: int = 1_000  # a client turn with less speech than this is minimal
    minimal_turn_count: int = 4  # ... this many in a row

    # -- the pair's own baseline ----------------------------------------------------------
    calibration_ms: int = _window(600_000)  # the first 10 min of both-present conversation
    carry_every_ms: int = _window(5_000)  # the windows travel with the room's state this often
    baseline_min_samples: int = 8  # response gaps needed for a latency baseline
    motion_window_ms: int = _window(120_000)  # recent client motion, against the baseline

    # -- talk-time imbalance --------------------------------------------------------------
    talk_share_min: float = 0.25  # client share of speech below this ...
    talk_window_ms: int = _window(300_000)  # ... over this rolling window ...
    talk_sustain_ms: int = _window(600_000)  # ... continuously for this long
    talk_min_speech_ms: int = _window(30_000)  # less speech than this in the window: no claim

    # -- response latency -----------------------------------------------------------------
    latency_margin_ms: int = 1_000  # median response gap above baseline + this
    latency_window_ms: int = _window(120_000)
    latency_min_samples: int = 4

    # -- lag and talk-over ----------------------------------------------------------------
    lag_handoff_ms: int = 150  # one-way delay above this: suggest explicit hand-offs
    lag_severe_ms: int = 400  # above this: warn and switch the timing-based rules off
    lag_sustain_ms: int = _window(10_000)  # a lag band must last this long to prompt
    lag_recover_ms: int = _window(10_000)  # timing rules stay off this long after recovery
    rtt_smoothing: float = 0.3  # EWMA weight of a new RTT sample
    talk_over_min_overlap_ms: int = 600  # shorter overlaps are back-channels ("mhm")
    talk_over_min_count: int = 3
    talk_over_window_ms: int = _window(120_000)

    # -- video ----------------------------------------------------------------------------
    video_min_fps: float = 8.0  # fewer decoded frames per second than this is degraded
    video_degraded_min_ms: int = _window(8_000)  # degraded time within the window to prompt
    video_window_ms: int = _window(20_000)

    # -- presence -------------------------------------------------------------------------
    still_motion_max: float = 0.15  # percent of pixels changed; below this is still
    still_silent_ms: int = _window(60_000)
    out_of_frame_ms: int = _window(10_000)

    # -- sessions with several clients (couples, families) ----------------------------------
    couple_share_max: float = 0.70  # one client holds at least this share of the clients' speech
    couple_window_ms: int = _window(600_000)  # ... over this sliding window
    couple_min_speech_ms: int = _window(60_000)  # less clients' speech than this: no claim

    # -- prompt policy --------------------------------------------------------------------
    rate_limit_ms: int = _window(600_000)  # at most one prompt per category per this

    def __post_init__(self) -> None:
        for spec in fields(self):
            value = getattr(self, spec.name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ValueError(f"CueConfig.{spec.name} must be a positive number: {value!r}")
        for name in (
            "withdrawal_talk_share_max",
            "talk_share_min",
            "rtt_smoothing",
            "couple_share_max",
        ):
            if getattr(self, name) > 1:
                raise ValueError(f"CueConfig.{name} must be at most 1")
        if self.lag_handoff_ms >= self.lag_severe_ms:
            raise ValueError("CueConfig.lag_handoff_ms must be below lag_severe_ms")
        if self.couple_share_max <= 0.5:
            raise ValueError("CueConfig.couple_share_max must be above 0.5 (one client's share)")
        if self.couple_min_speech_ms > self.couple_window_ms:
            raise ValueError("CueConfig.couple_min_speech_ms must fit in couple_window_ms")
        if self.video_degraded_min_ms > self.video_window_ms:
            raise ValueError("CueConfig.video_degraded_min_ms must fit in video_window_ms")

    def scaled(self, factor: float) -> CueConfig:
        """The same rules with every observation window multiplied by `factor` (for tests)."""
        if not factor > 0:
            raise ValueError(f"scale factor must be positive: {factor!r}")
        changes = {
            spec.name: max(1, round(getattr(self, spec.name) * factor))
            for spec in fields(self)
            if spec.metadata.get("scaled")
        }
        return replace(self, **changes)

    @classmethod
    def scaled_fields(cls) -> tuple[str, ...]:
        """Names of the fields `scaled()` changes."""
        return tuple(spec.name for spec in fields(cls) if spec.metadata.get("scaled"))

"""The live cue rules of DESIGN §7: each keeps its own bounded state and words its prompt.

A rule observes signals as the engine hands them over and, when asked with `check(now)`,
returns a Finding or None. The engine asks only while the prompt policy would let that
category through, so a Finding is always shown and the rule may forget the evidence it used.
Every prompt is a suggestion ("consider ..."), never a diagnosis.
"""

from __future__ import annotations

from typing import Final

from server.core.cues.config import CueConfig
from server.core.cues.features import CLIENT, THERAPIST, NetStats
from server.core.cues.prompts import Category, Finding, Reason, Severity
from server.core.cues.windows import EventWindow, Histogram, RollingSum, ValueWindow

_NOT_SINCE: Final = -1  # a "since" time that is not running
# Response gaps are clamped to this range before they enter a median or the baseline.
GAP_FLOOR_MS: Final = -2_000
GAP_CEILING_MS: Final = 15_000


def _minutes(ms: int) -> str:
    minutes = ms / 60_000
    return f"{minutes:.0f} min" if minutes >= 1 else f"{ms / 1000:.0f} s"


class WithdrawalRule:
    """Unanswered openings (therapist → ≥3 s silence → therapist) or minimal replies.

    Silence pattern: at least `withdrawal_min_count` re-entries in the window, above the
    pair's own baseline (times `withdrawal_baseline_factor`), and a second signal (low client
    talk share, or client motion well below their own baseline). Minimal replies:
    `minimal_turn_count` client turns in a row, each with under `minimal_turn_ms` of speech
    (the validated pattern stands alone).
    """

    __slots__ = (
        "_calibration_reentries",
        "_cfg",
        "_last_minimal_ms",
        "_minimal_streak",
        "_reentries",
    )

    def __init__(self, cfg: CueConfig) -> None:
        self._cfg = cfg
        capacity = cfg.withdrawal_window_ms // cfg.withdrawal_silence_ms + 2
        self._reentries = EventWindow(cfg.withdrawal_window_ms, capacity)
        self._calibration_reentries = 0
        self._minimal_streak = 0
        self._last_minimal_ms = _NOT_SINCE

    def on_reentry(self, t_ms: int, calibrating: bool) -> None:
        """The therapist spoke again after a silence of at least `withdrawal_silence_ms`."""
        self._reentries.add(t_ms)
        if calibrating:
            self._calibration_reentries += 1

    def on_client_turn(self, speech_ms: int, t_ms: int) -> None:
        """A client turn ended; short ones extend the streak, a longer one ends it."""
        if speech_ms < self._cfg.minimal_turn_ms:
            self._minimal_streak += 1
            self._last_minimal_ms = t_ms
        else:
            self._minimal_streak = 0

    def pending(self, now: int) -> bool:
        """True if either pattern has enough events to be worth checking."""
        cfg = self._cfg
        return (
            self._reentries.count(now) >= cfg.withdrawal_min_count
            or self._minimal_streak >= cfg.minimal_turn_count
        )

    def baseline(self, calibrated: bool) -> float:
        """The pair's re-entries per window: the calibration rate, or the prior before it."""
        cfg = self._cfg
        if not calibrated:
            return cfg.withdrawal_baseline_prior
        return self._calibration_reentries * cfg.withdrawal_window_ms / cfg.calibration_ms

    def check(
        self,
        now: int,
        calibrated: bool,
        client_share: float | None,
        motion_ratio: float | None,
    ) -> Finding | None:
        """A withdrawal finding if either pattern holds."""
        cfg = self._cfg
        reasons: list[Reason] = []
        count = self._reentries.count(now)
        if count >= cfg.withdrawal_min_count:
            baseline = self.baseline(calibrated)
            low_share = client_share is not None and client_share < cfg.withdrawal_talk_share_max
            low_motion = motion_ratio is not None and motion_ratio < cfg.withdrawal_motion_ratio
            above = round(baseline * cfg.withdrawal_baseline_factor, 2)
            if count > above and (low_share or low_motion):
                reasons.append(
                    Reason("therapist_reentries_after_silence", count, above, "per window")
                )
                if low_share and client_share is not None:
                    reasons.append(
                        Reason(
                            "client_talk_share",
                            client_share,
                            cfg.withdrawal_talk_share_max,
                            "share",
                        )
                    )
                if low_motion and motion_ratio is not None:
                    reasons.append(
                        Reason(
                            "client_motion_vs_baseline",
                            motion_ratio,
                            cfg.withdrawal_motion_ratio,
                            "ratio",
                        )
                    )
        streak = self._minimal_streak
        recent = now - self._last_minimal_ms <= cfg.withdrawal_window_ms
        if streak >= cfg.minimal_turn_count and recent:
            reasons.append(
                Reason("minimal_client_turns_in_a_row", streak, cfg.minimal_turn_count, "turns")
            )
        if not reasons:
            return None
        self._reentries.clear()
        self._minimal_streak = 0
        return Finding(
            Category.WITHDRAWAL,
            Severity.NOTICE,
            _withdrawal_text(reasons, cfg, calibrated),
            tuple(reasons),
        )

    def state_size(self) -> int:
        """Re-entry times held."""
        return len(self._reentries)


def _withdrawal_text(reasons: list[Reason], cfg: CueConfig, calibrated: bool) -> str:
    signals = {reason.signal: reason for reason in reasons}
    parts = []
    if "therapist_reentries_after_silence" in signals:
        count = int(signals["therapist_reentries_after_silence"].value)
        quieter = (
            "is speaking less" if "client_talk_share" in signals else "is moving less than earlier"
        )
        compared = ", more than earlier in this session," if calibrated else ""
        parts.append(
            f"{count} times in the last {_minutes(cfg.withdrawal_window_ms)} your words were met "
            f"by a long silence{compared} and the client {quieter}."
        )
    if "minimal_client_turns_in_a_row" in signals:
        count = int(signals["minimal_client_turns_in_a_row"].value)
        parts.append(f"The client's last {count} replies were very brief.")
    return " ".join(parts) + " Consider checking in gently — how is this landing for them?"


class TalkImbalanceRule:
    """Client share of speech under `talk_share_min` over the window, sustained."""

    __slots__ = ("_cfg", "_share", "_since")

    def __init__(self, cfg: CueConfig) -> None:
        self._cfg = cfg
        self._since = _NOT_SINCE
        self._share = 0.0

    def update(self, now: int, therapist_ms: int, client_ms: int) -> None:
        """Feed the window's speech totals; starts or stops the sustain clock."""
        cfg = self._cfg
        total = therapist_ms + client_ms
        if total >= cfg.talk_min_speech_ms and client_ms < cfg.talk_share_min * total:
            if self._since == _NOT_SINCE:
                self._since = now
            self._share = client_ms / total
        else:
            self._since = _NOT_SINCE

    def reset(self) -> None:
        """Stop the sustain clock (one side left)."""
        self._since = _NOT_SINCE

    def check(self, now: int) -> Finding | None:
        """A finding once the imbalance has lasted `talk_sustain_ms`."""
        cfg = self._cfg
        if self._since == _NOT_SINCE or now - self._since < cfg.talk_sustain_ms:
            return None
        sustained_ms = now - self._since
        self._since = now  # the next prompt needs another full sustain period
        text = (
            f"The client has had about {self._share:.0%} of the talk time over the last "
            f"{_minutes(sustained_ms + cfg.talk_window_ms)}. Consider leaving more room — "
            "a pause or an open question."
        )
        reasons = (
            Reason("client_talk_share", round(self._share, 3), cfg.talk_share_min, "share"),
            Reason("imbalance_sustained_ms", sustained_ms, cfg.talk_sustain_ms, "ms"),
        )
        return Finding(Category.TALK_IMBALANCE, Severity.NOTICE, text, reasons)


class ResponseLatencyRule:
    """Median client response gap over the window above the pair's baseline + margin."""

    __slots__ = ("_baseline", "_baseline_ms", "_cfg", "_recent")

    def __init__(self, cfg: CueConfig) -> None:
        self._cfg = cfg
        self._recent = ValueWindow(cfg.latency_window_ms, capacity=128)
        self._baseline = Histogram(GAP_FLOOR_MS, GAP_CEILING_MS, 100)
        self._baseline_ms: float | None = None

    def on_response(self, t_ms: int, gap_ms: int, calibrating: bool) -> None:
        """The client took the floor `gap_ms` after the therapist stopped."""
        gap = GAP_FLOOR_MS if gap_ms < GAP_FLOOR_MS else min(gap_ms, GAP_CEILING_MS)
        self._recent.add(t_ms, gap)
        if calibrating:
            self._baseline.add(gap)

    def baseline_ms(self, calibrated: bool) -> float | None:
        """The pair's median response gap from calibration, once there is one."""
        enough = self._baseline.count >= self._cfg.baseline_min_samples
        if self._baseline_ms is None and calibrated and enough:
            self._baseline_ms = self._baseline.median()
        return self._baseline_ms

    def check(self, now: int, calibrated: bool) -> Finding | None:
        """A finding if recent responses are clearly slower than this pair's usual."""
        cfg = self._cfg
        if self._recent.count(now) < cfg.latency_min_samples:
            return None
        baseline = self.baseline_ms(calibrated)
        if baseline is None:
            return None
        median = self._recent.median()
        if median <= baseline + cfg.latency_margin_ms:
            return None
        self._recent = ValueWindow(cfg.latency_window_ms, capacity=128)
        text = (
            f"The client is taking longer to answer than earlier in the session (typically "
            f"{median / 1000:.1f} s now, {baseline / 1000:.1f} s before). Consider slowing down "
            "or asking how they are doing."
        )
        reasons = (
            Reason("median_response_gap_ms", median, baseline + cfg.latency_margin_ms, "ms"),
            Reason("baseline_response_gap_ms", baseline, baseline, "ms"),
        )
        return Finding(Category.RESPONSE_LATENCY, Severity.NOTICE, text, reasons)

    def state_size(self) -> int:
        """Recent gaps held."""
        return len(self._recent)


class LagMonitor:
    """One-way delay (smoothed RTT / 2) in bands; above `lag_severe_ms` it blocks timing rules.

    Prompts follow the smoothed delay. The block follows the raw reports too: it starts with
    the first report above the threshold (timing measured over a slow link measures the link)
    and ends only after both smoothed and raw delay have stayed under it for `lag_recover_ms`.
    """

    __slots__ = (
        "_calm_since",
        "_cfg",
        "_handoff_since",
        "_heard",
        "_latest",
        "_severe_since",
        "_smoothed",
        "one_way_ms",
        "timing_blocked",
    )

    def __init__(self, cfg: CueConfig) -> None:
        self._cfg = cfg
        self._smoothed = [-1.0, -1.0]  # EWMA of RTT per reporting role; -1: none
        self._latest = [0.0, 0.0]  # the last raw RTT per role
        self._heard = [_NOT_SINCE, _NOT_SINCE]
        self._handoff_since = _NOT_SINCE
        self._severe_since = _NOT_SINCE
        self._calm_since = _NOT_SINCE
        self.one_way_ms = 0.0
        self.timing_blocked = False

    def observe_rtt(self, role: int, rtt_ms: float, t_ms: int) -> None:
        """A round-trip time reported by one browser."""
        previous = self._smoothed[role]
        if previous < 0:
            self._smoothed[role] = rtt_ms
        else:
            self._smoothed[role] = previous + self._cfg.rtt_smoothing * (rtt_ms - previous)
        self._latest[role] = rtt_ms
        self._heard[role] = t_ms
        if rtt_ms > 2 * self._cfg.lag_severe_ms:
            self.timing_blocked = True
            self._calm_since = _NOT_SINCE

    def update(self, now: int) -> None:
        """Recompute the delay band at `now` (stale reports no longer count)."""
        cfg = self._cfg
        fresh_after = now - cfg.presence_timeout_ms
        rtt = raw = 0.0
        for role in (THERAPIST, CLIENT):
            if self._heard[role] > fresh_after:
                rtt = max(rtt, self._smoothed[role])
                raw = max(raw, self._latest[role])
        one_way = self.one_way_ms = rtt / 2
        if one_way > cfg.lag_severe_ms:
            if self._severe_since == _NOT_SINCE:
                self._severe_since = now
        else:
            self._severe_since = _NOT_SINCE
        if one_way > cfg.lag_severe_ms or raw / 2 > cfg.lag_severe_ms:
            self.timing_blocked = True
            self._calm_since = _NOT_SINCE
        elif self.timing_blocked:
            if self._calm_since == _NOT_SINCE:
                self._calm_since = now
            if now - self._calm_since >= cfg.lag_recover_ms:
                self.timing_blocked = False
        if one_way > cfg.lag_handoff_ms:
            if self._handoff_since == _NOT_SINCE:
                self._handoff_since = now
        else:
            self._handoff_since = _NOT_SINCE

    @property
    def in_handoff_band(self) -> bool:
        """Delay above the hand-off threshold but not severe (talk-over is measurable)."""
        return self._handoff_since != _NOT_SINCE and not self.timing_blocked

    def check_severe(self, now: int) -> Finding | None:
        """A warning once the delay has stayed above `lag_severe_ms` for the sustain time."""
        cfg = self._cfg
        if self._severe_since == _NOT_SINCE or now - self._severe_since < cfg.lag_sustain_ms:
            return None
        delay = round(self.one_way_ms)
        text = (
            f"The connection delay is high (about {delay} ms each way). Pauses and overlaps now "
            "mostly reflect the network, so timing cues are paused. Consider naming the delay "
            'and handing over explicitly ("over to you").'
        )
        reasons = (Reason("one_way_delay_ms", delay, cfg.lag_severe_ms, "ms"),)
        return Finding(Category.LAG_SEVERE, Severity.WARNING, text, reasons)

    def check_handoff(self, now: int) -> Finding | None:
        """A tip once the delay has stayed above `lag_handoff_ms` (but not severe)."""
        cfg = self._cfg
        if self._handoff_since == _NOT_SINCE or self._severe_since != _NOT_SINCE:
            return None
        if now - self._handoff_since < cfg.lag_sustain_ms:
            return None
        delay = round(self.one_way_ms)
        text = (
            f"The connection delay is about {delay} ms each way, enough to trip up turn-taking. "
            "Consider explicit hand-offs — end with a clear question, then wait a moment."
        )
        reasons = (Reason("one_way_delay_ms", delay, cfg.lag_handoff_ms, "ms"),)
        return Finding(Category.LAG, Severity.INFO, text, reasons)


class TalkOverRule:
    """Both speaking at once, repeatedly, while the delay is in the hand-off band."""

    __slots__ = ("_cfg", "_overlaps")

    def __init__(self, cfg: CueConfig) -> None:
        self._cfg = cfg
        capacity = cfg.talk_over_window_ms // cfg.talk_over_min_overlap_ms + 2
        self._overlaps = EventWindow(cfg.talk_over_window_ms, capacity)

    def on_overlap(self, t_ms: int) -> None:
        """An overlap long enough not to be a back-channel, during high lag."""
        self._overlaps.add(t_ms)

    def check(self, now: int, lag: LagMonitor) -> Finding | None:
        """A finding if overlaps pile up while the lag is still high."""
        cfg = self._cfg
        count = self._overlaps.count(now)
        if count < cfg.talk_over_min_count or not lag.in_handoff_band:
            return None
        self._overlaps.clear()
        text = (
            f"You have talked over each other {count} times in the last "
            f"{_minutes(cfg.talk_over_window_ms)} — probably the delay, not interruption "
            f"(the connection adds about {round(lag.one_way_ms)} ms each way). Consider a clear "
            "hand-off and a beat of silence before answering."
        )
        reasons = (
            Reason("overlaps", count, cfg.talk_over_min_count, "per window"),
            Reason("one_way_delay_ms", round(lag.one_way_ms), cfg.lag_handoff_ms, "ms"),
        )
        return Finding(Category.TALK_OVER, Severity.INFO, text, reasons)

    def state_size(self) -> int:
        """Overlap times held."""
        return len(self._overlaps)


class VideoRule:
    """Frozen or choppy video in either direction: expressions may not come through.

    Per direction (the therapist's video, the client's video) it adds up, over the window,
    the time the sender's own camera reported frozen and the time the receiver decoded too
    few frames or saw freezes. Low frame rates count only once that receiver has had healthy
    video, so a call that is still starting up is not "degraded".
    """

    __slots__ = ("_cfg", "_freezes", "_healthy", "_last_bad_ms", "_receiver_ms", "_sender_ms")

    def __init__(self, cfg: CueConfig) -> None:
        self._cfg = cfg
        span = cfg.video_window_ms
        self._sender_ms = (RollingSum(span), RollingSum(span))
        self._receiver_ms = (RollingSum(span), RollingSum(span))
        self._freezes = (RollingSum(span), RollingSum(span))
        self._healthy = [False, False]
        self._last_bad_ms = _NOT_SINCE  # the latest degraded report, either direction

    def pause(self) -> None:
        """Video is off by choice: when it returns, count low frame rates only once it has
        been healthy again (so switching video back on is a start-up, not "degraded")."""
        self._healthy[THERAPIST] = self._healthy[CLIENT] = False

    def observe_frozen_camera(self, role: int, t_ms: int, window_ms: int) -> None:
        """This role's own camera reported frozen for the window."""
        self._sender_ms[role].add(t_ms, window_ms)
        self._last_bad_ms = t_ms

    def observe_net(self, role: int, t_ms: int, window_ms: int, net: NetStats) -> None:
        """The video this role receives from the other: frame rate and freezes."""
        decoded = net.frames_decoded
        if decoded is None:
            return
        sender = CLIENT - role
        freezes = net.frames_frozen or 0
        # decoded / window < min fps, without a division
        if decoded * 1000 >= self._cfg.video_min_fps * window_ms and not freezes:
            self._healthy[sender] = True
        elif self._healthy[sender]:
            self._receiver_ms[sender].add(t_ms, window_ms)
            if freezes:
                self._freezes[sender].add(t_ms, freezes)
            self._last_bad_ms = t_ms

    def check(self, now: int) -> Finding | None:
        """A finding for the direction whose video has been degraded long enough."""
        cfg = self._cfg
        if self._last_bad_ms == _NOT_SINCE or now - self._last_bad_ms > cfg.video_window_ms:
            return None  # nothing degraded within the window: the rings are empty
        for sender in (THERAPIST, CLIENT):
            rings = (
                self._sender_ms[sender],
                self._receiver_ms[sender],
                self._freezes[sender],
            )
            for ring in rings:
                ring.advance(now)
            camera_ms = self._sender_ms[sender].total
            received_ms = self._receiver_ms[sender].total
            if max(camera_ms, received_ms) < cfg.video_degraded_min_ms:
                continue
            reasons = []
            if camera_ms:
                reasons.append(
                    Reason("camera_frozen_ms", camera_ms, cfg.video_degraded_min_ms, "ms")
                )
            if received_ms:
                reasons.append(
                    Reason("video_degraded_ms", received_ms, cfg.video_degraded_min_ms, "ms")
                )
            if self._freezes[sender].total:
                reasons.append(Reason("video_freezes", self._freezes[sender].total, 1, "count"))
            for ring in rings:
                ring.clear()  # the evidence is used: the next prompt needs its own
            if sender == THERAPIST:
                text = (
                    "Your video seems to be freezing on the client's screen — your expressions "
                    "may not come through. Consider saying it in words."
                )
            else:
                text = (
                    "The client's video looks frozen or choppy — expressions may not come "
                    "through either way. Consider saying it in words and checking in verbally."
                )
            return Finding(Category.VIDEO, Severity.NOTICE, text, tuple(reasons))
        return None


class PresenceRule:
    """The client still and silent for `still_silent_ms`, or out of frame for `out_of_frame_ms`.

    Still-and-silent needs both signals (motion under `still_motion_max` and no speech) and a
    visible, unfrozen picture; out-of-frame needs the browser to say the frame is empty.
    """

    __slots__ = ("_cfg", "_last_ms", "_out_since", "_still_since")

    def __init__(self, cfg: CueConfig) -> None:
        self._cfg = cfg
        self._still_since = _NOT_SINCE
        self._out_since = _NOT_SINCE
        self._last_ms = _NOT_SINCE

    def observe_client(
        self,
        t_ms: int,
        window_ms: int,
        motion: float,
        speaking: bool,
        frame_present: bool | None,
        frozen: bool,
    ) -> None:
        """One client frame."""
        start = t_ms - window_ms
        if self._last_ms != _NOT_SINCE and start - self._last_ms > self._cfg.presence_timeout_ms:
            self._still_since = self._out_since = _NOT_SINCE  # a gap: the client was away
        self._last_ms = t_ms
        if frozen or frame_present is None:
            self._out_since = _NOT_SINCE
        elif frame_present is False:
            if self._out_since == _NOT_SINCE:
                self._out_since = start
        else:
            self._out_since = _NOT_SINCE
        if frozen or frame_present is False or speaking or motion > self._cfg.still_motion_max:
            self._still_since = _NOT_SINCE
        elif self._still_since == _NOT_SINCE:
            self._still_since = start

    def check_still(self) -> Finding | None:
        """A finding once the client has been still and silent long enough."""
        cfg = self._cfg
        since = self._still_since
        if since == _NOT_SINCE or self._last_ms - since < cfg.still_silent_ms:
            return None
        held = self._last_ms - since
        self._still_since = self._last_ms  # re-arm: another full period before the next
        text = (
            f"The client has been very still and silent for about {_minutes(held)}. "
            "Consider a gentle check-in."
        )
        reasons = (
            Reason("client_still_silent_ms", held, cfg.still_silent_ms, "ms"),
            Reason("client_motion_max", cfg.still_motion_max, cfg.still_motion_max, "percent"),
        )
        return Finding(Category.STILL_SILENT, Severity.NOTICE, text, reasons)

    def check_out_of_frame(self) -> Finding | None:
        """A finding once the client has been out of frame long enough."""
        cfg = self._cfg
        since = self._out_since
        if since == _NOT_SINCE or self._last_ms - since < cfg.out_of_frame_ms:
            return None
        held = self._last_ms - since
        self._out_since = self._last_ms
        text = (
            f"The client seems to have been out of frame for about {_minutes(held)}. "
            "Consider checking in — they may have stepped away or the camera may have moved."
        )
        reasons = (Reason("client_out_of_frame_ms", held, cfg.out_of_frame_ms, "ms"),)
        return Finding(Category.OUT_OF_FRAME, Severity.NOTICE, text, reasons)

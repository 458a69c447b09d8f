"""The per-session cue engine: features in, prompts out, in O(1) time and flat memory."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any, Final

from server.core.cues.carry import dump_slots, load_slots
from server.core.cues.config import CueConfig
from server.core.cues.features import CLIENT, THERAPIST, FeatureFrame
from server.core.cues.policy import FeedbackRecord, FeedbackTally, PromptPolicy, Verdict
from server.core.cues.prompts import Category, Finding, Prompt
from server.core.cues.rules import (
    LagMonitor,
    PresenceRule,
    ResponseLatencyRule,
    TalkImbalanceRule,
    TalkOverRule,
    VideoRule,
    WithdrawalRule,
)
from server.core.cues.turns import TurnTracker
from server.core.cues.windows import RollingSum
from server.core.protocol import SessionRole

_NEVER: Final = -(10**15)
_CLIENT_ROLE: Final = SessionRole.CLIENT
_TICK_MS: Final = 1000  # rules are evaluated at most once per tick of session time
_LAG_SEVERE: Final = Category.LAG_SEVERE
_LAG: Final = Category.LAG
_VIDEO: Final = Category.VIDEO
_TALK_OVER: Final = Category.TALK_OVER
_OUT_OF_FRAME: Final = Category.OUT_OF_FRAME
_STILL_SILENT: Final = Category.STILL_SILENT
_WITHDRAWAL: Final = Category.WITHDRAWAL
_RESPONSE_LATENCY: Final = Category.RESPONSE_LATENCY
_TALK_IMBALANCE: Final = Category.TALK_IMBALANCE
_OTHERS_CAP: Final = 64  # other people's recent speech runs held (sessions of several)
_MIN_MOTION_FRAMES: Final = 10  # motion frames needed before a mean says anything
_CARRY_VERSION: Final = 2  # of the windows' carried layout; another one starts afresh
# carried by policy_state, or this process's own (the configuration, the prompt ids' prefix)
_NOT_WINDOWS: Final = frozenset({"_policy", "_seq", "_id_prefix"})


class CueEngine:
    """Incremental cue analysis for one session; feed it both roles' frames in arrival order.

    Frames from one role must move forward in time; an older or repeated frame from the same
    role (a retransmission after a reconnect) is ignored and counted in `stale_frames`.
    """

    __slots__ = (
        "_calibration_elapsed_ms",
        "_cfg",
        "_client_talk",
        "_id_prefix",
        "_lag",
        "_last_seen",
        "_latency",
        "_motion_base_n",
        "_motion_base_sum",
        "_motion_recent",
        "_motion_recent_n",
        "_now",
        "_others",
        "_policy",
        "_presence",
        "_seq",
        "_talk_imbalance",
        "_talk_over",
        "_therapist_talk",
        "_tick",
        "_turns",
        "_video",
        "_video_off",
        "_withdrawal",
        "stale_frames",
    )

    def __init__(self, config: CueConfig | None = None, *, prompt_id_prefix: str = "p") -> None:
        cfg = self._cfg = config if config is not None else CueConfig()
        self._id_prefix = prompt_id_prefix
        self._seq = 0
        self._now = _NEVER
        self._tick = _NEVER
        self._last_seen = [_NEVER, _NEVER]
        self._video_off = [False, False]  # each role's latest `video_off`
        self._policy = PromptPolicy(cfg.rate_limit_ms)
        self._turns = TurnTracker(
            join_ms=cfg.run_join_ms, max_skew_ms=cfg.max_skew_ms, max_run_ms=cfg.max_run_ms
        )
        # 30 buckets per window: a 5-min share moves in 10-s steps, plenty for a 10-min rule
        talk_bucket_ms = max(1000, cfg.talk_window_ms // 30)
        self._therapist_talk = RollingSum(cfg.talk_window_ms, talk_bucket_ms)
        self._client_talk = RollingSum(cfg.talk_window_ms, talk_bucket_ms)
        self._motion_recent = 0.0  # client motion, percent of pixels changed
        self._motion_recent_n = 0
        self._motion_base_sum = 0.0
        self._motion_base_n = 0
        self._calibration_elapsed_ms = 0
        self._lag = LagMonitor(cfg)
        self._withdrawal = WithdrawalRule(cfg)
        self._talk_imbalance = TalkImbalanceRule(cfg)
        self._latency = ResponseLatencyRule(cfg)
        self._talk_over = TalkOverRule(cfg)
        self._video = VideoRule(cfg)
        self._presence = PresenceRule(cfg)
        # other people's speech in a session of several (the other clients): a silence
        # between the therapist and this client that someone else filled is no silence
        self._others: deque[tuple[int, int]] = deque(maxlen=_OTHERS_CAP)
        self.stale_frames = 0

    # -- the feed ---------------------------------------------------------------------------

    def feed(self, frame: FeatureFrame) -> list[Prompt]:
        """Take one frame and return the prompts it raises (usually none)."""
        cfg = self._cfg
        t = frame.t_ms
        role = CLIENT if frame.role is _CLIENT_ROLE else THERAPIST
        last_seen = self._last_seen
        if t <= last_seen[role]:
            self.stale_frames += 1
            return []
        last_seen[role] = t
        if t > self._now:
            self._now = t
        now = self._now
        window = frame.window_ms
        voiced = frame.voiced

        net = frame.net
        lag = self._lag
        # video off by choice (audio only, camera off) is no frozen or degraded picture
        video_off = self._video_off
        video_off[role] = frame.video_off
        if video_off[THERAPIST] or video_off[CLIENT]:
            self._video.pause()
        if net is not None:
            if net.rtt_ms is not None:
                lag.observe_rtt(role, net.rtt_ms, t)
            if net.frames_decoded is not None and not video_off[CLIENT - role]:
                self._video.observe_net(role, t, window, net)
        if frame.frozen and not frame.video_off:
            self._video.observe_frozen_camera(role, t, window)
        # rules look at the world once per tick: their thresholds are seconds to minutes
        tick = now // _TICK_MS
        evaluate = tick != self._tick
        if evaluate:
            self._tick = tick
            lag.update(now)

        if voiced:
            talk = self._client_talk if role == CLIENT else self._therapist_talk
            for start, end in voiced:
                talk.add_span(start, end)
        oldest = now - cfg.presence_timeout_ms
        present = last_seen[THERAPIST] > oldest and last_seen[CLIENT] > oldest
        calibrating = self._calibration_elapsed_ms < cfg.calibration_ms
        if role == CLIENT:
            motion = frame.motion
            self._presence.observe_client(
                t, window, motion, bool(voiced), frame.frame_present, frame.frozen
            )
            if frame.frame_present is not False and not frame.frozen:
                # recent motion: an exponentially weighted mean, time constant motion_window_ms
                if self._motion_recent_n:
                    weight = window / cfg.motion_window_ms
                    self._motion_recent += (weight if weight < 1.0 else 1.0) * (
                        motion - self._motion_recent
                    )
                else:
                    self._motion_recent = motion
                self._motion_recent_n += 1
                if calibrating:
                    self._motion_base_sum += motion
                    self._motion_base_n += 1
        elif calibrating and present and not lag.timing_blocked:
            self._calibration_elapsed_ms += window

        self._turns.add(role, t, voiced, self)
        if not evaluate:
            return []
        return self._evaluate(now, present)

    def _evaluate(self, now: int, present: bool) -> list[Prompt]:
        cfg, lag = self._cfg, self._lag
        open_at = self._policy.open_at
        prompts: list[Prompt] = []
        if now >= open_at[_LAG_SEVERE] and (finding := lag.check_severe(now)):
            self._emit(finding, now, prompts)
            self._policy.cover(_LAG, now)  # the warning already asks for explicit hand-offs
        if now >= open_at[_LAG] and (finding := lag.check_handoff(now)):
            self._emit(finding, now, prompts)
        if now >= open_at[_VIDEO] and (finding := self._video.check(now)):
            self._emit(finding, now, prompts)
        therapist_talk, client_talk = self._therapist_talk, self._client_talk
        therapist_talk.advance(now)
        client_talk.advance(now)
        therapist_ms, client_ms = therapist_talk.total, client_talk.total
        if not present:
            self._talk_imbalance.reset()  # one side away: no claim about who talks how much
            return prompts  # everything below is about the conversation between the two

        calibrated = self._calibration_elapsed_ms >= cfg.calibration_ms
        if now >= open_at[_TALK_OVER] and (finding := self._talk_over.check(now, lag)):
            self._emit(finding, now, prompts)
        presence = self._presence
        if now >= open_at[_OUT_OF_FRAME] and (finding := presence.check_out_of_frame()):
            self._emit(finding, now, prompts)
        if now >= open_at[_STILL_SILENT] and (finding := presence.check_still()):
            self._emit(finding, now, prompts)
        withdrawal = self._withdrawal
        if now >= open_at[_WITHDRAWAL] and withdrawal.pending(now):
            total = therapist_ms + client_ms
            share = client_ms / total if total >= cfg.talk_min_speech_ms else None
            if finding := withdrawal.check(now, calibrated, share, self._motion_ratio()):
                self._emit(finding, now, prompts)
        if now >= open_at[_RESPONSE_LATENCY] and (finding := self._latency.check(now, calibrated)):
            self._emit(finding, now, prompts)
        imbalance = self._talk_imbalance
        imbalance.update(now, therapist_ms, client_ms)
        if now >= open_at[_TALK_IMBALANCE] and (finding := imbalance.check(now)):
            self._emit(finding, now, prompts)
        return prompts

    def _emit(self, finding: Finding, now: int, prompts: list[Prompt]) -> None:
        self._seq += 1
        prompt = Prompt(
            id=f"{self._id_prefix}{self._seq}",
            category=finding.category,
            t_ms=now,
            text=finding.text,
            reasons=finding.reasons,
            severity=finding.severity,
        )
        self._policy.record(prompt)
        prompts.append(prompt)

    def _both_present(self, now: int) -> bool:
        oldest = now - self._cfg.presence_timeout_ms
        return self._last_seen[THERAPIST] > oldest and self._last_seen[CLIENT] > oldest

    def _motion_ratio(self) -> float | None:
        """Recent client motion relative to their calibration mean; None if unknown."""
        if self._motion_recent_n < _MIN_MOTION_FRAMES or self._motion_base_n < _MIN_MOTION_FRAMES:
            return None
        if self._motion_base_sum <= 0:
            return None
        return self._motion_recent / (self._motion_base_sum / self._motion_base_n)

    @property
    def severe_lag(self) -> bool:
        """True while the delay is severe (or has not yet recovered long enough)."""
        return self._lag.timing_blocked

    @property
    def timing_rules_active(self) -> bool:
        """False while the lag is severe or one side is away: timing would mislead."""
        return not self._lag.timing_blocked and self._both_present(self._now)

    # -- other people in the room ----------------------------------------------------------

    def note_other_speech(self, voiced: tuple[tuple[int, int], ...]) -> None:
        """Speech by someone other than this pair (another client in the session): silences
        and response gaps of this pair that it fills are not counted as the client's."""
        others, join = self._others, self._cfg.run_join_ms
        for start, end in voiced:
            if others and start - others[-1][1] < join and start >= others[-1][0]:
                if end > others[-1][1]:
                    others[-1] = (others[-1][0], end)
            else:
                others.append((start, end))

    def _others_spoke(self, start: int, end: int) -> bool:
        """Whether someone else spoke inside [start, end)."""
        return any(s < end and e > start for s, e in self._others)

    # -- turn-taking events (TurnListener) --------------------------------------------------

    def on_pause(self, role: int, pause_ms: int, t_ms: int) -> None:
        """A therapist re-entry after a long silence counts towards withdrawal (unless
        another client spoke in that silence)."""
        long_silence = pause_ms >= self._cfg.withdrawal_silence_ms
        if (
            role == THERAPIST
            and long_silence
            and self.timing_rules_active
            and not self._others_spoke(t_ms - pause_ms, t_ms)
        ):
            self._withdrawal.on_reentry(t_ms, self._calibrating)

    def on_switch(self, from_role: int, to_role: int, gap_ms: int, t_ms: int) -> None:
        """A client taking the floor from the therapist gives a response gap (unless another
        client answered first)."""
        answered_first = gap_ms > 0 and self._others_spoke(t_ms - gap_ms, t_ms)
        if from_role == THERAPIST and self.timing_rules_active and not answered_first:
            self._latency.on_response(t_ms, gap_ms, self._calibrating)

    def on_turn_end(self, role: int, speech_ms: int, t_ms: int) -> None:
        """A finished client turn feeds the minimal-reply streak."""
        if role == CLIENT and self._both_present(self._now):
            self._withdrawal.on_client_turn(speech_ms, t_ms)

    def on_overlap(self, role: int, overlap_ms: int, t_ms: int) -> None:
        """Long overlaps during high (not severe) lag count as talk-over."""
        long_overlap = overlap_ms >= self._cfg.talk_over_min_overlap_ms
        if long_overlap and self._lag.in_handoff_band and self._both_present(self._now):
            self._talk_over.on_overlap(t_ms)

    @property
    def _calibrating(self) -> bool:
        return self._calibration_elapsed_ms < self._cfg.calibration_ms

    # -- the therapist's controls -----------------------------------------------------------

    def snooze(self, category: Category, until_ms: int) -> None:
        """Hold back a category's prompts until `until_ms` (session time)."""
        self._policy.snooze(category, until_ms)

    def mute(self, category: Category) -> None:
        """Hold back a category's prompts for the rest of the session."""
        self._policy.mute(category)

    def unmute(self, category: Category) -> None:
        """Allow a muted category again."""
        self._policy.unmute(category)

    def feedback(self, prompt_id: str, verdict: Verdict | str, t_ms: int) -> FeedbackRecord:
        """Record "helpful" or "not-now" for a recent prompt; returns the record to store."""
        return self._policy.feedback(prompt_id, verdict, t_ms)

    def feedback_tally(self, category: Category) -> FeedbackTally:
        """Feedback counts for a category so far."""
        return self._policy.tally(category)

    def category_of(self, prompt_id: str) -> Category | None:
        """The category of a recent prompt of this engine, or None."""
        return self._policy.category_of(prompt_id)

    # -- what survives a takeover by another process ----------------------------------------

    def policy_state(self) -> dict[str, Any]:
        """The prompt numbering and the prompt policy (cooldowns, snoozes, mutes, feedback) as
        plain data; the observation windows and baselines are not in it."""
        return {"seq": self._seq, "policy": self._policy.to_state()}

    def restore_policy(self, state: Mapping[str, Any]) -> None:
        """Go on from `policy_state`: prompt ids keep counting, cooldowns keep running."""
        try:
            seq = int(state["seq"])
            policy = PromptPolicy.from_state(state["policy"], self._cfg.rate_limit_ms)
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not an engine policy state: {exc!r}") from None
        self._seq, self._policy = seq, policy

    def carried_state(self) -> dict[str, Any]:
        """Everything the engine needs to go on in another process, as plain data: the
        policy state plus `windows_state`."""
        return {**self.policy_state(), "windows": self.windows_state()}

    def windows_state(self) -> dict[str, Any]:
        """The engine's windows, baselines, calibration, turn-taking, lag and presence as
        plain data (times, counts and levels only; bounded by the engine's caps, ~3 KB)."""
        return {"v": _CARRY_VERSION, **dump_slots(self, skip=_NOT_WINDOWS)}

    def restore_carried(self, state: Mapping[str, Any]) -> None:
        """Go on from `carried_state` (or a bare `policy_state`); ValueError when it does not
        fit this engine, which is then half-written: restore into a fresh engine."""
        self.restore_policy(state)
        windows = state.get("windows")
        if windows is None:
            return
        if not isinstance(windows, Mapping) or windows.get("v") != _CARRY_VERSION:
            raise ValueError("carried cue windows of another version")
        load_slots(self, windows, skip=_NOT_WINDOWS)

    # -- introspection ----------------------------------------------------------------------

    @property
    def config(self) -> CueConfig:
        """The thresholds in force."""
        return self._cfg

    @property
    def prompt_id_prefix(self) -> str:
        """What this engine's prompt ids start with."""
        return self._id_prefix

    @property
    def one_way_delay_ms(self) -> float:
        """The smoothed one-way delay (RTT / 2) the lag rules see."""
        return self._lag.one_way_ms

    @property
    def calibrated(self) -> bool:
        """True once the pair's baseline period is over."""
        return not self._calibrating

    def state_size(self) -> int:
        """Items held in the engine's variable-size buffers (all of them capped)."""
        return (
            self._turns.state_size()
            + self._withdrawal.state_size()
            + self._latency.state_size()
            + self._talk_over.state_size()
            + self._policy.state_size()
            + len(self._others)
        )

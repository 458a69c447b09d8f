"""Seeded synthetic sessions: both roles' feature frames for named clinical scenarios.

A scenario is a conversation script (who speaks when, with which gaps and overlaps) plus
per-second profiles for motion, presence, camera state and network. The same name, length
and seed always give the same frames. Frames come in time order, both roles interleaved,
the client's windows offset from the therapist's as two real browsers would be.

Scenarios (and the prompts a default engine raises for them):
- balanced: a healthy conversation (none)
- withdrawal: 12 calm minutes, then unanswered openings, brief replies, a stiller client
- monologue: the therapist holds the floor 35-80 s at a time (talk_imbalance)
- slow_responses: after 12 min the client answers ~3 s late (response_latency)
- high_lag: ~280 ms each way, with collisions at turn starts (lag, talk_over)
- severe_lag: ~530 ms each way and every timing pattern the lag would fake (lag_severe)
- frozen_video: the client's camera freezes for 40 s at 8 min (video)
- still_silent: the client goes still and silent for 90 s at 8 min (still_silent)
- out_of_frame: the client leaves the frame for 25 s at 8 min (out_of_frame)
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final

from server.core.cues.features import CLIENT, THERAPIST, FeatureFrame, NetStats
from server.core.protocol import SessionRole

MINUTE: Final = 60_000
CALM_MINUTES: Final = 8  # scenarios with a single incident have it after this many minutes

DEFAULT_MINUTES: Final[dict[str, float]] = {
    "balanced": 30,
    "withdrawal": 22,  # 12 min of calibration, then 10 min of withdrawal
    "monologue": 25,
    "slow_responses": 20,
    "high_lag": 12,
    "severe_lag": 12,
    "frozen_video": 12,
    "still_silent": 12,
    "out_of_frame": 12,
}
SCENARIOS: Final = tuple(DEFAULT_MINUTES)


@dataclass(frozen=True, slots=True)
class _Incident:
    """A stretch of the session when something is off: [start_ms, end_ms)."""

    start_ms: int
    end_ms: int

    def covers(self, t_ms: int) -> bool:
        return self.start_ms <= t_ms < self.end_ms


class _Script:
    """Writes the conversation: speech runs per role, in time order."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.runs: tuple[list[tuple[int, int]], list[tuple[int, int]]] = ([], [])
        self.t = 1_000

    def ms(self, low_s: float, high_s: float) -> int:
        return int(self.rng.uniform(low_s, high_s) * 1000)

    def speak(self, role: int, start: int, length: int) -> tuple[int, int]:
        """Speech from `start` lasting about `length`, with breath pauses; (first run end, end)."""
        t, end, first_end = start, start + length, -1
        while t < end:
            run = min(self.ms(1.5, 4.0), end - t)
            self.runs[role].append((t, t + run))
            if first_end < 0:
                first_end = t + run
            t += run + self.ms(0.35, 0.7)
        last_end = self.runs[role][-1][1]
        return first_end, last_end

    def turn(self, role: int, gap: int, length: int) -> int:
        """A turn after `gap` of silence; returns its end."""
        return self.speak(role, self.t + gap, length)[1]

    def exchange(
        self,
        therapist_s: tuple[float, float],
        client_s: tuple[float, float],
        gaps: tuple[float, float],
        client_gaps: tuple[float, float] | None = None,
    ) -> None:
        """Therapist turn, client turn, with the given lengths and gaps (seconds)."""
        self.t = self.turn(THERAPIST, self.ms(*gaps), self.ms(*therapist_s))
        self.t = self.turn(CLIENT, self.ms(*(client_gaps or gaps)), self.ms(*client_s))

    def collision(self, first: int, gap: int, length: int) -> None:
        """Both start at once (each still hears the past); the later one yields quickly."""
        start = self.t + gap
        first_end, end = self.speak(first, start, max(length, 4_000))
        delay = self.ms(0.05, 0.25)
        yielded = min(self.ms(0.7, 1.2), first_end - start - delay - 100)
        if yielded > 0:
            other = CLIENT - first
            self.runs[other].append((start + delay, start + delay + yielded))
            self.runs[other].sort()
        self.t = end


def _balanced(script: _Script) -> None:
    script.exchange((3, 12), (4, 18), (0.3, 0.9))


def _script_for(name: str, incident: _Incident) -> Callable[[_Script], None]:
    """The conversation step of a scenario (one exchange per call)."""

    def withdrawal(script: _Script) -> None:
        if not incident.covers(script.t):
            _balanced(script)
            return
        script.t = script.turn(THERAPIST, script.ms(0.4, 0.9), script.ms(4, 9))
        if script.rng.random() < 0.6:  # an opening met by silence, then another try
            script.t = script.turn(THERAPIST, script.ms(3.5, 5.5), script.ms(2, 4))
        short = script.rng.random() < 0.5
        script.t = script.turn(
            CLIENT, script.ms(0.4, 0.9), script.ms(*((0.4, 0.8) if short else (1.5, 3)))
        )

    def monologue(script: _Script) -> None:
        script.exchange((35, 80), (1.5, 5), (0.3, 0.9))

    def slow_responses(script: _Script) -> None:
        slow = incident.covers(script.t)
        script.exchange((3, 12), (4, 18), (0.3, 0.9), (2.8, 4.0) if slow else None)

    def high_lag(script: _Script) -> None:
        if script.rng.random() < 0.4:
            script.collision(
                script.rng.choice((THERAPIST, CLIENT)), script.ms(0.8, 1.5), script.ms(4, 12)
            )
        else:
            script.exchange((3, 12), (4, 18), (0.8, 1.5))

    def severe_lag(script: _Script) -> None:
        # everything the timing rules would flag: unanswered openings, collisions, slow replies
        script.t = script.turn(THERAPIST, script.ms(1.2, 2.5), script.ms(3, 10))
        if script.rng.random() < 0.5:
            script.t = script.turn(THERAPIST, script.ms(3.5, 5.0), script.ms(2, 4))
        if script.rng.random() < 0.3:
            script.collision(THERAPIST, script.ms(1.2, 2.5), script.ms(4, 8))
        script.t = script.turn(CLIENT, script.ms(2.0, 3.5), script.ms(3, 9))

    def still_silent(script: _Script) -> None:
        if incident.start_ms - 40_000 <= script.t < incident.end_ms:
            # the therapist talks on while the client goes still and silent
            script.t = script.turn(THERAPIST, script.ms(0.4, 0.9), incident.end_ms - script.t)
            return
        _balanced(script)

    scripts: dict[str, Callable[[_Script], None]] = {
        "withdrawal": withdrawal,
        "monologue": monologue,
        "slow_responses": slow_responses,
        "high_lag": high_lag,
        "severe_lag": severe_lag,
        "still_silent": still_silent,
    }
    return scripts.get(name, _balanced)


def _incident(name: str, duration_ms: int) -> _Incident:
    if name in ("withdrawal", "slow_responses"):
        return _Incident(12 * MINUTE, duration_ms)
    lengths = {"frozen_video": 40_000, "still_silent": 90_000, "out_of_frame": 25_000}
    start = CALM_MINUTES * MINUTE
    return _Incident(start, start + lengths.get(name, 0))


def scenario_frames(
    name: str,
    *,
    minutes: float | None = None,
    seed: int = 0,
    client_offset_ms: int = 370,
) -> Iterator[FeatureFrame]:
    """The scenario's frames for both roles, in time order (1 s windows)."""
    if name not in DEFAULT_MINUTES:
        raise ValueError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}")
    duration = int((DEFAULT_MINUTES[name] if minutes is None else minutes) * MINUTE)
    rng = random.Random(f"{name}:{seed}")  # noqa: S311 -- simulation, not secrecy
    incident = _incident(name, duration)
    script = _Script(rng)
    step = _script_for(name, incident)
    while script.t < duration:
        step(script)
    streams = [
        _role_frames(
            name,
            role,
            offset,
            script.runs[role],
            duration,
            incident,
            random.Random(f"{name}:{seed}:{role}"),  # noqa: S311 -- simulation
        )
        for role, offset in ((THERAPIST, 0), (CLIENT, client_offset_ms))
    ]
    yield from heapq.merge(*streams, key=lambda frame: frame.t_ms)


def _role_frames(
    name: str,
    role: int,
    offset_ms: int,
    runs: list[tuple[int, int]],
    duration_ms: int,
    incident: _Incident,
    rng: random.Random,
) -> Iterator[FeatureFrame]:
    window = 1000
    base_rtt = {"high_lag": (500.0, 620.0), "severe_lag": (950.0, 1150.0)}.get(name, (50.0, 110.0))
    for t, voiced in speech_windows(runs, offset_ms, duration_ms, window):
        during = incident.covers(t)
        motion = rng.uniform(0.6, 1.4) if role == THERAPIST else rng.uniform(0.7, 1.8)
        if voiced:
            motion += 0.4
        frame_present: bool | None = True
        frozen = False
        if role == CLIENT:
            if (name == "withdrawal" and during) or name == "severe_lag":
                motion = rng.uniform(0.16, 0.4)
            elif name == "still_silent" and during:
                motion = rng.uniform(0.02, 0.08)
            elif name == "out_of_frame" and during:
                motion, frame_present = 0.0, False
            elif name == "frozen_video" and during:
                motion, frozen = 0.0, True
        # this browser receives the other's video: frozen while the client's camera is
        decoded = rng.randint(24, 30)
        freezes = 0
        if name == "frozen_video" and role == THERAPIST and during:
            decoded = rng.randint(0, 2)
            freezes = 1 if not incident.covers(t - window) else 0
        net = NetStats(
            rtt_ms=round(rng.uniform(*base_rtt), 1),
            jitter_ms=round(rng.uniform(2, 8), 1),
            loss=round(rng.uniform(0, 0.01), 4),
            frames_decoded=decoded,
            frames_frozen=freezes,
        )
        yield FeatureFrame(
            role=SessionRole.CLIENT if role == CLIENT else SessionRole.THERAPIST,
            t_ms=t,
            window_ms=window,
            voiced=voiced,
            level_dbfs=round(rng.uniform(-30, -20) if voiced else rng.uniform(-60, -50), 1),
            motion=round(motion, 2),
            frame_present=frame_present,
            frozen=frozen,
            net=net,
        )


def speech_windows(
    runs: Sequence[tuple[int, int]], offset_ms: int, duration_ms: int, window_ms: int
) -> Iterator[tuple[int, tuple[tuple[int, int], ...]]]:
    """(window end, speech clipped to the window) for consecutive windows."""
    first_run = 0
    for t in range(window_ms + offset_ms, duration_ms + 1, window_ms):
        start = t - window_ms
        while first_run < len(runs) and runs[first_run][1] <= start:
            first_run += 1
        voiced = []
        for run_start, run_end in runs[first_run:]:
            if run_start >= t:
                break
            voiced.append((max(run_start, start), min(run_end, t)))
        yield t, tuple(voiced)


def frames_from_speech(
    therapist_speech: Sequence[tuple[int, int]],
    client_speech: Sequence[tuple[int, int]],
    duration_ms: int,
    *,
    client_offset_ms: int = 370,
    window_ms: int = 1000,
    adjust: Callable[[FeatureFrame], FeatureFrame] | None = None,
) -> list[FeatureFrame]:
    """Frames for a scripted conversation (speech as sorted [start, end) ms per role).

    Every frame starts healthy and unremarkable (motion 1.0, picture present, RTT 80 ms,
    25 frames decoded); `adjust` may return a changed copy (`dataclasses.replace`) to stage
    an incident at chosen times.
    """
    frames = []
    for role, runs, offset in (
        (SessionRole.THERAPIST, therapist_speech, 0),
        (SessionRole.CLIENT, client_speech, client_offset_ms),
    ):
        for t, voiced in speech_windows(runs, offset, duration_ms, window_ms):
            frame = FeatureFrame(
                role=role,
                t_ms=t,
                window_ms=window_ms,
                voiced=voiced,
                level_dbfs=-25.0 if voiced else -55.0,
                motion=1.0,
                frame_present=True,
                net=_HEALTHY_NET,
            )
            frames.append(adjust(frame) if adjust is not None else frame)
    frames.sort(key=lambda frame: (frame.t_ms, frame.role is SessionRole.CLIENT))
    return frames


_HEALTHY_NET: Final = NetStats(
    rtt_ms=80.0, jitter_ms=4.0, loss=0.0, frames_decoded=25, frames_frozen=0
)

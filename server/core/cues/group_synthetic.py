"""Seeded synthetic couple sessions: the therapist, two clients and a guest, frame by frame.

Each scenario is a conversation script (who speaks when) turned into healthy, unremarkable
frames (motion 1.0, picture present, RTT 80 ms); the same name, length and seed always give
the same frames. A guest (an interpreter) speaks too and sends frames: the engine's caller
must drop them, so a test can show that a guest's speech changes nothing.

Scenarios (and the prompts a default `GroupCueEngine` raises for them):
- couple_balanced: the therapist and both partners take turns, the partners about evenly (none)
- couple_dominant: one partner holds about 85 % of the partners' speech (couple_balance)
- couple_talk_over: from minute 8 the partners start speaking over each other (client_talk_over)
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Iterator
from typing import Final

from server.core.cues.features import FeatureFrame, NetStats
from server.core.cues.synthetic import MINUTE, speech_windows
from server.core.participants import THERAPIST_PEER_ID, PersonKind
from server.core.protocol import SessionRole

PARTNER_A: Final = "partner-a"
PARTNER_B: Final = "partner-b"
GUEST: Final = "interpreter"
GROUP_SCENARIOS: Final[dict[str, float]] = {
    "couple_balanced": 25,
    "couple_dominant": 25,
    "couple_talk_over": 12,
}
_OFFSETS: Final = {THERAPIST_PEER_ID: 0, PARTNER_A: 370, PARTNER_B: 610, GUEST: 150}
_NET: Final = NetStats(rtt_ms=80.0, jitter_ms=4.0, loss=0.0, frames_decoded=25, frames_frozen=0)

Speech = dict[str, list[tuple[int, int]]]
PeerFrame = tuple[str, PersonKind, FeatureFrame]


def group_scenario(name: str, *, minutes: float | None = None, seed: int = 0) -> list[PeerFrame]:
    """Every person's frames of a named scenario, in time order: (peer id, kind, frame)."""
    if name not in GROUP_SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}; one of {', '.join(GROUP_SCENARIOS)}")
    duration = int((minutes if minutes is not None else GROUP_SCENARIOS[name]) * MINUTE)
    speech = _script(name, duration, random.Random(f"{name}:{seed}"))  # noqa: S311 -- simulation
    return frames_from_group_speech(speech, duration)


def _script(name: str, duration: int, rng: random.Random) -> Speech:
    speech: Speech = {THERAPIST_PEER_ID: [], PARTNER_A: [], PARTNER_B: [], GUEST: []}

    def ms(low: float, high: float) -> int:
        return int(rng.uniform(low, high) * 1000)

    t, turn = 1_000, 0
    while t < duration - 30_000:
        # the therapist asks, one partner answers, the interpreter repeats a short part
        t = _say(speech[THERAPIST_PEER_ID], t, ms(3, 6), rng) + ms(0.5, 1.0)
        if name == "couple_dominant":
            partner, length = (PARTNER_B, ms(1.5, 3)) if turn % 3 == 2 else (PARTNER_A, ms(9, 15))
        else:
            partner, length = (PARTNER_A, PARTNER_B)[turn % 2], ms(6, 11)
        end = _say(speech[partner], t, length, rng)
        if name == "couple_talk_over" and t >= 8 * MINUTE and turn % 2 == 0:
            # the other partner cuts in well before this one has finished
            cut_in = end - ms(1.8, 2.6)
            end = _say(speech[PARTNER_B], cut_in, ms(4, 6), rng)
        t = end + ms(0.4, 0.9)
        t = _say(speech[GUEST], t, ms(1.5, 3), rng) + ms(0.4, 0.9)
        turn += 1
    return speech


def _say(runs: list[tuple[int, int]], start: int, length: int, rng: random.Random) -> int:
    """Speech from `start` for about `length` ms with short breath pauses; returns its end."""
    t, end = start, start + length
    while t < end:
        run = min(int(rng.uniform(1.5, 4.0) * 1000), end - t)
        if runs and t < runs[-1][1]:  # keep a person's own runs in order, not overlapping
            t = runs[-1][1] + 200
            continue
        runs.append((t, t + run))
        t += run + int(rng.uniform(0.3, 0.45) * 1000)
    return runs[-1][1] if runs else start


def frames_from_group_speech(
    speech: Speech, duration_ms: int, *, window_ms: int = 1000
) -> list[PeerFrame]:
    """Healthy frames for a scripted conversation of several people (speech as sorted
    [start, end) runs per peer id; the therapist's id is THERAPIST_PEER_ID, a peer named
    GUEST is a guest, any other a client), in time order."""
    frames: list[PeerFrame] = []
    for peer, runs in speech.items():
        therapist = peer == THERAPIST_PEER_ID
        kind = PersonKind.THERAPIST if therapist else PersonKind.GUEST if peer == GUEST else None
        role = SessionRole.THERAPIST if therapist else SessionRole.CLIENT
        for t, voiced in speech_windows(
            sorted(runs), _OFFSETS.get(peer, 500), duration_ms, window_ms
        ):
            frame = FeatureFrame(
                role=role,
                t_ms=t,
                window_ms=window_ms,
                voiced=voiced,
                level_dbfs=-25.0 if voiced else -55.0,
                motion=1.0,
                frame_present=True,
                net=_NET,
            )
            frames.append((peer, kind or PersonKind.CLIENT, frame))
    frames.sort(key=lambda item: (item[2].t_ms, item[0]))
    return frames


def to_jsonl(frames: Iterable[PeerFrame]) -> Iterator[str]:
    """Log lines as `attune cues replay` reads them: a `features` message with peer and kind."""
    for peer, kind, frame in frames:
        yield json.dumps({**frame.to_message(), "peer": peer, "kind": kind.value})

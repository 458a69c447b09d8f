"""Turn-taking from both browsers' voiced segments: runs, floor, pauses, switches, overlaps.

Each browser reports its own microphone's voiced segments about once a second, and the two
streams arrive interleaved and a little out of step. The tracker merges a role's segments
into *runs* (speech with gaps under `run_join_ms`), waits until the other role's frames
cover the same time (a watermark, at most `max_skew_ms` behind the newest frame), and then
walks the runs of both roles in start order, keeping track of who holds the floor:

- a run by the floor holder after a pause is a *pause* (therapist → silence → therapist);
- a run by the other role takes the floor: a *switch*, whose gap is the response time
  (negative when the new speaker started before the old one stopped);
- a run that starts and ends inside the floor holder's speech is a back-channel ("mhm"):
  it is reported as an *overlap* but does not take the floor;
- every run that starts while the other role is speaking is reported as an *overlap*.

State is bounded: a role's open run is cut at `max_run_ms`, and the queues of finished runs
are capped (a run is at least one segment and a frame carries at most 50).
"""

from __future__ import annotations

from collections import deque
from typing import Final, Protocol

from server.core.cues.features import CLIENT, THERAPIST

_NEVER: Final = -(10**15)
_QUEUE_CAP: Final = 256


class TurnListener(Protocol):
    """Receives turn-taking events in time order; roles are THERAPIST (0) or CLIENT (1)."""

    def on_pause(self, role: int, pause_ms: int, t_ms: int) -> None:
        """The floor holder spoke again after `pause_ms` of silence, at `t_ms`."""

    def on_switch(self, from_role: int, to_role: int, gap_ms: int, t_ms: int) -> None:
        """`to_role` took the floor at `t_ms`, `gap_ms` after `from_role` stopped."""

    def on_turn_end(self, role: int, speech_ms: int, t_ms: int) -> None:
        """`role`'s turn ended at `t_ms` with `speech_ms` of speech in it."""

    def on_overlap(self, role: int, overlap_ms: int, t_ms: int) -> None:
        """`role` started at `t_ms` while the other spoke; both spoke for `overlap_ms`."""


class TurnTracker:
    """Incremental turn-taking analysis over both roles' voiced segments."""

    __slots__ = (
        "_floor",
        "_horizon",
        "_join_ms",
        "_known",
        "_last_end",
        "_max_run_ms",
        "_max_skew_ms",
        "_open_end",
        "_open_start",
        "_ready",
        "_turn_speech_ms",
        "dropped_segments",
    )

    def __init__(self, *, join_ms: int, max_skew_ms: int, max_run_ms: int) -> None:
        self._join_ms = join_ms
        self._max_skew_ms = max_skew_ms
        self._max_run_ms = max_run_ms
        self._known = [-1, -1]  # latest window end per role; -1: not heard yet
        self._horizon = 0  # segments starting before this arrived too late to place
        self._open_start = [-1, -1]  # the run still growing per role; -1: none
        self._open_end = [-1, -1]
        self._ready: tuple[deque[tuple[int, int]], deque[tuple[int, int]]] = (
            deque(maxlen=_QUEUE_CAP),
            deque(maxlen=_QUEUE_CAP),
        )
        self._last_end = [_NEVER, _NEVER]  # end of each role's latest placed speech
        self._floor = -1  # who holds the floor; -1: nobody yet
        self._turn_speech_ms = 0
        self.dropped_segments = 0

    def add(
        self,
        role: int,
        t_ms: int,
        voiced: tuple[tuple[int, int], ...],
        listener: TurnListener,
    ) -> None:
        """Take one frame's voiced segments and report every event that is now settled."""
        known = self._known
        not_before = known[role] if known[role] > self._horizon else self._horizon
        if voiced:
            join, max_run = self._join_ms, self._max_run_ms
            role_runs = self._ready[role]
            start, end = self._open_start[role], self._open_end[role]
            for seg_start, seg_end in voiced:
                if seg_start < not_before:  # overlapping windows or a late straggler
                    if seg_end <= not_before:
                        self.dropped_segments += 1
                        continue
                    seg_start = not_before
                if start >= 0 and seg_start - end < join:
                    if seg_end > end:
                        end = seg_end
                else:
                    if start >= 0:
                        role_runs.append((start, end))
                    start, end = seg_start, seg_end
                if end - start >= max_run:
                    role_runs.append((start, end))
                    start = end = -1
            self._open_start[role], self._open_end[role] = start, end
        if t_ms > known[role]:
            known[role] = t_ms
        # the watermark: both roles have reported up to here, or the slower one is too late
        k0, k1 = known
        slowest, newest = (k0, k1) if k0 < k1 else (k1, k0)
        horizon = newest - self._max_skew_ms
        if slowest > horizon:
            horizon = slowest
        if horizon > self._horizon:
            self._horizon = horizon
        else:
            horizon = self._horizon
        # a run can no longer grow once its role's frames (or the watermark) are past it
        open_start, open_end, ready = self._open_start, self._open_end, self._ready
        join = self._join_ms
        if open_start[0] >= 0 and (k0 if k0 > horizon else horizon) - open_end[0] >= join:
            ready[0].append((open_start[0], open_end[0]))
            open_start[0] = open_end[0] = -1
        if open_start[1] >= 0 and (k1 if k1 > horizon else horizon) - open_end[1] >= join:
            ready[1].append((open_start[1], open_end[1]))
            open_start[1] = open_end[1] = -1
        if ready[0] or ready[1]:
            self._place_ready(listener)

    def _place_ready(self, listener: TurnListener) -> None:
        """Place finished runs in start order, as far as the other role allows."""
        known, open_start, horizon = self._known, self._open_start, self._horizon
        ready = self._ready
        therapist_runs, client_runs = ready
        while therapist_runs or client_runs:
            if therapist_runs and (not client_runs or therapist_runs[0][0] <= client_runs[0][0]):
                role, runs, other = THERAPIST, therapist_runs, CLIENT
            else:
                role, runs, other = CLIENT, client_runs, THERAPIST
            start = runs[0][0]
            if not ready[other]:
                # the other role's next run cannot start before this bound
                if open_start[other] >= 0:
                    bound = open_start[other]
                else:
                    bound = known[other] if known[other] > horizon else horizon
                if start > bound:
                    return
            start, end = runs.popleft()
            self._place(role, start, end, listener)

    def _place(self, role: int, start: int, end: int, listener: TurnListener) -> None:
        last_end = self._last_end
        other = CLIENT - role
        other_end = last_end[other]
        if start < other_end:
            listener.on_overlap(role, (end if end < other_end else other_end) - start, start)
            if end <= other_end and self._floor == other:
                if end > last_end[role]:  # a back-channel: the floor stays where it is
                    last_end[role] = end
                return
        floor = self._floor
        if floor == role:
            listener.on_pause(role, start - last_end[role], start)
            self._turn_speech_ms += end - start
        else:
            if floor >= 0:
                listener.on_turn_end(floor, self._turn_speech_ms, last_end[floor])
                listener.on_switch(floor, role, start - last_end[floor], start)
            self._floor = role
            self._turn_speech_ms = end - start
        if end > last_end[role]:
            last_end[role] = end

    def state_size(self) -> int:
        """Buffered runs (finished and still growing)."""
        return (
            len(self._ready[0])
            + len(self._ready[1])
            + (self._open_start[0] >= 0)
            + (self._open_start[1] >= 0)
        )

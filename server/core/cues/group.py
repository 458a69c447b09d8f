"""Cues for a session of several people: one pair engine per client, and the clients together.

A couple or family session has the therapist and up to three others. A guest (interpreter,
guardian, support person) is never an input: the caller drops a guest's frames before they
get here, and this engine refuses any peer that is not the therapist or a client.

- **Each client** gets today's two-party engine (`CueEngine`), fed the therapist's frames and
  that client's own, so every existing rule (withdrawal, minimal replies, talk imbalance,
  latency, lag, talk-over with lag, video, still-and-silent, out-of-frame) runs per client.
  The other clients' speech is passed to it as *other speech*: a silence between the
  therapist and this client that a partner filled is not this client's silence.
- **The clients together**: talk share per person; the couples prompt (one client holds at
  least `couple_share_max` of the clients' speech over `couple_window_ms`, with at least
  `couple_min_speech_ms` of it, both clients present the whole time); talk-over between two
  clients (at least `talk_over_min_count` overlaps of `talk_over_min_overlap_ms` within
  `talk_over_window_ms`, off during severe lag).

Prompts of a client's pair engine name that client in `peers` once the session has had more
than one client; prompt ids stay unique: the first client's engine numbers `p1, p2, …`, the
second `p2.1, …`, the third `p3.1, …`, the clients-together rules `pg1, …`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Final

from server.core.cues.carry import dump_slots, load_slots
from server.core.cues.config import CueConfig
from server.core.cues.engine import CueEngine
from server.core.cues.features import CueError, FeatureFrame
from server.core.cues.policy import FeedbackRecord, PromptPolicy, Verdict
from server.core.cues.prompts import Category, Prompt, Reason, Severity
from server.core.cues.windows import EventWindow, RollingSum
from server.core.participants import DEFAULT_MAX_PEOPLE, THERAPIST_PEER_ID
from server.core.protocol import SessionRole

MAX_CLIENTS: Final = DEFAULT_MAX_PEOPLE - 1
_NEVER: Final = -(10**15)
_TICK_MS: Final = 1000
_RECENT_RUNS: Final = 16  # a client's closed speech runs kept for talk-over between clients
_CARRY_VERSION: Final = 1


class UnknownPeerError(CueError, ValueError):
    """A frame from someone who is not the therapist or one of (at most three) clients."""


class _Person:
    """One person's speech: talk time over two windows and (clients) their speech runs."""

    __slots__ = ("last_seen", "long", "open_end", "open_start", "recent", "runs")

    def __init__(self, cfg: CueConfig) -> None:
        self.last_seen = _NEVER
        self.recent = RollingSum(cfg.talk_window_ms, max(1000, cfg.talk_window_ms // 30))
        self.long = RollingSum(cfg.couple_window_ms, max(1000, cfg.couple_window_ms // 60))
        self.open_start = -1  # the speech run still growing; -1: none
        self.open_end = -1
        self.runs: deque[tuple[int, int]] = deque(maxlen=_RECENT_RUNS)


class GroupCueEngine:
    """Incremental cue analysis for a session with the therapist and one to three clients;
    feed it every person's frames with their peer id, in arrival order."""

    __slots__ = (
        "_added",
        "_cfg",
        "_client_ids",
        "_clients",
        "_id_prefix",
        "_now",
        "_overlaps",
        "_pairs",
        "_policy",
        "_seq",
        "_therapist",
        "_tick",
        "_together_since",
        "stale_frames",
    )

    def __init__(self, config: CueConfig | None = None, *, prompt_id_prefix: str = "p") -> None:
        cfg = self._cfg = config if config is not None else CueConfig()
        self._id_prefix = prompt_id_prefix
        self._added = 0  # clients ever added: numbers their prompt ids
        self._client_ids: list[str] = []
        self._clients: list[_Person] = []
        self._pairs: list[CueEngine] = []
        self._therapist = _Person(cfg)
        self._policy = PromptPolicy(cfg.rate_limit_ms)
        self._seq = 0
        self._now = _NEVER
        self._tick = _NEVER
        self._together_since = -1  # since when two or more clients are present; -1: not now
        capacity = cfg.talk_over_window_ms // cfg.talk_over_min_overlap_ms + 2
        # one window per pair of client slots (i < j), fixed so the state's shape is fixed
        self._overlaps = [
            EventWindow(cfg.talk_over_window_ms, capacity) for _ in range(_pair_slots())
        ]
        self.stale_frames = 0

    # -- the feed ---------------------------------------------------------------------------

    def feed(self, peer_id: str, frame: FeatureFrame) -> list[Prompt]:
        """Take one person's frame and return the prompts it raises (usually none)."""
        therapist = frame.role is SessionRole.THERAPIST
        if therapist != (peer_id == THERAPIST_PEER_ID):
            raise UnknownPeerError(f"peer {peer_id!r} does not match role {frame.role.value}")
        index = -1 if therapist else self._client_index(peer_id)
        person = self._therapist if therapist else self._clients[index]
        t = frame.t_ms
        if t <= person.last_seen:
            self.stale_frames += 1
            return []
        person.last_seen = t
        if t > self._now:
            self._now = t
        for start, end in frame.voiced:
            person.recent.add_span(start, end)
            person.long.add_span(start, end)
        prompts: list[Prompt] = []
        several = len(self._pairs) > 1
        if therapist:
            for i, pair in enumerate(self._pairs):
                prompts.extend(self._tagged(pair.feed(frame), i, several))
        else:
            prompts.extend(self._tagged(self._pairs[index].feed(frame), index, several))
            if frame.voiced:
                for i, pair in enumerate(self._pairs):
                    if i != index:
                        pair.note_other_speech(frame.voiced)
            self._track_runs(index, t, frame.voiced)
        tick = self._now // _TICK_MS
        if tick != self._tick:
            self._tick = tick
            prompts.extend(self._evaluate(self._now))
        return prompts

    def _client_index(self, peer_id: str) -> int:
        try:
            return self._client_ids.index(peer_id)
        except ValueError:
            pass
        if len(self._client_ids) >= MAX_CLIENTS:
            raise UnknownPeerError(f"at most {MAX_CLIENTS} clients in a session") from None
        self._add_client(peer_id)
        return len(self._client_ids) - 1

    def _add_client(self, peer_id: str, prefix: str | None = None) -> None:
        self._added += 1
        if prefix is None:
            number = self._added
            prefix = self._id_prefix if number == 1 else f"{self._id_prefix}{number}."
        self._client_ids.append(peer_id)
        self._clients.append(_Person(self._cfg))
        self._pairs.append(CueEngine(self._cfg, prompt_id_prefix=prefix))

    def forget(self, peer_id: str) -> None:
        """Forget everything about one client at once (their cue consent was withdrawn): their
        pair engine, speech and runs, and the talk-over evidence between the clients."""
        if peer_id not in self._client_ids:
            return
        index = self._client_ids.index(peer_id)
        del self._client_ids[index], self._clients[index], self._pairs[index]
        for window in self._overlaps:
            window.clear()  # slots are by position, and positions moved
        self._together_since = -1

    def _tagged(self, prompts: list[Prompt], index: int, several: bool) -> list[Prompt]:
        if not several or not prompts:
            return prompts
        peer = (self._client_ids[index],)
        return [replace(prompt, peers=peer) for prompt in prompts]

    # -- speech runs and talk-over between clients ------------------------------------------

    def _track_runs(self, index: int, t_ms: int, voiced: tuple[tuple[int, int], ...]) -> None:
        """Join a client's segments into runs; a run that can no longer grow is compared
        with the other clients' finished runs (each overlap is counted once, by the later)."""
        cfg, person = self._cfg, self._clients[index]
        join, max_run = cfg.run_join_ms, cfg.max_run_ms
        start, end = person.open_start, person.open_end
        for seg_start, seg_end in voiced:
            if start >= 0 and seg_start - end < join:
                end = max(end, seg_end)
            else:
                if start >= 0:
                    self._close_run(index, start, end)
                start, end = seg_start, seg_end
            if end - start >= max_run:
                self._close_run(index, start, end)
                start = end = -1
        if start >= 0 and t_ms - end >= join:
            self._close_run(index, start, end)
            start = end = -1
        person.open_start, person.open_end = start, end

    def _close_run(self, index: int, start: int, end: int) -> None:
        cfg = self._cfg
        if self._severe_lag(index):
            return  # beyond the severe lag, overlaps measure the network (lag_severe says it)
        for other, person in enumerate(self._clients):
            if other == index:
                continue
            window = self._overlaps[_pair_slot(index, other)]
            for other_start, other_end in person.runs:
                overlap = min(end, other_end) - max(start, other_start)
                if overlap >= cfg.talk_over_min_overlap_ms:
                    window.add(max(start, other_start))
        self._clients[index].runs.append((start, end))

    def _severe_lag(self, index: int) -> bool:
        return self._pairs[index].severe_lag

    def _delay_ms(self, *indexes: int) -> float:
        return max(self._pairs[i].one_way_delay_ms for i in indexes)

    # -- the rules about the clients together -----------------------------------------------

    def _evaluate(self, now: int) -> list[Prompt]:
        cfg = self._cfg
        present = self._present_clients(now)
        if len(present) < 2:
            self._together_since = -1
            return []
        if self._together_since < 0:
            self._together_since = now
        prompts: list[Prompt] = []
        open_at = self._policy.open_at
        if now >= open_at[Category.CLIENT_TALK_OVER]:
            for a, b in _pairs_of(present):
                window = self._overlaps[_pair_slot(a, b)]
                count = window.count(now)
                if count >= cfg.talk_over_min_count:
                    window.clear()
                    self._emit(self._talk_over(a, b, count), now, prompts)
                    break
        if now >= open_at[Category.COUPLE_BALANCE] and (prompt := self._balance(now, present)):
            self._emit(prompt, now, prompts)
        return prompts

    def _present_clients(self, now: int) -> list[int]:
        oldest = now - self._cfg.presence_timeout_ms
        return [i for i, person in enumerate(self._clients) if person.last_seen > oldest]

    def _balance(self, now: int, present: list[int]) -> Prompt | None:
        """One client holds most of the clients' speech over the whole window."""
        cfg = self._cfg
        if now - self._together_since < cfg.couple_window_ms:
            return None  # not yet a whole window with two or more clients present
        spoken = []
        for i in present:
            self._clients[i].long.advance(now)
            spoken.append((self._clients[i].long.total, i))
        total = sum(ms for ms, _ in spoken)
        if total < cfg.couple_min_speech_ms:
            return None
        most, top = max(spoken)
        share = most / total
        if share < cfg.couple_share_max:
            return None
        self._together_since = now  # the evidence is used: the next prompt needs a new window
        text = (
            f"One client has had {round(share * 100)} % of the clients' speaking time over "
            f"the last {_minutes(cfg.couple_window_ms)}. Consider making room for the other"
            f"{'s' if len(present) > 2 else ''}, e.g. “I'd like to hear how this is for you.”"
        )
        reasons = (
            Reason("client_talk_share", round(share, 2), cfg.couple_share_max, "share"),
            Reason("clients_speech_ms", total, cfg.couple_min_speech_ms, "ms"),
        )
        return self._prompt(Category.COUPLE_BALANCE, Severity.NOTICE, text, reasons, (top,))

    def _talk_over(self, a: int, b: int, count: int) -> Prompt:
        cfg = self._cfg
        delay = self._delay_ms(a, b)
        window = _minutes(cfg.talk_over_window_ms)
        if delay >= cfg.lag_handoff_ms:
            text = (
                f"Two clients have spoken over each other {count} times in the last {window} "
                f"— possibly the delay (about {round(delay)} ms each way on a link). Consider "
                "naming who speaks next."
            )
        else:
            text = (
                f"Two clients have spoken over each other {count} times in the last {window}. "
                "Consider slowing the exchange: one speaks, the other listens and says back "
                "what they heard."
            )
        reasons = (
            Reason("overlaps", count, cfg.talk_over_min_count, "per window"),
            Reason("one_way_delay_ms", round(delay), cfg.lag_handoff_ms, "ms"),
        )
        return self._prompt(Category.CLIENT_TALK_OVER, Severity.NOTICE, text, reasons, (a, b))

    def _prompt(
        self,
        category: Category,
        severity: Severity,
        text: str,
        reasons: tuple[Reason, ...],
        who: tuple[int, ...],
    ) -> Prompt:
        return Prompt(
            id="",
            category=category,
            t_ms=0,
            text=text,
            reasons=reasons,
            severity=severity,
            peers=tuple(self._client_ids[i] for i in who),
        )

    def _emit(self, draft: Prompt, now: int, prompts: list[Prompt]) -> None:
        self._seq += 1
        prompt = replace(draft, id=f"{self._id_prefix}g{self._seq}", t_ms=now)
        self._policy.record(prompt)
        prompts.append(prompt)

    # -- what the therapist and the summary see ---------------------------------------------

    def talk_shares(self) -> dict[str, float | None]:
        """Each person's share of everyone's speech over the last `talk_window_ms` (None
        with less than `talk_min_speech_ms` of speech in all), therapist first."""
        now = self._now
        people = [(THERAPIST_PEER_ID, self._therapist)]
        people.extend(zip(self._client_ids, self._clients, strict=True))
        for _, person in people:
            person.recent.advance(now)
        total = sum(person.recent.total for _, person in people)
        if total < self._cfg.talk_min_speech_ms:
            return dict.fromkeys((peer for peer, _ in people), None)
        return {peer: person.recent.total / total for peer, person in people}

    @property
    def clients(self) -> tuple[str, ...]:
        """The clients' peer ids, in the order they first sent a frame."""
        return tuple(self._client_ids)

    def pair(self, peer_id: str) -> CueEngine:
        """The two-party engine of one client (KeyError for a client never seen)."""
        try:
            return self._pairs[self._client_ids.index(peer_id)]
        except ValueError:
            raise KeyError(peer_id) from None

    @property
    def config(self) -> CueConfig:
        """The thresholds in force."""
        return self._cfg

    def state_size(self) -> int:
        """Items held in the variable-size buffers, all pairs included (all capped)."""
        return (
            sum(pair.state_size() for pair in self._pairs)
            + sum(len(person.runs) for person in self._clients)
            + sum(len(window) for window in self._overlaps)
            + self._policy.state_size()
        )

    # -- the therapist's controls -----------------------------------------------------------

    def snooze(self, category: Category, until_ms: int) -> None:
        """Hold back a category's prompts until `until_ms`, for every client."""
        self._policy.snooze(category, until_ms)
        for pair in self._pairs:
            pair.snooze(category, until_ms)

    def mute(self, category: Category) -> None:
        """Hold back a category's prompts for the rest of the session, for every client."""
        self._policy.mute(category)
        for pair in self._pairs:
            pair.mute(category)

    def unmute(self, category: Category) -> None:
        """Allow a muted category again."""
        self._policy.unmute(category)
        for pair in self._pairs:
            pair.unmute(category)

    def category_of(self, prompt_id: str) -> Category | None:
        """The category of a recent prompt of this session, or None."""
        found = self._policy.category_of(prompt_id)
        for pair in self._pairs:
            found = found or pair.category_of(prompt_id)
        return found

    def feedback(self, prompt_id: str, verdict: Verdict | str, t_ms: int) -> FeedbackRecord:
        """Record "helpful" or "not-now" for a recent prompt (UnknownPromptError if none)."""
        for pair in self._pairs:
            if pair.category_of(prompt_id) is not None:
                return pair.feedback(prompt_id, verdict, t_ms)
        return self._policy.feedback(prompt_id, verdict, t_ms)

    # -- what survives a takeover by another process ----------------------------------------

    def policy_state(self) -> dict[str, Any]:
        """Prompt numbering and policies (cooldowns, snoozes, mutes, feedback) of the
        clients-together rules and of every client's pair engine, as plain data."""
        return {
            "seq": self._seq,
            "policy": self._policy.to_state(),
            "added": self._added,
            "clients": [
                [peer, pair.prompt_id_prefix, pair.policy_state()]
                for peer, pair in zip(self._client_ids, self._pairs, strict=True)
            ],
        }

    def windows_state(self) -> dict[str, Any]:
        """The windows of the clients-together rules and of each pair engine (times, counts
        and levels only; a few KB per client)."""
        return {
            "v": _CARRY_VERSION,
            "group": dump_slots(self, skip=_NOT_WINDOWS),
            "pairs": [pair.windows_state() for pair in self._pairs],
        }

    def carried_state(self) -> dict[str, Any]:
        """`policy_state` plus `windows_state`: everything another process needs."""
        return {**self.policy_state(), "windows": self.windows_state()}

    @classmethod
    def from_carried(
        cls,
        state: Mapping[str, Any],
        config: CueConfig | None = None,
        *,
        prompt_id_prefix: str = "p",
    ) -> GroupCueEngine:
        """A fresh engine that goes on from `carried_state` (or a bare `policy_state`);
        ValueError when the state does not fit (then start afresh)."""
        engine = cls(config, prompt_id_prefix=prompt_id_prefix)
        try:
            clients = state["clients"]
            if not isinstance(clients, list) or len(clients) > MAX_CLIENTS:
                raise ValueError("not a list of at most three clients")
            for peer, prefix, pair_state in clients:
                if not isinstance(peer, str) or peer in engine._client_ids:
                    raise ValueError("a client's peer id is missing or repeated")
                if not isinstance(prefix, str) or len(prefix) > 32:
                    raise ValueError("a client's prompt id prefix is not text")
                engine._add_client(peer, prefix)
                engine._pairs[-1].restore_policy(pair_state)
            engine._added = int(state["added"])
            engine._seq = int(state["seq"])
            engine._policy = PromptPolicy.from_state(state["policy"], engine._cfg.rate_limit_ms)
            windows = state.get("windows")
            if windows is not None:
                if not isinstance(windows, Mapping) or windows.get("v") != _CARRY_VERSION:
                    raise ValueError("carried group windows of another version")
                pairs = windows["pairs"]
                if not isinstance(pairs, list) or len(pairs) != len(engine._pairs):
                    raise ValueError("carried windows for other clients")
                for pair, pair_windows in zip(engine._pairs, pairs, strict=True):
                    pair.restore_carried({**pair.policy_state(), "windows": pair_windows})
                load_slots(engine, windows["group"], skip=_NOT_WINDOWS)
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a group cue state: {exc!r}") from None
        return engine


# carried by policy_state, rebuilt from it, or this process's own
_NOT_WINDOWS: Final = frozenset(
    {"_policy", "_seq", "_id_prefix", "_pairs", "_client_ids", "_added"}
)


def _pair_slots() -> int:
    return MAX_CLIENTS * (MAX_CLIENTS - 1) // 2


def _pair_slot(a: int, b: int) -> int:
    """The index of the pair {a, b} of client slots among all pairs (a != b)."""
    low, high = (a, b) if a < b else (b, a)
    return low * (2 * MAX_CLIENTS - low - 1) // 2 + (high - low - 1)


def _pairs_of(indexes: list[int]) -> list[tuple[int, int]]:
    return [(a, b) for n, a in enumerate(indexes) for b in indexes[n + 1 :]]


def _minutes(ms: int) -> str:
    minutes = ms / 60_000
    return f"{minutes:.0f} min" if minutes >= 1 else f"{ms / 1000:.0f} s"

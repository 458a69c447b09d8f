"""Live cue analysis for sessions whose clients have a live `cue_analysis` consent.

The engine and the summary are pure (server.core.cues). This edge keeps one engine per
session (`GroupCueEngine`: a pair engine per client), aligns each browser's clock with the
server's at its first frame (browsers' clocks differ), keeps an after-session summary per
client, and forgets everything about a client the moment their consent is withdrawn. The
caller decides whose frames may be analysed (a guest's never, a client's with their consent).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from server.core.cues.config import CueConfig
from server.core.cues.features import parse_features
from server.core.cues.group import GroupCueEngine
from server.core.cues.prompts import Category, Prompt
from server.core.cues.summary import ClientSignal, SessionSummary, SummaryBuilder
from server.core.participants import THERAPIST_PEER_ID
from server.core.protocol import PromptFeedback

MAX_SESSIONS = 10_000  # far above what one process serves; bounds memory under abuse
ONE_CLIENT = "client"  # the peer id of a session's client when the caller names none


def _now_ms() -> int:
    return int(time.monotonic() * 1000)


def restamp(body: Mapping[str, Any], session_t_ms: int) -> dict[str, Any]:
    """Move a frame onto the session clock; its voiced segments shift along with it."""
    shift = session_t_ms - int(body.get("t_ms", 0))
    frame = dict(body)
    frame["t_ms"] = session_t_ms
    frame["voiced"] = [[start + shift, end + shift] for start, end in body.get("voiced", [])]
    return frame


@dataclass
class _SessionCues:
    engine: GroupCueEngine
    started_ms: int
    clients: dict[str, str] = field(default_factory=dict)  # a client's peer id → client id
    summaries: dict[str, SummaryBuilder] = field(default_factory=dict)  # per client peer id
    prompts: dict[str, Prompt] = field(default_factory=dict)
    offsets: dict[str, int] = field(default_factory=dict)  # browser clock → session clock
    windows_json: str = ""  # the engine's windows as last taken (JSON), for snapshots
    windows_at_ms: int = 0  # wall time they were taken

    def session_t(self, now_ms: int) -> int:
        return max(1, now_ms - self.started_ms)

    def frame_t(self, peer: str, browser_t_ms: int, now_ms: int) -> int:
        """A frame's time on the session clock: the browser's own spacing between frames is
        kept, and each browser's clock is aligned to the server's at its first frame."""
        if peer not in self.offsets:
            self.offsets[peer] = self.session_t(now_ms) - browser_t_ms
        return browser_t_ms + self.offsets[peer]

    def summary_of(self, peer: str) -> SummaryBuilder:
        found = self.summaries.get(peer)
        if found is None:
            found = self.summaries[peer] = SummaryBuilder()
        return found

    def add_prompt(self, prompt: Prompt) -> None:
        """A prompt goes into the summary of each client it names (with one client, theirs)."""
        self.prompts[prompt.id] = prompt
        for peer in prompt.peers or tuple(self.summaries):
            if peer in self.summaries:
                self.summaries[peer].add_prompt(prompt)


class LiveCues:
    """Cue engines of live sessions, created on the first allowed frame."""

    def __init__(self, config: CueConfig) -> None:
        self._config = config
        self._sessions: dict[str, _SessionCues] = {}

    def _session(self, session_id: str, now_ms: int, window_ms: int = 1000) -> _SessionCues:
        found = self._sessions.get(session_id)
        if found is None:
            if len(self._sessions) >= MAX_SESSIONS:
                raise RuntimeError("too many live cue sessions")
            # The session clock starts one window before the first frame, which ends now.
            found = _SessionCues(GroupCueEngine(self._config), now_ms - window_ms)
            self._sessions[session_id] = found
        return found

    def feed(
        self,
        session_id: str,
        body: Mapping[str, Any],
        *,
        peer_id: str | None = None,
        client_id: str | None = None,
        now_ms: int | None = None,
    ) -> list[Prompt]:
        """One `features` frame (already role-checked, and allowed: never a guest's); the
        prompts it raises. `peer_id` names the person (default: the therapist, or the one
        client); a client's `client_id` is whose summary it is."""
        now_ms = _now_ms() if now_ms is None else now_ms
        window, browser_t = body.get("window_ms", 1000), body.get("t_ms")
        therapist = body.get("role") == "therapist"
        peer = peer_id or (THERAPIST_PEER_ID if therapist else ONE_CLIENT)
        cues = self._session(session_id, now_ms, window if isinstance(window, int) else 1000)
        if not isinstance(browser_t, int) or isinstance(browser_t, bool):
            frame = parse_features(body)  # raises the precise FeatureError
        else:
            t_ms = cues.frame_t(peer, browser_t, now_ms)
            frame = parse_features(restamp(body, t_ms))
        prompts = cues.engine.feed(peer, frame)
        if therapist:
            for summary in cues.summaries.values():
                summary.add_frame(frame)
        else:
            if client_id is not None:
                cues.clients[peer] = client_id
            cues.summary_of(peer).add_frame(frame)
        for prompt in prompts:
            cues.add_prompt(prompt)
        return prompts

    def feedback(
        self,
        session_id: str,
        prompt_id: str,
        feedback: PromptFeedback,
        minutes: int | None,
        *,
        now_ms: int | None = None,
    ) -> bool:
        """Record the therapist's answer; mute or snooze the prompt's category."""
        cues = self._sessions.get(session_id)
        if cues is None:
            return False
        prompt = cues.prompts.get(prompt_id)
        # a prompt raised before a takeover is known to the restored policy only
        found = prompt.category if prompt else cues.engine.category_of(prompt_id)
        if found is None:
            return False
        t_ms = cues.session_t(_now_ms() if now_ms is None else now_ms)
        category: Category = found
        if feedback is PromptFeedback.MUTE_CATEGORY:
            cues.engine.mute(category)
        elif feedback is PromptFeedback.SNOOZE_CATEGORY:
            cues.engine.snooze(category, t_ms + (minutes or 10) * 60_000)
        else:
            verdict = "helpful" if feedback is PromptFeedback.HELPFUL else "not-now"
            record = cues.engine.feedback(prompt_id, verdict, t_ms)
            named = prompt.peers if prompt and prompt.peers else tuple(cues.summaries)
            for peer in named:
                if peer in cues.summaries:
                    cues.summaries[peer].add_feedback(record)
        return True

    def signal(
        self, session_id: str, kind: str, *, peer_id: str | None = None, now_ms: int | None = None
    ) -> int:
        """A client's nonverbal signal on the session clock (for their summary's timeline)."""
        now_ms = _now_ms() if now_ms is None else now_ms
        cues = self._session(session_id, now_ms)
        t_ms = cues.session_t(now_ms)
        cues.summary_of(peer_id or ONE_CLIENT).add_signal(ClientSignal(t_ms=t_ms, kind=kind))
        return t_ms

    def snapshot(self, session_id: str, *, now_ms: int | None = None) -> dict[str, Any] | None:
        """What another process needs to go on (plain JSON), or None without cue state: the
        session clock (as wall time), the engine's prompt policy, and its windows, baselines
        and calibration (JSON text, taken at most every `carry_every_ms`). The summary so far
        stays behind (docs/architecture.md)."""
        cues = self._sessions.get(session_id)
        if cues is None:
            return None
        now_ms = _now_ms() if now_ms is None else now_ms
        wall_ms = int(time.time() * 1000)
        if not cues.windows_json or wall_ms - cues.windows_at_ms >= self._config.carry_every_ms:
            # The windows (~3 KB, ~0.5 ms to take) are taken at most every carry_every_ms,
            # the prompt policy every time: a takeover forgets at most that much of their
            # history. Kept as JSON text, so the room's state embeds it without encoding it.
            cues.windows_json = json.dumps(cues.engine.windows_state())
            cues.windows_at_ms = wall_ms
        return {
            "session_t_ms": cues.session_t(now_ms),
            "wall_ms": wall_ms,
            "engine": cues.engine.policy_state(),
            "windows": cues.windows_json,
            "clients": dict(cues.clients),
        }

    def windows(self, session_id: str) -> dict[str, Any] | None:
        """The engine's windows now (for diagnostics and tests), or None without cue state."""
        cues = self._sessions.get(session_id)
        return None if cues is None else cues.engine.windows_state()

    def restore(
        self, session_id: str, snapshot: Mapping[str, Any], *, now_ms: int | None = None
    ) -> None:
        """Go on from `snapshot`: the session clock keeps running (the wall time elapsed since
        it was taken is added); cooldowns, snoozes, mutes, prompt ids, the observation windows
        and baselines carry on. Each browser's clock is aligned again at its next frame."""
        now_ms = _now_ms() if now_ms is None else now_ms
        elapsed = max(0, int(time.time() * 1000) - int(snapshot["wall_ms"]))
        session_t = int(snapshot["session_t_ms"]) + elapsed
        windows = snapshot.get("windows")
        carried = dict(snapshot["engine"])
        if isinstance(windows, str) and windows:
            carried["windows"] = json.loads(windows)
        engine = GroupCueEngine.from_carried(carried, self._config)
        clients = snapshot.get("clients", {})
        if not isinstance(clients, Mapping):
            raise ValueError("a cue snapshot's clients must be an object")
        restored = _SessionCues(engine, now_ms - session_t, clients=dict(clients))
        for peer in engine.clients:
            restored.summary_of(peer)  # the summary covers the time since the takeover
        self._sessions[session_id] = restored

    def owners(self, session_id: str, prompt: Prompt) -> list[str]:
        """The client ids whose records a prompt belongs in: each client it names; with one
        client, that client (empty when the caller never named them)."""
        cues = self._sessions.get(session_id)
        if cues is None:
            return []
        peers = prompt.peers or tuple(cues.clients)
        return [cues.clients[peer] for peer in peers if peer in cues.clients]

    def sessions_of(self, client_id: str) -> list[str]:
        """The sessions whose live cue state holds this client's analysis."""
        return [sid for sid, cues in self._sessions.items() if client_id in cues.clients.values()]

    def active(self, session_id: str) -> bool:
        """Whether this session has live cue state."""
        return session_id in self._sessions

    def finish(self, session_id: str) -> dict[str | None, SessionSummary]:
        """The session is over: the summary of each client (by client id; None: the one
        client the caller did not name), and the live state is dropped."""
        cues = self._sessions.pop(session_id, None)
        if cues is None:
            return {}
        return {cues.clients.get(peer): summary.build() for peer, summary in cues.summaries.items()}

    def drop(self, session_id: str) -> None:
        """Forget a session's cue state at once."""
        self._sessions.pop(session_id, None)

    def drop_client(self, session_id: str, client_id: str) -> None:
        """Forget everything about one client of a session at once (their cue consent was
        withdrawn): their engine, summary and clock; the others' analysis goes on. The
        session's whole state goes when no analysed client is left, or when the one client
        was not named."""
        cues = self._sessions.get(session_id)
        if cues is None:
            return
        peers = [peer for peer, owner in cues.clients.items() if owner == client_id]
        if not peers or set(peers) >= set(cues.summaries):
            self.drop(session_id)
            return
        for peer in peers:
            cues.engine.forget(peer)
            cues.summaries.pop(peer, None)
            cues.offsets.pop(peer, None)
            cues.clients.pop(peer, None)
        cues.windows_json = ""

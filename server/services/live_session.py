"""Live-session operations: the one owner of everything that changes a session in progress.

Ending a session, submitting a check-in, recording a client signal, feeding cue features,
applying prompt feedback and reacting to a consent change each live here, once. Every edge —
the WebSocket loop, the REST API, the pages, the CLI — calls these functions; they write to
the database, audit and encrypt, and only then tell the rooms through `LiveRooms`, which the
hub implements (carrying a call to the process that holds the room when there are several).
Messages reach a room only through its audience rules, so a therapist-only message has no
path to a client.

Errors are domain errors (`server.errors`); each edge maps them to its own answer.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from privacy.consent import Channel, ConsentChanged, ConsentDecision, Purpose
from server.audit import AuditTrail
from server.core.checkins import questionnaire_resource
from server.core.cues.config import CueConfig
from server.core.cues.features import FeatureError
from server.core.links import SessionStatus
from server.core.models import Account
from server.core.protocol import (
    CheckinOpenMessage,
    CheckinResultMessage,
    ClientSignal,
    ClientSignalMessage,
    ConsentChangedMessage,
    EndReason,
    PromptFeedback,
    PromptMessage,
    ServerMessage,
    SharedMessage,
)
from server.core.rooms import Audience
from server.db import scheduling as session_queries
from server.db.engine import Database
from server.errors import Conflict, InvalidInput, NotFound
from server.services import scheduling
from server.services.checkins import CheckinResult, Checkins, alert_json, scores_json
from server.services.consents import Consents
from server.services.cue_records import CueRecords
from server.services.live_cues import LiveCues

log = logging.getLogger("attune.live")

Clock = Any  # Callable[[], datetime]; kept loose so tests can pass a lambda


class LiveRooms(Protocol):
    """What live operations need of the rooms, wherever the rooms are held."""

    def deliver(self, session_id: str, message: SharedMessage, audience: Audience) -> None:
        """Send a message every participant may see to an audience of the session's room."""

    def deliver_to_therapist(self, session_id: str, message: ServerMessage) -> None:
        """Send a message to the session's therapist only (if connected)."""

    def has_admitted_client(self, session_id: str) -> bool:
        """Whether a client is in the call now."""

    def terminate(self, session_id: str, reason: EndReason) -> None:
        """Tell everyone the session is over and close their connections."""

    def end_client_part(self, session_id: str, reason: EndReason) -> None:
        """Close every client connection of the session; the therapist stays."""

    def live_sessions_of_client(self, client_id: str) -> set[str]:
        """The sessions of this client that have a live room now."""


@dataclass(frozen=True)
class Submitted:
    """A check-in as the edge needs it for its acknowledgement."""

    result: CheckinResult
    duplicate: bool


class LiveSessions:
    """The operations on sessions in progress, and their live cue state."""

    def __init__(
        self,
        *,
        db: Database,
        audit: AuditTrail,
        checkins: Checkins,
        consents: Consents,
        cue_records: CueRecords,
        rooms: LiveRooms,
        clock: Clock,
        cue_config: CueConfig | None = None,
    ) -> None:
        self._db = db
        self._audit = audit
        self._checkins = checkins
        self._consents = consents
        self._cue_records = cue_records
        self._rooms = rooms
        self._clock = clock
        self.cues = LiveCues(cue_config or CueConfig())
        # Whether each client's cue_analysis consent is live, kept current by consent events.
        self._cue_allowed: dict[str, bool] = {}
        # Sessions whose before-session check-in was answered in another process (takeover).
        self._before_done: set[str] = set()

    # --- joining ----------------------------------------------------------------------

    def note_consents(self, client_id: str, consents: Mapping[str, str]) -> None:
        """A connection of this client's session opened with these consent states."""
        self._cue_allowed[client_id] = consents.get(Purpose.CUE_ANALYSIS.value) == "granted"

    def cue_analysis_live(self, client_id: str) -> bool:
        """Whether features of this client's sessions may be analysed now."""
        return self._cue_allowed.get(client_id, False)

    def checkin_open(self, instrument_id: str) -> CheckinOpenMessage:
        """The `checkin-open` message for an instrument (InvalidInput if unknown)."""
        instrument = self._checkins.instrument(instrument_id)
        return CheckinOpenMessage(
            instrument_id=instrument.id,
            kind=instrument.kind,
            questionnaire=questionnaire_resource(instrument),
        )

    def before_checkin_due(self, session_id: str) -> bool:
        """The before-session check-in opens in the waiting room, once per session."""
        if session_id in self._before_done:
            return False
        return not any(
            r.instrument.kind == "before" for r in self._checkins.live_results(session_id)
        )

    def live_snapshot(self, session_id: str) -> dict[str, Any]:
        """What another process needs to go on with this session's live state (plain JSON):
        the cue engine's clock and prompt policy, not its windows (docs/architecture.md)."""
        return {
            "before_checkin_done": not self.before_checkin_due(session_id),
            "cues": self.cues.snapshot(session_id),
        }

    def restore_live(self, session_id: str, snapshot: Mapping[str, Any]) -> None:
        """Go on from `live_snapshot` taken by the process that held the session before."""
        if snapshot.get("before_checkin_done") is True:
            self._before_done.add(session_id)
        cues = snapshot.get("cues")
        if isinstance(cues, Mapping) and not self.cues.active(session_id):
            try:
                self.cues.restore(session_id, cues)
            except (KeyError, TypeError, ValueError):
                log.warning("a cue snapshot could not be restored; the engine starts afresh")

    async def mark_live(self, session_id: str) -> None:
        """The first admission turns a scheduled session live."""
        async with self._db.write() as conn:
            session = await session_queries.session_by_id(conn, session_id)
            if session is not None and session.status is SessionStatus.SCHEDULED:
                await session_queries.set_session_status(
                    conn, session_id, SessionStatus.LIVE, self._clock()
                )

    # --- ending -----------------------------------------------------------------------

    async def end_session(
        self, therapist: Account, session_id: str, status: SessionStatus = SessionStatus.ENDED
    ) -> None:
        """End (or cancel) a session: recorded and audited, the cue summary kept with consent,
        the after-session check-in offered to a client in the call, everyone told, and the
        session's live state forgotten. NotFound for another therapist's session, Conflict
        when it is already over."""
        if status not in (SessionStatus.ENDED, SessionStatus.CANCELLED):
            raise ValueError(f"a session ends as ended or cancelled, not {status}")
        now = self._clock()
        await scheduling.close_session(self._db, self._audit, therapist, session_id, status, now)
        async with self._db.read() as conn:
            session = await session_queries.session_by_id(conn, session_id)
        if session is None:  # pragma: no cover - closed a moment ago in the same store
            raise NotFound("No such session.")
        # Store the cue summary first: whoever sees `session-ended` can rely on it being kept.
        summary = self.cues.finish(session_id)
        if summary is not None and self.cue_analysis_live(session.client_id):
            await self._cue_records.store_summary(
                self._db,
                session_id=session_id,
                client_id=session.client_id,
                summary=summary.to_dict(),
                now=now,
            )
        if status is SessionStatus.ENDED:
            self._rooms.deliver(session_id, self.checkin_open("after"), Audience.CLIENTS)
        self._rooms.terminate(session_id, EndReason.THERAPIST_ENDED)
        self._checkins.forget_session(session_id)
        self._before_done.discard(session_id)

    # --- check-ins --------------------------------------------------------------------

    def launch_checkin(self, session_id: str, instrument_id: str) -> None:
        """The therapist opens a check-in (e.g. the pulse) for the client in the call."""
        if not self._rooms.has_admitted_client(session_id):
            raise Conflict("No client is in the call.", code="no-peer")
        self._rooms.deliver(session_id, self.checkin_open(instrument_id), Audience.ADMITTED_CLIENT)

    async def submit_checkin(
        self,
        session_id: str,
        *,
        instrument_id: str,
        answers: Mapping[str, object],
        idempotency_key: str,
    ) -> Submitted:
        """Score and (with consent) store a client's answers; returns after the durable write,
        so the edge may acknowledge. The therapist sees the result live, once."""
        async with self._db.read() as conn:
            session = await session_queries.session_by_id(conn, session_id)
        if session is None:
            raise NotFound("No such session.")
        result, duplicate = await self._checkins.submit(
            self._db,
            session=session,
            instrument_id=instrument_id,
            answers=answers,
            idempotency_key=idempotency_key,
            now=self._clock(),
            audit=self._audit,
        )
        if not duplicate:
            self._rooms.deliver_to_therapist(
                session_id,
                CheckinResultMessage(
                    instrument_id=result.instrument.id,
                    kind=result.instrument.kind,
                    scores=scores_json(result.scores),
                    alerts=[alert_json(a) for a in result.alerts],
                ),
            )
        return Submitted(result, duplicate)

    # --- signals, features, prompts ---------------------------------------------------

    async def record_signal(self, session_id: str, client_id: str, signal: ClientSignal) -> None:
        """A client's nonverbal signal: shown to the therapist; kept only with cue consent."""
        self._rooms.deliver_to_therapist(session_id, ClientSignalMessage(signal=signal))
        if self.cue_analysis_live(client_id):
            t_ms = self.cues.signal(session_id, signal.value)
            await self._cue_records.store_signal(
                self._db,
                session_id=session_id,
                client_id=client_id,
                kind=signal.value,
                t_ms=t_ms,
                now=self._clock(),
            )

    async def feed_features(self, session_id: str, client_id: str, body: Mapping[str, Any]) -> None:
        """Cue features: analysed only while the client's cue consent is live, else dropped
        without keeping anything. Prompts go to the therapist and are stored encrypted."""
        if not self.cue_analysis_live(client_id):
            return
        try:
            prompts = self.cues.feed(session_id, body)
        except FeatureError as exc:
            raise InvalidInput(str(exc)) from None
        for prompt in prompts:
            shown = prompt.to_dict()
            self._rooms.deliver_to_therapist(session_id, PromptMessage(prompt=shown))
            await self._cue_records.store_prompt(
                self._db,
                session_id=session_id,
                client_id=client_id,
                prompt=shown,
                now=self._clock(),
            )

    def prompt_feedback(
        self, session_id: str, prompt_id: str, feedback: PromptFeedback, minutes: int | None
    ) -> None:
        """The therapist's answer to a prompt (helpful, not now, snooze, mute)."""
        if not self.cues.feedback(session_id, prompt_id, feedback, minutes):
            raise NotFound("No such prompt in this session.")

    # --- consent ----------------------------------------------------------------------

    async def decide_consent(
        self,
        client_id: str,
        purpose: Purpose,
        decision: ConsentDecision,
        notice_version: int,
        channel: Channel,
    ) -> None:
        """A client grants or withdraws a purpose; the live effects follow from the event."""
        await self._consents.decide(
            self._db,
            self._audit,
            client_id=client_id,
            purpose=purpose,
            decision=decision,
            notice_version=notice_version,
            channel=channel,
            now=self._clock(),
        )

    def on_consent_changed(self, event: ConsentChanged) -> None:
        """Consent changes take effect live, whichever edge recorded them: everyone in the
        client's live sessions hears of it; without telehealth the client's part ends; without
        cue analysis the live cue state is dropped at once."""
        if event.purpose is Purpose.CUE_ANALYSIS:
            granted = event.decision is ConsentDecision.GRANTED
            self._cue_allowed[event.client_id] = granted
            if not granted:
                self.stop_cues_for_client(event.client_id)
        message = ConsentChangedMessage(purpose=event.purpose, decision=event.decision)
        withdrew_telehealth = (
            event.purpose is Purpose.TELEHEALTH and event.decision is ConsentDecision.WITHDRAWN
        )
        for session_id in self._rooms.live_sessions_of_client(event.client_id):
            self._rooms.deliver(session_id, message, Audience.EVERYONE)
            if withdrew_telehealth:
                self._rooms.end_client_part(session_id, EndReason.CONSENT_WITHDRAWN)

    def stop_cues_for_client(self, client_id: str) -> None:
        """Forget live cue state of every live session of this client, at once."""
        self._cue_allowed[client_id] = False
        for session_id in self._rooms.live_sessions_of_client(client_id):
            self.cues.drop(session_id)

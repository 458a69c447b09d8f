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
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

from privacy.consent import Channel, ConsentChanged, ConsentDecision, Purpose
from server.audit import AuditTrail
from server.core.checkins import questionnaire_resource
from server.core.closing import Closing
from server.core.cues.config import CueConfig
from server.core.cues.features import FeatureError
from server.core.cues.group import UnknownPeerError
from server.core.goals import GoalError, GoalStatus, split_goal_answers
from server.core.links import SessionStatus
from server.core.measures.scoring import SAFETY_REPAIR, safety_reason
from server.core.models import Account
from server.core.participants import PersonKind
from server.core.protocol import (
    AccessEnd,
    AllianceSplitMessage,
    CheckinOpenMessage,
    CheckinResultMessage,
    ClientSignal,
    ClientSignalMessage,
    CloseCode,
    ConsentChangedMessage,
    EndReason,
    GoalsMessage,
    MeasureAlertMessage,
    PanelStateMessage,
    PromptFeedback,
    PromptMessage,
    SafetyCheckMessage,
    ServerMessage,
    SessionRole,
    SharedMessage,
)
from server.core.protocol.server_messages import MAX_PANEL_ITEMS
from server.core.rooms import Audience
from server.db import scheduling as session_queries
from server.db.engine import Database
from server.errors import Conflict, InvalidInput, NotFound
from server.services import scheduling
from server.services.checkins import CheckinResult, Checkins, alert_json, scores_json
from server.services.consents import Consents
from server.services.cue_records import CueRecords
from server.services.email import Mailer
from server.services.goals import ChangeContext, Goals
from server.services.live_cues import LiveCues
from server.services.measures import MeasureResult, Measures, SafetyAlertRecord
from server.services.safety import SafetyCheck, SafetyChecks

log = logging.getLogger("attune.live")

Clock = Callable[[], datetime]
R = TypeVar("R")


class LiveRooms(Protocol):
    """What live operations need of the rooms, wherever the rooms are held."""

    def deliver(self, session_id: str, message: SharedMessage, audience: Audience) -> None:
        """Send a message every participant may see to an audience of the session's room."""

    def deliver_to_therapist(self, session_id: str, message: ServerMessage) -> None:
        """Send a message to the session's therapist only (if connected)."""

    def deliver_to_client(self, session_id: str, client_id: str, message: SharedMessage) -> None:
        """Send a message about one person to the therapist and that person only (a client by
        record, a guest by participant id): never to the others in a couple's or family's call."""

    def has_admitted_client(self, session_id: str) -> bool:
        """Whether a client is in the call now."""

    async def therapist_in_room(self, session_id: str) -> bool:
        """Whether the session's therapist is connected to its room now."""

    def terminate(self, session_id: str, reason: EndReason) -> None:
        """Tell everyone the session is over and close their connections."""

    def end_client_part(
        self, session_id: str, reason: EndReason, client_id: str | None = None
    ) -> None:
        """End one client's part of the session (`client_id`; None: everyone's but the
        therapist's): their connections close, the others' call goes on."""

    def end_person(self, session_id: str, peer_id: str, reason: EndReason) -> None:
        """End one person's part of the session (a client or a guest, by peer id)."""

    def live_sessions_of_client(self, client_id: str) -> set[str]:
        """The sessions of this client that have a live room now."""

    def close_connections(self, closing: Closing) -> None:
        """Close at once every socket `closing` matches, on whichever process it is; nothing
        they already sent is processed after."""


@dataclass(frozen=True)
class Submitted(Generic[R]):
    """A check-in or outcome measure as the edge needs it for its acknowledgement: the result
    and whether it was a retry."""

    result: R
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
        mailer: Mailer | None = None,
        safety: SafetyChecks | None = None,
        measures: Measures | None = None,
        goals: Goals | None = None,
    ) -> None:
        self._db = db
        self._measures = measures
        self._audit = audit
        self._checkins = checkins
        self._consents = consents
        self._cue_records = cue_records
        self._rooms = rooms
        self._clock = clock
        self._mailer = mailer
        self._safety = safety
        self._goals = goals
        self.cues = LiveCues(cue_config or CueConfig())
        # Whether each client's cue_analysis consent is live, kept current by consent events.
        self._cue_allowed: dict[str, bool] = {}
        # Sessions whose before-session check-in was answered in another process (takeover).
        self._before_done: set[str] = set()
        # Signals shown to the therapist this session (kept for the session only, as the
        # panel shows them; stored only with cue consent), so a reload can show them again.
        self._shown_signals: dict[str, deque[dict[str, Any]]] = {}

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
        await scheduling.close_session(
            self._db, self._audit, therapist, session_id, status, now, mail=self._mailer
        )
        async with self._db.read() as conn:
            session = await session_queries.session_by_id(conn, session_id)
        if session is None:  # pragma: no cover - closed a moment ago in the same store
            raise NotFound("No such session.")
        # Store the cue summary first: whoever sees `session-ended` can rely on it being kept.
        # One summary per client analysed, each kept with that client's own consent.
        for client_id, summary in self.cues.finish(session_id).items():
            owner = client_id or session.client_id
            if self.cue_analysis_live(owner):
                await self._cue_records.store_summary(
                    self._db,
                    session_id=session_id,
                    client_id=owner,
                    summary=summary.to_dict(),
                    now=now,
                )
        if status is SessionStatus.ENDED:
            self._rooms.deliver(session_id, self.checkin_open("after"), Audience.CLIENTS)
        self._rooms.terminate(session_id, EndReason.THERAPIST_ENDED)
        self._checkins.forget_session(session_id)
        if self._measures is not None:
            self._measures.forget_session(session_id)
        self._before_done.discard(session_id)
        self._shown_signals.pop(session_id, None)

    # --- access ending ----------------------------------------------------------------

    def end_account_access(
        self,
        account_id: str,
        reason: AccessEnd,
        *,
        sign_in_id: str | None = None,
        except_sign_in_id: str | None = None,
    ) -> None:
        """A sign-in ended (or all of an account's did, but `except_sign_in_id`): its sockets
        close now with 4401. Called by the account services after the change is committed."""
        log.info("closing live sockets of an account: %s", reason.value)
        self._rooms.close_connections(
            Closing(
                account_id=account_id,
                sign_in_id=sign_in_id,
                except_sign_in_id=except_sign_in_id,
                code=CloseCode.UNAUTHORIZED,
                reason=reason.value,
            )
        )

    def end_client_access(
        self,
        reason: AccessEnd,
        *,
        session_id: str | None = None,
        client_access_id: str | None = None,
    ) -> None:
        """A client's link or cookie ended: its client sockets close now with 4401 (the
        therapist's stay). Called by the link services after the change is committed."""
        log.info("closing live client sockets: %s", reason.value)
        self._rooms.close_connections(
            Closing(
                session_id=session_id,
                client_access_id=client_access_id,
                role=SessionRole.CLIENT,
                code=CloseCode.UNAUTHORIZED,
                reason=reason.value,
            )
        )

    async def admit_device(self, session_id: str, client_access_id: str) -> None:
        """The therapist admitted a client socket: if its cookie was "another device", it is
        now the link's one device, and the older cookies end with their sockets (4401)."""
        ended = await scheduling.keep_only_device(self._db, session_id, client_access_id)
        for other in ended:
            self.end_client_access(AccessEnd.ANOTHER_DEVICE, client_access_id=other)

    # --- the therapist's panel --------------------------------------------------------

    async def send_panel_state(self, session_id: str, therapist_id: str) -> None:
        """After the therapist's `welcome`: the panel so far (check-ins, prompts, signals),
        so a reload rebuilds it. Goes to the session's therapist only; a read of stored
        clinical content is audited like the summary's."""
        stored = await self._checkins.stored_for_session(self._db, session_id)
        seen = {r.id for r in stored}
        live = [r for r in self._checkins.live_results(session_id) if r.id not in seen]
        results = sorted([*stored, *live], key=lambda r: r.submitted_at)
        cue_rows = await self._cue_records.for_session(self._db, session_id)
        # a prompt about two clients is kept in each one's record: show it once
        prompts = list(
            {
                str(p.get("id", n)): p
                for n, p in enumerate(cue_rows.get("cue_prompts", []))
                if isinstance(p, Mapping)
            }.values()
        )
        signals = list(self._shown_signals.get(session_id, ()))
        safety = await self._panel_safety(session_id, therapist_id)
        alerts = (
            [] if self._measures is None else await self._measures.alerts_of_session(session_id)
        )
        split = await self._checkins.split_alert(
            self._db, session_id, self._checkins.instrument_for("after")
        )
        if stored or prompts:
            async with self._db.write() as conn:
                session = await session_queries.session_by_id(conn, session_id)
                await self._audit.record(
                    conn,
                    at=self._clock(),
                    actor=f"account:{therapist_id}",
                    action="clinical.read",
                    targets=(f"client:{session.client_id}",) if session else (),
                    details={"what": "panel-state", "count": len(stored) + len(prompts)},
                )
        limit = MAX_PANEL_ITEMS
        labels = await self._client_labels({r.client_id for r in results})
        self._rooms.deliver_to_therapist(
            session_id,
            PanelStateMessage(
                checkins=[
                    {
                        "instrument_id": r.instrument.id,
                        "kind": r.instrument.kind,
                        "scores": scores_json(r.scores, r.instrument),
                        "alerts": [alert_json(a) for a in r.alerts],
                        "client_id": r.client_id,
                        "label": labels.get(r.client_id, ""),
                    }
                    for r in results[-limit:]
                ],
                prompts=prompts[-limit:],
                signals=signals[-limit:],
                safety=safety.to_json() if safety else None,
                safety_alerts=[_safety_json(a) for a in alerts[:limit]],
                alliance_split=alert_json(split) if split else None,
            ),
        )

    async def _client_labels(self, client_ids: Iterable[str]) -> dict[str, str]:
        """The aliases of these clients (how the therapist's panel names each partner)."""
        return await scheduling.client_aliases(self._db, client_ids)

    async def _panel_safety(self, session_id: str, therapist_id: str) -> SafetyCheck | None:
        """The session's safety check for the panel (its read audited), if there is one."""
        if self._safety is None:
            return None
        async with self._db.read() as conn:
            session = await session_queries.session_by_id(conn, session_id)
        if session is None:
            return None
        return await self._safety.read_for_therapist(
            self._db,
            self._audit,
            session=session,
            therapist_id=therapist_id,
            where="panel",
            now=self._clock(),
        )

    # --- the safety check -------------------------------------------------------------

    async def submit_safety_check(self, session_id: str, raw: dict[str, Any]) -> SafetyCheck:
        """The client's safety check before the waiting room: checked, stored through the
        vault and audited (InvalidInput for an answer to correct), then shown live in the
        therapist's panel if they are in the room."""
        if self._safety is None:
            raise NotFound("The safety check is not offered here.")
        async with self._db.read() as conn:
            session = await session_queries.session_by_id(conn, session_id)
        if session is None:
            raise NotFound("No such session.")
        check = await self._safety.submit(
            self._db, self._audit, session=session, raw=raw, now=self._clock()
        )
        self._rooms.deliver_to_therapist(session_id, SafetyCheckMessage(check=check.to_json()))
        return check

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
        language: str | None = None,
        client_id: str | None = None,
    ) -> Submitted[CheckinResult]:
        """Score and (with consent) store a client's answers; returns after the durable write,
        so the edge may acknowledge. The therapist sees the result live, once. `language`: the
        one the client read the form in (None: the instrument's own). `client_id`: the client
        who answered (a partner in a couple session; None: the session's client), whose
        consent, key and history count, named in the panel by their alias. An
        after-session form that makes the partners' totals split raises `alliance-split`."""
        async with self._db.read() as conn:
            session = await session_queries.session_by_id(conn, session_id)
        if session is None:
            raise NotFound("No such session.")
        client_id = client_id or session.client_id
        instrument = self._checkins.instrument(instrument_id)
        progress: dict[str, int | None] = {}
        if self._goals is not None and instrument.kind == "after":
            # The after form asks about each active goal too: those answers are goal progress.
            known = [g.id for g in await self._goals.goals(client_id)]
            try:
                answers, progress = split_goal_answers(answers, known)
            except GoalError as exc:
                raise InvalidInput(str(exc)) from None
        result, duplicate = await self._checkins.submit(
            self._db,
            session=session,
            instrument_id=instrument_id,
            answers=answers,
            idempotency_key=idempotency_key,
            now=self._clock(),
            audit=self._audit,
            language=language,
            client_id=client_id,
        )
        if progress and self._goals is not None:
            # Same key, same rule: stored once, encrypted, only with `checkin_storage`.
            await self._goals.record_progress(
                client_id=client_id,
                session_id=session_id,
                progress=progress,
                idempotency_key=idempotency_key,
                now=result.submitted_at,
            )
        if not duplicate:
            self._rooms.deliver_to_therapist(
                session_id,
                CheckinResultMessage(
                    instrument_id=result.instrument.id,
                    kind=result.instrument.kind,
                    scores=scores_json(result.scores, result.instrument),
                    alerts=[alert_json(a) for a in result.alerts],
                    client_id=client_id,
                    label=(await self._client_labels([client_id])).get(client_id),
                ),
            )
            if instrument.kind == "after":
                split = await self._checkins.split_alert(self._db, session_id, instrument)
                if split is not None:
                    self._rooms.deliver_to_therapist(
                        session_id, AllianceSplitMessage(alert=alert_json(split))
                    )
            # Not in the room: an opted-in therapist gets an email saying only that an alert
            # waits, and only when it was kept to be seen later.
            if (
                self._mailer is not None
                and result.stored
                and not await self._rooms.therapist_in_room(session_id)
            ):
                await self._mailer.queue_alert_notice(
                    self._db,
                    session=session,
                    alert_categories=frozenset(a.category for a in result.alerts),
                    source_id=result.id,
                    now=self._clock(),
                )
        return Submitted(result, duplicate)

    # --- outcome measures ------------------------------------------------------------

    async def submit_measure(
        self,
        session_id: str,
        *,
        measure_id: str,
        answers: Mapping[str, object],
        idempotency_key: str,
        by_link: bool = False,
        language: str = "en",
    ) -> Submitted[MeasureResult]:
        """Store a client's outcome measure (always: the clinical record) and, when it raises
        the safety alert, tell the therapist at once: in the room if they are there, and by
        email whenever email is configured. No consent or setting can hold the alert back.

        A retry (same key) tells them again, so a crash between the commit and the delivery
        loses nothing: the room shows each alert once, and the email is queued once."""
        if self._measures is None:
            raise NotFound("Outcome measures are not available.")
        async with self._db.read() as conn:
            session = await session_queries.session_by_id(conn, session_id)
        if session is None:
            raise NotFound("No such session.")
        result, duplicate = await self._measures.submit(
            session=session,
            measure_id=measure_id,
            answers=answers,
            idempotency_key=idempotency_key,
            now=self._clock(),
            audit=self._audit,
            by_link=by_link,
            language=language,
        )
        if result.alert is not None:
            for record in await self._measures.alerts_of_session(session_id):
                if record.response_id == result.id:
                    self._rooms.deliver_to_therapist(
                        session_id, MeasureAlertMessage(**_safety_json(record))
                    )
            if self._mailer is not None:
                await self._mailer.queue_safety_notice(
                    self._db, session=session, source_id=result.id, now=self._clock()
                )
        return Submitted(result, duplicate)

    # --- shared goals -----------------------------------------------------------------

    @property
    def goals(self) -> Goals:
        """The goals service (configured by create_app)."""
        if self._goals is None:
            raise Conflict("Shared goals are not available here.")
        return self._goals

    async def goals_message(self, client_id: str) -> GoalsMessage:
        """The client's goals as the `goals` message (after a join, and after each change)."""
        goals = await self.goals.goals(client_id)
        return GoalsMessage(goals=[g.to_json() for g in goals])

    async def change_goal(
        self,
        session_id: str,
        client_id: str,
        *,
        role: SessionRole,
        actor: str,
        text: str | None = None,
        goal_id: str | None = None,
        status: GoalStatus | None = None,
    ) -> None:
        """A goal added (no `goal_id`), reworded (`text`) or moved (`status`) by either party
        in the call: stored, history and audit written, then both screens get `goals`."""
        by = ChangeContext(role, actor, self._clock(), session_id)
        if goal_id is None:
            goals = await self.goals.add(client_id, text, by)
        elif status is not None:
            goals = await self.goals.set_status(client_id, goal_id, status, by)
        else:
            goals = await self.goals.edit(client_id, goal_id, text, by)
        message = GoalsMessage(goals=[g.to_json() for g in goals])
        self._rooms.deliver(session_id, message, Audience.CALL)

    # --- signals, features, prompts ---------------------------------------------------

    async def record_signal(
        self,
        session_id: str,
        client_id: str,
        signal: ClientSignal,
        *,
        peer_id: str | None = None,
        kind: PersonKind = PersonKind.CLIENT,
    ) -> None:
        """A nonverbal signal: shown to the therapist; kept only as a client's, with that
        client's cue consent (a guest's is shown, never kept)."""
        self._rooms.deliver_to_therapist(session_id, ClientSignalMessage(signal=signal))
        shown = self._shown_signals.setdefault(session_id, deque(maxlen=MAX_PANEL_ITEMS))
        shown.append({"signal": signal.value, "at_ms": int(self._clock().timestamp() * 1000)})
        if kind is PersonKind.CLIENT and self.cue_analysis_live(client_id):
            t_ms = self.cues.signal(session_id, signal.value, peer_id=peer_id)
            await self._cue_records.store_signal(
                self._db,
                session_id=session_id,
                client_id=client_id,
                kind=signal.value,
                t_ms=t_ms,
                now=self._clock(),
            )

    async def feed_features(
        self,
        session_id: str,
        client_id: str,
        body: Mapping[str, Any],
        *,
        peer_id: str | None = None,
        kind: PersonKind | None = None,
    ) -> None:
        """Cue features of one person. A guest's are dropped before anything: never analysed,
        never stored. A client's (`client_id` their own record) are analysed only while their
        own cue consent is live; the therapist's (`client_id` the session's client) while a
        client of the session is analysed or the session's client consents. Prompts go to the
        therapist and are stored encrypted with the record of each client they concern."""
        therapist = body.get("role") == SessionRole.THERAPIST  # a StrEnum equals its text
        if kind is PersonKind.GUEST:
            return
        if therapist:
            if not (self.cues.active(session_id) or self.cue_analysis_live(client_id)):
                return
        elif not self.cue_analysis_live(client_id):
            return
        try:
            prompts = self.cues.feed(
                session_id,
                body,
                peer_id=peer_id,
                client_id=None if therapist else client_id,
            )
        except (FeatureError, UnknownPeerError) as exc:
            raise InvalidInput(str(exc)) from None
        for prompt in prompts:
            shown = prompt.to_dict()
            self._rooms.deliver_to_therapist(session_id, PromptMessage(prompt=shown))
            for owner in self.cues.owners(session_id, prompt) or [client_id]:
                await self._cue_records.store_prompt(
                    self._db,
                    session_id=session_id,
                    client_id=owner,
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
            self._rooms.deliver_to_client(session_id, event.client_id, message)
            if withdrew_telehealth:
                self._rooms.end_client_part(
                    session_id, EndReason.CONSENT_WITHDRAWN, event.client_id
                )

    def stop_cues_for_client(self, client_id: str) -> None:
        """Forget live cue state of every live session of this client, at once."""
        self._cue_allowed[client_id] = False
        sessions = {
            *self._rooms.live_sessions_of_client(client_id),
            *self.cues.sessions_of(client_id),
        }
        for session_id in sessions:
            self.cues.drop_client(session_id, client_id)


def _safety_json(record: SafetyAlertRecord) -> dict[str, str]:
    """A safety alert as `measure-alert` and `panel-state` carry it (names no answer)."""
    return {
        "alert_id": record.id,
        "label": record.client_alias,
        "measure": record.measure_title,
        "reason": safety_reason(record.measure_title),
        "repair": SAFETY_REPAIR,
    }

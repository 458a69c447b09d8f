"""Shared goals: the one owner of storing, changing and reading a client's goals.

The rules are pure (server.core.goals). Here a goal's words are encrypted through the vault
with the client's key (bound to its row), every change writes a history entry and a
`goal.change` audit entry in the same transaction (never the words), and the after-session
progress answers are stored like check-ins: idempotent per key, encrypted, and only while
the client's `checkin_storage` consent is live. Access is the caller's: an edge resolves who
may act for which client (the therapist's own client, the client's own link) before it calls.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncConnection

from privacy.consent import Purpose
from privacy.vault import FieldContext
from server.audit import AuditTrail
from server.core.goals import (
    GOAL_ID,
    MAX_GOAL_CHARS,
    Goal,
    GoalChange,
    GoalError,
    GoalStatus,
    check_can_add,
    clean_goal_text,
    goal_resource,
    status_change,
)
from server.core.models import SessionRole
from server.db import goals as goal_rows
from server.db.engine import Database
from server.errors import InvalidInput, NotFound
from server.security.tokens import new_id
from server.services.consents import Consents
from server.vault_store import ClientVault

MAX_REASON_CHARS: Final = 500


@dataclass(frozen=True)
class HistoryEntry:
    """One change to a goal: who, what, when (never the words)."""

    goal_id: str
    at: datetime
    by: SessionRole
    change: GoalChange
    session_id: str | None


@dataclass(frozen=True)
class ChangeContext:
    """Who changes a goal and where: their side, the audit trail's actor (never a name),
    when, and the session it happens in (None outside one)."""

    side: SessionRole
    actor: str
    now: datetime
    session_id: str | None


@dataclass(frozen=True)
class ProgressView:
    """Whether the client sees their own progress page, and the therapist's reason if not."""

    shown: bool
    reason: str | None
    changed_at: datetime | None


def _text_context(goal_id: str, client_id: str) -> FieldContext:
    return FieldContext("client_goals", goal_id, "text", client_id)


def _progress_context(row_id: str, client_id: str) -> FieldContext:
    return FieldContext("goal_progress", row_id, "payload", client_id)


def _reason_context(client_id: str) -> FieldContext:
    return FieldContext("progress_views", client_id, "reason", client_id)


def _clean_text(text: object) -> str:
    """A goal's words tidied, or InvalidInput saying what to correct."""
    try:
        return clean_goal_text(text)
    except GoalError as exc:
        raise InvalidInput(str(exc)) from None


def _one(goals: list[Goal], goal_id: object) -> Goal:
    """The goal with this id among the client's, or NotFound."""
    if isinstance(goal_id, str) and GOAL_ID.fullmatch(goal_id):
        for goal in goals:
            if goal.id == goal_id:
                return goal
    raise NotFound("No such goal.")


class Goals:
    """Goals, their history and progress, for every edge (WebSocket, pages, API)."""

    def __init__(self, db: Database, vault: ClientVault, audit: AuditTrail, consents: Consents):
        self._db = db
        self._vault = vault
        self._audit = audit
        self._consents = consents

    # --- reading ----------------------------------------------------------------------

    async def _goals(self, conn: AsyncConnection, client_id: str) -> list[Goal]:
        goals = []
        for row in await goal_rows.goal_rows(conn, client_id):
            text = await self._vault.decrypt_text(
                conn, _text_context(row.id, client_id), row.text_ciphertext
            )
            goals.append(
                Goal(
                    id=row.id,
                    text=text,
                    status=GoalStatus(row.status),
                    position=row.position,
                    created_at=row.created_at,
                    updated_at=row.updated_at,
                    updated_by=SessionRole(row.updated_by),
                )
            )
        return goals

    async def goals(self, client_id: str) -> list[Goal]:
        """A client's goals in their order, active, reached and dropped."""
        async with self._db.read() as conn:
            return await self._goals(conn, client_id)

    async def history(self, client_id: str) -> list[HistoryEntry]:
        """Every change to a client's goals, oldest first."""
        async with self._db.read() as conn:
            rows = await goal_rows.change_rows(conn, client_id)
        return [
            HistoryEntry(r.goal_id, r.at, SessionRole(r.by), GoalChange(r.change), r.session_id)
            for r in rows
        ]

    async def progress(self, client_id: str) -> dict[str, list[tuple[datetime, int]]]:
        """Stored progress answers per goal id, oldest first (skips are not stored)."""
        found: dict[str, list[tuple[datetime, int]]] = {}
        async with self._db.read() as conn:
            for row in await goal_rows.progress_rows(conn, client_id):
                payload = await self._vault.decrypt_json(
                    conn, _progress_context(row.id, client_id), row.payload_ciphertext
                )
                found.setdefault(row.goal_id, []).append((row.submitted_at, int(payload["score"])))
        return found

    # --- changing ---------------------------------------------------------------------

    async def _change(
        self,
        client_id: str,
        by: ChangeContext,
        step: Callable[[AsyncConnection, list[Goal]], Awaitable[tuple[str, GoalChange] | None]],
    ) -> list[Goal]:
        """One change in one transaction: `step` validates against the goals as they stand
        and writes, naming the goal and the change (None: nothing changed); then its history
        entry and `goal.change` audit entry (never the words). The goals after the change."""
        async with self._db.write() as conn:
            done = await step(conn, await self._goals(conn, client_id))
            if done is not None:
                goal_id, change = done
                await goal_rows.insert_change(
                    conn,
                    change_id=new_id(),
                    goal_id=goal_id,
                    client_id=client_id,
                    session_id=by.session_id,
                    at=by.now,
                    by=by.side.value,
                    change=change.value,
                )
                await self._audit.record(
                    conn,
                    at=by.now,
                    actor=by.actor,
                    action="goal.change",
                    targets=(f"client:{client_id}", f"goal:{goal_id}"),
                    details={"change": change.value, "by": by.side.value},
                )
            return await self._goals(conn, client_id)

    async def add(self, client_id: str, text: object, by: ChangeContext) -> list[Goal]:
        """A new active goal in the client's words; the goals after the change."""
        clean = _clean_text(text)

        async def step(conn: AsyncConnection, goals: list[Goal]) -> tuple[str, GoalChange]:
            try:
                check_can_add(goals)
            except GoalError as exc:
                raise InvalidInput(str(exc), code="too-many-goals") from None
            goal_id = new_id()
            ciphertext = await self._vault.encrypt_text(
                conn, _text_context(goal_id, client_id), clean
            )
            await goal_rows.insert_goal(
                conn,
                goal_id=goal_id,
                client_id=client_id,
                position=max((g.position for g in goals), default=0) + 1,
                status=GoalStatus.ACTIVE.value,
                now=by.now,
                by=by.side.value,
                ciphertext=ciphertext,
            )
            return goal_id, GoalChange.ADDED

        return await self._change(client_id, by, step)

    async def edit(
        self, client_id: str, goal_id: str, text: object, by: ChangeContext
    ) -> list[Goal]:
        """New words for a goal (its status stays)."""
        clean = _clean_text(text)

        async def step(conn: AsyncConnection, goals: list[Goal]) -> tuple[str, GoalChange] | None:
            if _one(goals, goal_id).text == clean:
                return None
            ciphertext = await self._vault.encrypt_text(
                conn, _text_context(goal_id, client_id), clean
            )
            await goal_rows.update_goal(
                conn, goal_id, now=by.now, by=by.side.value, ciphertext=ciphertext
            )
            return goal_id, GoalChange.EDITED

        return await self._change(client_id, by, step)

    async def set_status(
        self, client_id: str, goal_id: str, status: GoalStatus, by: ChangeContext
    ) -> list[Goal]:
        """Mark a goal reached or dropped, or make it active again."""

        async def step(conn: AsyncConnection, goals: list[Goal]) -> tuple[str, GoalChange]:
            try:
                change = status_change(_one(goals, goal_id), status, goals)
            except GoalError as exc:
                raise InvalidInput(str(exc)) from None
            await goal_rows.update_goal(
                conn, goal_id, now=by.now, by=by.side.value, status=status.value
            )
            return goal_id, change

        return await self._change(client_id, by, step)

    # --- progress from the after-session check-in -------------------------------------

    async def record_progress(
        self,
        *,
        client_id: str,
        session_id: str,
        progress: Mapping[str, int | None],
        idempotency_key: str,
        now: datetime,
    ) -> bool:
        """Store the answered progress items (skips are not stored) with the check-in's key;
        True when kept. A retry with the same key stores nothing more."""
        answered = {goal_id: score for goal_id, score in progress.items() if score is not None}
        if not answered:
            return False
        async with self._db.write() as conn:
            if not await self._consents.allows(conn, client_id, Purpose.CHECKIN_STORAGE, now):
                return False
            done = await goal_rows.progress_rows(
                conn, client_id, session_id=session_id, idempotency_key=idempotency_key
            )
            if done:
                return True
            for goal_id, score in answered.items():
                row_id = new_id()
                ciphertext = await self._vault.encrypt_json(
                    conn, _progress_context(row_id, client_id), {"score": score}
                )
                await goal_rows.insert_progress(
                    conn,
                    row_id=row_id,
                    goal_id=goal_id,
                    client_id=client_id,
                    session_id=session_id,
                    idempotency_key=idempotency_key,
                    now=now,
                    ciphertext=ciphertext,
                )
        return True

    async def delete_progress_for_client(self, conn: AsyncConnection, client_id: str) -> None:
        """Withdrawal of `checkin_storage`: the progress answers go with the check-ins."""
        await goal_rows.delete_progress(conn, client_id)

    # --- the client's own progress page -----------------------------------------------

    async def progress_view(self, client_id: str) -> ProgressView:
        """Shown unless the therapist turned it off for this client (with the reason)."""
        async with self._db.read() as conn:
            row = await goal_rows.progress_view(conn, client_id)
            if row is None:
                return ProgressView(True, None, None)
            reason = None
            if row.reason_ciphertext is not None:
                reason = await self._vault.decrypt_text(
                    conn, _reason_context(client_id), row.reason_ciphertext
                )
            return ProgressView(bool(row.shown), reason, row.changed_at)

    async def set_progress_view(
        self, client_id: str, *, shown: bool, reason: str, actor: str, now: datetime
    ) -> None:
        """Turn the client's own progress page off (a reason is required) or on again."""
        reason = " ".join(reason.split())
        if not shown and not reason:
            raise InvalidInput("Say why the client's progress page is turned off.")
        if len(reason) > MAX_REASON_CHARS:
            raise InvalidInput(f"Keep the reason under {MAX_REASON_CHARS} characters.")
        async with self._db.write() as conn:
            ciphertext = (
                await self._vault.encrypt_text(conn, _reason_context(client_id), reason)
                if reason
                else None
            )
            await goal_rows.set_progress_view(
                conn, client_id, shown=shown, now=now, reason_ciphertext=ciphertext
            )
            await self._audit.record(
                conn,
                at=now,
                actor=actor,
                action="progress.visibility",
                targets=(f"client:{client_id}",),
                details={"shown": shown},
            )


def fhir_goals(
    goals: list[Goal], progress: Mapping[str, list[tuple[datetime, int]]], client_id: str
) -> list[dict[str, Any]]:
    """The client's goals as FHIR R4 `Goal` resources, each with its progress answers."""
    return [
        goal_resource(g, subject_ref=f"Patient/{client_id}", progress=progress.get(g.id, []))
        for g in goals
    ]


def fhir_goals_from_export(records: Mapping[str, Any], client_id: str) -> list[dict[str, Any]]:
    """The same resources from the client's export rows (already decrypted), so the export
    carries its goals as FHIR beside the plain rows."""
    goals = []
    for row in records.get("client_goals", []):
        if not isinstance(row.get("text"), str) or row["text"].startswith("unreadable"):
            continue
        goals.append(
            Goal(
                id=row["id"],
                text=row["text"],
                status=GoalStatus(row["status"]),
                position=int(row["position"]),
                created_at=datetime.fromisoformat(row["created_at"]),
                updated_at=datetime.fromisoformat(row["updated_at"]),
                updated_by=SessionRole(row["updated_by"]),
            )
        )
    progress: dict[str, list[tuple[datetime, int]]] = {}
    for row in records.get("goal_progress", []):
        payload = row.get("payload")
        if isinstance(payload, Mapping) and isinstance(payload.get("score"), int):
            at = datetime.fromisoformat(row["submitted_at"])
            progress.setdefault(row["goal_id"], []).append((at, payload["score"]))
    return fhir_goals(goals, progress, client_id)


__all__ = [
    "MAX_GOAL_CHARS",
    "ChangeContext",
    "Goals",
    "HistoryEntry",
    "ProgressView",
    "fhir_goals",
    "fhir_goals_from_export",
]

"""A client's rights over their data: a machine-readable export, and erasure of what exists
only by their optional consent.

The export holds everything stored about one client and nothing of anyone else: their alias,
session times, consent decisions, every registered per-client table (decrypted through the
vault), and when their data was touched and by whom in kind (never another person's id).
Therapist notes are the therapist's clinical record (psychotherapy notes, which HIPAA
§164.524(a)(1)(i) excludes from the right of access): they are left out of the client's own
export, and the therapist includes them when exporting on the client's request if they choose.

Erasure withdraws every optional consent (its effects run) and deletes the rows of every
source stored only under an optional consent. The clinical record (session times, notes) and
the evidence (consent records, audit entries) stay under their retention policies; the pages
say so rather than dropping them silently. A legal hold keeps the data until it is lifted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncConnection

from privacy.consent import (
    OPTIONAL_PURPOSES,
    Channel,
    ConsentDecision,
    ConsentState,
    Purpose,
    receipt,
)
from privacy.vault import DecryptionError, FieldContext, KeyShredded
from server.audit import AuditTrail
from server.core.measures import load_builtin_measures, measures_bundle
from server.core.protocol import SessionRole
from server.db import client_data
from server.db import notes as note_rows
from server.db import scheduling as scheduling_rows
from server.db.engine import Database
from server.db.retention_sources import DEFAULT_SOURCES, SourceRegistry, TableSource
from server.errors import NotFound
from server.services.consents import Consents
from server.services.goals import fhir_goals_from_export
from server.services.retention import Retention
from server.vault_store import ClientVault

EXPORT_FORMAT: Final = "attune-client-export-v1"
UNREADABLE: Final = "unreadable: the client's data key was destroyed or the record was damaged"


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _plain(value: Any) -> Any:
    """A stored value as JSON: times in UTC ISO 8601."""
    return _iso(value) if isinstance(value, datetime) else value


def _by_whom(actor: str, client_id: str) -> str:
    """Who acted, in kind only: an export never names another person."""
    if actor in (f"client:{client_id}", "client"):
        return "you (through your session link)"
    if actor.startswith("account:"):
        return "clinic staff"
    return "Attune (automatic)"


@dataclass(frozen=True)
class ErasureOutcome:
    """What an erasure request did."""

    withdrawn: tuple[Purpose, ...]
    deleted: Mapping[str, int]  # source label -> rows deleted
    held: bool

    @property
    def deleted_total(self) -> int:
        """Rows deleted in all."""
        return sum(self.deleted.values())


def _measures_fhir(
    client_id: str, records: Mapping[str, list[dict[str, Any]]], now: datetime
) -> dict[str, Any]:
    """The client's outcome measures as a FHIR R4 Bundle (Questionnaires with their LOINC
    codes, QuestionnaireResponses with LOINC answer codes); unreadable rows are left out."""
    found = []
    for row in records.get("measure_responses", []):
        payload = row.get("payload")
        if not isinstance(payload, Mapping) or not isinstance(payload.get("answers"), Mapping):
            continue
        authored = datetime.fromisoformat(str(row["submitted_at"]).replace("Z", "+00:00"))
        language = str(payload.get("language") or "en")
        found.append(
            (str(row["id"]), str(row["measure_id"]), authored, payload["answers"], language)
        )
    return measures_bundle(
        load_builtin_measures(),
        found,
        subject_ref=f"Patient/{client_id}",
        bundle_id=f"measures-{client_id}",
        timestamp=now,
    )


class ClientRights:
    """Export and consent-based erasure for one server."""

    def __init__(
        self,
        db: Database,
        vault: ClientVault,
        audit: AuditTrail,
        consents: Consents,
        *,
        registry: SourceRegistry = DEFAULT_SOURCES,
    ) -> None:
        self.db = db
        self.vault = vault
        self.audit = audit
        self.consents = consents
        self.registry = registry

    async def export(
        self, client_id: str, *, actor: str, include_notes: bool, now: datetime
    ) -> dict[str, Any]:
        """Everything stored about one client, decrypted, as JSON; the export is audited."""
        async with self.db.read() as conn:
            client = await scheduling_rows.client_by_id(conn, client_id)
            if client is None:
                raise NotFound("No such client.")
            sessions = await self._sessions(conn, client_id)
            records = {
                source.table.name: await self._source_rows(conn, source, client_id)
                for source in self.registry.table_sources()
                if source.client_column is not None
            }
            notes = await self._notes(conn, client_id) if include_notes else None
            activity = await self._activity(conn, client_id)
        consent_records = await self.consents.records(self.db, client_id)
        document: dict[str, Any] = {
            "format": EXPORT_FORMAT,
            "generated_at": _iso(now),
            "client": {
                "id": client.id,
                "alias": client.alias,
                "created_at": _iso(client.created_at),
                "preferred_language": client.preferred_language,
            },
            "sessions": sessions,
            "consents": receipt(client.alias, consent_records, self.consents.catalog, now)[
                "records"
            ],
            "records": records,
            "outcome_measures_fhir": _measures_fhir(client_id, records, now),
            # The shared goals again as FHIR R4 `Goal` resources, with their progress answers.
            "fhir_goals": fhir_goals_from_export(records, client_id),
            "activity": activity,
            "not_included": [
                {
                    "what": "live cue features and prompts",
                    "why": "They are computed during the session and not stored.",
                },
                {
                    "what": "other people's data",
                    "why": "The therapist's account and other clients never appear here.",
                },
            ],
        }
        if notes is None:
            document["not_included"].insert(
                0,
                {
                    "what": "therapist notes",
                    "why": (
                        "Notes are your therapist's clinical record. Ask your therapist for "
                        "them; they can include them in an export made for you."
                    ),
                },
            )
        else:
            document["notes"] = notes
        async with self.db.write() as conn:
            await self.audit.record(
                conn,
                at=now,
                actor=actor,
                action="export.client",
                targets=(f"client:{client_id}",),
                details={
                    "by": (
                        SessionRole.CLIENT if actor.startswith("client") else SessionRole.THERAPIST
                    ).value,
                    "notes": include_notes,
                },
            )
        return document

    async def _sessions(self, conn: AsyncConnection, client_id: str) -> list[dict[str, Any]]:
        rows = await client_data.sessions(conn, client_id)
        return [{key: _plain(value) for key, value in row.items()} for row in rows]

    async def _decrypt(
        self, conn: AsyncConnection, ctx: FieldContext, kind: str, blob: bytes
    ) -> Any:
        try:
            if kind == "json":
                return await self.vault.decrypt_json(conn, ctx, blob)
            return await self.vault.decrypt_text(conn, ctx, blob)
        except (KeyShredded, DecryptionError):
            return UNREADABLE

    async def _source_rows(
        self, conn: AsyncConnection, source: TableSource, client_id: str
    ) -> list[dict[str, Any]]:
        """A source's rows of this client: clear columns as stored, ciphertext decrypted."""
        assert source.client_column is not None
        table = source.table
        hidden = {source.client_column, *(f.column for f in source.encrypted)}
        rows = await client_data.table_rows(
            conn,
            table,
            client_column=source.client_column,
            order_by=(source.time_column, source.id_column),
            client_id=client_id,
        )
        items = []
        for m in rows:
            item = {k: _plain(v) for k, v in m.items() if k not in hidden}
            row_id = str(m[source.id_column])
            for encrypted in source.encrypted:
                ctx = FieldContext(table.name, row_id, encrypted.field, client_id)
                item[encrypted.field] = await self._decrypt(
                    conn, ctx, encrypted.kind, bytes(m[encrypted.column])
                )
            items.append(item)
        return items

    async def _notes(self, conn: AsyncConnection, client_id: str) -> list[dict[str, Any]]:
        notes = []
        for row in await note_rows.for_client(conn, client_id, newest_first=False):
            ctx = FieldContext("client_notes", row.id, "body", client_id)
            text = await self._decrypt(conn, ctx, "text", row.body_ciphertext)
            notes.append({"id": row.id, "created_at": _iso(row.created_at), "text": text})
        return notes

    async def _activity(self, conn: AsyncConnection, client_id: str) -> list[dict[str, Any]]:
        """Audit entries about this client: when, what, and by whom in kind."""
        rows = await client_data.activity(conn, client_id)
        return [
            {"at": _iso(row.at), "action": row.action, "by": _by_whom(row.actor, client_id)}
            for row in rows
        ]

    async def erase_consent_based(
        self, client_id: str, *, channel: Channel, retention: Retention, now: datetime
    ) -> ErasureOutcome:
        """Withdraw every optional consent, then delete what was stored only under one.

        The counts are of what was stored before: withdrawing a consent already deletes its
        data (the consent event's own effect), so counting only the last step said 0."""
        sources = [
            source
            for source in self.registry.table_sources()
            if source.consent_purpose in OPTIONAL_PURPOSES and source.client_column is not None
        ]
        before: dict[str, int] = {}
        async with self.db.read() as conn:
            for source in sources:
                before[source.label] = await client_data.count_rows(
                    conn, source.table, client_column=str(source.client_column), client_id=client_id
                )
        states = await self.consents.state(self.db, client_id, now)
        withdrawn: list[Purpose] = []
        for purpose, status in states.items():
            if purpose not in OPTIONAL_PURPOSES:
                continue
            if status.state not in (ConsentState.GRANTED, ConsentState.NEEDS_RECONSENT):
                continue
            await self.consents.decide(
                self.db,
                self.audit,
                client_id=client_id,
                purpose=purpose,
                decision=ConsentDecision.WITHDRAWN,
                notice_version=status.current_notice.version,
                channel=channel,
                now=now,
            )
            withdrawn.append(purpose)
        deleted: dict[str, int] = {}
        async with self.db.write() as conn:
            held = await retention.is_held(conn, client_id, now)
            for source in sources:
                where = {"client_column": str(source.client_column), "client_id": client_id}
                if not held:
                    await client_data.delete_rows(conn, source.table, **where)
                left = await client_data.count_rows(conn, source.table, **where)
                deleted[source.label] = max(before[source.label] - left, 0)
            await self.audit.record(
                conn,
                at=now,
                actor=f"client:{client_id}",
                action="client.erase",
                targets=(f"client:{client_id}",),
                details={
                    "scope": "consent-based",
                    "key_destroyed": False,
                    "deleted": sum(deleted.values()),
                    "held": held,
                },
            )
        return ErasureOutcome(tuple(withdrawn), deleted, held)

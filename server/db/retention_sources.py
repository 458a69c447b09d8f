"""Where each retention category is stored: a registry of purgeable sources, one per table.

The purge job, the dry-run preview, the client's export and the erasure of consent-based data
all read this registry. A new table of clinical data (the cue work's `cue_*` tables and
`signal_events`) becomes one `TableSource(...)` entry in `DEFAULT_SOURCES`; a category without
an entry reports 0 and the admin console says that no data of that kind is stored yet.

Every source shows its rows to the purge job as a subquery with four columns, ordered by
(clock, key): `key` (the row's id), `client_id` (NULL when rows belong to no client), `clock`
(when the retention clock started; privacy/retention.py) and `anonymized`.

It lives with the queries because it is SQL and tables only: which rows are candidates and how
they are deleted or anonymised. What is due is decided by privacy/retention.py; the run (holds,
batches, reports, audit, crypto-shredding) is server/services/retention.py's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from privacy.consent import ConsentDecision, Purpose
from privacy.retention import Action, Category
from server.db.retention_tables import account_closures, anonymized_sessions
from server.db.tables import (
    UTCDateTime,
    account_notices,
    accounts,
    checkin_responses,
    client_contacts,
    client_goals,
    client_notes,
    clients,
    consent_records,
    cue_prompts,
    cue_summaries,
    email_outbox,
    goal_changes,
    goal_progress,
    measure_alerts,
    measure_links,
    measure_responses,
    password_reset_links,
    recovery_codes,
    safety_checks,
    signal_events,
    therapy_sessions,
)
from server.security.tokens import new_id

# Not an Argon2 hash: no password ever verifies against it.
TOMBSTONE_PASSWORD_HASH = "!"  # noqa: S105


def tombstone_email(account_id: str) -> str:
    """The e-mail an anonymised account keeps: unique, undeliverable, names no one."""
    return f"deleted-{account_id}@invalid"


class PurgeSource(Protocol):
    """One table (or view of one) holding records of a category."""

    @property
    def category(self) -> Category: ...

    @property
    def label(self) -> str:
        """Plural noun for counts, e.g. 'check-in responses'."""
        ...

    @property
    def client_table(self) -> tuple[sa.Table, str] | None:
        """(table, client column) when its rows are a client's data, for 'last data'."""
        ...

    @property
    def may_hold_last_data(self) -> bool:
        """Whether removing its rows can leave a client with no data at all. Rows recorded in
        a session never can: their session (a client's data too) outlives them."""
        ...

    def rows(self, action: Action, registry: SourceRegistry) -> sa.Subquery:
        """Candidate rows: key, client_id, clock, anonymized (the job adds cutoff and order)."""
        ...

    async def apply(
        self, conn: AsyncConnection, keys: Sequence[Any], action: Action, now: datetime
    ) -> int:
        """Delete or anonymise these rows; returns how many were changed."""
        ...


@dataclass(frozen=True)
class EncryptedField:
    """A ciphertext column and the vault field name its FieldContext uses."""

    column: str
    field: str
    kind: Literal["text", "json"]


def _delete_where_in(table: sa.Table, id_column: str, keys: Sequence[Any]) -> sa.Delete:
    return table.delete().where(table.c[id_column].in_(keys))


@dataclass(frozen=True)
class TableSource:
    """A plain table of per-client events, deleted once past retention (check-ins, cues…)."""

    category: Category
    table: sa.Table
    time_column: str
    label: str
    client_column: str | None = "client_id"
    session_column: str | None = None  # its session's metadata waits until these rows are gone
    id_column: str = "id"
    consent_purpose: Purpose | None = None  # stored only under this optional consent
    encrypted: tuple[EncryptedField, ...] = ()

    @property
    def client_table(self) -> tuple[sa.Table, str] | None:
        """(table, client column), or None for rows that belong to no client."""
        return None if self.client_column is None else (self.table, self.client_column)

    @property
    def may_hold_last_data(self) -> bool:
        """Per-client rows outside any session may be a client's last data."""
        return self.client_column is not None and self.session_column is None

    def rows(self, action: Action, registry: SourceRegistry) -> sa.Subquery:
        """Every row, with its own time column as the clock."""
        t = self.table
        client = t.c[self.client_column] if self.client_column else sa.null()
        return sa.select(
            t.c[self.id_column].label("key"),
            client.label("client_id"),
            t.c[self.time_column].label("clock"),
            sa.false().label("anonymized"),
        ).subquery()

    async def apply(
        self, conn: AsyncConnection, keys: Sequence[Any], action: Action, now: datetime
    ) -> int:
        """Delete the rows (events are never anonymised; privacy/retention.py says why)."""
        if action is not Action.DELETE:
            raise ValueError(f"{self.label} can only be deleted")
        result = await conn.execute(_delete_where_in(self.table, self.id_column, keys))
        return result.rowcount


def _minutes(delta: timedelta) -> int:
    return max(0, round(delta.total_seconds() / 60))


@dataclass(frozen=True)
class SessionSource:
    """`session_meta`: therapy sessions, due once they ended `keep_days` ago.

    A session waits while anything recorded in it remains (check-ins, cue data): deleting it
    would cascade to rows that have their own policy. Anonymising moves it to
    `anonymized_sessions` with a fresh id, the day, planned and held minutes and the status,
    and no client; invites and client cookies go with the original row.
    """

    category: Category = Category.SESSION_META
    label: str = "sessions"

    @property
    def client_table(self) -> tuple[sa.Table, str] | None:
        """Sessions are a client's data."""
        return (therapy_sessions, "client_id")

    @property
    def may_hold_last_data(self) -> bool:
        """A client's last session may be its last data."""
        return True

    def rows(self, action: Action, registry: SourceRegistry) -> sa.Subquery:
        """Sessions with nothing recorded in them left."""
        t = therapy_sessions
        empty = [
            ~sa.exists().where(child.c[column] == t.c.id)
            for child, column in registry.session_children()
        ]
        return (
            sa.select(
                t.c.id.label("key"),
                t.c.client_id.label("client_id"),
                t.c.ends_at.label("clock"),
                sa.false().label("anonymized"),
            )
            .where(*empty)
            .subquery()
        )

    async def apply(
        self, conn: AsyncConnection, keys: Sequence[Any], action: Action, now: datetime
    ) -> int:
        """Delete, or move to anonymized_sessions (delete first: a concurrent run copies none)."""
        t = therapy_sessions
        if action is Action.DELETE:
            return (await conn.execute(_delete_where_in(t, "id", keys))).rowcount
        removed = (
            await conn.execute(
                _delete_where_in(t, "id", keys).returning(
                    t.c.therapist_id, t.c.starts_at, t.c.ends_at, t.c.ended_at, t.c.status
                )
            )
        ).all()
        if removed:
            await conn.execute(
                anonymized_sessions.insert(),
                [
                    {
                        "id": new_id(),
                        "therapist_id": row.therapist_id,
                        "day": row.starts_at.replace(hour=0, minute=0, second=0, microsecond=0),
                        "planned_minutes": _minutes(row.ends_at - row.starts_at),
                        "held_minutes": (
                            _minutes(row.ended_at - row.starts_at) if row.ended_at else None
                        ),
                        "status": row.status,
                        "anonymized_at": now,
                    }
                    for row in removed
                ],
            )
        return len(removed)


class NotClientData:
    """A source whose rows are no client's data, so never a client's last data either."""

    @property
    def client_table(self) -> tuple[sa.Table, str] | None:
        """No client table: nothing here counts for "last data"."""
        return None

    @property
    def may_hold_last_data(self) -> bool:
        """Never a client's data."""
        return False


@dataclass(frozen=True)
class AnonymizedSessionSource(NotClientData):
    """What anonymisation left of sessions (no client any more): deleted only if the policy
    becomes `delete`."""

    category: Category = Category.SESSION_META
    label: str = "anonymised sessions"

    def rows(self, action: Action, registry: SourceRegistry) -> sa.Subquery:
        """Every anonymised session, clock at its day."""
        t = anonymized_sessions
        return sa.select(
            t.c.id.label("key"),
            sa.null().label("client_id"),
            t.c.day.label("clock"),
            sa.true().label("anonymized"),
        ).subquery()

    async def apply(
        self, conn: AsyncConnection, keys: Sequence[Any], action: Action, now: datetime
    ) -> int:
        """Delete (the pure core never asks to anonymise these again)."""
        return (await conn.execute(_delete_where_in(anonymized_sessions, "id", keys))).rowcount


@dataclass(frozen=True)
class ConsentSource(NotClientData):
    """`consent`: a record's clock starts when it stops being in force. Consent records are
    the clinic's evidence, not the client's data (no ciphertext).

    A grant stops being in force with the next decision on the same purpose (a withdrawal, or
    a grant of a newer notice); the latest grant is in force and never due. A withdrawal is
    itself the moment consent ended, so its clock starts at its own time. Ties go to the older
    record first, so a run stopped part way never leaves a grant without its withdrawal.
    """

    category: Category = Category.CONSENT
    label: str = "consent records"

    def rows(self, action: Action, registry: SourceRegistry) -> sa.Subquery:
        """Every record that is no longer in force, with that moment as its clock."""
        c = consent_records
        later = consent_records.alias("later")
        superseded_at = (
            sa.select(sa.func.min(later.c.at))
            .where(
                later.c.client_id == c.c.client_id,
                later.c.purpose == c.c.purpose,
                later.c.id > c.c.id,
            )
            .scalar_subquery()
        )
        clock = sa.case(
            (c.c.decision == ConsentDecision.WITHDRAWN.value, c.c.at), else_=superseded_at
        )
        return sa.select(
            c.c.id.label("key"),
            c.c.client_id.label("client_id"),
            sa.type_coerce(clock, UTCDateTime).label("clock"),
            sa.false().label("anonymized"),
        ).subquery()

    async def apply(
        self, conn: AsyncConnection, keys: Sequence[Any], action: Action, now: datetime
    ) -> int:
        """Delete (a consent record without its subject proves nothing)."""
        return (await conn.execute(_delete_where_in(consent_records, "id", keys))).rowcount


@dataclass(frozen=True)
class AccountSource(NotClientData):
    """`account`: disabled accounts, clock at the moment an admin disabled them (accounts are
    not client data).

    Anonymising leaves a tombstone (id, role, `deleted-<id>@invalid`, no password), so audit
    entries naming the account still resolve. Deleting waits until no client, session or note
    refers to the account (those references are not optional).
    """

    category: Category = Category.ACCOUNT
    label: str = "accounts"

    def rows(self, action: Action, registry: SourceRegistry) -> sa.Subquery:
        """Disabled accounts with their closure time."""
        a, closed = accounts, account_closures
        query = (
            sa.select(
                a.c.id.label("key"),
                sa.null().label("client_id"),
                closed.c.closed_at.label("clock"),
                closed.c.anonymized_at.is_not(None).label("anonymized"),
            )
            .select_from(a.join(closed, closed.c.account_id == a.c.id))
            .where(a.c.disabled.is_(True))
        )
        if action is Action.ANONYMIZE:
            query = query.where(closed.c.anonymized_at.is_(None))
        else:
            query = query.where(
                *(
                    ~sa.exists().where(table.c.therapist_id == a.c.id)
                    for table in (clients, therapy_sessions, client_notes)
                )
            )
        return query.subquery()

    async def apply(
        self, conn: AsyncConnection, keys: Sequence[Any], action: Action, now: datetime
    ) -> int:
        """Delete, or reduce to a tombstone."""
        if action is Action.DELETE:
            return (await conn.execute(_delete_where_in(accounts, "id", keys))).rowcount
        changed = 0
        for key in keys:
            result = await conn.execute(
                accounts.update()
                .where(accounts.c.id == key)
                .values(
                    email=tombstone_email(key),
                    password_hash=TOMBSTONE_PASSWORD_HASH,
                    totp_secret_ciphertext=None,
                    totp_pending_ciphertext=None,
                    totp_enabled_at=None,
                    totp_last_step=None,
                )
            )
            changed += result.rowcount
        # A tombstone keeps nothing that could sign in or identify its holder.
        for table in (recovery_codes, password_reset_links, account_notices):
            await conn.execute(table.delete().where(table.c.account_id.in_(keys)))
        await conn.execute(
            account_closures.update()
            .where(account_closures.c.account_id.in_(keys))
            .values(anonymized_at=now)
        )
        return changed


@dataclass(frozen=True)
class SourceRegistry:
    """Every purgeable source, plus client tables no category governs (therapist notes)."""

    sources: tuple[PurgeSource, ...]
    other_client_tables: tuple[tuple[sa.Table, str], ...] = ()

    def for_category(self, category: Category) -> tuple[PurgeSource, ...]:
        """The sources of one category, in registration order."""
        return tuple(s for s in self.sources if s.category is category)

    def stores(self, category: Category) -> bool:
        """Whether any table holds this category yet (audit always does)."""
        return category is Category.AUDIT or bool(self.for_category(category))

    def with_source(self, source: PurgeSource) -> SourceRegistry:
        """A registry with one more source (replaced, never mutated)."""
        return SourceRegistry((*self.sources, source), self.other_client_tables)

    def table_sources(self) -> tuple[TableSource, ...]:
        """Plain per-client event tables (export and erasure read these)."""
        return tuple(s for s in self.sources if isinstance(s, TableSource))

    def session_children(self) -> tuple[tuple[sa.Table, str], ...]:
        """(table, session column) of rows recorded in a session."""
        return tuple(
            (s.table, s.session_column)
            for s in self.table_sources()
            if s.session_column is not None
        )

    def client_data_tables(self) -> tuple[tuple[sa.Table, str], ...]:
        """(table, client column) of everything that is a client's data: once none has a row
        of a client, that client's data key and alias go too."""
        owned = tuple(s.client_table for s in self.sources if s.client_table is not None)
        return owned + self.other_client_tables


_PAYLOAD = (EncryptedField("payload_ciphertext", "payload", "json"),)


def _cue_source(category: Category, table: sa.Table, label: str) -> TableSource:
    """The cue work's per-session tables: written and kept only under `cue_analysis`."""
    return TableSource(
        category,
        table,
        time_column="created_at",
        label=label,
        session_column="session_id",
        consent_purpose=Purpose.CUE_ANALYSIS,
        encrypted=_PAYLOAD,
    )


DEFAULT_SOURCES = SourceRegistry(
    sources=(
        # Sessions first: they outlive the rest, so "has this client data left?" stops early.
        SessionSource(),
        AnonymizedSessionSource(),
        _cue_source(Category.CUE, cue_prompts, "cue prompts"),
        _cue_source(Category.CUE, cue_summaries, "cue summaries"),
        _cue_source(Category.SIGNAL, signal_events, "signal events"),
        TableSource(
            Category.CHECKIN,
            checkin_responses,
            time_column="submitted_at",
            label="check-in responses",
            session_column="session_id",
            consent_purpose=Purpose.CHECKIN_STORAGE,
            encrypted=_PAYLOAD,
        ),
        # Outcome measures: the clinical record, under no optional consent (docs/privacy.md).
        TableSource(
            Category.MEASURE,
            measure_responses,
            time_column="submitted_at",
            label="outcome-measure responses",
            session_column="session_id",
            encrypted=_PAYLOAD,
        ),
        TableSource(
            Category.MEASURE,
            measure_alerts,
            time_column="raised_at",
            label="safety-alert records",
            session_column="session_id",
        ),
        TableSource(
            Category.MEASURE,
            measure_links,
            time_column="created_at",
            label="emailed measure links",
            session_column="session_id",
        ),
        TableSource(
            Category.SAFETY,
            safety_checks,
            time_column="submitted_at",
            label="safety checks",
            session_column="session_id",
            encrypted=_PAYLOAD,
        ),
        # Progress answers first (recorded in a session, under the check-in consent), then the
        # history, then the goals themselves (deleting a goal takes its rows with it).
        TableSource(
            Category.GOAL,
            goal_progress,
            time_column="submitted_at",
            label="goal progress answers",
            session_column="session_id",
            consent_purpose=Purpose.CHECKIN_STORAGE,
            encrypted=_PAYLOAD,
        ),
        TableSource(Category.GOAL, goal_changes, time_column="at", label="goal changes"),
        TableSource(
            Category.GOAL,
            client_goals,
            time_column="updated_at",
            label="goals",
            encrypted=(EncryptedField("text_ciphertext", "text", "text"),),
        ),
        TableSource(
            Category.OUTBOX,
            email_outbox,
            time_column="created_at",
            label="emails",
            session_column="session_id",
            consent_purpose=Purpose.CONTACT,
            encrypted=(EncryptedField("message_ciphertext", "message", "text"),),
        ),
        TableSource(
            Category.CONTACT,
            client_contacts,
            time_column="updated_at",
            label="email addresses",
            id_column="client_id",
            consent_purpose=Purpose.CONTACT,
            encrypted=(EncryptedField("email_ciphertext", "email", "json"),),
        ),
        ConsentSource(),
        AccountSource(),
    ),
    # Notes are the therapist's clinical record: no category purges them (docs/privacy.md).
    other_client_tables=((client_notes, "client_id"),),
)

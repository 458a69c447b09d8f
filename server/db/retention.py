"""Retention's rows: saved policies, legal holds, purge reports, and the purge job's scans.

SQL only. What is due is decided by privacy/retention.py; which tables hold each category is
server/db/retention_sources.py; the run itself is server/services/retention.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from privacy.retention import Action, Category, Hold
from server.db.retention_tables import (
    account_closures,
    legal_holds,
    purge_reports,
    retention_policies,
)
from server.db.tables import AnyRow, clients, consent_records

Counts = Mapping[Category, Mapping[Action, int]]


# --- policies -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredPolicy:
    """A policy row as an admin saved it (category and action as stored text)."""

    category: str
    keep_days: int
    action: str
    floor_override_reason: str | None
    updated_at: datetime
    updated_by: str


def _policy(row: AnyRow) -> StoredPolicy:
    m = row._mapping
    return StoredPolicy(
        category=m["category"],
        keep_days=m["keep_days"],
        action=m["action"],
        floor_override_reason=m["floor_override_reason"],
        updated_at=m["updated_at"],
        updated_by=m["updated_by"],
    )


async def stored_policies(conn: AsyncConnection) -> dict[str, StoredPolicy]:
    """Every saved policy by category (a category without a row uses its default)."""
    return {p.category: p for p in map(_policy, await conn.execute(sa.select(retention_policies)))}


async def stored_policy(conn: AsyncConnection, category: Category) -> StoredPolicy | None:
    """The saved policy of one category, if an admin saved one."""
    t = retention_policies
    row = (await conn.execute(sa.select(t).where(t.c.category == category.value))).first()
    return None if row is None else _policy(row)


async def replace_policy(conn: AsyncConnection, policy: StoredPolicy) -> None:
    """Save a category's policy in place of any earlier one."""
    t = retention_policies
    await conn.execute(t.delete().where(t.c.category == policy.category))
    await conn.execute(
        t.insert().values(
            category=policy.category,
            keep_days=policy.keep_days,
            action=policy.action,
            floor_override_reason=policy.floor_override_reason,
            updated_at=policy.updated_at,
            updated_by=policy.updated_by,
        )
    )


# --- account closures (the `account` clock) -----------------------------------------------------


async def account_closure(
    conn: AsyncConnection, account_id: str
) -> tuple[datetime | None, datetime | None]:
    """(closed_at, anonymized_at) of an account; (None, None) while it is not closed."""
    c = account_closures.c
    row = (
        await conn.execute(
            sa.select(c.closed_at, c.anonymized_at).where(c.account_id == account_id)
        )
    ).first()
    return (None, None) if row is None else (row.closed_at, row.anonymized_at)


async def start_account_clock(conn: AsyncConnection, account_id: str, at: datetime) -> None:
    """The account was disabled at `at`: its retention clock starts (again) there."""
    await stop_account_clock(conn, account_id)
    await conn.execute(account_closures.insert().values(account_id=account_id, closed_at=at))


async def stop_account_clock(conn: AsyncConnection, account_id: str) -> None:
    """The account was re-enabled: no retention clock runs for it."""
    await conn.execute(account_closures.delete().where(account_closures.c.account_id == account_id))


# --- legal holds --------------------------------------------------------------------------------


@dataclass(frozen=True)
class LegalHold:
    """A hold as stored: who placed it and why, and who lifted it and why."""

    id: str
    client_id: str
    placed_by: str
    reason: str
    placed_at: datetime
    released_at: datetime | None = None
    released_by: str | None = None
    release_reason: str | None = None

    def as_hold(self) -> Hold:
        """The pure core's view of it."""
        return Hold(self.client_id, self.placed_by, self.reason, self.placed_at, self.released_at)

    def is_active(self, now: datetime) -> bool:
        """Whether it protects the client's records at `now`."""
        return self.as_hold().is_active(now)


def _hold(row: AnyRow) -> LegalHold:
    m = row._mapping
    return LegalHold(
        id=m["id"],
        client_id=m["client_id"],
        placed_by=m["placed_by"],
        reason=m["reason"],
        placed_at=m["placed_at"],
        released_at=m["released_at"],
        released_by=m["released_by"],
        release_reason=m["release_reason"],
    )


def _active_at(now: datetime) -> sa.ColumnElement[bool]:
    """Placed by `now` and not lifted by then."""
    h = legal_holds.c
    return sa.and_(h.placed_at <= now, sa.or_(h.released_at.is_(None), h.released_at > now))


async def holds(conn: AsyncConnection, *, include_released: bool) -> list[LegalHold]:
    """Holds, standing ones first, newest first."""
    h = legal_holds
    query = sa.select(h).order_by(h.c.released_at.is_not(None), h.c.placed_at.desc())
    if not include_released:
        query = query.where(h.c.released_at.is_(None))
    return [_hold(row) for row in await conn.execute(query)]


async def active_holds(conn: AsyncConnection, now: datetime) -> list[LegalHold]:
    """Every hold in force at `now`."""
    return [_hold(row) for row in await conn.execute(sa.select(legal_holds).where(_active_at(now)))]


async def is_held(conn: AsyncConnection, client_id: str, now: datetime) -> bool:
    """Whether a hold protects this client's data at `now`."""
    query = sa.select(legal_holds.c.id).where(_active_at(now), legal_holds.c.client_id == client_id)
    return (await conn.execute(query)).first() is not None


async def standing_hold(conn: AsyncConnection, client_id: str) -> LegalHold | None:
    """The client's hold that nobody has lifted yet, if any."""
    h = legal_holds.c
    query = sa.select(legal_holds).where(h.client_id == client_id, h.released_at.is_(None))
    row = (await conn.execute(query)).first()
    return _hold(row) if row else None


async def insert_hold(conn: AsyncConnection, hold: LegalHold) -> None:
    """Store a newly placed hold."""
    await conn.execute(
        legal_holds.insert().values(
            id=hold.id,
            client_id=hold.client_id,
            placed_by=hold.placed_by,
            reason=hold.reason,
            placed_at=hold.placed_at,
        )
    )


async def release_hold(
    conn: AsyncConnection, hold_id: str, *, at: datetime, by: str, reason: str
) -> None:
    """Record that a hold was lifted, by whom and why."""
    await conn.execute(
        legal_holds.update()
        .where(legal_holds.c.id == hold_id)
        .values(released_at=at, released_by=by, release_reason=reason)
    )


async def client_has_records(conn: AsyncConnection, client_id: str) -> bool:
    """Whether the client is known here: an alias row, or consent records outliving it."""
    found = await conn.scalar(
        sa.select(sa.literal(1)).where(
            sa.or_(
                sa.exists().where(clients.c.id == client_id),
                sa.exists().where(consent_records.c.client_id == client_id),
            )
        )
    )
    return bool(found)


# --- purge reports ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PurgeReport:
    """What one purge run did (or, for a dry run, would do): counts per category and action."""

    id: str | None
    trigger: str
    actor: str
    started_at: datetime
    finished_at: datetime | None
    duration_ms: int | None
    counts: Counts
    keys_destroyed: int = 0
    problems: tuple[str, ...] = ()
    dry_run: bool = False

    def count(self, category: Category, action: Action) -> int:
        """How many records of a category got (or would get) this action."""
        return self.counts.get(category, {}).get(action, 0)

    @property
    def total(self) -> int:
        """Records changed in all."""
        return sum(n for by_action in self.counts.values() for n in by_action.values())

    @property
    def finished(self) -> bool:
        """False while running, or when the run was stopped part way (the next one finishes)."""
        return self.finished_at is not None


def _counts_text(counts: Counts) -> str:
    return json.dumps(
        {c.value: {a.value: n for a, n in by.items()} for c, by in counts.items()},
        sort_keys=True,
    )


def _parse_counts(text: str) -> dict[Category, dict[Action, int]]:
    parsed: dict[Category, dict[Action, int]] = {}
    for category, by_action in json.loads(text).items():
        parsed[Category(category)] = {Action(a): int(n) for a, n in by_action.items()}
    return parsed


def _report(row: AnyRow) -> PurgeReport:
    m = row._mapping
    return PurgeReport(
        id=m["id"],
        trigger=m["trigger"],
        actor=m["actor"],
        started_at=m["started_at"],
        finished_at=m["finished_at"],
        duration_ms=m["duration_ms"],
        counts=_parse_counts(m["counts"]),
        keys_destroyed=m["keys_destroyed"],
        problems=tuple(json.loads(m["problems"])),
    )


async def reports(conn: AsyncConnection, *, limit: int) -> list[PurgeReport]:
    """Purge reports, newest first."""
    query = sa.select(purge_reports).order_by(purge_reports.c.started_at.desc()).limit(limit)
    return [_report(row) for row in await conn.execute(query)]


async def last_run_started(conn: AsyncConnection) -> datetime | None:
    """When the newest purge run started, if any did."""
    started: datetime | None = await conn.scalar(sa.select(sa.func.max(purge_reports.c.started_at)))
    return started


async def start_report(
    conn: AsyncConnection, report_id: str, *, started_at: datetime, trigger: str, actor: str
) -> None:
    """Store a run's report as it starts: no counts yet, not finished."""
    await conn.execute(
        purge_reports.insert().values(
            id=report_id,
            started_at=started_at,
            trigger=trigger,
            actor=actor,
            counts="{}",
            keys_destroyed=0,
            problems="[]",
        )
    )


async def save_progress(
    conn: AsyncConnection, report_id: str, counts: Counts, keys_destroyed: int
) -> None:
    """A running report's counts so far."""
    await conn.execute(
        purge_reports.update()
        .where(purge_reports.c.id == report_id)
        .values(counts=_counts_text(counts), keys_destroyed=keys_destroyed)
    )


async def finish_report(
    conn: AsyncConnection,
    report_id: str,
    *,
    finished_at: datetime,
    duration_ms: int,
    counts: Counts,
    keys_destroyed: int,
    problems: Iterable[str],
) -> None:
    """A run's report as it ended."""
    await conn.execute(
        purge_reports.update()
        .where(purge_reports.c.id == report_id)
        .values(
            finished_at=finished_at,
            duration_ms=duration_ms,
            counts=_counts_text(counts),
            keys_destroyed=keys_destroyed,
            problems=json.dumps(list(problems)),
        )
    )


# --- the purge job's scans ------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """A row a source offers for purging (retention_sources: key, client_id, clock, anonymized)."""

    key: Any
    client_id: str | None
    clock: datetime
    anonymized: bool


async def candidates(
    conn: AsyncConnection,
    rows: sa.Subquery,
    *,
    cutoff: datetime,
    now: datetime,
    after: tuple[datetime, Any] | None,
    limit: int,
) -> list[Candidate]:
    """Up to `limit` rows whose clock is at or before `cutoff`, of no client held at `now`, in
    (clock, key) order after `after` (a range on the clock keeps the index walk; ties are
    filtered)."""
    held = sa.select(legal_holds.c.client_id).where(_active_at(now))
    query = (
        sa.select(rows.c.key, rows.c.client_id, rows.c.clock, rows.c.anonymized)
        .where(
            rows.c.clock <= cutoff,
            sa.or_(rows.c.client_id.is_(None), rows.c.client_id.not_in(held)),
        )
        .order_by(rows.c.clock, rows.c.key)
        .limit(limit)
    )
    if after is not None:
        query = query.where(
            rows.c.clock >= after[0], sa.or_(rows.c.clock > after[0], rows.c.key > after[1])
        )
    return [
        Candidate(row.key, row.client_id, row.clock, bool(row.anonymized))
        for row in await conn.execute(query)
    ]


async def clients_with_rows(
    conn: AsyncConnection, table: sa.Table, column: str, client_ids: Iterable[str]
) -> set[str]:
    """Which of these clients still have a row in `table` (by its client column)."""
    col = table.c[column]
    query = sa.select(col).where(col.in_(sorted(client_ids))).distinct()
    return set(await conn.scalars(query))

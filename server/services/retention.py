"""Retention's operations: policies, legal holds, the purge run and its reports.

The decisions are pure (`privacy.retention.due_for_purge`) and the SQL is in `server.db.retention`
and `server.db.retention_sources`; this module lists candidates in bounded batches, applies the
decisions, destroys the data key of a client whose last data went (crypto-shredding), and
writes a purge report and a `retention.purge` audit entry per run.

A run is safe to stop at any moment. Each batch is one transaction holding the decisions'
changes, the report's running counts and, for audit entries, the signed anchor; a stopped run
leaves whole batches done and nothing half done, and the next run finishes what is still due.
Between batches the run yields, so the writes of live sessions wait behind at most one small
batch (on SQLite, `Database.write()` queues writers). Batches start at 500 rows and follow a
time budget (`BatchSizer`): about 0.1 s of holding the write path each, between 100 and 5,000
rows, so a slow or busy machine gets smaller batches and an idle one fewer commits.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from privacy.retention import (
    ALLOWED_ACTIONS,
    DEFAULT_POLICIES,
    DEFAULT_REASONS,
    FLOORS,
    Action,
    Category,
    Hold,
    Policy,
    PolicyError,
    Record,
    due_for_purge,
    expiry_cutoff,
    validate_policy,
)
from server.audit import AuditTrail
from server.db import audit as audit_rows
from server.db import retention as retention_rows
from server.db import scheduling as scheduling_rows
from server.db.engine import Database
from server.db.retention import Candidate, Counts, StoredPolicy
from server.db.retention import LegalHold as LegalHold  # re-exported: what the methods return
from server.db.retention import PurgeReport as PurgeReport
from server.db.retention_sources import DEFAULT_SOURCES, PurgeSource, SourceRegistry
from server.errors import Conflict, InvalidInput, NotFound
from server.security.tokens import new_id
from server.vault_store import ClientVault

BATCH_SIZE: Final = 500  # the first batch; then sized to the write budget below
MIN_BATCH_SIZE: Final = 100
MAX_BATCH_SIZE: Final = 5000
BATCH_BUDGET_SECONDS: Final = 0.1  # how long one batch may hold the write path
PURGE_ACTOR: Final = "system:purge"
MAX_REASON_CHARS: Final = 500
_CLIENT_ID = re.compile(r"^[0-9a-f]{32}$")
_AUDIT_ID_DIGITS = 20  # record ids of audit entries sort like their sequence numbers

# Rows recorded in a session go before the session; audit last, after the run's other work.
PURGE_ORDER: Final = (
    Category.CUE,
    Category.SIGNAL,
    Category.CHECKIN,
    Category.SAFETY,
    Category.MEASURE,
    Category.GOAL,
    Category.OUTBOX,
    Category.CONTACT,
    Category.SESSION_META,
    Category.ACCOUNT,
    Category.CONSENT,
    Category.AUDIT,
)

CATEGORY_NOUNS: Final[Mapping[Category, str]] = {
    Category.SESSION_META: "session records",
    Category.CHECKIN: "check-in records",
    Category.CUE: "cue records",
    Category.SIGNAL: "signal events",
    Category.CONSENT: "consent records",
    Category.AUDIT: "audit entries",
    Category.ACCOUNT: "accounts",
    Category.CONTACT: "email addresses",
    Category.OUTBOX: "emails",
    Category.SAFETY: "safety checks",
    Category.MEASURE: "outcome-measure records",
    Category.GOAL: "goal records",
}
"""How counts of each category read: "this would delete 1,204 cue records now"."""

# --- input from people (CLI, API, pages) ------------------------------------------------------


def parse_client_id(raw: str) -> str:
    """A client id as Attune writes it (32 lowercase hex digits), else InvalidInput."""
    value = raw.strip()
    if not _CLIENT_ID.match(value):
        raise InvalidInput("client_id: the client's id, 32 hexadecimal digits.")
    return value


def clean_reason(raw: str | None, what: str = "reason") -> str:
    """A short reason a person gave: required, one paragraph, at most 500 characters."""
    text = " ".join((raw or "").split())
    if not text:
        raise InvalidInput(f"{what}: say why.")
    if len(text) > MAX_REASON_CHARS:
        raise InvalidInput(f"{what}: keep it under {MAX_REASON_CHARS} characters.")
    return text


def parse_policy(
    category: str, keep_days: int | str, action: str | None, floor_override_reason: str | None
) -> Policy:
    """A policy from loose input; InvalidInput names what is wrong (and the floor it breaks)."""
    try:
        parsed_category = Category(category)
    except ValueError:
        names = ", ".join(c.value for c in Category)
        raise InvalidInput(f"category: one of {names}.") from None
    try:
        parsed_action = Action(action) if action else DEFAULT_POLICIES[parsed_category].action
    except ValueError:
        raise InvalidInput("action: delete or anonymize.") from None
    if isinstance(keep_days, str):
        text = keep_days.strip()
        if not (text.isascii() and text.isdigit() and len(text) <= 6):
            raise InvalidInput("keep_days: a whole number of days, at most 36500.")
        keep_days = int(text)
    reason = " ".join(floor_override_reason.split()) if floor_override_reason else None
    if reason and len(reason) > MAX_REASON_CHARS:
        raise InvalidInput(f"reason: keep it under {MAX_REASON_CHARS} characters.")
    try:
        policy = Policy(parsed_category, keep_days, parsed_action, reason or None)
        validate_policy(policy)
    except PolicyError as exc:
        raise InvalidInput(str(exc)) from None
    return policy


def below_floor(policy: Policy) -> bool:
    """Whether the policy keeps its category shorter than the category's floor."""
    floor = FLOORS.get(policy.category)
    return floor is not None and policy.keep_days < floor.keep_days


# --- records ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PolicyInForce:
    """A category's policy as saved (or the default), and whether any table holds it yet."""

    policy: Policy
    is_default: bool
    stored: bool
    updated_at: datetime | None = None
    updated_by: str | None = None


def counts_json(counts: Counts) -> dict[str, dict[str, int]]:
    """Every category and its allowed actions, zeros included (the report's JSON shape)."""
    return {
        category.value: {
            action.value: counts.get(category, {}).get(action, 0)
            for action in sorted(ALLOWED_ACTIONS[category])
        }
        for category in Category
    }


# --- JSON views (the API, the CLI's --json and the pages share them) --------------------------


def policy_json(entry: PolicyInForce) -> dict[str, Any]:
    """A category's policy, its default and the reason for it, floor and allowed actions."""
    policy, category = entry.policy, entry.policy.category
    floor = FLOORS.get(category)
    default = DEFAULT_POLICIES[category]
    return {
        "category": category.value,
        "keep_days": policy.keep_days,
        "action": policy.action.value,
        "allowed_actions": sorted(a.value for a in ALLOWED_ACTIONS[category]),
        "floor_days": floor.keep_days if floor else None,
        "floor_rule": floor.rule if floor else None,
        "floor_override_reason": policy.floor_override_reason if below_floor(policy) else None,
        "is_default": entry.is_default,
        "default": {"keep_days": default.keep_days, "action": default.action.value},
        "default_reason": DEFAULT_REASONS[category],
        "stored": entry.stored,
        "updated_at": entry.updated_at.isoformat() if entry.updated_at else None,
        "updated_by": entry.updated_by,
    }


def hold_json(hold: LegalHold, now: datetime) -> dict[str, Any]:
    """A legal hold as the API shows it."""
    return {
        "id": hold.id,
        "client_id": hold.client_id,
        "placed_by": hold.placed_by,
        "reason": hold.reason,
        "placed_at": hold.placed_at.isoformat(),
        "active": hold.is_active(now),
        "released_at": hold.released_at.isoformat() if hold.released_at else None,
        "released_by": hold.released_by,
        "release_reason": hold.release_reason,
    }


def report_json(report: PurgeReport) -> dict[str, Any]:
    """A purge report: counts per category and action (zeros included), duration, problems."""
    return {
        "id": report.id,
        "dry_run": report.dry_run,
        "trigger": report.trigger,
        "actor": report.actor,
        "started_at": report.started_at.isoformat(),
        "finished_at": report.finished_at.isoformat() if report.finished_at else None,
        "finished": report.finished,
        "duration_ms": report.duration_ms,
        "counts": counts_json(report.counts),
        "total": report.total,
        "keys_destroyed": report.keys_destroyed,
        "problems": list(report.problems),
    }


@dataclass
class _Run:
    """A run's running totals (one task owns it)."""

    report_id: str | None
    counts: dict[Category, dict[Action, int]] = field(default_factory=dict)
    keys_destroyed: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def dry_run(self) -> bool:
        return self.report_id is None

    def add(self, category: Category, action: Action, n: int) -> None:
        if n:
            by_action = self.counts.setdefault(category, {})
            by_action[action] = by_action.get(action, 0) + n


@dataclass
class BatchSizer:
    """Batch sizes that keep each write transaction near a time budget."""

    size: int
    smallest: int
    largest: int
    budget_seconds: float

    def __post_init__(self) -> None:
        if not 1 <= self.smallest <= self.size <= self.largest:
            raise ValueError("batch sizes need 1 <= smallest <= size <= largest")

    def after(self, rows: int, seconds: float) -> None:
        """Adapt to how long the last batch of `rows` rows took (a short last batch says
        nothing): halve above the budget, double below half of it."""
        if rows < self.size:
            return
        if seconds > self.budget_seconds:
            self.size = max(self.smallest, self.size // 2)
        elif seconds < self.budget_seconds / 2:
            self.size = min(self.largest, self.size * 2)


def _audit_client(actor: str, targets: tuple[str, ...], held: set[str]) -> str | None:
    """The client an audit entry concerns; a held one first, so the hold stops the prefix."""
    named = [p.split(":", 1)[1] for p in (actor, *targets) if p.startswith("client:")]
    return next((c for c in named if c in held), named[0] if named else None)


# --- the service --------------------------------------------------------------------------------


STOPPED_FOR_SHUTDOWN: Final = "stopped after a finished batch for a shutdown; the next run goes on"


class _PurgeStopped(Exception):
    """Raised between batches once a stop was requested (never escapes `purge`)."""


class Retention:
    """Policies, holds and purge runs over one database."""

    def __init__(
        self,
        db: Database,
        audit: AuditTrail,
        vault: ClientVault,
        *,
        registry: SourceRegistry = DEFAULT_SOURCES,
        batch_size: int = BATCH_SIZE,
        max_batch_size: int = MAX_BATCH_SIZE,
        batch_budget_seconds: float = BATCH_BUDGET_SECONDS,
        pause_seconds: float = 0.0,
    ) -> None:
        self.db = db
        self.audit = audit
        self.vault = vault
        self.registry = registry
        self.batch_size = batch_size
        self.max_batch_size = max(batch_size, max_batch_size)
        self.batch_budget_seconds = batch_budget_seconds
        self.pause_seconds = pause_seconds
        self._stop_requested = False
        self._sizer()  # refuse impossible sizes now, not in the middle of a run

    def _sizer(self) -> BatchSizer:
        return BatchSizer(
            size=self.batch_size,
            smallest=min(MIN_BATCH_SIZE, self.batch_size),
            largest=self.max_batch_size,
            budget_seconds=self.batch_budget_seconds,
        )

    # --- policies ---

    async def policies(self) -> dict[Category, PolicyInForce]:
        """The policy of every category: saved by an admin, or the documented default."""
        async with self.db.read() as conn:
            rows = await retention_rows.stored_policies(conn)
        result: dict[Category, PolicyInForce] = {}
        for category in Category:
            row = rows.get(category.value)
            stored = self.registry.stores(category)
            if row is None:
                result[category] = PolicyInForce(DEFAULT_POLICIES[category], True, stored)
                continue
            policy = Policy(category, row.keep_days, Action(row.action), row.floor_override_reason)
            result[category] = PolicyInForce(policy, False, stored, row.updated_at, row.updated_by)
        return result

    async def set_policy(self, policy: Policy, *, actor: str, now: datetime) -> list[str]:
        """Save a policy (validated: floors need an override reason); returns its warnings."""
        try:
            warnings = validate_policy(policy)
        except PolicyError as exc:
            raise InvalidInput(str(exc)) from None
        overridden = below_floor(policy)
        async with self.db.write() as conn:
            previous = await retention_rows.stored_policy(conn, policy.category)
            before = previous or DEFAULT_POLICIES[policy.category]
            await retention_rows.replace_policy(
                conn,
                StoredPolicy(
                    category=policy.category.value,
                    keep_days=policy.keep_days,
                    action=policy.action.value,
                    floor_override_reason=policy.floor_override_reason if overridden else None,
                    updated_at=now,
                    updated_by=actor,
                ),
            )
            # The override's wording stays in the policy table; the trail records that it exists.
            await self.audit.record(
                conn,
                at=now,
                actor=actor,
                action="retention.policy_change",
                details={
                    "category": policy.category.value,
                    "keep_days": policy.keep_days,
                    "action": policy.action.value,
                    "floor_override": overridden,
                    "previous_keep_days": before.keep_days,
                    "previous_action": str(before.action),
                },
            )
        return warnings

    async def preview(self, policy: Policy, now: datetime) -> dict[Action, int]:
        """Dry run of one category under a proposed policy: how many records it would change now."""
        try:
            validate_policy(policy)
        except PolicyError as exc:
            raise InvalidInput(str(exc)) from None
        run = _Run(report_id=None)
        await self._purge_category(policy, now, run)
        return dict(run.counts.get(policy.category, {}))

    # --- legal holds ---

    async def holds(self, *, include_released: bool = True) -> list[LegalHold]:
        """Holds, standing ones first, newest first."""
        async with self.db.read() as conn:
            return await retention_rows.holds(conn, include_released=include_released)

    async def add_hold(
        self, client_id: str, reason: str, *, actor: str, now: datetime
    ) -> LegalHold:
        """Place a hold: nothing of this client is purged until it is lifted."""
        client_id = parse_client_id(client_id)
        reason = clean_reason(reason)
        hold = LegalHold(new_id(), client_id, actor, reason, now)
        async with self.db.write() as conn:
            if not await retention_rows.client_has_records(conn, client_id):
                raise NotFound("No client with this id has data here.")
            if await retention_rows.standing_hold(conn, client_id) is not None:
                raise Conflict("This client's data is already on hold.")
            await retention_rows.insert_hold(conn, hold)
            await self.audit.record(
                conn,
                at=now,
                actor=actor,
                action="retention.hold_add",
                targets=(f"client:{client_id}",),
            )
        return hold

    async def remove_hold(
        self, client_id: str, reason: str, *, actor: str, now: datetime
    ) -> LegalHold:
        """Lift the standing hold on a client; purging resumes with the next run."""
        client_id = parse_client_id(client_id)
        reason = clean_reason(reason)
        async with self.db.write() as conn:
            standing = await retention_rows.standing_hold(conn, client_id)
            if standing is None:
                raise NotFound("This client's data is not on hold.")
            await retention_rows.release_hold(conn, standing.id, at=now, by=actor, reason=reason)
            await self.audit.record(
                conn,
                at=now,
                actor=actor,
                action="retention.hold_remove",
                targets=(f"client:{client_id}",),
            )
        return LegalHold(
            standing.id,
            client_id,
            standing.placed_by,
            standing.reason,
            standing.placed_at,
            now,
            actor,
            reason,
        )

    async def is_held(self, conn: AsyncConnection, client_id: str, now: datetime) -> bool:
        """Whether a hold protects this client's data at `now`."""
        return await retention_rows.is_held(conn, client_id, now)

    # --- reports ---

    async def reports(self, *, limit: int = 50) -> list[PurgeReport]:
        """Purge reports, newest first."""
        async with self.db.read() as conn:
            return await retention_rows.reports(conn, limit=limit)

    async def last_run_started(self) -> datetime | None:
        """When the newest purge run started, if any did."""
        async with self.db.read() as conn:
            return await retention_rows.last_run_started(conn)

    # --- the purge run ---

    async def purge(
        self, now: datetime, *, trigger: str, actor: str, dry_run: bool = False
    ) -> PurgeReport:
        """Apply every policy at `now`; a dry run counts the same work and changes nothing."""
        clock_started = time.monotonic()
        policies = await self.policies()
        run = _Run(report_id=None if dry_run else new_id())
        if run.report_id is not None:
            async with self.db.write() as conn:
                await retention_rows.start_report(
                    conn, run.report_id, started_at=now, trigger=trigger, actor=actor
                )
        try:
            for category in PURGE_ORDER:
                policy = policies[category].policy
                try:
                    validate_policy(policy)
                except PolicyError as exc:
                    run.problems.append(f"{category} skipped: {exc}")
                    continue
                await self._purge_category(policy, now, run)
        except _PurgeStopped:
            run.problems.append(STOPPED_FOR_SHUTDOWN)
        duration_ms = round((time.monotonic() - clock_started) * 1000)
        finished_at = now + timedelta(milliseconds=duration_ms)
        if run.report_id is not None:
            await self._finish(run.report_id, run, now, finished_at, duration_ms, actor)
        return PurgeReport(
            id=run.report_id,
            trigger=trigger,
            actor=actor,
            started_at=now,
            finished_at=finished_at,
            duration_ms=duration_ms,
            counts={c: dict(by) for c, by in run.counts.items()},
            keys_destroyed=run.keys_destroyed,
            problems=tuple(run.problems),
            dry_run=dry_run,
        )

    async def _finish(
        self,
        report_id: str,
        run: _Run,
        now: datetime,
        finished_at: datetime,
        duration_ms: int,
        actor: str,
    ) -> None:
        details: dict[str, str | int | bool | None] = {
            "report": run.report_id,
            "keys_destroyed": run.keys_destroyed,
            "problems": len(run.problems),
        }
        for category, by_action in sorted(run.counts.items()):
            for action, n in sorted(by_action.items()):
                details[f"{category.value}.{action.value}"] = n
        async with self.db.write() as conn:
            await retention_rows.finish_report(
                conn,
                report_id,
                finished_at=finished_at,
                duration_ms=duration_ms,
                counts=run.counts,
                keys_destroyed=run.keys_destroyed,
                problems=run.problems,
            )
            await self.audit.record(
                conn, at=now, actor=actor, action="retention.purge", details=details
            )

    @asynccontextmanager
    async def _batch(self, run: _Run) -> AsyncIterator[AsyncConnection]:
        """One batch: a write transaction, or a plain read for a dry run."""
        if run.dry_run:
            async with self.db.read() as conn:
                yield conn
        else:
            async with self.db.write() as conn:
                yield conn

    def request_stop(self) -> None:
        """Shutting down: the run in progress ends after its current batch commits."""
        self._stop_requested = True

    async def _yield_between_batches(self) -> None:
        if self._stop_requested:
            raise _PurgeStopped
        await asyncio.sleep(self.pause_seconds)
        if self._stop_requested:
            raise _PurgeStopped

    async def _purge_category(self, policy: Policy, now: datetime, run: _Run) -> None:
        if policy.category is Category.AUDIT:
            await self._purge_audit(policy, now, run)
            return
        for source in self.registry.for_category(policy.category):
            try:
                await self._purge_source(source, policy, now, run)
            except IntegrityError:
                # A row another table still refers to: leave the rest of this source for later.
                run.problems.append(
                    f"{source.label}: stopped, a record is still referred to by other data"
                )

    async def _active_holds(self, conn: AsyncConnection, now: datetime) -> list[Hold]:
        return [hold.as_hold() for hold in await retention_rows.active_holds(conn, now)]

    async def _purge_source(
        self, source: PurgeSource, policy: Policy, now: datetime, run: _Run
    ) -> None:
        rows = source.rows(policy.action, self.registry)
        cutoff = expiry_cutoff(policy, now)
        sizer = self._sizer()
        # The query skips held clients as of each batch; the pure core double-checks with the
        # holds as the scan began (a hold lifted meanwhile only waits for the next run).
        async with self.db.read() as conn:
            holds = await self._active_holds(conn, now)
        after: tuple[datetime, Any] | None = None
        while True:
            started = time.monotonic()
            async with self._batch(run) as conn:
                found = await retention_rows.candidates(
                    conn, rows, cutoff=cutoff, now=now, after=after, limit=sizer.size
                )
                if not found:
                    return
                await self._decide_and_apply(conn, source, policy, found, holds, now, run)
            if len(found) < sizer.size:
                return
            sizer.after(len(found), time.monotonic() - started)
            after = (found[-1].clock, found[-1].key)
            await self._yield_between_batches()

    async def _decide_and_apply(
        self,
        conn: AsyncConnection,
        source: PurgeSource,
        policy: Policy,
        found: Sequence[Candidate],
        holds: Sequence[Hold],
        now: datetime,
        run: _Run,
    ) -> None:
        key_of = {str(row.key): row.key for row in found}
        records = [
            Record(policy.category, str(row.key), row.client_id, row.clock, row.anonymized)
            for row in found
        ]
        decisions = due_for_purge(records, {policy.category: policy}, holds, now)
        if not decisions:
            return
        if run.dry_run:
            run.add(policy.category, policy.action, len(decisions))
            return
        keys = [key_of[d.record_id] for d in decisions]
        run.add(policy.category, policy.action, await source.apply(conn, keys, policy.action, now))
        if source.may_hold_last_data:
            touched = {d.client_id for d in decisions if d.client_id is not None}
            run.keys_destroyed += await self._close_emptied_clients(conn, touched, now)
        await self._save_progress(conn, run)

    async def _save_progress(self, conn: AsyncConnection, run: _Run) -> None:
        """The report's counts move in the batch's own transaction: a stopped run's report
        says exactly what it did."""
        if run.report_id is not None:
            await retention_rows.save_progress(conn, run.report_id, run.counts, run.keys_destroyed)

    async def _close_emptied_clients(
        self, conn: AsyncConnection, client_ids: set[str], now: datetime
    ) -> int:
        """Crypto-shred every client in `client_ids` with no data left; returns keys destroyed.

        "No data left" means no row in any table of the client's data (sessions, check-ins,
        notes, and every registered source with a client column). Consent records and audit
        entries are the clinic's evidence and hold no ciphertext, so they do not count. The
        data key goes first, then the alias row, in the batch's transaction.
        """
        if not client_ids:
            return 0
        emptied = set(client_ids)
        for table, column in self.registry.client_data_tables():  # sessions first: usually enough
            emptied -= await retention_rows.clients_with_rows(conn, table, column, emptied)
            if not emptied:
                return 0
        destroyed = 0
        for client_id in sorted(emptied):
            key_destroyed = await self.vault.shred(conn, client_id)
            alias_deleted = await scheduling_rows.delete_client(conn, client_id)
            if key_destroyed or alias_deleted:
                await self.audit.record(
                    conn,
                    at=now,
                    actor=PURGE_ACTOR,
                    action="client.erase",
                    targets=(f"client:{client_id}",),
                    details={"key_destroyed": key_destroyed, "reason": "retention"},
                )
            destroyed += int(key_destroyed)
        return destroyed

    async def _purge_audit(self, policy: Policy, now: datetime, run: _Run) -> None:
        """Audit entries go only as a whole prefix, behind a signed anchor (privacy/audit.py)."""
        ceiling: int | None = None  # entries appended during the run are never candidates
        start: int | None = None
        sizer = self._sizer()
        while True:
            started = time.monotonic()
            async with self._batch(run) as conn:
                if not run.dry_run:
                    await self.audit.lock_chain(conn)
                if ceiling is None:
                    ceiling = await audit_rows.max_seq(conn)
                if start is None:
                    anchor = await audit_rows.newest_anchor(conn)
                    start = 0 if anchor is None else anchor.seq
                found = await audit_rows.entries_between(conn, start, ceiling, sizer.size)
                if not found:
                    return
                holds = await self._active_holds(conn, now)
                held = {h.client_id for h in holds}
                records = [
                    Record(
                        Category.AUDIT,
                        f"{row.seq:0{_AUDIT_ID_DIGITS}d}",
                        _audit_client(row.actor, row.targets, held),
                        row.at,
                    )
                    for row in found
                ]
                due = {
                    int(d.record_id)
                    for d in due_for_purge(records, {Category.AUDIT: policy}, holds, now)
                }
                # The longest run of due entries from the start: never a gap.
                through = start
                for row in found:
                    if row.seq != through + 1 or row.seq not in due:
                        break
                    through = row.seq
                if through == start:
                    return
                if not run.dry_run:
                    await self.audit.purge_prefix(
                        conn, through_seq=through, at=now, actor=PURGE_ACTOR
                    )
                run.add(Category.AUDIT, policy.action, through - start)
                if not run.dry_run:
                    await self._save_progress(conn, run)
            if through < found[-1].seq or len(found) < sizer.size:
                return
            sizer.after(len(found), time.monotonic() - started)
            start = through
            await self._yield_between_batches()

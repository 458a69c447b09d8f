"""The purge run: what goes, what stays, what holds keep, and that a stopped run loses nothing."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient
from sqlalchemy.ext.asyncio import AsyncConnection

from privacy.consent import ConsentDecision, Purpose
from privacy.retention import Action, Category, Policy
from server.core.models import Account, Role
from server.db.retention_sources import (
    DEFAULT_SOURCES,
    PurgeSource,
    SourceRegistry,
    TableSource,
    tombstone_email,
)
from server.db.retention_tables import anonymized_sessions, purge_reports
from server.db.tables import (
    accounts,
    audit_log,
    checkin_responses,
    client_notes,
    clients,
    consent_records,
    cue_prompts,
    cue_summaries,
    invites,
    signal_events,
    therapy_sessions,
)
from server.services import admin_accounts
from server.services.notes import add_note
from server.services.retention import PURGE_ACTOR, STOPPED_FOR_SHUTDOWN, Retention
from server.settings import Settings
from tests.conftest import FakeClock
from tests.integration.retention_world import DAY, YEAR, NoSockets, World


@pytest.fixture
async def world(client: TestClient[Any, Any], clock: FakeClock) -> World:
    return World(client.app, clock.now)


async def _therapist(world: World, email: str = "t@example.org") -> Account:
    return await world.account(email, world.now - 12 * YEAR)


# --- what is due ------------------------------------------------------------------------------


# (table, age, kept): one app for the whole table, one client per case, one purge.
DUE_CASES = {
    "cue prompt past 30 days": (cue_prompts, 31 * DAY, False),
    "cue summary within 30 days": (cue_summaries, 29 * DAY, True),
    "signal past 90 days": (signal_events, 91 * DAY, False),
    "signal within 90 days": (signal_events, 89 * DAY, True),
    "check-in past 10 years": (checkin_responses, 3654 * DAY, False),
    "check-in within 10 years": (checkin_responses, 3652 * DAY, True),
}


async def test_records_go_once_their_default_retention_has_passed(world: World) -> None:
    therapist = await _therapist(world)
    rows = {}
    for case, (table, age, _kept) in DUE_CASES.items():
        client = await world.client(therapist, case, world.now - 11 * YEAR)
        session = await world.session(therapist, client, world.now - age - timedelta(hours=2))
        if table is checkin_responses:
            rows[case] = await world.checkin(session, world.now - age)
        else:
            rows[case] = await world.clinical_row(table, session, world.now - age)

    await world.retention().purge(world.now, trigger="test", actor="system:test")

    outcome = {
        case: rows[case] in await world.ids(table) for case, (table, _, _) in DUE_CASES.items()
    }
    assert outcome == {case: kept for case, (_, _, kept) in DUE_CASES.items()}


async def test_a_second_run_finds_nothing_left_to_do(world: World) -> None:
    therapist = await _therapist(world)
    client = await world.client(therapist, "J.M.", world.now - YEAR)
    session = await world.session(therapist, client, world.now - 40 * DAY)
    for _ in range(3):
        await world.clinical_row(cue_prompts, session, world.now - 40 * DAY)
    retention = world.retention(batch_size=2)

    first = await retention.purge(world.now, trigger="test", actor="system:test")
    second = await retention.purge(world.now, trigger="test", actor="system:test")

    assert first.count(Category.CUE, Action.DELETE) == 3
    assert second.total == 0


# --- session metadata ------------------------------------------------------------------------


async def test_old_sessions_are_anonymised_keeping_only_day_length_and_status(
    world: World,
) -> None:
    therapist = await _therapist(world)
    client = await world.client(therapist, "J.M.", world.now - 12 * YEAR)
    starts = world.now - 11 * YEAR
    session = await world.session(therapist, client, starts)
    await world.checkin(session, starts)  # due too: goes first, so the session can follow

    report = await world.retention().purge(world.now, trigger="test", actor="system:test")

    assert report.count(Category.SESSION_META, Action.ANONYMIZE) == 1
    assert session.id not in await world.ids(therapy_sessions)
    assert not await world.ids(invites)  # the link went with the session
    async with world.db.read() as conn:
        kept = (await conn.execute(sa.select(anonymized_sessions))).one()._mapping
    assert "client_id" not in kept and kept["id"] != session.id
    assert kept["day"] == starts.replace(hour=0, minute=0, second=0, microsecond=0)
    assert (kept["planned_minutes"], kept["status"]) == (50, "scheduled")


async def test_a_session_waits_while_anything_recorded_in_it_is_kept_longer(
    world: World,
) -> None:
    therapist = await _therapist(world)
    client = await world.client(therapist, "J.M.", world.now - 12 * YEAR)
    session = await world.session(therapist, client, world.now - 11 * YEAR)
    checkin = await world.checkin(session, world.now - 11 * YEAR)
    retention = world.retention()
    await retention.set_policy(
        Policy(Category.CHECKIN, 5000, Action.DELETE), actor="system:test", now=world.now
    )

    report = await retention.purge(world.now, trigger="test", actor="system:test")

    assert report.count(Category.SESSION_META, Action.ANONYMIZE) == 0
    assert checkin in await world.ids(checkin_responses)
    assert session.id in await world.ids(therapy_sessions)


async def test_anonymised_sessions_are_deleted_when_the_policy_becomes_delete(
    world: World,
) -> None:
    therapist = await _therapist(world)
    client = await world.client(therapist, "J.M.", world.now - 12 * YEAR)
    await world.session(therapist, client, world.now - 11 * YEAR)
    retention = world.retention()
    await retention.purge(world.now, trigger="test", actor="system:test")
    await retention.set_policy(
        Policy(Category.SESSION_META, 3653, Action.DELETE), actor="system:test", now=world.now
    )

    report = await retention.purge(world.now, trigger="test", actor="system:test")

    assert report.count(Category.SESSION_META, Action.DELETE) == 1
    assert not await world.ids(anonymized_sessions)


# --- crypto-shredding: a client's last data ---------------------------------------------------


async def test_when_a_clients_last_data_goes_its_data_key_and_alias_go_too(world: World) -> None:
    therapist = await _therapist(world)
    gone = await world.client(therapist, "A.A.", world.now - 12 * YEAR)
    noted = await world.client(therapist, "B.B.", world.now - 12 * YEAR)
    for client in (gone, noted):
        session = await world.session(therapist, client, world.now - 11 * YEAR)
        await world.checkin(session, world.now - 11 * YEAR)
    await add_note(world.db, world.vault, world.audit, therapist, noted.id, "kept", world.now)

    report = await world.retention().purge(world.now, trigger="test", actor="system:test")

    assert report.keys_destroyed == 1
    assert not await world.has_data_key(gone.id)
    assert gone.id not in await world.ids(clients)
    # Notes are the therapist's clinical record: that client keeps its key and alias.
    assert await world.has_data_key(noted.id)
    assert noted.id in await world.ids(clients)
    async with world.db.read() as conn:
        erased = (
            await conn.execute(
                sa.select(audit_log.c.actor, audit_log.c.details).where(
                    audit_log.c.action == "client.erase"
                )
            )
        ).all()
    assert [(a, json.loads(d)) for a, d in erased] == [
        (PURGE_ACTOR, {"key_destroyed": True, "reason": "retention"})
    ]


# --- legal holds -----------------------------------------------------------------------------


async def test_a_hold_keeps_everything_of_its_client_until_it_is_lifted(world: World) -> None:
    therapist = await _therapist(world)
    old = world.now - 11 * YEAR
    held = await world.client(therapist, "H.H.", world.now - 12 * YEAR)
    free = await world.client(therapist, "F.F.", world.now - 12 * YEAR)
    rows = {}
    for client in (held, free):
        session = await world.session(therapist, client, old)
        rows[client.id] = await world.clinical_row(signal_events, session, old)
        await world.consent(client.id, Purpose.CUE_ANALYSIS, ConsentDecision.GRANTED, old)
        await world.consent(client.id, Purpose.CUE_ANALYSIS, ConsentDecision.WITHDRAWN, old)
    retention = world.retention()
    await retention.add_hold(held.id, "litigation 2026-17", actor="system:test", now=world.now)

    await retention.purge(world.now, trigger="test", actor="system:test")

    assert await world.ids(signal_events) == {rows[held.id]}
    assert await world.ids(consent_records, "client_id") == {held.id}
    assert await world.ids(therapy_sessions, "client_id") == {held.id}

    await retention.remove_hold(held.id, "case closed", actor="system:test", now=world.now)
    await retention.purge(world.now, trigger="test", actor="system:test")

    assert not await world.ids(signal_events)
    assert not await world.ids(consent_records)
    assert not await world.has_data_key(held.id)


# --- consent records: the clock starts when a record stops being in force ----------------------

GRANT, WITHDRAW = ConsentDecision.GRANTED, ConsentDecision.WITHDRAWN


# history (decision, years ago) -> which of its records stay (by position)
CONSENT_CASES = {
    "a grant still in force is kept however old": ([(GRANT, 8)], [0]),
    "withdrawn a year ago: both kept 6 more years": ([(GRANT, 8), (WITHDRAW, 1)], [0, 1]),
    "withdrawn 7 years ago: both go": ([(GRANT, 9), (WITHDRAW, 7)], []),
    "superseded 7 years ago: the newer grant stays": ([(GRANT, 9), (GRANT, 7)], [1]),
    "withdrawn then granted again: only the live grant stays": (
        [(GRANT, 9), (WITHDRAW, 8), (GRANT, 1)],
        [2],
    ),
}


async def test_consent_records_are_kept_six_years_after_they_stop_being_in_force(
    world: World,
) -> None:
    made: dict[tuple[str, datetime], tuple[str, int]] = {}  # (client, at) -> (case, position)
    for n, (case, (history, _)) in enumerate(CONSENT_CASES.items()):
        client_id = f"{n:032x}"
        for position, (decision, years_ago) in enumerate(history):
            at = world.now - years_ago * YEAR
            await world.consent(client_id, Purpose.CHECKIN_STORAGE, decision, at)
            made[(client_id, at)] = (case, position)

    await world.retention().purge(world.now, trigger="test", actor="system:test")

    async with world.db.read() as conn:
        left = (
            await conn.execute(sa.select(consent_records.c.client_id, consent_records.c.at))
        ).all()
    kept: dict[str, list[int]] = {case: [] for case in CONSENT_CASES}
    for client_id, at in left:
        case, position = made[(client_id, at)]
        kept[case].append(position)
    assert kept == {case: positions for case, (_, positions) in CONSENT_CASES.items()}


# --- accounts --------------------------------------------------------------------------------


async def test_a_disabled_account_becomes_a_tombstone_after_its_retention(world: World) -> None:
    admin = await world.account("admin@example.org", world.now - 12 * YEAR, Role.ADMIN)
    closed = await _therapist(world, "closed@example.org")
    recent = await _therapist(world, "recent@example.org")
    active = await _therapist(world, "active@example.org")
    await world.client(closed, "J.M.", world.now - 11 * YEAR)  # refers to the account
    for account, when in ((closed, 7 * YEAR), (recent, YEAR)):
        await admin_accounts.disable_account(
            world.db, world.audit, NoSockets(), admin, account.id, world.now - when
        )

    report = await world.retention().purge(world.now, trigger="test", actor="system:test")

    assert report.count(Category.ACCOUNT, Action.ANONYMIZE) == 1
    async with world.db.read() as conn:
        emails = dict((await conn.execute(sa.select(accounts.c.id, accounts.c.email))).all())
    assert emails[closed.id] == tombstone_email(closed.id)
    assert emails[recent.id] == "recent@example.org"
    assert emails[active.id] == "active@example.org"


async def test_deleting_accounts_waits_for_accounts_nothing_refers_to(world: World) -> None:
    admin = await world.account("admin@example.org", world.now - 12 * YEAR, Role.ADMIN)
    referred = await _therapist(world, "referred@example.org")
    unreferred = await _therapist(world, "unreferred@example.org")
    await world.client(referred, "J.M.", world.now - 11 * YEAR)
    for account in (referred, unreferred):
        await admin_accounts.disable_account(
            world.db, world.audit, NoSockets(), admin, account.id, world.now - 7 * YEAR
        )
    retention = world.retention()
    await retention.set_policy(
        Policy(Category.ACCOUNT, 2192, Action.DELETE), actor="system:test", now=world.now
    )

    report = await retention.purge(world.now, trigger="test", actor="system:test")

    assert report.count(Category.ACCOUNT, Action.DELETE) == 1
    assert await world.ids(accounts) == {admin.id, referred.id}


# --- reports, audit entries, dry runs ---------------------------------------------------------


async def test_a_run_writes_a_report_and_an_audit_entry_and_a_dry_run_writes_neither(
    world: World,
) -> None:
    therapist = await _therapist(world)
    client = await world.client(therapist, "J.M.", world.now - YEAR)
    session = await world.session(therapist, client, world.now - 40 * DAY)
    await world.clinical_row(cue_prompts, session, world.now - 40 * DAY)
    retention = world.retention()

    preview = await retention.purge(world.now, trigger="test", actor="system:test", dry_run=True)
    assert preview.count(Category.CUE, Action.DELETE) == 1
    assert await world.ids(purge_reports) == set()
    assert len(await world.ids(cue_prompts)) == 1

    report = await retention.purge(world.now, trigger="test", actor="system:test")

    [stored] = await retention.reports()
    assert stored.id == report.id and stored.finished
    assert stored.count(Category.CUE, Action.DELETE) == 1
    async with world.db.read() as conn:
        details = await conn.scalar(
            sa.select(audit_log.c.details).where(audit_log.c.action == "retention.purge")
        )
    assert details is not None and json.loads(details)["cue.delete"] == 1


# --- stopping part way -------------------------------------------------------------------------


class Killed(Exception):
    """The process died here."""


@dataclass
class DiesOnBatch:
    """A real source that dies inside its n-th batch, after changing rows, before commit."""

    inner: TableSource
    dies_on: int
    batches: list[int] = field(default_factory=list)

    @property
    def category(self) -> Category:
        return self.inner.category

    @property
    def label(self) -> str:
        return self.inner.label

    @property
    def client_table(self) -> tuple[sa.Table, str] | None:
        return self.inner.client_table

    @property
    def may_hold_last_data(self) -> bool:
        return self.inner.may_hold_last_data

    def rows(self, action: Action, registry: SourceRegistry) -> sa.Subquery:
        return self.inner.rows(action, registry)

    async def apply(self, conn: AsyncConnection, keys: Any, action: Action, now: datetime) -> int:
        changed = await self.inner.apply(conn, keys, action, now)
        self.batches.append(changed)
        if len(self.batches) == self.dies_on:
            raise Killed
        return changed


async def test_a_run_stopped_mid_batch_keeps_whole_batches_and_the_next_run_finishes(
    world: World,
) -> None:
    therapist = await _therapist(world)
    client = await world.client(therapist, "J.M.", world.now - YEAR)
    session = await world.session(therapist, client, world.now - 40 * DAY)
    for _ in range(5):
        await world.clinical_row(cue_prompts, session, world.now - 40 * DAY)
    [prompts] = [s for s in DEFAULT_SOURCES.table_sources() if s.table is cue_prompts]
    dying: PurgeSource = DiesOnBatch(prompts, dies_on=2)
    registry = SourceRegistry(
        tuple(dying if s is prompts else s for s in DEFAULT_SOURCES.sources),
        DEFAULT_SOURCES.other_client_tables,
    )

    with pytest.raises(Killed):
        await world.retention(registry=registry, batch_size=2, max_batch_size=2).purge(
            world.now, trigger="test", actor="system:test"
        )

    assert len(await world.ids(cue_prompts)) == 3  # batch 1 committed, batch 2 rolled back
    [stopped] = await world.retention().reports()
    assert not stopped.finished and stopped.count(Category.CUE, Action.DELETE) == 2

    rerun = await world.retention(batch_size=2).purge(
        world.now, trigger="test", actor="system:test"
    )

    assert rerun.count(Category.CUE, Action.DELETE) == 3
    assert not await world.ids(cue_prompts)


# --- the job inside the server ----------------------------------------------------------------


async def test_the_server_purges_by_itself_every_interval(
    aiohttp_client: Any, data_dir: Any, clock: FakeClock
) -> None:
    from server.app import create_app

    app = create_app(Settings(data_dir=data_dir, purge_interval_seconds=1), clock=clock)
    client = await aiohttp_client(app)
    world = World(client.app, clock.now)
    therapist = await _therapist(world)
    patient = await world.client(therapist, "J.M.", world.now - YEAR)
    session = await world.session(therapist, patient, world.now - 40 * DAY)
    await world.clinical_row(cue_summaries, session, world.now - 40 * DAY)

    for _ in range(40):  # the first run is due one interval after start
        if not await world.ids(cue_summaries):
            break
        await asyncio.sleep(0.1)

    assert not await world.ids(cue_summaries)
    [report, *_] = await world.retention().reports()
    assert report.trigger == "job" and report.actor == PURGE_ACTOR


async def test_notes_are_never_purged(world: World) -> None:
    therapist = await _therapist(world)
    client = await world.client(therapist, "J.M.", world.now - 12 * YEAR)
    await add_note(
        world.db, world.vault, world.audit, therapist, client.id, "x", world.now - 11 * YEAR
    )

    await world.retention().purge(world.now, trigger="test", actor="system:test")

    assert len(await world.ids(client_notes)) == 1


class StopsAfterFirstBatch(DiesOnBatch):
    """A source whose first batch asks the run to stop, as a shutdown would mid-run."""

    retention: Retention | None = None

    async def apply(self, conn: AsyncConnection, keys: Any, action: Action, now: datetime) -> int:
        changed = await self.inner.apply(conn, keys, action, now)
        self.batches.append(changed)
        assert self.retention is not None
        self.retention.request_stop()
        return changed


async def test_a_stop_request_ends_the_run_after_its_current_batch_with_a_report(
    world: World,
) -> None:
    therapist = await _therapist(world)
    client = await world.client(therapist, "J.M.", world.now - YEAR)
    session = await world.session(therapist, client, world.now - 40 * DAY)
    for _ in range(5):
        await world.clinical_row(cue_prompts, session, world.now - 40 * DAY)
    [prompts] = [s for s in DEFAULT_SOURCES.table_sources() if s.table is cue_prompts]
    stopping = StopsAfterFirstBatch(prompts, dies_on=0)
    registry = SourceRegistry(
        tuple(stopping if s is prompts else s for s in DEFAULT_SOURCES.sources),
        DEFAULT_SOURCES.other_client_tables,
    )
    retention = world.retention(registry=registry, batch_size=2, max_batch_size=2)
    stopping.retention = retention

    report = await retention.purge(world.now, trigger="test", actor="system:test")

    assert STOPPED_FOR_SHUTDOWN in report.problems
    assert report.count(Category.CUE, Action.DELETE) == 2
    assert len(await world.ids(cue_prompts)) == 3  # the first batch is whole, nothing after it
    [written] = await world.retention().reports()
    assert written.finished

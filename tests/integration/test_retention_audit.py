"""Audit entries are purged only as a whole prefix behind a signed anchor: `verify` stays green,
and a prefix removed any other way still fails it."""

from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient

from privacy.retention import Action, Category, Policy
from server.db.retention_tables import audit_anchors
from server.db.tables import audit_checkpoints, audit_log
from server.services.retention import PURGE_ACTOR
from tests.conftest import FakeClock
from tests.integration.retention_world import DAY, YEAR, World


@pytest.fixture
async def world(client: TestClient[Any, Any], clock: FakeClock) -> World:
    return World(client.app, clock.now)


async def _seqs(world: World) -> list[int]:
    async with world.db.read() as conn:
        return list(await conn.scalars(sa.select(audit_log.c.seq).order_by(audit_log.c.seq)))


async def _history(world: World, *, old: int, recent: int) -> None:
    """`old` entries from 7 years ago, then `recent` ones from yesterday."""
    for _ in range(old):
        await world.audit_entry(world.now - 7 * YEAR)
    for _ in range(recent):
        await world.audit_entry(world.now - DAY)


async def test_entries_past_retention_go_as_a_prefix_and_the_chain_still_verifies(
    world: World,
) -> None:
    await _history(world, old=5, recent=2)

    report = await world.retention(batch_size=2, max_batch_size=2).purge(
        world.now, trigger="test", actor="system:test"
    )

    assert report.count(Category.AUDIT, Action.DELETE) == 5
    seqs = await _seqs(world)
    assert seqs[:2] == [6, 7]  # then the run's own audit.purged and retention.purge entries
    assert await world.ids(audit_anchors, "seq") == {2, 4, 5}  # one anchor per batch
    verified = await world.audit.verify(world.db)
    assert verified.ok, verified.reason
    assert "after the anchor at entry 5" in verified.reason
    async with world.db.read() as conn:
        purged = [
            json.loads(d)["through_seq"]
            for d in await conn.scalars(
                sa.select(audit_log.c.details)
                .where(audit_log.c.action == "audit.purged", audit_log.c.actor == PURGE_ACTOR)
                .order_by(audit_log.c.seq)
            )
        ]
    assert purged == [2, 4, 5]


async def test_an_entry_naming_a_held_client_keeps_itself_and_every_later_entry(
    world: World,
) -> None:
    therapist = await world.account("t@example.org", world.now - 8 * YEAR)  # entry 1
    client = await world.client(therapist, "H.H.", world.now - 7 * YEAR)  # entry 2 names it
    await world.audit_entry(world.now - 7 * YEAR)  # entry 3, also old
    retention = world.retention()
    await retention.add_hold(client.id, "subpoena", actor="system:test", now=world.now)

    report = await retention.purge(world.now, trigger="test", actor="system:test")

    assert report.count(Category.AUDIT, Action.DELETE) == 1
    assert (await _seqs(world))[:2] == [2, 3]
    assert (await world.audit.verify(world.db)).ok


async def test_when_every_entry_is_due_new_entries_chain_onto_the_anchor(world: World) -> None:
    await _history(world, old=3, recent=0)
    retention = world.retention()
    await retention.set_policy(
        Policy(Category.AUDIT, 0, Action.DELETE, "test of the empty chain"),
        actor="system:test",
        now=world.now - 7 * YEAR,  # so this entry is due as well
    )

    await retention.purge(world.now, trigger="test", actor="system:test")
    await world.audit_entry(world.now)

    seqs = await _seqs(world)
    assert seqs[0] == 5  # 1-4 purged; 5 says so; numbering never restarts
    verified = await world.audit.verify(world.db)
    assert verified.ok, verified.reason


async def test_checkpoints_of_the_purged_prefix_go_with_it(world: World) -> None:
    await _history(world, old=3, recent=1)
    await world.audit.checkpoint(world.db, world.now)  # pins entry 4
    async with world.db.write() as conn:
        await conn.execute(
            audit_checkpoints.update().where(audit_checkpoints.c.seq == 4).values(seq=2)
        )  # pretend the checkpoint was taken at entry 2
    await world.retention().purge(world.now, trigger="test", actor="system:test")

    assert not await world.ids(audit_checkpoints, "seq")
    assert (await world.audit.verify(world.db)).ok


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param("delete-prefix-without-anchor", id="prefix removed by hand"),
        pytest.param("delete-past-anchor", id="entries removed past the anchor"),
        pytest.param("drop-anchor", id="anchor row deleted"),
    ],
)
async def test_removing_entries_any_other_way_is_still_caught(world: World, tamper: str) -> None:
    await _history(world, old=3, recent=3)
    if tamper != "delete-prefix-without-anchor":
        await world.retention().purge(world.now, trigger="test", actor="system:test")
    async with world.db.write() as conn:
        if tamper == "delete-prefix-without-anchor":
            await conn.execute(audit_log.delete().where(audit_log.c.seq <= 2))
        elif tamper == "delete-past-anchor":
            await conn.execute(audit_log.delete().where(audit_log.c.seq == 4))
        else:
            await conn.execute(audit_anchors.delete())

    verified = await world.audit.verify(world.db)

    assert not verified.ok
    assert verified.first_bad_seq == (4 if tamper == "delete-past-anchor" else 1)

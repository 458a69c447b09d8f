"""One purge over every kind of source behaves the same on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa

from privacy.consent import ConsentDecision, Purpose
from privacy.retention import Action, Category
from server.app import create_app
from server.core.models import Role
from server.db.retention_sources import tombstone_email
from server.db.retention_tables import anonymized_sessions
from server.db.tables import accounts, consent_records, cue_prompts, therapy_sessions
from server.services import admin_accounts
from server.settings import Settings
from tests.conftest import FakeClock
from tests.integration.retention_world import DAY, YEAR, NoSockets, World
from tests.storage.conftest import database_url

__all__ = ["database_url"]  # the fixture: a fresh database of each kind


async def test_a_purge_of_every_source_kind(
    database_url: str, aiohttp_client: Any, tmp_path: Path, clock: FakeClock
) -> None:
    settings = Settings(data_dir=tmp_path / "data", database_url=database_url)
    world = World((await aiohttp_client(create_app(settings, clock=clock))).app, clock.now)
    old = world.now - 11 * YEAR
    admin = await world.account("admin@example.org", old, Role.ADMIN)
    therapist = await world.account("t@example.org", old)
    client = await world.client(therapist, "J.M.", old)
    held = await world.client(therapist, "H.H.", old)
    for patient in (client, held):
        session = await world.session(therapist, patient, old)
        await world.clinical_row(cue_prompts, session, world.now - 40 * DAY)
        await world.safety_check(session, world.now - 100 * DAY)
    await world.consent(client.id, Purpose.CUE_ANALYSIS, ConsentDecision.GRANTED, old)
    await world.consent(client.id, Purpose.CUE_ANALYSIS, ConsentDecision.WITHDRAWN, old)
    await world.consent(client.id, Purpose.CHECKIN_STORAGE, ConsentDecision.GRANTED, old)
    await admin_accounts.disable_account(
        world.db, world.audit, NoSockets(), admin, therapist.id, old
    )
    retention = world.retention(batch_size=2)
    await retention.add_hold(held.id, "subpoena", actor="system:test", now=world.now)

    report = await retention.purge(world.now, trigger="test", actor="system:test")

    assert {
        (category, action): report.count(category, action)
        for category, action in [
            (Category.CUE, Action.DELETE),
            (Category.SAFETY, Action.DELETE),
            (Category.SESSION_META, Action.ANONYMIZE),
            (Category.CONSENT, Action.DELETE),
            (Category.ACCOUNT, Action.ANONYMIZE),
        ]
    } == {
        (Category.CUE, Action.DELETE): 1,
        (Category.SAFETY, Action.DELETE): 1,
        (Category.SESSION_META, Action.ANONYMIZE): 1,
        (Category.CONSENT, Action.DELETE): 2,
        (Category.ACCOUNT, Action.ANONYMIZE): 1,
    }
    assert report.count(Category.AUDIT, Action.DELETE) > 0
    assert report.keys_destroyed == 1
    assert await world.ids(therapy_sessions, "client_id") == {held.id}
    assert len(await world.ids(anonymized_sessions)) == 1
    assert await world.ids(consent_records, "purpose") == {Purpose.CHECKIN_STORAGE.value}
    async with world.db.read() as conn:
        email = await conn.scalar(sa.select(accounts.c.email).where(accounts.c.id == therapist.id))
    assert email == tombstone_email(therapist.id)
    verified = await world.audit.verify(world.db)
    assert verified.ok, verified.reason

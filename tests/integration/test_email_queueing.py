"""When email is queued: in the transaction of its cause (a cause that fails leaves no email,
and its email never leaves without it), and reminders at the clinic's own offsets."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy.ext.asyncio import AsyncConnection

from server.app import create_app
from server.core.email_schedule import EmailKind
from server.core.links import SessionStatus
from server.db.tables import email_outbox, therapy_sessions
from server.keys import AUDIT, CONSENTS, DB, LIVE, MAILER, SETTINGS, VAULT
from server.services import accounts, scheduling
from server.services.email import Mailer
from server.settings import Settings
from tests.conftest import FakeClock, add_account, sign_in
from tests.integration import test_email
from tests.integration.test_email import Mailbox, _book, _email_settings, _practice, _round

app, mailbox = test_email.app, test_email.mailbox  # the same fixtures: SMTP on loopback


class CauseFailsAfterQueueing(Mailer):
    """Queues as usual, then the cause's transaction fails (a crash, a constraint)."""

    queued: list[EmailKind]

    async def _queue(
        self, conn: AsyncConnection, session: Any, kind: EmailKind, *args: Any
    ) -> None:
        await super()._queue(conn, session, kind, *args)
        self.queued.append(kind)
        raise RuntimeError("the cause fails after its email was queued")


async def _counts(client: TestClient) -> tuple[int, int]:
    async with client.app[DB].read() as conn:
        sessions = await conn.scalar(sa.select(sa.func.count()).select_from(therapy_sessions))
        emails = await conn.scalar(sa.select(sa.func.count()).select_from(email_outbox))
    return int(sessions or 0), int(emails or 0)


async def test_a_booking_rescheduling_or_cancelling_that_fails_leaves_no_email_behind(
    client: TestClient, clock: FakeClock, mailbox: tuple[Mailbox, int]
) -> None:
    box, _ = mailbox
    practice = await _practice(client)
    booked = await _book(client, practice, "2026-11-25T10:00:00Z")
    assert await _round(client, clock) == 1  # the invitation went: a calendar entry to update
    assert "Email: Invitation sent" in await (await client.get("/dashboard")).text()
    a = client.app
    db, audit = a[DB], a[AUDIT]
    therapist = await accounts.account_by_email(db, "therapist@example.org")
    failing = CauseFailsAfterQueueing(a[SETTINGS], a[VAULT], a[CONSENTS])
    failing.queued = []
    before = await _counts(client)
    assert before == (2, 1)  # two sessions, one invitation

    with pytest.raises(RuntimeError):
        await scheduling.create_session(
            db,
            audit,
            therapist,
            client_id=practice.client_id,
            starts_at=datetime(2026, 11, 30, 10, 0, tzinfo=UTC),
            minutes=50,
            now=clock(),
            mail=failing,
        )
    with pytest.raises(RuntimeError):
        await scheduling.reschedule_session(
            db,
            audit,
            a[LIVE],
            therapist,
            booked["session"]["id"],
            starts_at=datetime(2026, 11, 26, 10, 0, tzinfo=UTC),
            minutes=50,
            new_link=False,
            now=clock(),
            mail=failing,
        )
    with pytest.raises(RuntimeError):
        await scheduling.close_session(
            db,
            audit,
            therapist,
            booked["session"]["id"],
            SessionStatus.CANCELLED,
            clock(),
            mail=failing,
        )
    assert failing.queued == [EmailKind.INVITATION, EmailKind.RESCHEDULE, EmailKind.CANCELLATION]
    assert await _counts(client) == before  # neither the causes nor their emails
    session = await scheduling.get_session(db, therapist, booked["session"]["id"])
    assert session.status is SessionStatus.SCHEDULED
    assert session.starts_at == datetime(2026, 11, 25, 10, 0, tzinfo=UTC)

    assert await _round(client, clock) == 0  # nothing was left queued
    assert len(box.messages) == 1


@pytest.fixture
def hourly_clinic(
    data_dir: Path, clock: FakeClock, mailbox: tuple[Mailbox, int]
) -> web.Application:
    settings = replace(_email_settings(data_dir, mailbox[1]), email_reminder_minutes=("60",))
    return create_app(settings, clock=clock)


async def test_reminders_follow_the_clinics_own_offsets(
    aiohttp_client: Any,
    hourly_clinic: web.Application,
    clock: FakeClock,
    mailbox: tuple[Mailbox, int],
) -> None:
    box, _ = mailbox
    client: TestClient = await aiohttp_client(hourly_clinic)
    practice = await _practice(client)
    await _book(client, practice, "2026-11-25T10:00:00Z")
    await _round(client, clock)  # the invitation
    start = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    for before in (timedelta(days=1), timedelta(minutes=61)):
        clock.now = start - before
        assert await _round(client, clock) == 0
    clock.now = start - timedelta(minutes=60)
    assert await _round(client, clock) == 1
    for before in (timedelta(minutes=10), timedelta(minutes=1)):
        clock.now = start - before
        assert await _round(client, clock) == 0
    subjects = [str(m["Subject"]) for m in box.parsed()]
    assert subjects == [
        "Your appointment on Wednesday 25 November",
        "Reminder: your appointment on Wednesday 25 November",
    ]


async def test_without_smtp_the_clients_page_says_links_come_from_the_therapist_and_saves_nothing(
    aiohttp_client: Any, data_dir: Path, clock: FakeClock
) -> None:
    client: TestClient = await aiohttp_client(create_app(Settings(data_dir=data_dir), clock=clock))
    await add_account(client.app, "therapist@example.org")
    headers = {"X-CSRF-Token": await sign_in(client, "therapist@example.org")}
    created = await (
        await client.post("/api/v1/clients", json={"alias": "J.M."}, headers=headers)
    ).json()
    booked = await (
        await client.post(
            "/api/v1/sessions",
            json={"client_id": created["id"], "starts_at": "2026-11-23T09:00:00Z"},
            headers=headers,
        )
    ).json()
    await client.get(booked["join_url"].removeprefix(client.app[SETTINGS].base_url))
    page = await (await client.get("/visit/contact")).text()
    assert "This clinic does not send email" in page
    assert 'name="email"' not in page
    visit = await (await client.get("/visit")).text()
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', visit)
    assert csrf
    posted = await client.post(
        "/visit/contact",
        data={
            "csrf_token": csrf.group(1),
            "notice_version": "1",
            "email": "c@example.org",
            "consent": "yes",
        },
    )
    assert posted.status == 409 and "This clinic does not send email" in await posted.text()
    states = await (await client.get("/api/v1/visit/consents")).json()
    contact = [s for s in states["items"] if s["purpose"] == "contact"]
    assert contact[0]["state"] == "never_asked"
    assert await client.app[MAILER].contact_email(client.app[DB], created["id"]) is None

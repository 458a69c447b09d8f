"""The email outbox on SQLite and PostgreSQL: invitation, reminders once each, and a crashed
sender's claim taken over once, against a real SMTP server on loopback."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from server.app import create_app
from server.db import email as outbox_queries
from server.keys import DB
from tests.conftest import FakeClock
from tests.integration.test_email import (
    Mailbox,
    _book,
    _email_settings,
    _practice,
    _round,
    mailbox,
)

__all__ = ["mailbox"]  # the SMTP server fixture, shared with the integration tests


async def test_the_outbox_sends_each_message_once_on_each_backend(
    database_url: str,
    aiohttp_client: Any,
    tmp_path: Path,
    mailbox: tuple[Mailbox, int],
) -> None:
    box, port = mailbox
    clock = FakeClock(datetime(2026, 11, 23, 9, 0, tzinfo=UTC))
    settings = replace(_email_settings(tmp_path / "data", port), database_url=database_url)
    client: TestClient = await aiohttp_client(create_app(settings, clock=clock))
    practice = await _practice(client)
    await _book(client, practice, "2026-11-25T10:00:00Z")
    now = clock()
    async with client.app[DB].write() as conn:  # a sender claims the invitation and dies
        assert await outbox_queries.claim_next(
            conn, lease_id="dead", now=now, lease_until=now + timedelta(minutes=5)
        )
    assert await _round(client, clock) == 0
    clock.advance(minutes=5)
    assert await _round(client, clock) == 1

    clock.now = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    assert await _round(client, clock) == 1
    assert await _round(client, clock) == 0
    clock.now = datetime(2026, 11, 25, 9, 50, tzinfo=UTC)
    assert await _round(client, clock) == 1
    subjects = [m["Subject"] for m in box.parsed()]
    assert subjects == [
        "Your appointment on Wednesday 25 November",
        "Reminder: your appointment on Wednesday 25 November",
        "Reminder: your appointment on Wednesday 25 November",
    ]

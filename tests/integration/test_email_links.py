"""The links emails carry: absolute from `public_base_url`, in a text and an HTML body; the
calendar entry's link opens the visit; a revoked, replaced or closed link is never mailed
(its sealed token is forgotten, see docs/privacy.md "Email")."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient

from server.db.tables import invite_seals
from server.keys import DB, LIVE
from server.services import accounts, scheduling
from tests.conftest import FakeClock
from tests.integration import test_email
from tests.integration.test_email import (
    CLIENT_EMAIL,
    Mailbox,
    _book,
    _calendar,
    _practice,
    _round,
    _text,
)

app, mailbox = test_email.app, test_email.mailbox  # the same fixtures: SMTP on loopback

BASE = "http://attune.test:8080"
_URL = re.compile(r"""(?:https?://|www\.)[^\s"'<>]+""")
_HREF = re.compile(r"""(?:href|src)\s*=\s*["']([^"']*)["']""", re.IGNORECASE)


def assert_links_absolute(box: Mailbox) -> None:
    """Every message has a plain-text and an HTML body, and every link in either (and every
    href) starts with the public base URL."""
    assert box.messages
    for message in box.parsed():
        plain = message.get_body(preferencelist=("plain",))
        html = message.get_body(preferencelist=("html",))
        assert plain is not None and html is not None, message["Subject"]
        for body in (str(plain.get_content()), str(html.get_content())):
            for url in _URL.findall(body):
                assert url.startswith(BASE + "/"), url
        for href in _HREF.findall(str(html.get_content())):
            assert href.startswith(BASE + "/"), href


async def _seals(client: TestClient) -> int:
    async with client.app[DB].read() as conn:
        count = await conn.scalar(sa.select(sa.func.count()).select_from(invite_seals))
    return int(count or 0)


async def test_the_calendar_entrys_link_opens_the_visit_and_every_link_is_absolute(
    client: TestClient, clock: FakeClock, mailbox: tuple[Mailbox, int]
) -> None:
    box, _ = mailbox
    practice = await _practice(client)
    booked = await _book(client, practice, "2026-11-25T10:00:00Z")
    await _round(client, clock)
    clock.now = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    await _round(client, clock)  # the reminder a day before, with its unsubscribe link
    assert len(box.messages) == 2

    event = _calendar(box.parsed()[0])
    assert str(event["URL"]) == booked["join_url"] == str(event["LOCATION"])
    clock.now = datetime(2026, 11, 25, 9, 50, tzinfo=UTC)
    client.session.cookie_jar.clear()
    opened = await client.get(str(event["URL"]).removeprefix(BASE), allow_redirects=False)
    assert opened.status == 303 and opened.headers["Location"] == "/visit"
    assert (await client.get("/visit")).status == 200
    assert_links_absolute(box)


async def test_a_revoked_link_is_forgotten_and_no_reminder_carries_it(
    client: TestClient, clock: FakeClock, mailbox: tuple[Mailbox, int]
) -> None:
    box, _ = mailbox
    practice = await _practice(client)
    booked = await _book(client, practice, "2026-11-25T10:00:00Z")
    await _round(client, clock)
    assert await _seals(client) == 2  # with the first session's, from `_practice`

    revoked = await client.delete(
        f"/api/v1/sessions/{booked['session']['id']}/invite", headers=practice.headers
    )
    assert revoked.status == 204
    assert await _seals(client) == 1
    for moment in (datetime(2026, 11, 24, 10, 0), datetime(2026, 11, 25, 9, 50)):
        clock.now = moment.replace(tzinfo=UTC)
        assert await _round(client, clock) == 0
    assert len(box.messages) == 1  # the invitation only


async def test_reminders_after_a_new_link_carry_the_new_link_only(
    client: TestClient, clock: FakeClock, mailbox: tuple[Mailbox, int]
) -> None:
    box, _ = mailbox
    practice = await _practice(client)
    booked = await _book(client, practice, "2026-11-25T10:00:00Z")
    await _round(client, clock)
    reissued = await client.post(
        f"/api/v1/sessions/{booked['session']['id']}/invite", headers=practice.headers
    )
    assert reissued.status == 201
    new_link = (await reissued.json())["join_url"]

    clock.now = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    assert await _round(client, clock) == 1
    reminder = _text(box.parsed()[-1])
    assert new_link in reminder and booked["join_url"] not in reminder


async def test_ending_or_cancelling_a_session_forgets_its_sealed_link(
    client: TestClient, clock: FakeClock, mailbox: tuple[Mailbox, int]
) -> None:
    practice = await _practice(client)
    first = await _book(client, practice, "2026-11-25T10:00:00Z")
    await _book(client, practice, "2026-11-26T10:00:00Z")
    assert await _seals(client) == 3  # with the first session's, from `_practice`

    cancelled = await client.post(
        f"/api/v1/sessions/{first['session']['id']}/cancel", headers=practice.headers
    )
    assert cancelled.status == 200
    assert await _seals(client) == 2
    async with client.app[DB].read() as conn:
        left = set(await conn.scalars(sa.select(invite_seals.c.session_id)))
    assert first["session"]["id"] not in left

    db = client.app[DB]
    therapist = await accounts.account_by_email(db, "therapist@example.org")
    (opening,) = [s for s in await scheduling.list_sessions(db, therapist) if s.starts_at.day == 23]
    await client.app[LIVE].end_session(therapist, opening.id)  # the session `_practice` joined
    assert await _seals(client) == 1


async def test_no_log_line_carries_the_address_the_join_link_or_the_unsubscribe_link(
    client: TestClient,
    clock: FakeClock,
    mailbox: tuple[Mailbox, int],
    caplog: pytest.LogCaptureFixture,
) -> None:
    box, _ = mailbox
    caplog.set_level(logging.DEBUG)
    practice = await _practice(client)
    booked = await _book(client, practice, "2026-11-25T10:00:00Z")
    await _round(client, clock)
    clock.now = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    await _round(client, clock)
    unsubscribe = str(box.parsed()[-1]["List-Unsubscribe"]).strip("<>")
    clicked = await client.post(unsubscribe.removeprefix(BASE))
    assert clicked.status == 200

    secrets = (CLIENT_EMAIL, booked["join_url"].rsplit("/", 1)[1], unsubscribe.rsplit("/", 1)[1])
    # Not aiosmtpd's own log, nor the test server's stock access log: `attune serve` logs
    # requests with server.logs.AccessLogger, whose redaction test_logs_privacy.py checks.
    ours = [r for r in caplog.records if r.name.split(".")[0] not in ("mail", "aiohttp")]
    assert ours  # at least the database driver's debug lines, which see every query
    for record in ours:
        line = record.getMessage() + repr(record.__dict__.get("extra", ""))
        for secret in secrets:
            assert secret not in line, (record.name, line)

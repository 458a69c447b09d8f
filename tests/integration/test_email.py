"""Invitations, reminders and cancellations reach a real SMTP server (aiosmtpd on loopback),
carry a working link and a valid calendar file, are sent once, and never say anything
clinical."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import icalendar
import pytest
import sqlalchemy as sa
from aiohttp import web
from aiohttp.test_utils import TestClient
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from privacy.retention import Action, Category
from server.app import create_app
from server.core.email_schedule import OutboxStatus
from server.db import email as outbox_queries
from server.db.tables import email_outbox, metadata
from server.jobs.email import run_once
from server.keys import AUDIT, DB, LIVE, MAILER, SMTP_TRANSPORT, VAULT
from server.services import accounts, scheduling
from server.services.retention import Retention
from server.settings import Settings
from server.smtp import REFUSED_ADDRESS, UNREACHABLE
from tests.conftest import FakeClock, add_account, sign_in

MARKERS = ("Zebra-Alias-7Q", "MARKER-clinical-note-41", "therapist@example.org")
CLIENT_EMAIL = "client@example.org"
REFUSED_EMAIL = "nobody@refused.example"


@dataclass
class Mailbox:
    """What the SMTP server received."""

    messages: list[tuple[list[str], bytes]] = field(default_factory=list)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if address.endswith("@refused.example"):
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        self.messages.append((list(envelope.rcpt_tos), bytes(content)))
        return "250 Message accepted"

    def parsed(self) -> list[EmailMessage]:
        return [message_from_bytes(raw, policy=policy.default) for _, raw in self.messages]  # type: ignore[misc]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box, port = Mailbox(), _free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port, ready_timeout=5)
    controller.start()
    yield box, port
    controller.stop()


def _email_settings(data_dir: Path, port: int) -> Settings:
    return Settings(
        data_dir=data_dir,
        public_base_url="http://attune.test:8080",
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_security="none",
        smtp_timeout_seconds=5,
        email_from="appointments@attune.test",
        email_timezone="Europe/Berlin",
        email_interval_seconds=3600,  # the tests run each round themselves
    )


@pytest.fixture
def app(data_dir: Path, clock: FakeClock, mailbox: tuple[Mailbox, int]) -> web.Application:
    return create_app(_email_settings(data_dir, mailbox[1]), clock=clock)


async def _round(client: TestClient, clock: FakeClock) -> int:
    app = client.app
    return await run_once(app[MAILER], app[DB], app[AUDIT], app[SMTP_TRANSPORT], clock())


@dataclass
class Practice:
    client_id: str
    headers: dict[str, str]


async def _practice(client: TestClient, email: str | None = CLIENT_EMAIL) -> Practice:
    """A therapist with a client who, in a first session, saved an address for reminders."""
    await add_account(client.app, "therapist@example.org")
    headers = {"X-CSRF-Token": await sign_in(client, "therapist@example.org")}
    created = await (
        await client.post("/api/v1/clients", json={"alias": MARKERS[0]}, headers=headers)
    ).json()
    await client.post(
        f"/api/v1/clients/{created['id']}/notes", json={"text": MARKERS[1]}, headers=headers
    )
    first = await (
        await client.post(
            "/api/v1/sessions",
            json={"client_id": created["id"], "starts_at": "2026-11-23T09:00:00Z"},
            headers=headers,
        )
    ).json()
    await client.get(first["join_url"].replace("http://attune.test:8080", ""))
    page = await (await client.get("/visit/contact")).text()
    assert 'id="contact-email"' in page and 'id="contact-consent"' in page
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert csrf
    if email is None:
        return Practice(created["id"], headers)
    saved = await client.post(
        "/visit/contact",
        data={
            "csrf_token": csrf.group(1),
            "notice_version": "1",
            "email": email,
            "consent": "yes",
            "action": "save",
        },
        allow_redirects=False,
    )
    assert saved.status == 303, await saved.text()
    return Practice(created["id"], headers)


async def _book(client: TestClient, practice: Practice, starts_at: str) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/sessions",
        json={"client_id": practice.client_id, "starts_at": starts_at, "minutes": 50},
        headers=practice.headers,
    )
    assert response.status == 201
    body: dict[str, Any] = await response.json()
    return body


def _calendar(message: EmailMessage) -> icalendar.Event:
    parts = [p for p in message.walk() if p.get_content_type() == "text/calendar"]
    assert len(parts) == 1
    payload = parts[0].get_payload(decode=True)
    assert isinstance(payload, bytes)
    calendar = icalendar.Calendar.from_ical(payload)
    events = [c for c in calendar.walk("VEVENT")]
    assert len(events) == 1
    event: icalendar.Event = events[0]
    event["_method"] = str(calendar["METHOD"])
    return event


def _text(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    return str(body.get_content())


def _assert_nothing_clinical(box: Mailbox) -> None:
    assert box.messages
    for _, raw in box.messages:
        for marker in MARKERS:
            assert marker.encode() not in raw, f"{marker!r} leaked into an email"
        for part in message_from_bytes(raw, policy=policy.default).walk():
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                for marker in MARKERS:
                    assert marker.encode() not in payload


async def test_booking_sends_an_invitation_whose_link_and_calendar_entry_work(
    client: TestClient, clock: FakeClock, mailbox: tuple[Mailbox, int]
) -> None:
    box, _ = mailbox
    practice = await _practice(client)
    booked = await _book(client, practice, "2026-11-25T10:00:00Z")

    assert await _round(client, clock) == 1
    [(recipients, _)] = box.messages
    [message] = box.parsed()
    assert recipients == [CLIENT_EMAIL]
    assert message["Subject"] == "Your appointment on Wednesday 25 November"
    assert message["To"] == CLIENT_EMAIL
    event = _calendar(message)
    assert event["_method"] == "REQUEST"
    assert event.decoded("dtstart") == datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    assert event.decoded("dtend") == datetime(2026, 11, 25, 10, 50, tzinfo=UTC)
    assert int(event["SEQUENCE"]) == 0
    assert str(event["UID"]) == f"{booked['session']['id']}@attune.test"
    assert str(event["SUMMARY"]) == "Appointment"
    assert "11:00 (CET)" in _text(message)  # the clinic's time zone
    link = re.search(r"http://attune\.test:8080(/join/[A-Za-z0-9_-]+)", _text(message))
    assert link and link.group(0) == booked["join_url"]

    clock.now = datetime(2026, 11, 25, 9, 50, tzinfo=UTC)
    client.session.cookie_jar.clear()
    opened = await client.get(link.group(1), allow_redirects=False)
    assert opened.status == 303 and opened.headers["Location"] == "/visit"
    _assert_nothing_clinical(box)


async def test_reminders_go_a_day_and_ten_minutes_before_once_each_with_the_working_link(
    client: TestClient, clock: FakeClock, mailbox: tuple[Mailbox, int]
) -> None:
    box, _ = mailbox
    practice = await _practice(client)
    booked = await _book(client, practice, "2026-11-25T10:00:00Z")
    await _round(client, clock)  # the invitation
    assert len(box.messages) == 1

    clock.now = datetime(2026, 11, 24, 9, 59, tzinfo=UTC)
    assert await _round(client, clock) == 0
    clock.now = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    assert await _round(client, clock) == 1
    clock.advance(hours=1)
    assert await _round(client, clock) == 0
    clock.now = datetime(2026, 11, 25, 9, 49, tzinfo=UTC)
    assert await _round(client, clock) == 0
    clock.now = datetime(2026, 11, 25, 9, 50, tzinfo=UTC)
    assert await _round(client, clock) == 1
    clock.now = datetime(2026, 11, 25, 10, 5, tzinfo=UTC)
    assert await _round(client, clock) == 0

    day_before, ten_minutes = box.parsed()[1:]
    assert day_before["Subject"] == "Reminder: your appointment on Wednesday 25 November"
    for reminder in (day_before, ten_minutes):
        assert booked["join_url"] in _text(reminder)
        assert reminder["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    _assert_nothing_clinical(box)


async def test_the_unsubscribe_link_stops_reminders_in_one_click(
    client: TestClient, clock: FakeClock, mailbox: tuple[Mailbox, int]
) -> None:
    box, _ = mailbox
    practice = await _practice(client)
    await _book(client, practice, "2026-11-25T10:00:00Z")
    clock.now = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    await _round(client, clock)
    reminder = box.parsed()[-1]
    unsubscribe = str(reminder["List-Unsubscribe"]).strip("<>")
    path = unsubscribe.replace("http://attune.test:8080", "")
    client.session.cookie_jar.clear()

    looked = await client.get(path)  # a link scanner's GET changes nothing
    assert looked.status == 200 and "Stop reminders" in await looked.text()
    clicked = await client.post(path, data={"List-Unsubscribe": "One-Click"})
    assert clicked.status == 200 and "Reminders stopped" in await clicked.text()

    clock.now = datetime(2026, 11, 25, 9, 50, tzinfo=UTC)
    assert await _round(client, clock) == 0
    assert len(box.messages) == 2


async def test_cancelling_and_rescheduling_update_the_same_calendar_entry(
    client: TestClient, clock: FakeClock, mailbox: tuple[Mailbox, int]
) -> None:
    box, _ = mailbox
    practice = await _practice(client)
    booked = await _book(client, practice, "2026-11-25T10:00:00Z")
    session_id = booked["session"]["id"]
    await _round(client, clock)

    moved_to = await client.post(  # the therapist reschedules on the session's edit page
        f"/dashboard/sessions/{session_id}/edit",
        data={
            "csrf_token": practice.headers["X-CSRF-Token"],
            "starts_at": "2026-11-26T10:00",
            "tz_offset_minutes": "0",
            "minutes": "50",
            "link": "keep",
        },
        allow_redirects=False,
    )
    assert moved_to.status == 303, await moved_to.text()
    await _round(client, clock)
    cancelled = await client.post(f"/api/v1/sessions/{session_id}/cancel", headers=practice.headers)
    assert cancelled.status in (200, 204)
    await _round(client, clock)

    invitation, moved, cancellation = box.parsed()
    assert moved["Subject"] == "Your appointment has moved to Thursday 26 November"
    assert cancellation["Subject"] == "Your appointment on Thursday 26 November is cancelled"
    events = [_calendar(m) for m in (invitation, moved, cancellation)]
    assert {str(e["UID"]) for e in events} == {f"{session_id}@attune.test"}
    assert [int(e["SEQUENCE"]) for e in events] == [0, 1, 2]
    assert events[1].decoded("dtstart") == datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
    assert events[2]["_method"] == "CANCEL" and str(events[2]["STATUS"]) == "CANCELLED"
    assert "/join/" not in _text(cancellation)

    clock.now = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)  # the day before the new time
    assert await _round(client, clock) == 0  # cancelled: no reminders
    _assert_nothing_clinical(box)


async def test_a_crash_between_queueing_and_sending_still_sends_once(
    client: TestClient, clock: FakeClock, mailbox: tuple[Mailbox, int]
) -> None:
    box, _ = mailbox
    practice = await _practice(client)
    await _book(client, practice, "2026-11-25T10:00:00Z")
    app = client.app
    now = clock()
    async with app[DB].write() as conn:  # a sender claims it, then dies before sending
        claimed = await outbox_queries.claim_next(
            conn, lease_id="dead-sender", now=now, lease_until=now + timedelta(minutes=5)
        )
    assert claimed is not None

    assert await _round(client, clock) == 0  # the lease still holds
    clock.advance(minutes=5)
    rounds = await asyncio.gather(_round(client, clock), _round(client, clock))  # two senders
    assert sorted(rounds) == [0, 1]
    assert await _round(client, clock) == 0
    assert len(box.messages) == 1
    async with app[DB].read() as conn:
        row = (await conn.execute(sa.select(email_outbox))).one()
    assert row.status == OutboxStatus.SENT.value and row.attempts == 2
    assert box.parsed()[0]["Message-ID"] == row.message_id  # what a resend would repeat


async def test_a_refused_address_shows_as_failed_with_a_plain_reason(
    client: TestClient, clock: FakeClock, mailbox: tuple[Mailbox, int]
) -> None:
    box, _ = mailbox
    practice = await _practice(client, email=REFUSED_EMAIL)
    await _book(client, practice, "2026-11-25T10:00:00Z")

    assert await _round(client, clock) == 0
    dashboard = await (await client.get("/dashboard")).text()
    assert f"Email: Invitation failed: {REFUSED_ADDRESS}".replace("'", "&#39;") in dashboard
    assert REFUSED_EMAIL not in dashboard
    clock.advance(hours=1)
    assert await _round(client, clock) == 0  # a refusal is not retried
    assert box.messages == []


async def test_an_unreachable_mail_server_is_retried_with_back_off(
    aiohttp_client: Any, data_dir: Path, clock: FakeClock
) -> None:
    app = create_app(_email_settings(data_dir, _free_port()), clock=clock)  # nobody listens
    client: TestClient = await aiohttp_client(app)
    practice = await _practice(client)
    await _book(client, practice, "2026-11-25T10:00:00Z")

    async def status() -> tuple[str, int, datetime]:
        async with app[DB].read() as conn:
            row = (
                await conn.execute(
                    sa.select(email_outbox).where(email_outbox.c.kind == "invitation")
                )
            ).one()
        return row.status, row.attempts, row.send_after.replace(tzinfo=UTC)

    start = clock()
    await _round(client, clock)
    assert await status() == ("retrying", 1, start + timedelta(seconds=60))
    clock.advance(seconds=59)
    await _round(client, clock)
    assert (await status())[1] == 1  # not yet due again
    clock.advance(seconds=1)
    await _round(client, clock)
    assert await status() == ("retrying", 2, clock() + timedelta(seconds=120))
    dashboard = await (await client.get("/dashboard")).text()
    assert "Invitation: retrying (Could not reach the mail server" in dashboard
    for _ in range(6):
        clock.advance(hours=6)
        await _round(client, clock)
    assert (await status())[:2] == ("failed", 8)
    async with app[DB].read() as conn:
        reason = await conn.scalar(
            sa.select(email_outbox.c.last_error).where(email_outbox.c.kind == "invitation")
        )
    assert reason == UNREACHABLE


async def test_removing_the_address_deletes_it_and_drops_what_was_waiting(
    client: TestClient, clock: FakeClock, mailbox: tuple[Mailbox, int]
) -> None:
    box, _ = mailbox
    practice = await _practice(client)
    await _book(client, practice, "2026-11-25T10:00:00Z")
    page = await (await client.get("/visit/contact")).text()
    assert CLIENT_EMAIL in page
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert csrf
    removed = await client.post(
        "/visit/contact", data={"csrf_token": csrf.group(1), "action": "remove"}
    )
    assert "Your address is deleted" in await removed.text()
    assert CLIENT_EMAIL not in await removed.text()

    assert await _round(client, clock) == 0
    assert box.messages == []
    states = await (await client.get("/api/v1/visit/consents")).json()
    contact = [s for s in states["items"] if s["purpose"] == "contact"]
    assert contact and contact[0]["state"] == "withdrawn"


async def test_a_malformed_address_is_refused_with_a_message_not_an_error(
    client: TestClient, clock: FakeClock
) -> None:
    await _practice(client, email=None)
    page = await (await client.get("/visit/contact")).text()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert csrf
    for bad in ("not-an-address", "a@b", "x" * 600, "evil@example.org\r\nBcc: x@y.org", ""):
        response = await client.post(
            "/visit/contact",
            data={"csrf_token": csrf.group(1), "email": bad, "consent": "yes", "action": "save"},
        )
        assert response.status == 422, bad
        assert "email address" in await response.text()
    states = await (await client.get("/api/v1/visit/consents")).json()
    contact = [s for s in states["items"] if s["purpose"] == "contact"]
    assert contact[0]["state"] == "never_asked"  # a typo records no consent


async def test_without_smtp_nothing_is_queued_and_the_dashboard_says_links_go_by_hand(
    aiohttp_client: Any, data_dir: Path, clock: FakeClock
) -> None:
    client: TestClient = await aiohttp_client(create_app(Settings(data_dir=data_dir), clock=clock))
    await add_account(client.app, "therapist@example.org")
    headers = {"X-CSRF-Token": await sign_in(client, "therapist@example.org")}
    created = await (
        await client.post("/api/v1/clients", json={"alias": "J.M."}, headers=headers)
    ).json()
    await client.post(
        "/api/v1/sessions",
        json={"client_id": created["id"], "starts_at": "2026-11-23T09:00:00Z"},
        headers=headers,
    )
    dashboard = await (await client.get("/dashboard")).text()
    assert "share each link with your client by hand" in dashboard
    async with client.app[DB].read() as conn:
        assert await conn.scalar(sa.select(sa.func.count()).select_from(email_outbox)) == 0


async def _after_checkin_with_rupture(client: TestClient, practice: Practice) -> None:
    """The client (inside the first session, storing check-ins) reports a rupture after the
    therapist ended the session, with a free-text note."""
    app = client.app
    page = await (await client.get("/visit/consent")).text()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert csrf
    granted = await client.post(
        "/api/v1/visit/consents",
        json={"purpose": "checkin_storage", "decision": "granted", "notice_version": 1},
        headers={"X-CSRF-Token": csrf.group(1)},
    )
    assert granted.status in (200, 201)
    therapist = await accounts.account_by_email(app[DB], "therapist@example.org")
    sessions = await scheduling.list_sessions(app[DB], therapist)
    await app[LIVE].end_session(therapist, sessions[0].id)
    after = await (await client.get("/visit/after")).text()
    token = after.split('name="csrf-token" content="')[1].split('"')[0]
    answers = {
        "bond": 9,
        "goals": 9,
        "approach": 9,
        "technology": 9,
        "overall": 9,
        "rupture": "quite-a-bit",
        "note": MARKERS[1],
    }
    response = await client.post(
        "/api/v1/visit/checkins",
        headers={"X-CSRF-Token": token},
        json={"instrument_id": "after", "answers": answers, "idempotency_key": "k" * 32},
    )
    assert response.status == 201, await response.text()


async def test_a_rupture_alert_after_the_session_emails_an_opted_in_therapist_only_that_it_exists(
    client: TestClient, clock: FakeClock, mailbox: tuple[Mailbox, int]
) -> None:
    box, _ = mailbox
    practice = await _practice(client)
    dashboard = await (await client.get("/dashboard")).text()
    assert "Alert emails" in dashboard
    csrf = practice.headers["X-CSRF-Token"]
    opted = await client.post(
        "/dashboard/email-alerts",
        data={"csrf_token": csrf, "alerts": "on"},
        allow_redirects=False,
    )
    assert opted.status == 303
    await _after_checkin_with_rupture(client, practice)

    assert await _round(client, clock) == 1
    [(recipients, _)] = box.messages
    [notice] = box.parsed()
    assert recipients == ["therapist@example.org"]
    assert notice["Subject"] == "You have a new alert in Attune"
    text = _text(notice)
    assert "You have an alert for a client. Sign in to see it" in text
    assert "http://attune.test:8080/login" in text
    for _, raw in box.messages:
        for marker in MARKERS[:2]:
            assert marker.encode() not in raw
        assert b"rupture" not in raw.lower()


async def test_a_therapist_who_did_not_opt_in_gets_no_alert_email(
    client: TestClient, clock: FakeClock, mailbox: tuple[Mailbox, int]
) -> None:
    box, _ = mailbox
    practice = await _practice(client)
    await _after_checkin_with_rupture(client, practice)
    assert await _round(client, clock) == 0
    assert box.messages == []


async def test_sent_emails_are_purged_after_30_days_while_the_address_stays(
    client: TestClient, clock: FakeClock, mailbox: tuple[Mailbox, int]
) -> None:
    practice = await _practice(client)
    await _book(client, practice, "2026-11-25T10:00:00Z")
    await _round(client, clock)
    app = client.app
    retention = Retention(app[DB], app[AUDIT], app[VAULT])

    early = await retention.purge(clock() + timedelta(days=29), trigger="cli", actor="system:cli")
    assert early.count(Category.OUTBOX, Action.DELETE) == 0
    report = await retention.purge(clock() + timedelta(days=31), trigger="cli", actor="system:cli")
    assert report.count(Category.OUTBOX, Action.DELETE) == 1
    assert report.count(Category.CONTACT, Action.DELETE) == 0
    async with app[DB].read() as conn:
        assert await conn.scalar(sa.select(sa.func.count()).select_from(email_outbox)) == 0
        assert await outbox_queries.contact(conn, practice.client_id) is not None


async def test_an_unknown_unsubscribe_link_changes_nothing_and_says_so(
    client: TestClient, clock: FakeClock
) -> None:
    for token in ("A" * 43, "short", "x" * 300):
        response = await client.post(f"/email/unsubscribe/{token}")
        assert response.status == 404
        assert "This link does not work" in await response.text()


async def test_the_address_and_the_join_link_are_never_stored_in_clear(
    client: TestClient, clock: FakeClock, mailbox: tuple[Mailbox, int]
) -> None:
    practice = await _practice(client)
    booked = await _book(client, practice, "2026-11-25T10:00:00Z")
    token = booked["join_url"].rsplit("/", 1)[1]
    await _round(client, clock)
    async with client.app[DB].read() as conn:
        for table in metadata.sorted_tables:
            for row in await conn.execute(sa.select(table)):
                for value in row:
                    blob = value if isinstance(value, bytes) else str(value).encode()
                    assert CLIENT_EMAIL.encode() not in blob, table.name
                    assert token.encode() not in blob, table.name


# Words of the English emails that a Spanish or German one must not carry.
ENGLISH_EMAIL = (
    "Hello",
    "appointment",
    "Join from this link",
    "Keep this link",
    "calendar file",
    "To stop reminders",
    "This message was sent automatically",
)


CONTACT_PAGE = {
    "es": (
        "Recordatorios por correo",
        "Eso no parece una dirección de correo electrónico",
        "Marque «Enviarme recordatorios por correo electrónico»",
    ),
    "de": (
        "Erinnerungen per E-Mail",
        "Das sieht nicht wie eine E-Mail-Adresse aus",
        "Setzen Sie das Häkchen bei „Erinnerungen per E-Mail erhalten“",
    ),
}


async def _the_contact_page_speaks(client: TestClient, language: str) -> None:
    """The client's email page, its refusals and the consent it records, in their language."""
    title, bad_address, no_tick = CONTACT_PAGE[language]
    page = await (await client.get("/visit/contact")).text()
    assert f'<html lang="{language}"' in page and title in page
    assert "Email me reminders" not in page and "Save my address" not in page
    assert f'name="notice_language" value="{language}"' in page
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert csrf
    form = {"csrf_token": csrf.group(1), "notice_version": "1", "notice_language": language}
    typo = await client.post(
        "/visit/contact", data={**form, "email": "not an address", "consent": "yes"}
    )
    assert typo.status == 422 and bad_address in await typo.text()
    unticked = await client.post("/visit/contact", data={**form, "email": CLIENT_EMAIL})
    assert unticked.status == 422 and no_tick in await unticked.text()
    # saying no and yes again on this page records the text in the language shown
    for action in ("remove", "save"):
        done = await client.post(
            "/visit/contact",
            data={**form, "email": CLIENT_EMAIL, "consent": "yes", "action": action},
            allow_redirects=False,
        )
        assert done.status == 303
    async with client.app[DB].read() as conn:
        rows = (
            await conn.exec_driver_sql(
                "SELECT decision, notice_language FROM consent_records"
                " WHERE purpose = 'contact' ORDER BY id"
            )
        ).all()
    assert [tuple(r) for r in rows] == [
        ("granted", "en"),
        ("withdrawn", language),
        ("granted", language),
    ]


@pytest.mark.parametrize(
    ("language", "chosen_by", "subject", "when", "calendar", "reminder", "stop", "page"),
    [
        (
            "es",
            "the client",
            "Su cita del miércoles, 25 de noviembre",
            "miércoles, 25 de noviembre de 2026, 11:00 (CET)",
            ("Cita", "Entre desde este enlace:"),
            "Recordatorio: su cita del miércoles, 25 de noviembre",
            "Para dejar de recibir recordatorios como este, abra:",
            "¿Dejar de recibir recordatorios por correo?",
        ),
        (
            "de",
            "the therapist",
            "Ihr Termin am Mittwoch, 25. November",
            "Mittwoch, 25. November 2026 um 11:00 (MEZ)",
            ("Termin", "Über diesen Link beitreten:"),
            "Erinnerung: Ihr Termin am Mittwoch, 25. November",
            "Um Erinnerungen wie diese abzubestellen, öffnen Sie:",
            "Erinnerungen per E-Mail abbestellen?",
        ),
    ],
)
async def test_a_clients_emails_and_calendar_entry_are_in_the_clients_language(
    client: TestClient,
    clock: FakeClock,
    mailbox: tuple[Mailbox, int],
    language: str,
    chosen_by: str,
    subject: str,
    when: str,
    calendar: tuple[str, str],
    reminder: str,
    stop: str,
    page: str,
) -> None:
    box, _ = mailbox
    practice = await _practice(client)
    if chosen_by == "the client":  # on their own page; remembered with their record
        contact = await (await client.get("/visit/contact")).text()
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', contact)
        assert csrf
        chosen = await client.post(
            "/language",
            data={"lang": language, "next": "/visit/contact", "csrf_token": csrf.group(1)},
            allow_redirects=False,
        )
    else:  # on the client's page
        chosen = await client.post(
            f"/dashboard/clients/{practice.client_id}/language",
            data={"language": language, "csrf_token": practice.headers["X-CSRF-Token"]},
            allow_redirects=False,
        )
    assert chosen.status == 303
    await _the_contact_page_speaks(client, language)
    booked = await _book(client, practice, "2026-11-25T10:00:00Z")
    await _round(client, clock)
    clock.now = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    await _round(client, clock)

    invitation, day_before = box.parsed()
    assert invitation["Subject"] == subject
    assert invitation["Content-Language"] == language
    text = _text(invitation)
    html_part = invitation.get_body(preferencelist=("html",))
    assert html_part is not None
    html = str(html_part.get_content())
    assert f"{when}." in text and f"<strong>{when}</strong>" in html
    assert f'<html lang="{language}">' in html
    assert booked["join_url"] in text and booked["join_url"] in html
    for english in ENGLISH_EMAIL:
        assert english.lower() not in text.lower(), english
        assert english.lower() not in html.lower(), english
    event = _calendar(invitation)
    title, description = calendar
    assert str(event["SUMMARY"]) == title
    assert str(event["DESCRIPTION"]) == f"{description} {booked['join_url']}"

    assert day_before["Subject"] == reminder
    assert stop in _text(day_before)
    # the reminder's stop link opens a page in the language of the browser that opens it
    path = str(day_before["List-Unsubscribe"]).strip("<>").replace("http://attune.test:8080", "")
    client.session.cookie_jar.clear()
    stop_page = await (await client.get(path, headers={"Accept-Language": language})).text()
    assert f'<html lang="{language}"' in stop_page and page in stop_page
    _assert_nothing_clinical(box)


async def test_without_a_language_of_their_own_a_client_gets_the_clinics_default(
    data_dir: Path, clock: FakeClock, mailbox: tuple[Mailbox, int], aiohttp_client: Any
) -> None:
    box, port = mailbox
    settings = _email_settings(data_dir, port)
    german_clinic = create_app(dataclasses.replace(settings, default_language="de"), clock=clock)
    client = await aiohttp_client(german_clinic)
    practice = await _practice(client)
    await _book(client, practice, "2026-11-25T10:00:00Z")
    await _round(client, clock)
    [invitation] = box.parsed()
    assert invitation["Subject"] == "Ihr Termin am Mittwoch, 25. November"
    assert "Guten Tag," in _text(invitation)

"""A couple's session emails each client who agreed to email, with their own link: the
invitation, the reminders and the cancellation; a guest gets none (no address is kept)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.message import EmailMessage

from aiohttp.test_utils import TestClient

from tests.conftest import FakeClock, add_account, sign_in
from tests.integration.test_email import (  # noqa: F401 - the SMTP server and the app on it
    Mailbox,
    _calendar,
    _round,
    _text,
    app,
    mailbox,
)

BASE = "http://attune.test:8080"


async def _client_with_email(
    client: TestClient, headers: dict[str, str], alias: str, email: str
) -> str:
    """A client who saved an address for reminders from a first session's link (now)."""
    created = await (
        await client.post("/api/v1/clients", json={"alias": alias}, headers=headers)
    ).json()
    first = await (
        await client.post(
            "/api/v1/sessions",
            json={"client_id": created["id"], "starts_at": "2026-11-23T09:00:00Z"},
            headers=headers,
        )
    ).json()
    client.session.cookie_jar.clear(lambda c: c.key == "attune-client")
    await client.get(first["join_url"].replace(BASE, ""))
    page = await (await client.get("/visit/contact")).text()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert csrf
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
    client.session.cookie_jar.clear(lambda c: c.key == "attune-client")
    return str(created["id"])


def _about(box: Mailbox, session_id: str) -> list[EmailMessage]:
    """The messages with a calendar entry for this session."""
    uid = f"{session_id}@attune.test"
    return [
        message
        for message in box.parsed()
        if any(p.get_content_type() == "text/calendar" for p in message.walk())
        and str(_calendar(message)["UID"]) == uid
    ]


async def test_each_client_of_a_couple_gets_their_own_invitation_reminders_and_cancellation(
    client: TestClient,
    clock: FakeClock,
    mailbox: tuple[Mailbox, int],  # noqa: F811 - the fixture imported above
) -> None:
    box, _ = mailbox
    await add_account(client.app, "therapist@example.org")
    headers = {"X-CSRF-Token": await sign_in(client, "therapist@example.org")}
    first = await _client_with_email(client, headers, "A.B.", "a@example.org")
    second = await _client_with_email(client, headers, "C.D.", "c@example.org")
    await _round(client, clock)
    box.messages.clear()  # the first sessions' invitations

    booked = await (
        await client.post(
            "/api/v1/sessions",
            json={"client_id": first, "starts_at": "2026-11-25T10:00:00Z"},
            headers=headers,
        )
    ).json()
    session_id = booked["session"]["id"]
    people = f"/api/v1/sessions/{session_id}/participants"
    added = await (
        await client.post(people, json={"kind": "client", "client_id": second}, headers=headers)
    ).json()
    guest = await client.post(people, json={"kind": "guest", "label": "Interp"}, headers=headers)
    assert guest.status == 201
    links = {"a@example.org": booked["join_url"], "c@example.org": added["join_url"]}

    assert await _round(client, clock) == 2
    invitations = {str(m["To"]): m for m in _about(box, session_id)}
    assert set(invitations) == set(links)
    for to, message in invitations.items():
        assert links[to] in _text(message)  # their own link, never the other's
        assert int(_calendar(message)["SEQUENCE"]) >= 0
    box.messages.clear()

    clock.now = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    assert await _round(client, clock) == 2
    reminders = {str(m["To"]): _text(m) for m in box.parsed()}
    assert set(reminders) == set(links)
    assert all(links[to] in text for to, text in reminders.items())
    assert await _round(client, clock) == 0  # once each
    box.messages.clear()

    headers = {"X-CSRF-Token": await sign_in(client, "therapist@example.org")}  # a day later
    cancelled = await client.post(f"/api/v1/sessions/{session_id}/cancel", headers=headers)
    assert cancelled.status == 200
    assert await _round(client, clock) == 2
    assert {str(m["To"]) for m in _about(box, session_id)} == set(links)
    assert all(_calendar(m)["_method"] == "CANCEL" for m in _about(box, session_id))

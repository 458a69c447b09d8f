"""Answering measures between sessions from an emailed link, through a real SMTP server
(aiosmtpd on loopback): the email is neutral, its link works once and for a week, is swapped
for a token-free page, stores answers like the visit page (vault, idempotency, safety alert)
and stops after expiry, use and revocation (docs/checkins.md "Between sessions")."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from aiosmtpd.controller import Controller

from server.app import create_app
from server.db import scheduling
from server.jobs.email import run_once
from server.keys import AUDIT, DB, MAILER, MEASURE_LINKS, MEASURES, SETTINGS, SMTP_TRANSPORT
from tests.conftest import FakeClock, sign_in
from tests.integration.test_email import (
    CLIENT_EMAIL,
    Mailbox,
    Practice,
    _assert_nothing_clinical,
    _book,
    _email_settings,
    _free_port,
    _practice,
    _text,
)

CODES = ("LA6568-5", "LA6569-3", "LA6570-1", "LA6571-9")
LATER = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)  # 8 days after the first session, none booked


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box, port = Mailbox(), _free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port, ready_timeout=5)
    controller.start()
    yield box, port
    controller.stop()


@pytest.fixture
def app(data_dir: Path, clock: FakeClock, mailbox: tuple[Mailbox, int]) -> web.Application:
    return create_app(_email_settings(data_dir, mailbox[1]), clock=clock)


def phq9(*scores: int) -> dict[str, str]:
    return {f"phq9-{n}": CODES[value] for n, value in enumerate(scores, start=1)}


async def _round(client: TestClient, clock: FakeClock) -> int:
    app = client.app
    return await run_once(
        app[MAILER], app[DB], app[AUDIT], app[SMTP_TRANSPORT], clock(), app[MEASURE_LINKS]
    )


async def _monthly_plan(client: TestClient, practice: Practice, *measures: str) -> None:
    saved = await client.post(
        f"/dashboard/clients/{practice.client_id}/measures",
        data={
            "csrf_token": practice.headers["X-CSRF-Token"],
            "frequency": "monthly",
            **{f"measure-{m}": "on" for m in measures},
        },
        allow_redirects=False,
    )
    assert saved.status == 303, await saved.text()
    assert "saved" in saved.headers["Location"], saved.headers["Location"]


async def _signed_in_again(client: TestClient, practice: Practice) -> Practice:
    """The therapist signs in again (days passed: the earlier sign-in has lapsed)."""
    token = await sign_in(client, "therapist@example.org")
    return Practice(practice.client_id, {"X-CSRF-Token": token})


def _sql(client: TestClient, query: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(client.app[SETTINGS].data_dir / "attune.db") as conn:
        return conn.execute(query).fetchall()


async def _emailed_link(
    client: TestClient, clock: FakeClock, box: Mailbox, *measures: str
) -> tuple[Practice, str]:
    """A client with a monthly plan, a week after their session: the round emails a link."""
    practice = await _practice(client)
    await _monthly_plan(client, practice, *measures)
    clock.now = LATER
    assert await _round(client, clock) == 1
    message = box.parsed()[-1]
    found = re.search(r"http://attune\.test:8080(/m/[A-Za-z0-9_-]{43})\s", _text(message))
    assert found, _text(message)
    client.session.cookie_jar.clear()  # the client's own browser, later
    return practice, found.group(1)


async def _csrf(client: TestClient) -> str:
    page = await (await client.get("/measures")).text()
    found = re.search(r'name="csrf-token" content="([^"]+)"', page)
    assert found, page[:400]
    return found.group(1)


async def _submit(client: TestClient, answers: dict[str, str], key: str) -> Any:
    return await client.post(
        "/api/v1/measure-link",
        headers={"X-CSRF-Token": await _csrf(client)},
        json={"measure_id": "phq9", "answers": answers, "idempotency_key": key},
    )


async def test_the_email_is_neutral_and_its_link_opens_a_token_free_form_that_stores_answers(
    client: TestClient, clock: FakeClock, mailbox: tuple[Mailbox, int]
) -> None:
    box, _ = mailbox
    practice, path = await _emailed_link(client, clock, box, "phq9")
    [(recipients, raw)] = box.messages
    message = box.parsed()[0]
    assert recipients == [CLIENT_EMAIL]
    assert message["Subject"] == "A short form from your practice"
    for clinical in (b"PHQ", b"depress", b"anxi", b"GAD", b"mood", b"self-harm", b"therapy"):
        assert clinical.lower() not in raw.lower(), clinical
    _assert_nothing_clinical(box)

    opened = await client.get(path, allow_redirects=False)
    assert opened.status == 200 and opened.headers["Cache-Control"] == "no-store"
    assert 'content="0;url=/measures"' in await opened.text()  # moves on, same-site
    assert "attune-measures" in opened.cookies
    page = await client.get("/measures")
    html = await page.text()
    assert page.status == 200 and 'data-api="/api/v1/measure-link"' in html
    assert "call your local emergency number" in html  # where to get help, always on the page
    due = await (await client.get("/api/v1/measure-link")).json()
    assert [d["measure_id"] for d in due["due"]] == ["phq9"]
    assert due["due"][0]["questionnaire"]["code"][0]["code"] == "44249-1"

    stored = await _submit(client, phq9(1, 1, 0, 0, 0, 0, 0, 0, 0), "link-answer-000001")
    assert stored.status == 201, await stored.text()
    assert (await stored.json())["help"] is None
    again = await _submit(client, phq9(1, 1, 0, 0, 0, 0, 0, 0, 0), "link-answer-000001")
    assert again.status == 200 and (await again.json())["duplicate"] is True
    rows = _sql(client, "SELECT client_id, by_link, payload_ciphertext FROM measure_responses")
    assert len(rows) == 1 and rows[0][:2] == (practice.client_id, 1)
    assert b"LA6569-3" not in rows[0][2]  # through the vault: ciphertext at rest
    [result] = await client.app[MEASURES].history(practice.client_id)
    assert result.score.total == 2
    assert ("measure.link_sent",) in _sql(client, "SELECT action FROM audit_log")

    # everything asked is answered: the page thanks, the emailed link is spent
    assert "Thank you" in await (await client.get("/measures")).text()
    assert (await client.get("/api/v1/measure-link")).status == 200
    assert (await (await client.get("/api/v1/measure-link")).json()) == {"due": []}
    late = await _submit(client, phq9(3, 3, 3, 3, 3, 3, 3, 3, 0), "link-answer-000002")
    assert late.status == 409
    client.session.cookie_jar.clear()
    assert (await client.get(path, allow_redirects=False)).status == 404

    # answered a week ago by link: the next visit page does not ask again so soon
    therapist = await _signed_in_again(client, practice)
    booked = await _book(client, therapist, "2026-12-10T09:00:00Z")
    session_id = booked["session"]["id"]
    session = await _session(client, session_id)
    assert await client.app[MEASURES].due(session) == []
    # and no new link while one went out in the last 28 days
    clock.now = datetime(2026, 12, 20, 9, 0, tzinfo=UTC)
    await _round(client, clock)
    assert len(_sql(client, "SELECT id FROM measure_links")) == 1


async def _session(client: TestClient, session_id: str) -> Any:
    async with client.app[DB].read() as conn:
        return await scheduling.session_by_id(conn, session_id)


async def test_a_safety_answer_from_the_link_raises_the_alert_and_shows_where_to_get_help(
    client: TestClient, clock: FakeClock, mailbox: tuple[Mailbox, int]
) -> None:
    box, _ = mailbox
    await _emailed_link(client, clock, box, "phq9")
    path = re.search(r"/m/[A-Za-z0-9_-]{43}", _text(box.parsed()[-1]))
    assert path
    await client.get(path.group(0))
    answered = await _submit(client, phq9(2, 2, 1, 1, 1, 1, 1, 1, 2), "link-safety-0000001")
    assert answered.status == 201
    help_text = (await answered.json())["help"]
    assert "emergency" in help_text
    assert len(_sql(client, "SELECT id FROM measure_alerts")) == 1
    assert await _round(client, clock) == 1  # the therapist's neutral safety notice
    notice = box.parsed()[-1]
    assert notice["To"] == "therapist@example.org"
    assert notice["Subject"] == "A client's questionnaire needs your attention"


async def test_the_link_stops_after_it_expires(
    client: TestClient, clock: FakeClock, mailbox: tuple[Mailbox, int]
) -> None:
    box, _ = mailbox
    _, path = await _emailed_link(client, clock, box, "phq9")
    clock.advance(days=7)
    assert (await client.get(path, allow_redirects=False)).status == 404
    assert "does not work" in await (await client.get("/measures")).text()


async def test_an_opened_link_stops_when_it_expires_and_cannot_be_opened_twice(
    client: TestClient, clock: FakeClock, mailbox: tuple[Mailbox, int]
) -> None:
    box, _ = mailbox
    _, path = await _emailed_link(client, clock, box, "phq9")
    assert (await client.get(path, allow_redirects=False)).status == 200
    assert (await client.get(path, allow_redirects=False)).status == 404  # used: once only
    clock.advance(days=7, seconds=1)
    assert (await client.get("/api/v1/measure-link")).status == 403
    stale = await client.post(
        "/api/v1/measure-link",
        json={"measure_id": "phq9", "answers": phq9(0), "idempotency_key": "link-stale-00000001"},
    )
    assert stale.status == 403
    assert _sql(client, "SELECT id FROM measure_responses") == []


async def test_changing_the_plan_revokes_the_link(
    client: TestClient, clock: FakeClock, mailbox: tuple[Mailbox, int]
) -> None:
    box, _ = mailbox
    practice = await _practice(client)
    await _monthly_plan(client, practice, "phq9")
    clock.now = LATER
    assert await _round(client, clock) == 1
    path = re.search(r"/m/[A-Za-z0-9_-]{43}", _text(box.parsed()[-1]))
    assert path
    therapist = await _signed_in_again(client, practice)
    await _monthly_plan(client, therapist, "phq9", "gad7")  # revokes the link sent
    client.session.cookie_jar.clear()
    assert (await client.get(path.group(0), allow_redirects=False)).status == 404


async def test_no_link_without_an_address_or_when_a_session_is_near_or_the_plan_is_per_session(
    client: TestClient, clock: FakeClock, mailbox: tuple[Mailbox, int]
) -> None:
    box, _ = mailbox
    practice = await _practice(client)
    await _monthly_plan(client, practice, "phq9")
    await _book(client, practice, "2026-12-05T09:00:00Z")  # within 7 days of LATER
    clock.now = LATER
    await _round(client, clock)
    assert not [m for m in box.parsed() if m["Subject"] == "A short form from your practice"]
    assert _sql(client, "SELECT id FROM measure_links") == []

    therapist = await _signed_in_again(client, practice)
    saved = await client.post(
        f"/dashboard/clients/{practice.client_id}/measures",
        data={
            "csrf_token": therapist.headers["X-CSRF-Token"],
            "frequency": "every-session",
            "measure-phq9": "on",
        },
        allow_redirects=False,
    )
    assert saved.status == 303 and "saved" in saved.headers["Location"]
    clock.now = datetime(2026, 12, 20, 9, 0, tzinfo=UTC)  # far from any session
    await _round(client, clock)
    assert _sql(client, "SELECT id FROM measure_links") == []


async def test_no_link_for_a_client_who_gave_no_address(
    client: TestClient, clock: FakeClock, mailbox: tuple[Mailbox, int]
) -> None:
    box, _ = mailbox
    practice = await _practice(client, email=None)
    await _monthly_plan(client, practice, "phq9")
    clock.now = LATER
    assert await _round(client, clock) == 0
    assert box.messages == []
    assert _sql(client, "SELECT id FROM measure_links") == []


async def test_a_bad_or_unknown_token_gets_the_plain_page_not_a_500(client: TestClient) -> None:
    for token in ("short", "x" * 43, "%00" * 20, "a" * 500):
        response = await client.get(f"/m/{token}", allow_redirects=False)
        assert response.status == 404
        assert "does not work" in await response.text()
    assert (await client.get("/api/v1/measure-link")).status == 401

"""Answering measures between sessions from the emailed link, in real headless Chromium on a
phone (360×640): a month after the session the email job sends the link through a real SMTP
server, the client opens it, the token leaves the address bar, the PHQ-9 is answered by touch
and keyboard, the answer is stored, and the spent link then shows a plain page.

Screenshots go to /tmp/shots-measures/ (outside the repository) for looking at.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import unused_port
from playwright.async_api import Page, expect

from privacy.consent import Channel, ConsentDecision, Purpose
from server.app import create_app
from server.core.measures.schedule import Frequency, Plan
from server.jobs.email import run_once
from server.keys import AUDIT, CONSENTS, DB, MAILER, MEASURE_LINKS, MEASURES, SMTP_TRANSPORT
from server.services import scheduling
from server.settings import Settings
from tests.browser.conftest import MOBILE, PHONE_SIZE, BrowserHarness, LiveSite
from tests.browser.video_helpers import fits_a_phone
from tests.conftest import FakeClock, add_account, with_migrated_database
from tests.integration.test_email import Mailbox, _text

pytestmark = pytest.mark.browser

SHOTS = Path("/tmp/shots-measures")


@pytest.fixture(autouse=True)
def shots_dir() -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
async def site(
    aiohttp_server: Any, tmp_path: Path, mailbox: tuple[Mailbox, int], clock: FakeClock
) -> LiveSite:
    port = unused_port()
    settings = Settings(
        data_dir=with_migrated_database(tmp_path / "data"),
        host="127.0.0.1",
        port=port,
        smtp_host="127.0.0.1",
        smtp_port=mailbox[1],
        smtp_security="none",
        smtp_timeout_seconds=5,
        email_from="appointments@attune.test",
        email_interval_seconds=3600,  # the test runs the round itself
        clinic_emergency_number="112",
    )
    app = create_app(settings, clock=clock)
    await aiohttp_server(app, host="127.0.0.1", port=port)
    return LiveSite(app=app, base_url=settings.base_url)


async def _client_with_monthly_phq9(site: LiveSite, clock: FakeClock) -> str:
    """A client who had a session today, gave an address for email and whose therapist asks
    the PHQ-9 monthly."""
    app, now = site.app, clock()
    db, audit = app[DB], app[AUDIT]
    therapist = await add_account(app, "therapist@example.org")
    client = await scheduling.create_client(db, audit, therapist, "J.M.", now)
    await scheduling.create_session(
        db, audit, therapist, client_id=client.id, starts_at=now, minutes=50, now=now
    )
    consents = app[CONSENTS]
    await consents.decide(
        db,
        audit,
        client_id=client.id,
        purpose=Purpose.CONTACT,
        decision=ConsentDecision.GRANTED,
        notice_version=consents.catalog.current(Purpose.CONTACT).version,
        channel=Channel.API,
        now=now,
    )
    await app[MAILER].set_contact(db, audit, client_id=client.id, email="jm@example.org", now=now)
    await app[MEASURES].set_plan(
        therapist_id=therapist.id,
        client_id=client.id,
        plan=Plan(("phq9",), Frequency.MONTHLY),
        now=now,
        audit=audit,
    )
    return client.id


async def shots(page: Page, name: str) -> None:
    for width, height in ((360, 640), (1280, 720)):
        await page.set_viewport_size({"width": width, "height": height})
        await page.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=True)
    await page.set_viewport_size(PHONE_SIZE)


async def test_a_client_answers_the_phq9_on_a_phone_from_the_emailed_link(
    site: LiveSite, harness: BrowserHarness, clock: FakeClock, mailbox: tuple[Mailbox, int]
) -> None:
    box, _ = mailbox
    client_id = await _client_with_monthly_phq9(site, clock)
    app = site.app
    clock.advance(days=30)  # a month on, no session booked
    sent = await run_once(
        app[MAILER], app[DB], app[AUDIT], app[SMTP_TRANSPORT], clock(), app[MEASURE_LINKS]
    )
    assert sent == 1
    [message] = box.parsed()
    assert message["Subject"] == "A short form from your practice"
    found = re.search(r"(http://127\.0\.0\.1:\d+/m/[A-Za-z0-9_-]{43})\s", _text(message))
    assert found
    link = found.group(1)

    page = await harness.new_page(**MOBILE)
    # Opened from a webmail page on another site, as clients do: a cross-site navigation.
    await page.route(
        "http://mail.example/inbox",
        lambda route: route.fulfill(
            content_type="text/html",
            body=f'<!doctype html><title>Inbox</title><a href="{link}">Open the form</a>',
        ),
    )
    await page.goto("http://mail.example/inbox")
    await page.get_by_role("link", name="Open the form").click()
    await expect(page).to_have_url(re.compile(r"/measures$"))  # the token left the address bar
    card = page.get_by_role("region", name="A short form: PHQ-9")
    await expect(card).to_be_visible()
    await expect(card).to_contain_text("You can skip any question")
    help_note = page.get_by_role("complementary", name="If you need help now")
    await expect(help_note).to_contain_text("112")
    await expect(card.get_by_role("group")).to_have_count(9)
    for number in range(1, 9):
        group = card.get_by_role("group", name=re.compile(rf"^{number}\. "))
        await group.get_by_role("radio", name="Several days").check()
    # Item 9 by keyboard: "Not at all", chosen with the space bar.
    item9 = card.get_by_role("group", name=re.compile(r"^9\. "))
    await item9.get_by_role("radio", name="Not at all").focus()
    await page.keyboard.press("Space")
    await expect(item9.get_by_role("radio", name="Not at all")).to_be_checked()
    await fits_a_phone(page)
    await shots(page, "measure-link-form")
    await card.get_by_role("button", name="Send to my therapist").click()

    await expect(page.get_by_role("heading", name="Thank you")).to_be_visible()
    await expect(page.get_by_role("status")).to_have_text("Your answers went to your therapist.")
    await expect(page.get_by_role("alert")).to_be_hidden()  # no safety answer: no help alert
    await shots(page, "measure-link-thanks")
    [stored] = await app[MEASURES].history(client_id)
    assert stored.score.total == 8 and stored.alert is None

    # The emailed link is spent; the page says so plainly.
    again = await harness.new_page(**MOBILE)
    response = await again.goto(link)
    assert response is not None and response.status == 404
    await expect(again.get_by_role("heading", name="This link does not work")).to_be_visible()
    await fits_a_phone(again)
    await shots(again, "measure-link-spent")
    harness.assert_no_policy_violations()

"""Email as the client meets it in real headless Chromium on a phone (360×640), by keyboard:
adding, changing and removing their address on the visit page, and the one-click
unsubscribe page a reminder links to, which works without any cookie. Screenshots go to
/tmp/shots-email/ (outside the repository) for looking at."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import unused_port
from playwright.async_api import Browser, Page, expect

from privacy.consent import Channel, ConsentDecision, ConsentState, Purpose
from server.app import create_app
from server.jobs.email import run_once
from server.keys import AUDIT, CONSENTS, DB, MAILER, SMTP_TRANSPORT
from server.services import scheduling
from server.settings import Settings
from tests.browser.axe import axe_violations
from tests.browser.conftest import LAPTOP_SIZE, MOBILE, PHONE_SIZE, BrowserHarness, LiveSite
from tests.browser.video_helpers import fits_a_phone, grant_telehealth, schedule_session
from tests.conftest import with_migrated_database
from tests.integration.test_email import Mailbox

pytestmark = pytest.mark.browser

SHOTS = Path("/tmp/shots-email")


@pytest.fixture
async def site(aiohttp_server: Any, tmp_path: Path, mailbox: tuple[Mailbox, int]) -> LiveSite:
    """The app on a loopback port, sending through the SMTP server above (its email job runs
    only when the test asks: a long interval)."""
    port = unused_port()
    settings = Settings(
        data_dir=with_migrated_database(tmp_path / "data"),
        host="127.0.0.1",
        port=port,
        smtp_host="127.0.0.1",
        smtp_port=mailbox[1],
        smtp_security="none",
        email_from="appointments@attune.test",
        email_interval_seconds=3600,
    )
    app = create_app(settings)
    await aiohttp_server(app, host="127.0.0.1", port=port)
    return LiveSite(app=app, base_url=settings.base_url)


@pytest.fixture
def harness(browser: Browser) -> BrowserHarness:
    return BrowserHarness(browser)


async def shot_both(page: Page, name: str) -> None:
    """What the client sees now at a phone's and at a laptop's size."""
    await page.screenshot(path=str(SHOTS / f"{name}-360.png"), full_page=True)
    await page.set_viewport_size(LAPTOP_SIZE)
    await page.screenshot(path=str(SHOTS / f"{name}-1280.png"), full_page=True)
    await page.set_viewport_size(PHONE_SIZE)


async def test_a_client_adds_changes_and_removes_their_address_by_keyboard_on_a_phone(
    site: LiveSite, harness: BrowserHarness, axe_source: str
) -> None:
    scheduled = await schedule_session(site)
    await grant_telehealth(site, scheduled.client_id)
    mailer, db = site.app[MAILER], site.app[DB]
    page = await harness.new_page(**MOBILE)
    await page.goto(scheduled.link)
    to_contact = page.get_by_role("link", name="Get reminders by email")
    await to_contact.focus()
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name="Email reminders", level=1)).to_be_visible()
    field = page.get_by_label("Your email address")
    tick = page.get_by_label("Email me reminders", exact=False)
    await expect(tick).not_to_be_checked()  # optional, and unticked until the client ticks it
    await fits_a_phone(page)
    assert await axe_violations(page, axe_source) == []
    await shot_both(page, "contact-empty")

    # Add: type, Tab to the box, Space ticks it, Enter sends the form.
    await field.focus()
    await page.keyboard.type("first@example.org")
    await page.keyboard.press("Tab")
    await expect(tick).to_be_focused()
    await page.keyboard.press("Space")
    await expect(tick).to_be_checked()
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("status")).to_have_text(
        "Saved. Reminders will go to this address."
    )
    await expect(field).to_have_value("first@example.org")
    assert await mailer.contact_email(db, scheduled.client_id) == "first@example.org"
    await expect(page.get_by_role("button", name="Remove my address")).to_be_visible()
    await fits_a_phone(page)
    assert await axe_violations(page, axe_source) == []
    await shot_both(page, "contact-saved")

    # Change it: the box stays ticked (the consent stands).
    await field.fill("second@example.org")
    await field.press("Enter")
    await expect(page.get_by_role("status")).to_have_text(
        "Saved. Reminders will go to this address."
    )
    assert await mailer.contact_email(db, scheduled.client_id) == "second@example.org"

    # A typo: said plainly next to the field, and the saved address is kept.
    await field.fill("second@example")
    await field.press("Enter")
    error = page.get_by_role("alert")
    await expect(error).to_contain_text("does not look like an email address")
    await expect(field).to_have_attribute("aria-invalid", "true")
    await expect(field).to_have_attribute("aria-describedby", "contact-error")
    assert await mailer.contact_email(db, scheduled.client_id) == "second@example.org"
    await fits_a_phone(page)
    assert await axe_violations(page, axe_source) == []
    await shot_both(page, "contact-error")

    # Remove: one button, by keyboard; the address is gone and the consent withdrawn.
    await page.get_by_role("button", name="Remove my address").focus()
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("status")).to_have_text(
        "Your address is deleted. We will not email you."
    )
    await expect(field).to_have_value("")
    await expect(page.get_by_role("button", name="Remove my address")).to_have_count(0)
    assert await mailer.contact_email(db, scheduled.client_id) is None
    states = await site.app[CONSENTS].state(db, scheduled.client_id, datetime.now(UTC))
    assert states[Purpose.CONTACT].state is ConsentState.WITHDRAWN
    await fits_a_phone(page)
    await shot_both(page, "contact-removed")
    harness.assert_no_policy_violations()


async def test_a_reminders_unsubscribe_link_works_on_a_phone_without_any_cookie(
    site: LiveSite, harness: BrowserHarness, axe_source: str, mailbox: tuple[Mailbox, int]
) -> None:
    app, (box, _) = site.app, mailbox
    db, audit, consents, mailer = app[DB], app[AUDIT], app[CONSENTS], app[MAILER]
    therapist = await site.add_therapist()
    now = datetime.now(UTC)
    client = await scheduling.create_client(db, audit, therapist, "J.M.", now)
    await consents.decide(
        db,
        audit,
        client_id=client.id,
        purpose=Purpose.CONTACT,
        decision=ConsentDecision.GRANTED,
        notice_version=consents.catalog.current(Purpose.CONTACT).version,
        channel=Channel.PAGE,
        now=now,
    )
    await mailer.set_contact(db, audit, client_id=client.id, email="c@example.org", now=now)
    starts = now + timedelta(days=2)
    await scheduling.create_session(
        db,
        audit,
        therapist,
        client_id=client.id,
        starts_at=starts,
        minutes=50,
        now=now,
        mail=mailer,
    )
    await run_once(mailer, db, audit, app[SMTP_TRANSPORT], now)  # the invitation
    await run_once(mailer, db, audit, app[SMTP_TRANSPORT], starts - timedelta(days=1))
    reminder = box.parsed()[-1]
    assert str(reminder["Subject"]).startswith("Reminder:")
    unsubscribe = str(reminder["List-Unsubscribe"]).strip("<>")
    assert unsubscribe.startswith(site.base_url + "/email/unsubscribe/")

    page = await harness.new_page(**MOBILE)  # a phone's mail app: no Attune cookie at all
    await page.goto(unsubscribe)
    await expect(page.get_by_role("heading", name="Stop email reminders?", level=1)).to_be_visible()
    assert await mailer.reminders_on(db, client.id)  # opening the page changed nothing
    await fits_a_phone(page)
    assert await axe_violations(page, axe_source) == []
    await shot_both(page, "unsubscribe-ask")
    await page.get_by_role("button", name="Stop reminders").focus()
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name="Reminders stopped", level=1)).to_be_visible()
    assert not await mailer.reminders_on(db, client.id)
    await fits_a_phone(page)
    assert await axe_violations(page, axe_source) == []
    await shot_both(page, "unsubscribe-done")
    harness.assert_no_policy_violations()

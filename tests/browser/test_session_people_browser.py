"""The therapist adds a guest and a second client on the session's people page, on a phone and
on a laptop, by keyboard-reachable labelled controls; each new link is shown once, the guest's
link opens a guest's visit, and axe finds no serious accessibility violation."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect

from server.keys import AUDIT, DB
from server.services import scheduling
from tests.browser.axe import axe_violations
from tests.browser.conftest import (
    LAPTOP,
    MOBILE,
    PHONE_SIZE,
    THERAPIST_EMAIL,
    BrowserHarness,
    LiveSite,
    screenshots,
)
from tests.browser.test_foundation_flows import sign_in_with_form
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser


@pytest.fixture
def harness(media_browser: Browser) -> BrowserHarness:
    """A headless browser with a fake camera and microphone (the guest's visit asks for them)."""
    return BrowserHarness(media_browser)


async def _session_with_two_clients(site: LiveSite) -> str:
    therapist = await site.add_therapist()
    now = datetime.now(UTC)
    db, audit = site.app[DB], site.app[AUDIT]
    first = await scheduling.create_client(db, audit, therapist, "J.M.", now)
    await scheduling.create_client(db, audit, therapist, "K.L.", now)
    session, _ = await scheduling.create_session(
        db, audit, therapist, client_id=first.id, starts_at=now, minutes=50, now=now
    )
    return session.id


async def _shown_link(page: Page, who: str) -> str:
    await expect(page.get_by_role("heading", name=f"Link for {who}")).to_be_visible()
    link = await page.get_by_label(f"{who}'s link").input_value()
    assert "/join/" in link
    return link


@pytest.mark.parametrize("size", ["phone", "laptop"])
async def test_the_therapist_adds_a_guest_and_a_second_client_each_with_their_own_link(
    live_site: LiveSite,
    harness: BrowserHarness,
    axe_source: str,
    size: str,
    tmp_path: Path,
) -> None:
    session_id = await _session_with_two_clients(live_site)
    options = MOBILE if size == "phone" else LAPTOP
    page = await harness.new_page(**options)
    await sign_in_with_form(page, live_site, THERAPIST_EMAIL, PASSWORD)
    await page.get_by_role("link", name="People in the session with J.M.").click()
    await expect(page).to_have_url(live_site.url(f"/dashboard/sessions/{session_id}/people"))
    assert await axe_violations(page, axe_source) == []

    await page.get_by_label("Label").fill("Interpreter")
    await page.get_by_role("button", name="Add guest").click()
    guest_link = await _shown_link(page, "Interpreter")
    assert await axe_violations(page, axe_source) == []

    await page.get_by_label("Client", exact=True).select_option(label="K.L.")
    await page.get_by_role("button", name="Add client").click()
    client_link = await _shown_link(page, "K.L.")
    assert client_link != guest_link
    await expect(page.locator("tr[data-participant-id]")).to_have_count(3)
    await expect(page.get_by_text("This session is full.")).to_be_visible()
    no_scroll = "document.documentElement.scrollWidth <= window.innerWidth"
    assert await page.evaluate(no_scroll)
    await screenshots(page, tmp_path / f"people-{size}", back_to=PHONE_SIZE, full_page=True)

    # removing asks first; declining keeps the guest
    page.once("dialog", lambda dialog: dialog.dismiss())
    await page.get_by_role("button", name="Remove Interpreter").click()
    await expect(page.get_by_role("cell", name="Interpreter", exact=True)).to_be_visible()

    guest = await harness.new_page(**MOBILE)
    await guest.goto(guest_link)
    await expect(guest.get_by_text("guest of this session")).to_be_visible()
    assert await guest.get_by_role("link", name="Your progress").count() == 0
    assert await axe_violations(guest, axe_source) == []
    await screenshots(guest, tmp_path / f"guest-{size}", back_to=PHONE_SIZE, full_page=True)

    page.once("dialog", lambda dialog: dialog.accept())
    await page.get_by_role("button", name="Remove Interpreter").click()
    await expect(page.get_by_role("cell", name="Interpreter", exact=True)).to_have_count(0)
    await guest.goto(live_site.url("/visit"))
    await expect(guest.get_by_role("heading", name="This link does not work")).to_be_visible()
    harness.assert_no_policy_violations()

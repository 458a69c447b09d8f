"""What each person reads after they act, in real Chromium (issue #11, item 9): a client who
erases their optional data is told how much went, in plain words; their consent receipt has
times to the minute; an admin places a legal hold by choosing the client from a list (never
by typing a 32-character id) and reads retention periods as people say them."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from playwright.async_api import Browser, expect

from privacy.consent import Channel, ConsentDecision, Purpose
from server.core.models import Role
from server.keys import AUDIT, CONSENTS, DB
from tests.browser.conftest import THERAPIST_EMAIL, BrowserHarness, LiveSite
from tests.browser.test_foundation_flows import sign_in_with_form
from tests.browser.video_helpers import (
    client_reaches_waiting_room,
    grant_telehealth,
    schedule_session,
)
from tests.conftest import PASSWORD, add_account

pytestmark = pytest.mark.browser

MICROSECONDS = re.compile(r"\d\d:\d\d:\d\d\.\d{3,6}")


@pytest.fixture
def harness(media_browser: Browser) -> BrowserHarness:
    """A browser with a fake camera and microphone (the client passes the device check)."""
    return BrowserHarness(media_browser)


async def test_erasing_says_what_went_and_the_admin_holds_a_client_chosen_from_a_list(
    live_site: LiveSite, harness: BrowserHarness
) -> None:
    scheduled = await schedule_session(live_site)
    await grant_telehealth(live_site, scheduled.client_id)
    consents = live_site.app[CONSENTS]
    await consents.decide(
        live_site.app[DB],
        live_site.app[AUDIT],
        client_id=scheduled.client_id,
        purpose=Purpose.CHECKIN_STORAGE,
        decision=ConsentDecision.GRANTED,
        notice_version=consents.catalog.current(Purpose.CHECKIN_STORAGE).version,
        channel=Channel.API,
        now=datetime.now(UTC),
    )

    # The client answers the before-session check-in (stored, by their consent) ...
    client = await harness.new_page()
    await client_reaches_waiting_room(client, scheduled.link, consent=False)
    first = client.get_by_role("slider").first
    await first.focus()
    await first.press("End")
    await client.get_by_role("button", name="Send to my therapist").click()
    await expect(
        client.get_by_role("status").filter(has_text="Your answers reached your therapist")
    ).to_be_visible()

    # ... reads a receipt with times to the minute ...
    await client.goto(live_site.url("/visit/consent/receipt"))
    await expect(client.get_by_role("heading", name="Your consent receipt")).to_be_visible()
    assert not MICROSECONDS.search(await client.locator("main").inner_text())

    # ... and erases the optional data: told what went, with the right count and grammar.
    await client.goto(live_site.url("/visit/data"))
    await client.get_by_label("Yes, switch off the optional parts and delete that data").check()
    await client.get_by_role("button", name="Erase optional data").click()
    done = client.get_by_role("status")
    await expect(done).to_contain_text("Deleted 1 stored record (check-in responses: 1).")
    await expect(done).not_to_contain_text("Deleted 0")
    await expect(done).to_contain_text("Switched off: Keeping your check-in answers.")

    # The admin places a legal hold by choosing the client from a list.
    await add_account(live_site.app, "admin@example.org", Role.ADMIN)
    admin = await harness.new_page()
    await sign_in_with_form(admin, live_site, "admin@example.org", PASSWORD)
    await admin.goto(live_site.url("/admin/holds"))
    choice = admin.get_by_label("Client").locator("option", has_text=f"client of {THERAPIST_EMAIL}")
    await admin.get_by_label("Client").select_option(await choice.get_attribute("value"))
    await admin.get_by_label("Why").fill("Court request 2026-114")
    await admin.get_by_role("button", name="Place hold").click()
    await expect(admin.get_by_role("status").filter(has_text="Hold placed.")).to_be_visible()
    held = admin.get_by_role("cell", name=re.compile(f"^client of {re.escape(THERAPIST_EMAIL)}"))
    await expect(held).to_be_visible()
    # the day it was placed is a time in the admin's own zone (localtime.js rewrote it)
    await expect(admin.locator("tbody time[data-localized]").first).to_be_visible()

    # Retention periods as people say them: a week is "7 days", never "about 0 years".
    await admin.goto(live_site.url("/admin/retention"))
    cue = admin.locator("#policy-cue")
    await cue.get_by_text("Change", exact=True).click()
    await cue.get_by_label("Keep for (days)").fill("7")
    await cue.get_by_role("button", name="Preview").click()
    await admin.get_by_role("button", name="Confirm and save").click()
    await expect(admin.locator("#policy-cue")).to_contain_text(re.compile(r"^\s*7 days\s", re.M))
    assert "about 0 years" not in await admin.locator("main").inner_text()
    harness.assert_no_policy_violations()

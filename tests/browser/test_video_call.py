"""Video sessions in real headless Chromium: two browser contexts, a therapist and a client.

Contexts new for each test, fake camera and microphone; the pages are driven by role and label,
as a screen reader would find them, and media is judged by what the peer connections decode.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import unused_port
from playwright.async_api import Browser, Page, expect

from server.app import create_app
from server.settings import Settings
from tests.browser.conftest import MOBILE, BrowserHarness, LiveSite
from tests.browser.video_helpers import (
    INBOUND_MEDIA,
    admit,
    client_reaches_waiting_room,
    fits_a_phone,
    frames_decoded,
    grant_telehealth,
    safety_code,
    schedule_session,
    therapist_opens_room,
    wait_for_video,
)
from tests.integration.test_conncheck import with_conncheck

pytestmark = pytest.mark.browser

TELEHEALTH_BOX = re.compile(r"^I agree to the telehealth consent")


@pytest.fixture
async def site(aiohttp_server: Any, tmp_path: Path) -> LiveSite:
    """The app on a loopback port, with the connection check wired in."""
    port = unused_port()
    settings = Settings(data_dir=tmp_path / "data", host="127.0.0.1", port=port)
    app = with_conncheck(create_app(settings))
    await aiohttp_server(app, host="127.0.0.1", port=port)
    return LiveSite(app=app, base_url=settings.base_url)


@pytest.fixture
def harness(media_browser: Browser) -> BrowserHarness:
    """One headless browser with fake devices; records CSP violations and page errors."""
    return BrowserHarness(media_browser)


async def in_call(site: LiveSite, harness: BrowserHarness) -> tuple[Page, Page, str]:
    """A therapist and an admitted client, both decoding each other's video."""
    scheduled = await schedule_session(site)
    await grant_telehealth(site, scheduled.client_id)
    therapist = await harness.new_page()
    await therapist_opens_room(therapist, site, scheduled.session_id)
    client = await harness.new_page()
    await client_reaches_waiting_room(client, scheduled.link, consent=False)
    await admit(therapist, scheduled.alias)
    await wait_for_video(client)
    await wait_for_video(therapist)
    return therapist, client, scheduled.alias


async def test_admitted_client_and_therapist_see_each_other_and_the_same_safety_code(
    site: LiveSite, harness: BrowserHarness
) -> None:
    scheduled = await schedule_session(site)
    therapist = await harness.new_page()
    await therapist_opens_room(therapist, site, scheduled.session_id)
    client = await harness.new_page(**MOBILE)

    await client_reaches_waiting_room(
        client, scheduled.link, run_check=True, consent=True, at_each_step=fits_a_phone
    )
    await expect(client.get_by_text("Your therapist will let you in.")).to_be_visible()
    await admit(therapist, "J.M.")

    await wait_for_video(client)
    await wait_for_video(therapist)
    code = await safety_code(client)
    assert await safety_code(therapist) == code
    await therapist.get_by_role("button", name="Codes match").click()
    await expect(client.get_by_text("Your therapist confirmed the codes match.")).to_be_visible()
    await expect(therapist.get_by_text("You confirmed the codes match.")).to_be_visible()

    await fits_a_phone(client)
    harness.assert_no_policy_violations()


async def test_waiting_client_has_no_media_until_admitted(
    site: LiveSite, harness: BrowserHarness
) -> None:
    scheduled = await schedule_session(site)
    therapist = await harness.new_page()
    await therapist_opens_room(therapist, site, scheduled.session_id)
    client = await harness.new_page()

    await client_reaches_waiting_room(client, scheduled.link, consent=True)

    await expect(
        client.get_by_role("status").filter(has_text="Your therapist knows you are here.")
    ).to_be_visible()
    await expect(therapist.get_by_role("button", name="Admit J.M.")).to_be_visible()
    assert await client.evaluate("window.__attune.pc === null")
    assert await client.evaluate(INBOUND_MEDIA) == 0
    assert await therapist.evaluate("window.__attune.pc === null")
    harness.assert_no_policy_violations()


async def test_consent_step_shows_each_notice_as_the_server_rendered_it(
    site: LiveSite, harness: BrowserHarness
) -> None:
    scheduled = await schedule_session(site)
    client = await harness.new_page()
    await client.goto(scheduled.link)
    await client.get_by_role("button", name="Continue").click()
    await client.get_by_role("button", name="Skip this check").click()
    await expect(client.get_by_role("heading", name="Your consent")).to_be_visible()

    telehealth = client.locator("fieldset").filter(has=client.get_by_label(TELEHEALTH_BOX))
    await telehealth.get_by_text("Read the full text").click()
    notice = telehealth.locator("details")
    await expect(notice.get_by_role("heading", name="What this covers", level=3)).to_be_visible()
    items = notice.get_by_role("listitem")
    await expect(items).to_have_count(5)  # wrapped lines stay inside their item
    await expect(items.nth(1)).to_have_text(
        "the messages your browser and your therapist's browser exchange to set up the call "
        "(these describe network addresses and video settings, not what you say or show);"
    )
    texts = await notice.locator("h3, p, li").all_text_contents()
    assert not [text for text in texts if text.startswith(("#", "- ", "* "))]
    assert "Meeting your therapist by video" not in texts  # the title is the legend
    harness.assert_no_policy_violations()


async def test_deny_send_back_and_end_as_each_person_sees_them(
    site: LiveSite, harness: BrowserHarness
) -> None:
    scheduled = await schedule_session(site)
    await grant_telehealth(site, scheduled.client_id)
    therapist = await harness.new_page()
    await therapist_opens_room(therapist, site, scheduled.session_id)
    await expect(therapist).to_have_title("Session with J.M. · Attune")  # two people

    second_device = await harness.new_page()
    await client_reaches_waiting_room(second_device, scheduled.link, consent=False)
    await expect(therapist.locator("#panel-latest")).to_have_text("J.M. is waiting to be let in")
    await therapist.get_by_role("button", name="Deny J.M.", exact=True).click()
    await expect(second_device.get_by_role("heading", name="Not admitted")).to_be_visible()
    await expect(
        second_device.get_by_text("did not let this device into the session")
    ).to_be_visible()
    await expect(therapist.get_by_text("Nobody is waiting.")).to_be_visible()
    await expect(therapist.locator("#panel-latest")).to_have_text("J.M. was not let in")

    # The denied device's cookie still holds the link, so this one knocks as another device
    # (issue #13: one device per link); admitting it ends the denied device's cookie.
    client = await harness.new_page()
    await client_reaches_waiting_room(client, scheduled.link, consent=False)
    await admit(therapist, "J.M. (another device)")
    await wait_for_video(client)
    for page in (therapist, client):  # chat goes to the other one of two, as the pages say
        await expect(page.locator("#chat-note")).to_contain_text("Messages go straight between")

    await therapist.get_by_role("button", name="Send back to waiting room").click()
    await expect(client.get_by_role("heading", name="Waiting room", level=1)).to_be_visible()
    await expect(client.get_by_text("asked you to wait a moment")).to_be_visible()
    assert await client.evaluate("window.__attune.pc === null")
    await expect(
        therapist.get_by_role("button", name="Admit J.M. (another device)", exact=True)
    ).to_be_visible()

    await therapist.get_by_role("button", name="End session").click()
    dialog = therapist.get_by_role("dialog", name="End the session for everyone?")
    await dialog.get_by_role("button", name="Yes, end the session").click()
    await expect(therapist.get_by_role("heading", name="The session has ended")).to_be_visible()
    await expect(client.get_by_role("heading", name="Your session has ended")).to_be_visible()
    await expect(client.get_by_text("Thank you for today.")).to_be_visible()

    latecomer = await harness.new_page()
    await latecomer.goto(scheduled.link)
    await expect(latecomer.get_by_role("heading", name="This link does not work")).to_be_visible()
    harness.assert_no_policy_violations()


# Records every text a page's call status shows, so a short "Reconnecting…" is not missed.
WATCH_CALL_STATUS = """
() => {
  window.__statusSeen = [];
  const status = document.getElementById("call-status");
  new MutationObserver(() => window.__statusSeen.push(status.textContent))
    .observe(status, { childList: true, characterData: true, subtree: true });
}
"""
STATUS_SEEN = "(text) => window.__statusSeen.includes(text)"


async def test_call_survives_a_dropped_websocket_without_reopening_the_link(
    site: LiveSite, harness: BrowserHarness
) -> None:
    therapist, client, alias = await in_call(site, harness)
    pc_before = await client.evaluate_handle("window.__attune.pc")
    for page in (client, therapist):
        await page.evaluate(WATCH_CALL_STATUS)

    await client.evaluate("window.__attune.connection.socket.close(4000, 'test: network drop')")

    await client.wait_for_function(STATUS_SEEN, arg="Reconnecting…", timeout=5000, polling="raf")
    await therapist.wait_for_function(
        STATUS_SEEN, arg=f"{alias} is reconnecting…", timeout=5000, polling="raf"
    )
    await client.wait_for_function(
        "() => window.__attune.connection.state === 'open'", timeout=10_000, polling=100
    )
    await expect(client.get_by_text("Reconnecting…")).to_have_count(0)
    await expect(therapist.get_by_text(f"In the call with {alias}", exact=True)).to_be_visible()
    assert await client.evaluate("(pc) => pc === window.__attune.pc", pc_before)
    await wait_for_video(client, more_than=await frames_decoded(client))
    await wait_for_video(therapist, more_than=await frames_decoded(therapist))
    harness.assert_no_policy_violations()


async def test_the_therapists_dropped_websocket_resumes_without_restarting_either_call(
    site: LiveSite, harness: BrowserHarness
) -> None:
    therapist, client, alias = await in_call(site, harness)
    client_pc = await client.evaluate_handle("window.__attune.pc")
    therapist_pc = await therapist.evaluate_handle("window.__attune.pc")
    for page in (client, therapist):
        await page.evaluate(WATCH_CALL_STATUS)

    await therapist.evaluate("window.__attune.connection.socket.close(4000, 'test: network drop')")

    await client.wait_for_function(
        STATUS_SEEN, arg="Your therapist is reconnecting…", timeout=5000, polling="raf"
    )
    await therapist.wait_for_function(
        "() => window.__attune.connection.state === 'open'", timeout=10_000, polling=100
    )
    await expect(therapist.get_by_text(f"In the call with {alias}", exact=True)).to_be_visible()
    await expect(client.get_by_text("Your therapist is reconnecting…")).to_have_count(0)
    assert await client.evaluate("(pc) => pc === window.__attune.pc", client_pc)
    assert await therapist.evaluate("(pc) => pc === window.__attune.pc", therapist_pc)
    await wait_for_video(client, more_than=await frames_decoded(client))
    await wait_for_video(therapist, more_than=await frames_decoded(therapist))
    harness.assert_no_policy_violations()


WITHDRAW_TELEHEALTH = """
async () => {
  const csrf = document.querySelector('meta[name="csrf-token"]').getAttribute("content");
  const state = await (await fetch("/api/v1/visit/consents")).json();
  const telehealth = state.items.find((item) => item.purpose === "telehealth");
  const response = await fetch("/api/v1/visit/consents", {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
    body: JSON.stringify({
      purpose: "telehealth", decision: "withdrawn", notice_version: telehealth.notice.version,
    }),
  });
  return response.status;
}
"""


async def test_withdrawing_telehealth_consent_ends_the_call_on_both_screens(
    site: LiveSite, harness: BrowserHarness
) -> None:
    therapist, client, alias = await in_call(site, harness)

    assert await client.evaluate(WITHDRAW_TELEHEALTH) == 201

    await expect(client.get_by_role("heading", name="Your session has ended")).to_be_visible()
    await expect(client.get_by_text("telehealth consent was withdrawn")).to_be_visible()
    await expect(
        therapist.get_by_text(f"{alias} withdrew the telehealth consent: the call has ended.")
    ).to_be_visible()
    assert await therapist.evaluate("window.__attune.pc === null")
    harness.assert_no_policy_violations()

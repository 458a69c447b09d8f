"""Safety in the session (issue #16), as the client and the therapist live it in real
headless Chromium: the therapist at a laptop (1280×720), the client on a phone (360×640).

One call is set up per test and several moments of the same story are checked in it.
Screenshots go to /tmp/safety-shots/ (outside the repository) for looking at.
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

import pytest
from playwright.async_api import Page, WebSocket, expect

from tests.browser.conftest import (
    LAPTOP,
    MOBILE,
    PHONE_SIZE,
    BrowserHarness,
    LiveSite,
    screenshots,
)
from tests.browser.video_helpers import (
    admit,
    client_reaches_waiting_room,
    fits_a_phone,
    grant_telehealth,
    safety_code,
    schedule_session,
    therapist_opens_room,
    wait_for_video,
)

pytestmark = pytest.mark.browser

SHOTS = Path("/tmp/safety-shots")
QUICK_EXIT_WITHIN_MS = 1_000
CLIENT_MARKER = "chat-marker-c41"
THERAPIST_MARKER = "chat-marker-t97"


async def shot(page: Page, name: str) -> None:
    """Save what the person sees now (for the report; not an assertion)."""
    await page.screenshot(path=str(SHOTS / f"{name}.png"))


async def shot_wide(page: Page, name: str) -> None:
    """The same page at a laptop's size too, then back to the phone's."""
    await screenshots(page, SHOTS / name, back_to=PHONE_SIZE)


async def test_a_client_in_danger_leaves_at_once_and_the_therapist_sees_why(
    emergency_site: LiveSite, media_harness: BrowserHarness
) -> None:
    scheduled = await schedule_session(emergency_site)
    await grant_telehealth(emergency_site, scheduled.client_id)
    therapist = await media_harness.new_page(**LAPTOP)
    await therapist_opens_room(therapist, emergency_site, scheduled.session_id)
    client = await media_harness.new_page(**MOBILE)
    sent: list[str] = []

    def record(ws: WebSocket) -> None:
        ws.on("framesent", lambda payload: sent.append(str(payload)))

    client.on("websocket", record)
    await client_reaches_waiting_room(client, scheduled.link, consent=False)

    # The quick exit is in reach in the waiting room, and in the call, at a phone's size.
    waiting = client.locator("#step-waiting")
    # (fixed at the top: the check-in form below does not push it out of view)
    await expect(waiting.get_by_role("button", name="Quick exit")).to_be_in_viewport()
    await waiting.get_by_role("button", name="Quick exit").click(trial=True)  # nothing covers it
    await expect(waiting.get_by_role("button", name="Quick exit")).to_have_accessible_description(
        re.compile("Escape three times")
    )
    await fits_a_phone(client)
    await shot_wide(client, "client-waiting")
    await admit(therapist, scheduled.alias)
    await wait_for_video(client)
    await wait_for_video(therapist)
    call_bar = client.get_by_role("group", name="Call controls")
    await expect(call_bar.get_by_role("button", name="Quick exit")).to_be_in_viewport()
    await call_bar.get_by_role("button", name="Quick exit").click(trial=True)
    await fits_a_phone(client)
    await shot_wide(client, "client-call")

    # Escape three times: the phone shows a plain weather page within a second.
    started = time.monotonic()
    for _ in range(3):
        await client.keyboard.press("Escape")
    await client.wait_for_url(re.compile(r"/weather$"), timeout=QUICK_EXIT_WITHIN_MS)
    assert (time.monotonic() - started) * 1000 < QUICK_EXIT_WITHIN_MS
    await expect(client).to_have_title("Weather")
    await expect(client.get_by_text("Attune")).to_have_count(0)
    assert any('"type":"leave"' in frame and "quick-exit" in frame for frame in sent)
    await shot_wide(client, "client-neutral-page")
    # Back does not bring the call back.
    await client.go_back()
    assert "/visit" not in client.url
    await expect(client.locator("#step-call")).to_have_count(0)

    # The therapist sees a safety notice, not a dropped connection.
    panel = therapist.get_by_role("complementary", name="Private panel")
    notices = panel.get_by_role("list", name="Safety notices")
    await expect(notices).to_contain_text("J.M. left using quick exit")
    await expect(notices).to_contain_text("from the call")
    await expect(panel.get_by_role("link", name="112")).to_have_attribute("href", "tel:112")
    await expect(therapist.locator("#call-status")).to_have_text("J.M. left using quick exit.")
    await expect(therapist.get_by_text(re.compile("reconnecting", re.I))).to_have_count(0)
    assert (await therapist.title()).startswith("(")
    await shot(therapist, "therapist-1280-quick-exit")

    # The same link again on the same phone, and the button this time, from the waiting room.
    again = await client.context.new_page()
    await client_reaches_waiting_room(again, scheduled.link, consent=False)
    await expect(panel.get_by_role("list", name="Waiting room")).to_contain_text("J.M.")
    await again.locator("#step-waiting").get_by_role("button", name="Quick exit").click()
    await again.wait_for_url(re.compile(r"/weather$"), timeout=QUICK_EXIT_WITHIN_MS)
    await expect(notices.get_by_role("listitem")).to_have_count(2)
    await expect(notices.get_by_role("listitem").first).to_contain_text("from the waiting room")
    await expect(panel.get_by_text("Nobody is waiting.")).to_be_visible()
    await therapist.set_viewport_size(PHONE_SIZE)
    await shot(therapist, "therapist-360-quick-exit")
    media_harness.assert_no_policy_violations()


async def test_the_two_people_write_to_each_other_and_the_server_never_sees_a_word(
    emergency_site: LiveSite, media_harness: BrowserHarness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    scheduled = await schedule_session(emergency_site)
    await grant_telehealth(emergency_site, scheduled.client_id)
    frames: list[str] = []

    def record(ws: WebSocket) -> None:
        ws.on("framesent", lambda payload: frames.append(str(payload)))
        ws.on("framereceived", lambda payload: frames.append(str(payload)))

    therapist = await media_harness.new_page(**LAPTOP)
    therapist.on("websocket", record)
    await therapist_opens_room(therapist, emergency_site, scheduled.session_id)
    client = await media_harness.new_page(**MOBILE)
    client.on("websocket", record)
    await client_reaches_waiting_room(client, scheduled.link, consent=False)

    # Before admission: a short note through the server, shown in the waiting room.
    panel = therapist.get_by_role("complementary", name="Private panel")
    await expect(panel.get_by_role("list", name="Waiting room")).to_contain_text("J.M.")
    await panel.get_by_label("Note to the waiting room").fill("Running five minutes late")
    await panel.get_by_label("Note to the waiting room").press("Enter")
    await expect(
        client.get_by_role("status").filter(has_text="Note from your therapist")
    ).to_have_text("Note from your therapist: Running five minutes late")
    await shot_wide(client, "client-waiting-note")
    await client.get_by_role("button", name="Skip this check-in").click()

    await admit(therapist, scheduled.alias)
    await wait_for_video(client)
    await wait_for_video(therapist)
    await safety_code(client)  # the data channel is open: the code came over it

    # The client writes; Enter sends; it appears in the therapist's side column, counted.
    await expect(client.get_by_text(re.compile("never receives or stores them"))).to_be_visible()
    await client.get_by_label("Message", exact=True).fill(f"Can you hear me? {CLIENT_MARKER}")
    await client.get_by_label("Message", exact=True).press("Enter")
    await expect(client.get_by_role("log", name="Messages")).to_contain_text(CLIENT_MARKER)
    therapist_log = panel.get_by_role("log", name="Messages")
    await expect(therapist_log).to_contain_text(f"J.M.: Can you hear me? {CLIENT_MARKER}")
    assert (await therapist.title()).startswith("(")
    await expect(
        panel.get_by_role("status").filter(has_text="New message from J.M.")
    ).to_be_visible()

    # The therapist answers while the phone shows the video only: a link over the video says
    # so and leads to the message.
    await client.evaluate("window.scrollTo(0, 0)")
    await panel.get_by_label("Message", exact=True).fill(f"Yes, clearly. {THERAPIST_MARKER}")
    await panel.get_by_label("Message", exact=True).press("Enter")
    await expect(client.get_by_role("log", name="Messages")).to_contain_text(
        f"Your therapist: Yes, clearly. {THERAPIST_MARKER}"
    )
    unread = client.get_by_role("link", name="1 new message")
    await expect(unread).to_be_in_viewport()
    await unread.click(trial=True)  # nothing covers it
    await shot(client, "client-chat-unread-360")
    await unread.click()
    await expect(client.get_by_label("Message", exact=True)).to_be_focused()
    await expect(unread).to_be_hidden()
    await fits_a_phone(client)
    await shot(therapist, "therapist-1280-chat")
    await shot_wide(client, "client-chat")

    # Not a word of it passed the server: not in any WebSocket frame, not in its log.
    assert frames, "the WebSocket frames were recorded"
    for marker in (CLIENT_MARKER, THERAPIST_MARKER):
        assert not [frame for frame in frames if marker in frame]
        assert marker not in caplog.text
    media_harness.assert_no_policy_violations()

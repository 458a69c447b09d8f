"""Screen sharing in real headless Chromium (issue #16): the therapist shares a screen, the
client's page decodes it as an extra video track and shows it large with the faces small;
stopping removes it. The client shares only after the therapist allows it. A phone without
getDisplayMedia has no share button and still sees the therapist's screen.

How Chromium shares a screen headless on these machines (measured, Chromium 156):
`--use-fake-ui-for-media-stream` (accepts the picker at once) together with
`--use-fake-device-for-media-stream` (a generated 1280×720 30 fps "screen:-3:0" source; the
headless browser has no real screen) — exactly the call tests' MEDIA_ARGS. Without the fake
device getDisplayMedia fails with NotReadableError; without the fake UI it waits for a picker
forever. `--auto-select-desktop-capture-source=Entire screen`, `--auto-accept-this-tab-capture`,
`--auto-select-tab-capture-source-by-title=…` and `--enable-usermedia-screen-capturing` change
nothing here, alone or added.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect

from tests.browser.conftest import MOBILE, BrowserHarness, LiveSite
from tests.browser.video_helpers import (
    MEDIA_TIMEOUT_MS,
    admit,
    client_reaches_waiting_room,
    fits_a_phone,
    frames_decoded,
    grant_telehealth,
    schedule_session,
    therapist_opens_room,
    wait_for_video,
)

pytestmark = pytest.mark.browser

# Set to a directory to keep screenshots of the receiving pages while sharing (for review).
SCREENSHOTS = os.environ.get("ATTUNE_SCREENSHOTS")

# The page's remote video as its call receives it, polled inside the page (getStats and the
# transceivers) until `want(state)` holds or the deadline passes. `screenFrames`: frames
# decoded of the remote screen's track (the stream the page shows in #remote-screen).
SCREEN_STATE = """
async ({ want, timeoutMs }) => {
  const check = new Function("s", `return (${want});`);
  const deadline = performance.now() + timeoutMs;
  let last = null;
  for (;;) {
    const pc = window.__attune.pc;
    const screen = document.getElementById("remote-screen");
    const screenTrack = screen.srcObject ? screen.srcObject.getVideoTracks()[0] : null;
    const state = { liveVideoReceivers: 0, inboundVideo: 0, screenFrames: 0,
                    screenWidth: screen.hidden ? 0 : screen.videoWidth,
                    layout: screen.parentElement.classList.contains("is-screen-sharing") };
    if (pc) {
      state.liveVideoReceivers = pc.getTransceivers().filter((t) =>
        t.receiver.track.kind === "video" && t.receiver.track.readyState === "live" &&
        t.currentDirection !== "stopped" && (t.currentDirection || "").includes("recv")).length;
      (await pc.getStats()).forEach((s) => {
        if (s.type !== "inbound-rtp" || s.kind !== "video") return;
        state.inboundVideo += 1;
        if (screenTrack && s.trackIdentifier === screenTrack.id) {
          state.screenFrames += s.framesDecoded || 0;
        }
      });
    }
    last = state;
    if (check(state)) return state;
    if (performance.now() > deadline) {
      throw new Error(`not ${want} within ${timeoutMs} ms: ${JSON.stringify(last)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
"""
NO_GET_DISPLAY_MEDIA = "delete MediaDevices.prototype.getDisplayMedia;"


async def screen_state(page: Page, want: str) -> dict[str, Any]:
    """Until the page's screen state satisfies `want` (a JS expression over `s`)."""
    state: dict[str, Any] = await page.evaluate(
        SCREEN_STATE, {"want": want, "timeoutMs": MEDIA_TIMEOUT_MS}
    )
    return state


async def screen_shown_large(page: Page) -> None:
    """The shared screen decodes, and it is shown larger than the other person's face."""
    state = await screen_state(page, "s.layout && s.screenFrames > 5 && s.screenWidth > 0")
    assert state["inboundVideo"] >= 2  # the camera and the screen: two video tracks
    screen = await page.locator("#remote-screen").bounding_box()
    face = await page.locator("#remote-video").bounding_box()
    assert screen is not None and face is not None
    assert screen["width"] * screen["height"] > 4 * face["width"] * face["height"]


async def shoot(page: Page, name: str) -> None:
    """A screenshot for review, when ATTUNE_SCREENSHOTS names a directory."""
    if SCREENSHOTS:
        await page.screenshot(path=str(Path(SCREENSHOTS) / f"{name}.png"))


async def in_call(
    site: LiveSite, harness: BrowserHarness, **client_context: Any
) -> tuple[Page, Page, str]:
    scheduled = await schedule_session(site)
    await grant_telehealth(site, scheduled.client_id)
    therapist = await harness.new_page(viewport={"width": 1280, "height": 720})
    client = await harness.new_page(**client_context)
    if client_context.get("is_mobile"):
        await client.add_init_script(NO_GET_DISPLAY_MEDIA)
    await therapist_opens_room(therapist, site, scheduled.session_id)
    await client_reaches_waiting_room(client, scheduled.link, consent=False)
    # the before-session check-in opens in the waiting room; this client skips it
    await client.get_by_role("button", name="Skip this check-in").click()
    await admit(therapist, scheduled.alias)
    await wait_for_video(client)
    await wait_for_video(therapist)
    return therapist, client, scheduled.alias


async def test_the_therapist_shares_a_screen_and_the_client_sees_it_large_until_it_stops(
    live_site: LiveSite, media_browser: Browser
) -> None:
    harness = BrowserHarness(media_browser)
    therapist, client, _alias = await in_call(
        live_site, harness, viewport={"width": 1280, "height": 720}
    )
    status = client.locator("#screen-status")
    await expect(client.get_by_role("button", name="Share screen")).to_be_hidden()

    await therapist.get_by_role("button", name="Share screen").click()
    await expect(therapist.get_by_role("button", name="Stop sharing screen")).to_be_visible()
    await expect(therapist.locator("#screen-status")).to_have_text("You are sharing your screen.")
    await screen_shown_large(client)
    await expect(status).to_have_text("Your therapist is sharing their screen.")
    await expect(status).to_have_attribute("role", "status")
    await expect(client.get_by_label("Your therapist's shared screen")).to_be_visible()
    await shoot(client, "client-receiving-1280x720")
    # The cue features' frame counts follow the face, not the screen: the first video m-line
    # (features.js `firstVideoMid`) is the camera's.
    mids = await client.evaluate(
        """async () => {
          const { firstVideoMid } = await import("/static/js/features.js");
          const pc = window.__attune.pc;
          const mid = (id) => pc.getTransceivers().find((t) =>
            document.getElementById(id).srcObject.getVideoTracks()[0] === t.receiver.track).mid;
          return { first: firstVideoMid(pc), camera: mid("remote-video"),
                   screen: mid("remote-screen") };
        }"""
    )
    assert mids["first"] == mids["camera"] != mids["screen"]
    await client.set_viewport_size({"width": 360, "height": 640})
    await shoot(client, "client-receiving-360x640-desktop-browser")
    await client.set_viewport_size({"width": 1280, "height": 720})

    await therapist.get_by_role("button", name="Stop sharing screen").click()
    await screen_state(client, "!s.layout && s.screenWidth === 0 && s.liveVideoReceivers === 1")
    await expect(status).to_have_text("Your therapist stopped sharing their screen.")
    await expect(client.get_by_label("Your own camera")).to_be_visible()
    await wait_for_video(client, more_than=await frames_decoded(client))  # the faces go on
    harness.assert_no_policy_violations()


async def test_the_client_shares_only_after_the_therapist_allows_it(
    live_site: LiveSite, media_browser: Browser
) -> None:
    harness = BrowserHarness(media_browser)
    therapist, client, alias = await in_call(
        live_site, harness, viewport={"width": 1280, "height": 720}
    )
    share = client.get_by_role("button", name="Share screen")
    await expect(share).to_be_hidden()

    # A page that sends a screen track without the server's announcement (a tampered page)
    # gets it decoded on the therapist's side, but never shown.
    await client.evaluate(
        """async () => {
          const stream = await navigator.mediaDevices.getDisplayMedia({ video: true });
          window.__sneaky = stream;
          window.__attune.call.setScreenStream(stream);
        }"""
    )
    await screen_state(therapist, "s.liveVideoReceivers === 2 && !s.layout")
    await expect(therapist.locator("#remote-screen")).to_be_hidden()
    # and announcing it is refused by the server while sharing is not allowed
    await client.evaluate(
        """() => window.__attune.connection.send({ type: "screen-share", sharing: true,
                                                   stream_id: window.__sneaky.id })"""
    )
    await expect(client.locator("#screen-status")).to_have_text(
        "Your therapist has not allowed screen sharing."
    )
    await client.evaluate(
        "() => { window.__attune.call.setScreenStream(null); window.__sneaky.getTracks()"
        ".forEach((t) => t.stop()); }"
    )
    await expect(therapist.locator("#remote-screen")).to_be_hidden()

    allow = therapist.get_by_role("button", name=f"Let {alias} share their screen")
    await expect(allow).to_have_attribute("aria-pressed", "false")
    await allow.click()
    await expect(allow).to_have_attribute("aria-pressed", "true")
    await expect(client.locator("#screen-status")).to_have_text(
        "Your therapist allowed you to share your screen."
    )
    await share.click()
    await expect(client.get_by_role("button", name="Stop sharing screen")).to_be_visible()
    await screen_shown_large(therapist)
    therapist_status = therapist.locator("#screen-status")
    await expect(therapist_status).to_have_text(f"{alias} is sharing their screen.")
    await expect(therapist.get_by_label(f"{alias}'s shared screen")).to_be_visible()
    await shoot(therapist, "therapist-receiving-1280x720")
    await therapist.set_viewport_size({"width": 360, "height": 640})
    await screen_shown_large(therapist)
    width: int = await therapist.evaluate("document.documentElement.scrollWidth")
    assert width <= 360  # no sideways scrolling on a narrow screen while a screen is shown
    await shoot(therapist, "therapist-receiving-360x640")
    await therapist.set_viewport_size({"width": 1280, "height": 720})

    # The browser's own "Stop sharing" ends the track (simulated: headless has no such bar).
    await client.evaluate(
        """() => { const track = window.__attune.screenStream.getVideoTracks()[0];
                   track.stop(); track.dispatchEvent(new Event("ended")); }"""
    )
    await screen_state(therapist, "!s.layout && s.screenWidth === 0")
    await expect(therapist_status).to_have_text(f"{alias} stopped sharing their screen.")
    await expect(client.get_by_role("button", name="Share screen")).to_be_visible()

    # Taking the leave back hides the client's button again.
    await allow.click()
    await expect(allow).to_have_attribute("aria-pressed", "false")
    await expect(share).to_be_hidden()
    harness.assert_no_policy_violations()


async def test_a_phone_without_screen_capture_has_no_share_button_and_still_sees_the_screen(
    live_site: LiveSite, media_browser: Browser
) -> None:
    harness = BrowserHarness(media_browser)
    therapist, phone, alias = await in_call(live_site, harness, **MOBILE)
    assert await phone.evaluate("typeof navigator.mediaDevices.getDisplayMedia") == "undefined"
    await therapist.get_by_role("button", name=f"Let {alias} share their screen").click()
    await expect(phone.locator("#screen-button")).to_be_hidden()  # allowed, but cannot
    await expect(phone.get_by_role("button", name=re.compile("Share screen"))).to_have_count(0)

    await therapist.get_by_role("button", name="Share screen").click()
    await screen_shown_large(phone)
    await expect(phone.locator("#screen-status")).to_have_text(
        "Your therapist is sharing their screen."
    )
    await fits_a_phone(phone)
    await shoot(phone, "client-phone-receiving-360x640")
    await therapist.get_by_role("button", name="Stop sharing screen").click()
    await screen_state(phone, "!s.layout && s.liveVideoReceivers === 1")
    harness.assert_no_policy_violations()


async def test_the_clients_share_survives_a_signaling_drop_and_a_reload_of_the_therapists_page(
    live_site: LiveSite, media_browser: Browser
) -> None:
    harness = BrowserHarness(media_browser)
    therapist, client, alias = await in_call(
        live_site, harness, viewport={"width": 1280, "height": 720}
    )
    await therapist.get_by_role("button", name=f"Let {alias} share their screen").click()
    await client.get_by_role("button", name="Share screen").click()
    await screen_shown_large(therapist)

    # Only the client's socket drops and resumes: the media never stopped, the share goes on.
    await client.evaluate("window.__attune.connection.socket.close()")
    await expect(client.get_by_role("button", name="Stop sharing screen")).to_be_visible()
    frames = (await screen_state(therapist, "s.screenFrames > 0"))["screenFrames"]
    await screen_state(therapist, f"s.layout && s.screenFrames > {frames + 10}")

    # The therapist reloads: a fresh page and a fresh peer connection, and the client's
    # screen comes back large there (the room tells the new page; the client adds it again).
    await therapist.reload()
    await expect(
        therapist.get_by_role("status").filter(has_text=re.compile("^Connected$"))
    ).to_be_visible()
    await screen_shown_large(therapist)
    await expect(therapist.locator("#screen-status")).to_have_text(
        f"{alias} is sharing their screen."
    )
    allow = therapist.get_by_role("button", name=f"Let {alias} share their screen")
    await expect(allow).to_have_attribute("aria-pressed", "true")
    harness.assert_no_policy_violations()

"""Poor-connection modes in real headless Chromium: a client on a phone switches the call to
audio only and back, the therapist's page says so, and the stats show what really flows."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect

from privacy.consent import Channel, ConsentDecision, Purpose
from server.keys import AUDIT, CONSENTS, DB, LIVE
from tests.browser.conftest import MOBILE, BrowserHarness, LiveSite, start_site
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

# Set to a directory to keep screenshots of the pages in audio-only mode (for review).
SCREENSHOTS = os.environ.get("ATTUNE_SCREENSHOTS")

# Until every video transceiver of the page's call is inactive and audio keeps arriving
# (25 more audio packets, half a second at 50 packets/s): then the video frames decoded
# meanwhile. Polls getStats() inside the page, with a deadline.
VIDEO_STOPPED_AUDIO_FLOWING = """
async ({ timeoutMs }) => {
  const deadline = performance.now() + timeoutMs;
  const counts = async (pc) => {
    let frames = 0, audio = 0;
    (await pc.getStats()).forEach((s) => {
      if (s.type !== "inbound-rtp") return;
      if (s.kind === "video") frames += s.framesDecoded || 0;
      if (s.kind === "audio") audio += s.packetsReceived || 0;
    });
    return { frames, audio };
  };
  const inactive = (pc) => pc.getTransceivers()
    .filter((t) => t.receiver.track.kind === "video")
    .every((t) => t.currentDirection === "inactive");
  let base = null;
  for (;;) {
    const pc = window.__attune.pc;
    if (pc && inactive(pc)) {
      const now = await counts(pc);
      if (base === null) base = now;
      else if (now.audio >= base.audio + 25) {
        return { videoFramesMeanwhile: now.frames - base.frames,
                 audioPackets: now.audio - base.audio };
      }
    }
    if (performance.now() > deadline) throw new Error(`video did not stop in ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
"""


@pytest.fixture
async def site(aiohttp_server: Any, tmp_path: Path) -> LiveSite:
    return await start_site(aiohttp_server, tmp_path)


@pytest.fixture
def harness(media_browser: Browser) -> BrowserHarness:
    """One headless browser with a fake camera and microphone (see conftest)."""
    return BrowserHarness(media_browser)


async def video_stopped_audio_flowing(page: Page) -> dict[str, Any]:
    result: dict[str, Any] = await page.evaluate(
        VIDEO_STOPPED_AUDIO_FLOWING, {"timeoutMs": MEDIA_TIMEOUT_MS}
    )
    return result


async def grant(site: LiveSite, client_id: str, purpose: Purpose) -> None:
    """A consent the client gave on the consent page, recorded as the API would."""
    consents = site.app[CONSENTS]
    await consents.decide(
        site.app[DB],
        site.app[AUDIT],
        client_id=client_id,
        purpose=purpose,
        decision=ConsentDecision.GRANTED,
        notice_version=consents.catalog.current(purpose).version,
        channel=Channel.API,
        now=datetime.now(UTC),
    )


def record_client_features(site: LiveSite) -> dict[bool, asyncio.Event]:
    """Events set when a client `features` frame with `video_off` false / true reaches the
    live operation (which then feeds the cue engine as usual)."""
    live = site.app[LIVE]
    original = live.feed_features
    seen = {False: asyncio.Event(), True: asyncio.Event()}

    async def recording(
        session_id: str, client_id: str, body: Mapping[str, Any], **person: Any
    ) -> None:
        if body.get("role") == "client":
            seen[body.get("video_off") is True].set()
        await original(session_id, client_id, body, **person)

    live.feed_features = recording  # type: ignore[method-assign]
    return seen


async def screenshot(page: Page, name: str) -> None:
    """Keep what the page looks like at a phone's and a laptop's size, when asked to."""
    if not SCREENSHOTS:
        return
    os.makedirs(SCREENSHOTS, exist_ok=True)
    original = page.viewport_size
    for width, height in ((360, 640), (1280, 720)):
        await page.set_viewport_size({"width": width, "height": height})
        await page.screenshot(path=f"{SCREENSHOTS}/{name}-{width}x{height}.png", full_page=True)
    if original:
        await page.set_viewport_size(original)


async def test_a_client_switches_to_audio_only_and_back_without_being_admitted_again(
    site: LiveSite, harness: BrowserHarness
) -> None:
    scheduled = await schedule_session(site)
    await grant_telehealth(site, scheduled.client_id)
    await grant(site, scheduled.client_id, Purpose.CUE_ANALYSIS)
    features = record_client_features(site)
    therapist = await harness.new_page()
    await therapist_opens_room(therapist, site, scheduled.session_id)
    client = await harness.new_page(**MOBILE)
    await client_reaches_waiting_room(client, scheduled.link, consent=False)
    await admit(therapist, scheduled.alias)
    await wait_for_video(client)
    await wait_for_video(therapist)
    await asyncio.wait_for(features[False].wait(), MEDIA_TIMEOUT_MS / 1000)
    await client.evaluate("window.__callBefore = window.__attune.pc")
    audio_only = client.get_by_role("button", name="Audio only")
    await expect(audio_only).to_have_attribute("aria-pressed", "false")

    await audio_only.focus()
    await client.keyboard.press("Enter")  # a keyboard user can switch

    await expect(audio_only).to_have_attribute("aria-pressed", "true")
    await expect(
        client.get_by_role("status").filter(has_text="You switched to audio only")
    ).to_be_visible()
    await expect(
        therapist.get_by_role("status").filter(
            has_text=re.compile(rf"^{re.escape(scheduled.alias)} switched to audio only\.$")
        )
    ).to_be_visible(timeout=MEDIA_TIMEOUT_MS)
    # the cue engine hears that video is off by choice (not a frozen camera)
    await asyncio.wait_for(features[True].wait(), MEDIA_TIMEOUT_MS / 1000)
    for page in (client, therapist):
        stopped = await video_stopped_audio_flowing(page)
        assert stopped["videoFramesMeanwhile"] == 0, stopped
        assert stopped["audioPackets"] >= 25
    await fits_a_phone(client)
    await screenshot(client, "client-audio-only")
    await screenshot(therapist, "therapist-sees-audio-only")

    frames = {"client": await frames_decoded(client), "therapist": await frames_decoded(therapist)}
    await audio_only.click()

    await expect(audio_only).to_have_attribute("aria-pressed", "false")
    await wait_for_video(client, more_than=frames["client"])
    await wait_for_video(therapist, more_than=frames["therapist"])
    await expect(therapist.get_by_role("status").filter(has_text="audio only")).to_have_count(0)
    assert await client.evaluate("window.__callBefore === window.__attune.pc")  # same call
    await expect(therapist.get_by_role("button", name=f"Admit {scheduled.alias}")).to_have_count(0)
    harness.assert_no_policy_violations()


async def test_the_therapist_can_switch_to_audio_only_and_the_client_is_told(
    site: LiveSite, harness: BrowserHarness
) -> None:
    scheduled = await schedule_session(site)
    await grant_telehealth(site, scheduled.client_id)
    therapist = await harness.new_page()
    await therapist_opens_room(therapist, site, scheduled.session_id)
    client = await harness.new_page(**MOBILE)
    await client_reaches_waiting_room(client, scheduled.link, consent=False)
    await admit(therapist, scheduled.alias)
    await wait_for_video(client)

    await therapist.get_by_role("button", name="Audio only").click()

    await expect(
        client.get_by_role("status").filter(has_text="Your therapist switched to audio only.")
    ).to_be_visible(timeout=MEDIA_TIMEOUT_MS)
    for page in (client, therapist):
        stopped = await video_stopped_audio_flowing(page)
        assert stopped["videoFramesMeanwhile"] == 0, stopped
    frames = await frames_decoded(client)
    await therapist.get_by_role("button", name="Audio only").click()
    await wait_for_video(client, more_than=frames)
    await expect(client.get_by_role("status").filter(has_text="audio only")).to_have_count(0)
    harness.assert_no_policy_violations()


async def test_the_video_bitrate_cap_is_set_on_the_sender_and_removed_again(
    site: LiveSite, harness: BrowserHarness
) -> None:
    scheduled = await schedule_session(site)
    await grant_telehealth(site, scheduled.client_id)
    therapist = await harness.new_page()
    await therapist_opens_room(therapist, site, scheduled.session_id)
    client = await harness.new_page()
    await client_reaches_waiting_room(client, scheduled.link, consent=False)
    await admit(therapist, scheduled.alias)
    await wait_for_video(client)

    caps = await client.evaluate(
        """async () => {
          const { videoBitrateCapFor } = await import("/static/js/call.js");
          const call = window.__attune.call;
          const sender = call.pc.getSenders().find((s) => s.track && s.track.kind === "video");
          const weak = { rttMs: 400, lossPercent: 5, jitterMs: 30, framesDecoded: 10,
                         framesPerSecond: 8, availableOutgoingKbps: 300, level: "fair" };
          await call.setVideoBitrateCap(videoBitrateCapFor(weak));
          const capped = sender.getParameters().encodings.map((e) => e.maxBitrate);
          await call.setVideoBitrateCap(null);
          const freed = sender.getParameters().encodings.map((e) => e.maxBitrate ?? null);
          return { capped, freed };
        }"""
    )

    assert caps == {"capped": [250_000], "freed": [None]}
    harness.assert_no_policy_violations()


# Before any page script: every getStats() reports a 900 ms round trip on the candidate pairs,
# as on weak mobile data (the media itself still flows over loopback).
SLOW_ROUND_TRIP = """
const original = RTCPeerConnection.prototype.getStats;
RTCPeerConnection.prototype.getStats = async function (...args) {
  const report = await original.apply(this, args);
  const changed = new Map();
  report.forEach((stats, id) => {
    const pair = stats.type === "candidate-pair" && typeof stats.currentRoundTripTime === "number";
    changed.set(id, pair ? { ...stats, currentRoundTripTime: 0.9 } : stats);
  });
  return changed;
};
"""


async def test_on_a_poor_connection_the_page_suggests_audio_only_and_stops_once_chosen(
    site: LiveSite, harness: BrowserHarness
) -> None:
    scheduled = await schedule_session(site)
    await grant_telehealth(site, scheduled.client_id)
    therapist = await harness.new_page()
    await therapist_opens_room(therapist, site, scheduled.session_id)
    client = await harness.new_page(**MOBILE)
    await client.add_init_script(SLOW_ROUND_TRIP)
    await client_reaches_waiting_room(client, scheduled.link, consent=False)
    await admit(therapist, scheduled.alias)
    await wait_for_video(client)
    hint = client.get_by_text(re.compile(r"^Your connection is weak\. Audio only"))

    await expect(hint).to_be_visible(timeout=MEDIA_TIMEOUT_MS)
    audio_only = client.get_by_role("button", name="Audio only")
    await expect(audio_only).to_have_accessible_description(re.compile("connection is weak"))
    await audio_only.click()

    await expect(hint).to_be_hidden()
    await expect(therapist.get_by_text(f"{scheduled.alias} switched to audio only.")).to_be_visible(
        timeout=MEDIA_TIMEOUT_MS
    )
    harness.assert_no_policy_violations()

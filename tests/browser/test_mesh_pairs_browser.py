"""A group call's mesh in real Chromium, without the server's room: three pages, each with
`mesh.js` and a `Call` per pair, their signaling carried by the test as the server would
carry `relay`/`signal-relay` (`to` and `from`). Proves the browser side alone: every pair
connects with perfect negotiation from the admission order, decodes video both ways and agrees
on its own safety code; a person who leaves the roster loses their pairs while the remaining
pair's video goes on. The full demonstration through the server is test_group_call.py.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from playwright.async_api import Page

from tests.browser.conftest import BrowserHarness, LiveSite
from tests.browser.video_helpers import MEDIA_TIMEOUT_MS, POLL_MS

PEOPLE = ("therapist", "client-a", "guest")
ROSTER = [
    {"peer_id": peer_id, "kind": peer_id.split("-")[0], "label": peer_id, "order": order}
    for order, peer_id in enumerate(PEOPLE)
]

# A small mesh in the page: small fake video at a low frame rate (two cores, three pages).
START_MESH = """
async ({ me }) => {
  const { Mesh } = await import("/static/js/mesh.js");
  const { Call } = await import("/static/js/call.js");
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: true, video: { width: 160, height: 120, frameRate: 10 },
  });
  const mesh = new Mesh({
    makeCall: ({ peerId, polite }) => new Call({
      role: "client", polite, localStream: stream,
      configuration: { iceServers: [], iceTransportPolicy: "all" },
      send: (payload) => { window.relay(peerId, JSON.stringify(payload)); return true; },
    }),
    onAdded: () => {}, onRemoved: () => {},
  });
  window.__mesh = { mesh, me, stream };
}
"""
UPDATE_ROSTER = """
({ roster }) => window.__mesh.mesh.update(roster, window.__mesh.me, null)
"""
DELIVER = """
({ from, payload }) => window.__mesh.mesh.handleSignal(from, JSON.parse(payload))
"""
# Per pair: video frames decoded and the safety code, once every pair has both (or a timeout).
PAIRS_READY = """
async ({ others, floors, timeoutMs, pollMs }) => {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const pairs = {};
    for (const peerId of others) {
      const call = window.__mesh.mesh.get(peerId);
      let frames = 0;
      if (call && call.pc) {
        (await call.pc.getStats()).forEach((s) => {
          if (s.type === "inbound-rtp" && s.kind === "video") frames += s.framesDecoded || 0;
        });
      }
      pairs[peerId] = { frames, code: call ? call.safetyCode : null };
    }
    const ready = others.every(
      (peerId) => pairs[peerId].frames > (floors[peerId] || 0) && pairs[peerId].code
    );
    if (ready || performance.now() > deadline) return pairs;
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
}
"""


async def open_mesh_page(harness: BrowserHarness, site: LiveSite) -> Page:
    """A page of the app's origin (a secure context that may use the camera)."""
    page = await harness.new_page()
    await page.goto(f"{site.base_url}/login")
    return page


async def test_three_pages_pair_up_verify_each_pair_and_one_leaves_without_stopping_the_others(
    media_harness: BrowserHarness, live_site: LiveSite
) -> None:
    pages = {me: await open_mesh_page(media_harness, live_site) for me in PEOPLE}
    deliveries: set[asyncio.Task[None]] = set()
    gone: set[str] = set()

    async def deliver(sender: str, to: str, payload: str) -> None:
        if to not in gone:
            await pages[to].evaluate(DELIVER, {"from": sender, "payload": payload})

    def relay_from(sender: str) -> Any:
        async def relay(to: str, payload: str) -> None:
            # what the server does with `relay` + `to`: a `signal-relay` with `from`
            task = asyncio.ensure_future(deliver(sender, to, payload))
            deliveries.add(task)
            task.add_done_callback(deliveries.discard)

        return relay

    for me, page in pages.items():
        await page.expose_function("relay", relay_from(me))
        await page.evaluate(START_MESH, {"me": me})
    roster = [{**person, "present": True} for person in ROSTER]
    for page in pages.values():
        await page.evaluate(UPDATE_ROSTER, {"roster": roster})

    seen: dict[str, dict[str, Any]] = {}
    for me, page in pages.items():
        others = [peer for peer in PEOPLE if peer != me]
        seen[me] = await page.evaluate(
            PAIRS_READY,
            {"others": others, "floors": {}, "timeoutMs": MEDIA_TIMEOUT_MS * 2, "pollMs": POLL_MS},
        )
    for me in PEOPLE:
        for other in PEOPLE:
            if other == me:
                continue
            assert seen[me][other]["frames"] > 0, json.dumps(seen)
            assert seen[me][other]["code"] == seen[other][me]["code"], json.dumps(seen)
    codes = {seen["therapist"]["client-a"]["code"], seen["therapist"]["guest"]["code"]}
    assert len(codes | {seen["client-a"]["guest"]["code"]}) == 3  # each pair its own code

    # the guest leaves: their pairs end on both other pages, the remaining pair goes on
    gone.add("guest")
    await pages["guest"].context.close()
    for me in ("therapist", "client-a"):
        await pages[me].evaluate(UPDATE_ROSTER, {"roster": roster[:2]})
        assert await pages[me].evaluate("() => window.__mesh.mesh.get('guest')") is None
    floor = seen["therapist"]["client-a"]["frames"]
    after = await pages["therapist"].evaluate(
        PAIRS_READY,
        {
            "others": ["client-a"],
            "floors": {"client-a": floor},
            "timeoutMs": MEDIA_TIMEOUT_MS,
            "pollMs": POLL_MS,
        },
    )
    assert after["client-a"]["frames"] > floor
    media_harness.assert_no_policy_violations()

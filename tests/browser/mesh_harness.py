"""A group call's mesh in Chromium pages without the server's room: each page runs `mesh.js`
with a `Call` per pair, and the test process carries their signaling as the server carries
`relay` (with `to`) and `signal-relay` (with `from`). Used by test_mesh_pairs_browser.py,
test_speaking_browser.py and benchmarks/group_call.py."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from playwright.async_api import Page

from tests.browser.conftest import BrowserHarness

# The mesh in a page; `video` is getUserMedia's video constraint (small on a 2-core machine).
START_MESH = """
async ({ me, video }) => {
  const { Mesh } = await import("/static/js/mesh.js");
  const { Call } = await import("/static/js/call.js");
  const { pairVideoCap } = await import("/static/js/pairs.js");
  const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video });
  const mesh = new Mesh({
    makeCall: ({ peerId, polite }) => new Call({
      role: "client", polite, localStream: stream,
      configuration: { iceServers: [], iceTransportPolicy: "all" },
      send: (payload) => { window.relay(peerId, JSON.stringify(payload)); return true; },
    }),
    onAdded: () => {}, onRemoved: () => {},
  });
  window.__mesh = { mesh, me, stream, pairVideoCap };
}
"""
# The roster, then each pair's share of the video budget as callpage.js gives it.
UPDATE_ROSTER = """
({ roster }) => {
  const { mesh, me, pairVideoCap } = window.__mesh;
  mesh.update(roster, me, null);
  const cap = pairVideoCap(null, mesh.size);
  for (const { call } of mesh.entries()) void call.setVideoBitrateCap(cap);
}
"""
DELIVER = "({ from, payload }) => window.__mesh.mesh.handleSignal(from, JSON.parse(payload))"
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
# Bytes this page has sent on all its pairs (RTP payload and headers), for upstream bandwidth.
BYTES_SENT = """
async () => {
  let bytes = 0;
  for (const { call } of window.__mesh.mesh.entries()) {
    if (!call.pc) continue;
    (await call.pc.getStats()).forEach((s) => {
      if (s.type === "outbound-rtp") bytes += (s.bytesSent || 0) + (s.headerBytesSent || 0);
    });
  }
  return bytes;
}
"""
SMALL_VIDEO = {"width": 160, "height": 120, "frameRate": 10}


def roster_of(people: tuple[str, ...]) -> list[dict[str, Any]]:
    """A `roster` in admission order: the first person is the therapist."""
    return [
        {
            "peer_id": peer_id,
            "kind": "therapist" if order == 0 else "client",
            "label": peer_id,
            "order": order,
            "present": True,
        }
        for order, peer_id in enumerate(people)
    ]


@dataclass
class MeshPages:
    """One page per person, and the signaling between them."""

    pages: dict[str, Page]
    gone: set[str] = field(default_factory=set)
    deliveries: set[asyncio.Task[None]] = field(default_factory=set)

    async def update(self, people: tuple[str, ...]) -> None:
        """Send this roster to everyone on it."""
        roster = roster_of(people)
        for peer_id in people:
            await self.pages[peer_id].evaluate(UPDATE_ROSTER, {"roster": roster})

    async def leave(self, peer_id: str) -> None:
        """This person's browser goes away (their signaling with it)."""
        self.gone.add(peer_id)
        await self.pages[peer_id].context.close()

    async def pairs_ready(
        self, me: str, others: list[str], floors: dict[str, int], timeout_ms: int, poll_ms: int
    ) -> dict[str, dict[str, Any]]:
        """Frames decoded and safety code per pair on this page, once all have both."""
        result: dict[str, dict[str, Any]] = await self.pages[me].evaluate(
            PAIRS_READY,
            {"others": others, "floors": floors, "timeoutMs": timeout_ms, "pollMs": poll_ms},
        )
        return result

    async def _deliver(self, sender: str, to: str, payload: str) -> None:
        if to not in self.gone:
            await self.pages[to].evaluate(DELIVER, {"from": sender, "payload": payload})

    def relay_from(self, sender: str) -> Any:
        """The page's `relay(to, payload)`: what the server does, a `signal-relay` with `from`."""

        async def relay(to: str, payload: str) -> None:
            task = asyncio.ensure_future(self._deliver(sender, to, payload))
            self.deliveries.add(task)
            task.add_done_callback(self.deliveries.discard)

        return relay


async def open_mesh(
    harness: BrowserHarness,
    base_url: str,
    people: tuple[str, ...],
    video: dict[str, Any],
    elsewhere: dict[str, BrowserHarness] | None = None,
) -> MeshPages:
    """A page per person on the app's origin (a secure context), each with its mesh ready;
    the people in `elsewhere` open theirs in that browser (another fake microphone, say)."""
    mesh = MeshPages(pages={})
    for me in people:
        page = await (elsewhere or {}).get(me, harness).new_page()
        await page.goto(f"{base_url}/login")
        mesh.pages[me] = page
        await page.expose_function("relay", mesh.relay_from(me))
        await page.evaluate(START_MESH, {"me": me, "video": video})
    return mesh

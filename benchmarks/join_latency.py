"""Join latency: from the client opening its page to the first decoded remote video frame on
BOTH sides, against the physical floor of a bare two-page WebRTC call on the same machine.

Series, interleaved run by run so machine noise hits them alike (one warm-up of each first):
  attune  the real server (`attune serve` in its own process, as deployed) and pages. The
          therapist is signed in and in the room (camera on). The client opened the invite
          link and agreed on the consent page beforehand, and its tab has passed the device
          and connection checks (as after a reload). t0: the client navigates to /visit →
          camera, ICE servers and the WebSocket knock in parallel → a script in the
          therapist's page presses Admit the moment the knock appears → the therapist's
          browser sends the offer it prepared, the client's answers, over the relay → decoded.
  floor   no Attune: a blank page already holding its camera (like the therapist) and a
          second page navigated at t0 that opens its camera; SDP (with every candidate, no
          trickle) is carried between them by page.evaluate.
  fresh   (--fresh) a first visit: as attune, but the script clicks "Continue" on the device
          check as soon as it shows, "Skip this check" on the connection check, and answers
          the safety check.
  relay   as attune, against a second `attune serve` in relay-only mode with a real coturn
          on loopback (Debian's `turnserver`, started as the tests start it,
          tests/coturn.py): every candidate is a TURN relay, checked after each run on both
          pages' selected candidate pair.

    .venv/bin/python benchmarks/join_latency.py [--runs 10] [--fresh] [--no-relay]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import unused_port
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the test suite's coturn launcher
from tests.coturn import running_coturn  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--allow-loopback-in-peer-connection",
]
EMAIL, PASSWORD = "bench-therapist@example.org", "a calm and long benchmark passphrase"
ALIAS = "J.M."
TIMEOUT_MS = 20_000
POLL_MS = 20

# Resolves when the page's peer connection (window.__attune.pc) has decoded a video frame.
FIRST_FRAME = """
async ({ timeoutMs, pollMs }) => {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const pc = window.__attune && window.__attune.pc;
    if (pc) {
      let frames = 0;
      (await pc.getStats()).forEach((s) => {
        if (s.type === "inbound-rtp" && s.kind === "video") frames += s.framesDecoded || 0;
      });
      if (frames > 0) return frames;
    }
    if (performance.now() > deadline) throw new Error("no video frame decoded in time");
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
}
"""

# Both ends' candidate types of the selected pair, e.g. ["relay", "relay"].
SELECTED_PAIR_TYPES = """
async () => {
  const report = await window.__attune.pc.getStats();
  let pairId;
  report.forEach((s) => { if (s.type === "transport") pairId = s.selectedCandidatePairId; });
  const pair = report.get(pairId);
  return [report.get(pair.localCandidateId).candidateType,
          report.get(pair.remoteCandidateId).candidateType];
}
"""

# The therapist's reflex, in the page: press "Admit <alias>" the moment it appears. (A
# Playwright click waits for actionability and costs 100-500 ms on a busy 2-core machine.)
AUTO_ADMIT = """
(alias) => {
  window.__admitted = 0;
  const press = () => {
    for (const button of document.querySelectorAll("#lobby-list button")) {
      if (button.textContent === `Admit ${alias}` && !window.__admitted) {
        window.__admitted = 1;
        button.click();
      }
    }
  };
  new MutationObserver(press).observe(document.getElementById("lobby-list"), { childList: true });
  press();
}
"""

# The floor's two pages: open the camera, make a peer connection, hand SDP over complete.
FLOOR_OPEN = """
async () => {
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: true, video: { width: { ideal: 640 }, height: { ideal: 480 } },
  });
  const pc = new RTCPeerConnection({ iceServers: [] });
  for (const track of stream.getTracks()) pc.addTrack(track, stream);
  window.__attune = { pc };
}
"""
FLOOR_GATHERED = """
async (remote) => {
  const pc = window.__attune.pc;
  if (remote) await pc.setRemoteDescription(remote);
  await pc.setLocalDescription();
  if (pc.iceGatheringState !== "complete") {
    await new Promise((resolve) => pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") resolve();
    }));
  }
  return { type: pc.localDescription.type, sdp: pc.localDescription.sdp };
}
"""
FLOOR_ANSWER = "async (answer) => { await window.__attune.pc.setRemoteDescription(answer); }"


class Bench:
    """The server (its own process, as in production), the browser and the signed-in
    therapist shared by every run."""

    def __init__(self, base_url: str, browser: Browser) -> None:
        self.base_url, self.browser = base_url, browser
        self.therapist_context: BrowserContext | None = None
        self.csrf = ""
        self.clients = 0

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    async def sign_in(self) -> None:
        """The therapist's browser context, signed in through the form."""
        self.therapist_context = await self.browser.new_context()
        page = await self.therapist_context.new_page()
        await page.goto(self.url("/login"))
        await page.get_by_label("Email").fill(EMAIL)
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Sign in").click()
        await page.wait_for_url(self.url("/dashboard"))
        await page.close()
        me = await self.therapist_context.request.get(self.url("/api/v1/auth/me"))
        self.csrf = (await me.json())["csrf_token"]

    async def new_session(self) -> tuple[str, str, str]:
        """A fresh client and a session starting now, through the API: (id, link, alias)."""
        assert self.therapist_context is not None
        self.clients += 1
        alias = f"{ALIAS} {self.clients}"  # aliases are unique per therapist
        api = self.therapist_context.request
        headers = {"X-CSRF-Token": self.csrf}
        client = await api.post(self.url("/api/v1/clients"), data={"alias": alias}, headers=headers)
        assert client.status == 201, await client.text()
        session = await api.post(
            self.url("/api/v1/sessions"),
            data={
                "client_id": (await client.json())["id"],
                "starts_at": datetime.now(UTC).isoformat(),
                "minutes": 50,
            },
            headers=headers,
        )
        assert session.status == 201, await session.text()
        body = await session.json()
        return body["session"]["id"], body["join_url"], alias


async def client_with_consent(bench: Bench, link: str) -> tuple[BrowserContext, Page]:
    """A client who opened the invite link and agreed to the telehealth consent on the
    consent page (a plain form), but has not opened the session page yet."""
    context = await bench.browser.new_context()
    redirect = await context.request.get(link, max_redirects=0)  # sets the client's cookie
    assert redirect.status == 303, redirect.status
    page = await context.new_page()
    await page.goto(bench.url("/visit/consent"))
    await page.get_by_label(re.compile(r"^I agree to the telehealth consent")).check()
    await page.get_by_role("button", name="Save my choices").click()
    await page.get_by_text("Your choices are saved.").wait_for()
    return context, page


async def timed(since: float, work: Awaitable[Any]) -> float:
    """Seconds from `since` until `work` is done."""
    await work
    return time.perf_counter() - since


async def first_frame(page: Page) -> Any:
    return await page.evaluate(FIRST_FRAME, {"timeoutMs": TIMEOUT_MS, "pollMs": POLL_MS})


async def attune_run(bench: Bench, *, fresh: bool, relay: bool = False) -> tuple[float, float]:
    """One join: (client's first frame, therapist's first frame), seconds after navigation."""
    session_id, link, alias = await bench.new_session()
    assert bench.therapist_context is not None
    therapist = await bench.therapist_context.new_page()
    await therapist.goto(bench.url(f"/host/{session_id}"))
    await therapist.get_by_text("Connected", exact=True).wait_for(timeout=TIMEOUT_MS)
    context, client = await client_with_consent(bench, link)
    if not fresh:
        # this tab already passed the device and connection checks (sessionStorage)
        await context.add_init_script(
            f"sessionStorage.setItem('attune.visit.{session_id}', '{{\"passed\":true}}')"
        )

    async def click_through() -> None:
        if fresh:
            await client.get_by_role("button", name="Continue").click(timeout=TIMEOUT_MS)
            await client.get_by_role("button", name="Skip this check").click(timeout=TIMEOUT_MS)
            # the safety check before the waiting room, answered as a first-time client would
            await client.get_by_label("Where are you right now?").fill("At home")
            await client.get_by_label("Yes", exact=True).check()
            await client.get_by_label("Name", exact=True).fill("Anna")
            await client.get_by_label("Phone", exact=True).fill("+49 171 5551234")
            go_on = client.get_by_role("button", name="Continue", exact=True)
            await go_on.click(timeout=TIMEOUT_MS)

    await therapist.evaluate(AUTO_ADMIT, alias)
    therapist_frames = asyncio.ensure_future(first_frame(therapist))
    t0 = time.perf_counter()
    therapist_timer = asyncio.ensure_future(timed(t0, therapist_frames))
    await client.goto(bench.url("/visit"), wait_until="commit")
    await click_through()
    client_seconds = await timed(t0, first_frame(client))
    therapist_seconds = await therapist_timer
    assert await therapist.evaluate("window.__admitted") == 1
    if relay:
        for page in (client, therapist):
            assert await page.evaluate(SELECTED_PAIR_TYPES) == ["relay", "relay"]
    await context.close()
    await therapist.close()
    return client_seconds, therapist_seconds


async def floor_run(bench: Bench, floor_url: str) -> tuple[float, float]:
    """The bare call: (second page's first frame, first page's first frame), seconds."""
    context_a = await bench.browser.new_context()
    context_b = await bench.browser.new_context()
    first = await context_a.new_page()
    await first.goto(floor_url)
    await first.evaluate(FLOOR_OPEN)  # like the therapist: already there, camera on
    second = await context_b.new_page()

    first_frames = asyncio.ensure_future(first_frame(first))
    t0 = time.perf_counter()
    first_timer = asyncio.ensure_future(timed(t0, first_frames))
    await second.goto(floor_url, wait_until="commit")
    await second.evaluate(FLOOR_OPEN)
    offer = await first.evaluate(FLOOR_GATHERED, None)
    answer = await second.evaluate(FLOOR_GATHERED, offer)
    await first.evaluate(FLOOR_ANSWER, answer)
    second_seconds = await timed(t0, first_frame(second))
    first_seconds = await first_timer
    await context_a.close()
    await context_b.close()
    return second_seconds, first_seconds


async def blank_page(_request: web.Request) -> web.StreamResponse:
    return web.Response(
        text='<!doctype html><html lang="en"><head><meta charset="utf-8"><title>floor</title>'
        "</head><body></body></html>",
        content_type="text/html",
    )


def summary(name: str, runs: list[tuple[float, float]]) -> float:
    """Print one series; returns the median of 'both sides decoding'."""
    both = [max(pair) for pair in runs]
    client = [pair[0] for pair in runs]
    other = [pair[1] for pair in runs]
    median = statistics.median(both)
    print(
        f"{name:7} both sides decoding: median {median * 1000:6.0f} ms "
        f"(min {min(both) * 1000:.0f}, max {max(both) * 1000:.0f}); "
        f"joining page {statistics.median(client) * 1000:.0f} ms, "
        f"other page {statistics.median(other) * 1000:.0f} ms"
    )
    return median


async def start_server(
    data_dir: Path, port: int, env: dict[str, str] | None = None
) -> asyncio.subprocess.Process:
    """`attune serve` in its own process (with `env` added to the environment), with a
    therapist account made beforehand."""
    attune = str(Path(sys.executable).with_name("attune"))
    add = await asyncio.create_subprocess_exec(
        attune, "user", "add", EMAIL, "--role", "therapist", "--data-dir", str(data_dir),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    await add.communicate(f"{PASSWORD}\n".encode())
    assert add.returncode == 0, "attune user add failed"
    server = await asyncio.create_subprocess_exec(
        attune, "serve", "--data-dir", str(data_dir), "--host", "127.0.0.1", "--port", str(port),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )  # fmt: skip
    assert server.stdout is not None
    async with asyncio.timeout(30):
        while b"Attune is running" not in await server.stdout.readline():
            pass
    return server


async def main(runs: int, with_fresh: bool, with_relay: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        port, floor_port, relay_port = unused_port(), unused_port(), unused_port()
        server = await start_server(Path(tmp) / "data", port)
        relay_server = None
        if with_relay:
            coturn = stack.enter_context(running_coturn(Path(tmp), "bench-turn-secret"))
            relay_env = {
                "ATTUNE_TURN_URLS": ",".join(coturn.turn_urls),
                "ATTUNE_TURN_SECRET": coturn.secret,
                "ATTUNE_RELAY_ONLY": "true",
            }
            relay_server = await start_server(Path(tmp) / "relay-data", relay_port, relay_env)
        floor_app = web.Application()
        floor_app.router.add_get("/", blank_page)
        floor_runner = web.AppRunner(floor_app, access_log=None)
        await floor_runner.setup()
        await web.TCPSite(floor_runner, "127.0.0.1", floor_port).start()
        floor_url = f"http://127.0.0.1:{floor_port}/"
        try:
            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(
                    executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
                )
                bench = Bench(f"http://127.0.0.1:{port}", browser)
                await bench.sign_in()
                series: dict[str, Callable[[], Awaitable[tuple[float, float]]]] = {
                    "attune": lambda: attune_run(bench, fresh=False),
                    "floor": lambda: floor_run(bench, floor_url),
                }
                if with_fresh:
                    series["fresh"] = lambda: attune_run(bench, fresh=True)
                if relay_server is not None:
                    relay_bench = Bench(f"http://127.0.0.1:{relay_port}", browser)
                    await relay_bench.sign_in()
                    series["relay"] = lambda: attune_run(relay_bench, fresh=False, relay=True)
                results: dict[str, list[tuple[float, float]]] = {name: [] for name in series}
                for run in series.values():
                    await run()  # warm-up, discarded
                for round_no in range(runs):
                    order = list(series.items())
                    if round_no % 2:
                        order.reverse()
                    for name, run in order:
                        results[name].append(await run())
                version = browser.version
                await browser.close()
        finally:
            for process in (server, relay_server):
                if process is not None:
                    process.terminate()
                    await process.wait()
            await floor_runner.cleanup()

    print(
        f"# join latency {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.platform()}, "
        f"{platform.machine()}, {os.cpu_count()} cores, load average "
        f"{os.getloadavg()[0]:.1f}, Python {platform.python_version()}, Chromium {version} "
        f"headless, loopback, {runs} runs per series after one warm-up"
    )
    attune = summary("attune", results["attune"])
    floor = summary("floor", results["floor"])
    if with_fresh:
        summary("fresh", results["fresh"])
    print(f"attune / floor: {attune / floor:.2f}x (aim: <= 1.5x and <= 1000 ms)")
    if "relay" in results:
        relay = summary("relay", results["relay"])
        print(f"relay / floor: {relay / floor:.2f}x (aim: <= 1.5x)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--fresh", action="store_true", help="also time a first visit")
    parser.add_argument("--no-relay", action="store_true", help="skip the coturn series")
    args = parser.parse_args()
    asyncio.run(main(args.runs, args.fresh, not args.no_relay))

"""The connection check in headless Chromium against the real server's aiortc echo peer."""

from __future__ import annotations

import html
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import unused_port
from playwright.async_api import Page

from server.app import create_app
from server.realtime.conncheck import CONNECTION_CHECKS
from server.settings import Settings
from server.web.identity import require_client
from tests.browser.conftest import (
    CHROMIUM_ARGS,
    BrowserHarness,
    LaunchedBrowsers,
    LiveSite,
    close_contexts,
)
from tests.conftest import with_migrated_database
from tests.integration.test_conncheck import CONNCHECK, eventually, with_conncheck

pytestmark = pytest.mark.browser

# TESTING.md's media flags: a stray getUserMedia would succeed (and be counted); with media
# permission granted, Chrome shows its real host addresses in ICE candidates.
MEDIA_PERMITTED_ARGS = (
    *CHROMIUM_ARGS,
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--allow-loopback-in-peer-connection",
)
# A client who has not allowed camera or microphone: Chrome hides its host addresses behind
# mDNS names (`<uuid>.local`), and no loopback candidates.
NO_PERMISSION_ARGS = CHROMIUM_ARGS
CHECK_PAGE = "/test/conncheck"
RUN_TIMEOUT_MS = 15_000

# Counts every request for the camera or microphone before any page script runs.
COUNT_MEDIA_REQUESTS = """
window.__mediaRequests = 0;
const devices = navigator.mediaDevices;
if (devices) {
  for (const name of ["getUserMedia", "getDisplayMedia"]) {
    const original = devices[name]?.bind(devices);
    if (original) {
      devices[name] = (...args) => { window.__mediaRequests += 1; return original(...args); };
    }
  }
}
"""

RUN_CHECK = """
async (options) => {
  const { runConnectionCheck } = await import("/static/js/conncheck.js");
  const csrfToken = options.csrfToken
    ?? document.querySelector('meta[name="csrf-token"]').getAttribute("content");
  const phases = [];
  const result = await runConnectionCheck({
    csrfToken,
    iceServers: options.iceServers,
    durationMs: options.durationMs,
    onProgress: (p) => phases.push(p.phase),
  });
  return { ...result, phases: [...new Set(phases)], mediaRequests: window.__mediaRequests };
}
"""


async def check_page(request: web.Request) -> web.StreamResponse:
    """Test only: a bare same-origin page carrying the visit's CSRF token."""
    token = html.escape(require_client(request).csrf_token)
    return web.Response(
        text=(
            '<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="csrf-token" content="{token}"><title>Connection check</title>'
            "</head><body></body></html>"
        ),
        content_type="text/html",
    )


@pytest.fixture
async def site(aiohttp_server: Any, tmp_path: Path) -> LiveSite:
    """The app with the connection check wired in, plus the test page."""
    port = unused_port()
    data_dir = with_migrated_database(tmp_path / "data")
    settings = Settings(data_dir=data_dir, host="127.0.0.1", port=port)
    app = with_conncheck(create_app(settings))
    app.router.add_get(CHECK_PAGE, check_page)
    await aiohttp_server(app, host="127.0.0.1", port=port)
    return LiveSite(app=app, base_url=settings.base_url)


@pytest.fixture
def browser_args() -> tuple[str, ...]:
    return MEDIA_PERMITTED_ARGS


@pytest.fixture
async def harness(
    launched_browsers: LaunchedBrowsers, browser_args: tuple[str, ...]
) -> AsyncIterator[BrowserHarness]:
    """A headless browser with these flags (its contexts the test's own, closed after it);
    records CSP violations and page errors."""
    browser = await launched_browsers.get(browser_args)
    yield BrowserHarness(browser)
    await close_contexts(browser)


async def client_on_check_page(site: LiveSite, harness: BrowserHarness) -> Page:
    """A client who opened their invite link, on a page that can import conncheck.js."""
    link = await site.issue_link(await site.add_therapist())
    page = await harness.new_page()
    await page.add_init_script(COUNT_MEDIA_REQUESTS)
    await page.goto(link)
    await page.goto(site.url(CHECK_PAGE))
    return page


async def run_check(page: Page, **options: Any) -> dict[str, Any]:
    result: dict[str, Any] = await page.evaluate(
        RUN_CHECK, {"iceServers": [], "durationMs": 2000, **options}
    )
    return result


def host_candidate_addresses(offer_sdp: str) -> list[str]:
    """The addresses of the host candidates in an SDP offer."""
    return [
        line.split()[4]
        for line in offer_sdp.splitlines()
        if line.startswith("a=candidate:") and " typ host" in line
    ]


@pytest.mark.parametrize(
    ("browser_args", "mdns_hosts"),
    [(MEDIA_PERMITTED_ARGS, False), (NO_PERMISSION_ARGS, True)],
    ids=["media-permitted", "no-media-permission-mdns"],
)
async def test_a_good_path_is_reported_good_without_touching_camera_or_microphone(
    site: LiveSite, harness: BrowserHarness, mdns_hosts: bool
) -> None:
    page = await client_on_check_page(site, harness)
    page.set_default_timeout(RUN_TIMEOUT_MS)
    offers: list[str] = []
    page.on(
        "request",
        lambda request: (
            offers.append(json.loads(request.post_data or "{}").get("sdp", ""))
            if request.url.endswith(CONNCHECK)
            else None
        ),
    )

    result = await run_check(page)

    assert result["detail"] == ""
    assert result["verdict"] == "good"
    assert result["message"] == "Your connection is good for video."
    assert result["rttMs"] is not None and result["rttMs"] < 100
    assert result["lossPercent"] is not None and result["lossPercent"] <= 3
    assert result["bitrateKbps"] >= 250
    assert result["videoFramesDecoded"] > 0  # the generated pattern came back and was decoded
    assert result["audioPacketsReceived"] > 0
    assert result["turnReachable"] is None  # no TURN server configured
    assert result["phases"] == ["preparing", "connecting", "measuring", "done"]
    assert result["mediaRequests"] == 0
    assert result["timings"]["totalMs"] < 5000

    [offer] = offers
    hosts = host_candidate_addresses(offer)
    assert hosts and all(host.endswith(".local") == mdns_hosts for host in hosts)
    checks = site.app[CONNECTION_CHECKS]
    # The browser closed its side; the server peer follows at once.
    assert await eventually(lambda: checks.live_count == 0, seconds=2.0)
    harness.assert_no_policy_violations()


async def test_a_check_the_server_refuses_reports_failed_calmly(
    site: LiveSite, harness: BrowserHarness
) -> None:
    page = await client_on_check_page(site, harness)

    result = await run_check(page, csrfToken="not-the-visit-token")

    assert result["verdict"] == "failed"
    assert result["message"] == "We could not connect. Your therapist can still call you by phone."
    assert result["detail"] == "CheckError: server answered 403 (csrf)"
    assert result["mediaRequests"] == 0
    harness.assert_no_policy_violations()


async def test_an_unreachable_turn_server_is_reported_while_the_direct_path_still_works(
    site: LiveSite, harness: BrowserHarness
) -> None:
    page = await client_on_check_page(site, harness)
    page.set_default_timeout(RUN_TIMEOUT_MS)
    nothing_listens = {"urls": "turn:127.0.0.1:9", "username": "1:x", "credential": "x"}

    result = await run_check(page, iceServers=[nothing_listens], durationMs=1500)

    assert result["turnReachable"] is False
    assert result["verdict"] == "good"


VERDICTS = """
async (cases) => {
  const { verdict, MESSAGES } = await import("/static/js/conncheck.js");
  const base = { connected: true, rttMs: 5, lossPercent: 0, bitrateKbps: 500,
                 videoFramesDecoded: 20, audioPacketsReceived: 50 };
  const verdicts = Object.fromEntries(
    Object.entries(cases).map(([name, change]) => [name, verdict({ ...base, ...change })]));
  return { verdicts, messages: MESSAGES };
}
"""
VERDICT_TABLE: dict[str, tuple[dict[str, Any], str]] = {
    "local-network": ({}, "good"),
    "at-every-good-limit": ({"rttMs": 300, "lossPercent": 3, "bitrateKbps": 250}, "good"),
    "echoed-video-not-decoded": ({"videoFramesDecoded": 0}, "fair"),
    "slow-round-trip": ({"rttMs": 450}, "fair"),
    "some-loss": ({"lossPercent": 5}, "fair"),
    "narrow-path": ({"bitrateKbps": 120}, "fair"),
    "at-every-fair-limit": ({"rttMs": 700, "lossPercent": 10, "bitrateKbps": 64}, "fair"),
    "heavy-loss": ({"lossPercent": 15}, "poor"),
    "very-slow-round-trip": ({"rttMs": 900}, "poor"),
    "audio-only-bitrate": ({"bitrateKbps": 40}, "poor"),
    "nothing-came-back": ({"videoFramesDecoded": 0, "audioPacketsReceived": 0}, "poor"),
    "round-trip-unmeasured": ({"rttMs": None}, "poor"),
    "loss-unmeasured": ({"lossPercent": None}, "poor"),
    "not-connected": ({"connected": False}, "failed"),
}


async def test_the_verdict_table_and_its_plain_words(
    site: LiveSite, harness: BrowserHarness
) -> None:
    page = await harness.new_page()
    await page.goto(site.url("/healthz"))  # any same-origin page can import the module

    outcome = await page.evaluate(VERDICTS, {k: v[0] for k, v in VERDICT_TABLE.items()})

    assert outcome["verdicts"] == {name: expected for name, (_, expected) in VERDICT_TABLE.items()}
    messages = outcome["messages"]
    assert messages["good"] == "Your connection is good for video."
    assert messages["fair"] == "Video may be choppy; audio should be fine."
    assert "phone" in messages["failed"]
    assert len(set(messages.values())) == 4

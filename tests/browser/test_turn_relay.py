"""Calls through a real TURN server (Debian's coturn on loopback): relay-only media between two
Chromium pages, credentials that coturn really checks, and the connection check's "TURN
reachable" answer. These tests run in `make test` and fail in CI when coturn is missing."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import unused_port
from playwright.async_api import Browser, Page, expect

from server.app import create_app
from server.core.ice import turn_credential
from server.settings import Settings
from tests.browser.conftest import BrowserHarness, LiveSite
from tests.browser.test_conncheck_browser import CHECK_PAGE, RUN_CHECK, check_page
from tests.browser.test_poor_connection import screenshot
from tests.browser.video_helpers import (
    MEDIA_TIMEOUT_MS,
    admit,
    client_reaches_waiting_room,
    frames_decoded,
    grant_telehealth,
    schedule_session,
    therapist_opens_room,
    wait_for_video,
)
from tests.conftest import with_migrated_database
from tests.coturn import Coturn, running_coturn
from tests.integration.test_conncheck import eventually, with_conncheck

pytestmark = pytest.mark.browser

SECRET = "the-shared-secret-of-this-test"
RELAY_TIMEOUT_MS = 20_000

# The selected candidate pair's local and remote candidate types, once media flows on it.
SELECTED_PAIR = """
async ({ timeoutMs }) => {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const pc = window.__attune && window.__attune.pc;
    if (pc) {
      const report = await pc.getStats();
      let pairId;
      report.forEach((s) => {
        if (s.type === "transport" && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId;
      });
      const pair = pairId && report.get(pairId);
      if (pair && pair.state === "succeeded") {
        const local = report.get(pair.localCandidateId);
        const remote = report.get(pair.remoteCandidateId);
        const types = [];
        report.forEach((s) => { if (s.type === "local-candidate") types.push(s.candidateType); });
        return { local: local.candidateType, remote: remote.candidateType,
                 relayProtocol: local.relayProtocol ?? null, gathered: [...new Set(types)] };
      }
    }
    if (performance.now() > deadline) throw new Error(`no selected pair in ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
"""


@pytest.fixture
def coturn(tmp_path: Path) -> Iterator[Coturn]:
    """coturn on loopback with this test's shared secret."""
    with running_coturn(tmp_path, SECRET) as server:
        yield server


async def relay_site(
    aiohttp_server: Any, tmp_path: Path, coturn: Coturn, *, secret: str, ttl_seconds: int = 3600
) -> LiveSite:
    """Attune in relay-only mode, pointing at `coturn` with the shared secret `secret`."""
    port = unused_port()
    settings = Settings(
        data_dir=with_migrated_database(tmp_path / "data"),
        host="127.0.0.1",
        port=port,
        turn_urls=coturn.turn_urls,
        turn_secret=secret,
        turn_ttl_seconds=ttl_seconds,
        relay_only=True,
    )
    app = create_app(settings)
    await aiohttp_server(app, host="127.0.0.1", port=port)
    return LiveSite(app=app, base_url=settings.base_url)


@pytest.fixture
def harness(media_browser: Browser) -> BrowserHarness:
    """One headless browser with fake devices; records CSP violations and page errors."""
    return BrowserHarness(media_browser)


async def both_in_room(site: LiveSite, harness: BrowserHarness) -> tuple[Page, Page]:
    """The therapist in the room and the client admitted (the call starting)."""
    scheduled = await schedule_session(site)
    await grant_telehealth(site, scheduled.client_id)
    therapist = await harness.new_page()
    await therapist_opens_room(therapist, site, scheduled.session_id)
    client = await harness.new_page()
    await client_reaches_waiting_room(client, scheduled.link, consent=False)
    await admit(therapist, scheduled.alias)
    return therapist, client


async def selected_pair(page: Page) -> dict[str, Any]:
    pair: dict[str, Any] = await page.evaluate(SELECTED_PAIR, {"timeoutMs": RELAY_TIMEOUT_MS})
    return pair


async def test_a_relay_only_call_flows_through_coturn_on_both_sides(
    aiohttp_server: Any, tmp_path: Path, coturn: Coturn, harness: BrowserHarness
) -> None:
    site = await relay_site(aiohttp_server, tmp_path, coturn, secret=SECRET)
    therapist, client = await both_in_room(site, harness)

    await wait_for_video(client)
    await wait_for_video(therapist)

    for page in (therapist, client):
        pair = await selected_pair(page)
        assert pair["local"] == "relay" and pair["remote"] == "relay", pair
        assert pair["gathered"] == ["relay"]  # no host or srflx address ever left the page
    assert len(coturn.allocating_usernames()) >= 2, coturn.log()[-3000:]  # one per page
    assert coturn.unauthorized_for(coturn.usernames()) == []
    harness.assert_no_policy_violations()


async def test_with_a_wrong_shared_secret_the_relay_refuses_and_the_page_says_so(
    aiohttp_server: Any, tmp_path: Path, coturn: Coturn, harness: BrowserHarness
) -> None:
    site = await relay_site(aiohttp_server, tmp_path, coturn, secret="not-the-secret")
    therapist, client = await both_in_room(site, harness)

    for page in (therapist, client):
        await expect(
            page.get_by_role("status").filter(has_text=re.compile("relay server"))
        ).to_be_visible(timeout=MEDIA_TIMEOUT_MS)
    await screenshot(client, "client-relay-refused")
    usernames = coturn.usernames()
    assert usernames, coturn.log()[-3000:]
    assert coturn.unauthorized_for(usernames), coturn.log()[-3000:]
    assert coturn.allocating_usernames() == set()
    harness.assert_no_policy_violations()


@pytest.mark.parametrize(
    ("secret", "reachable"),
    [(SECRET, True), ("not-the-secret", False)],
    ids=["right-secret", "wrong-secret"],
)
async def test_the_connection_check_says_turn_is_reachable_only_when_coturn_allocates(
    aiohttp_server: Any,
    tmp_path: Path,
    coturn: Coturn,
    harness: BrowserHarness,
    secret: str,
    reachable: bool,
) -> None:
    port = unused_port()
    settings = Settings(
        data_dir=with_migrated_database(tmp_path / "data"), host="127.0.0.1", port=port
    )
    app = with_conncheck(create_app(settings))
    app.router.add_get(CHECK_PAGE, check_page)
    await aiohttp_server(app, host="127.0.0.1", port=port)
    site = LiveSite(app=app, base_url=settings.base_url)
    link = await site.issue_link(await site.add_therapist())
    page = await harness.new_page()
    await page.goto(link)
    await page.goto(site.url(CHECK_PAGE))
    page.set_default_timeout(RELAY_TIMEOUT_MS)
    credential = turn_credential(secret, now_unix=int(time.time()), ttl_seconds=600, opaque_id="cc")
    turn = {
        "urls": list(coturn.turn_urls),
        "username": credential.username,
        "credential": credential.password,
    }

    result = await page.evaluate(RUN_CHECK, {"iceServers": [turn], "durationMs": 1500})

    assert result["turnReachable"] is reachable
    assert result["verdict"] == "good"  # the direct path to the echo peer still works
    if reachable:
        assert credential.username in coturn.allocating_usernames()
    else:
        assert coturn.unauthorized_for({credential.username}), coturn.log()[-3000:]


# The TURN username the page's running peer connection uses now ("<expiry>:<id>").
TURN_USERNAME = """
() => {
  const pc = window.__attune.pc;
  const turn = pc && pc.getConfiguration().iceServers.find((s) => s.username);
  return turn ? turn.username : null;
}
"""


async def test_in_a_long_session_turn_credentials_are_renewed_before_they_expire(
    aiohttp_server: Any, tmp_path: Path, coturn: Coturn, harness: BrowserHarness
) -> None:
    """Credentials that live 8 s are replaced after 4 s (half their life, as 3600 s ones are
    five minutes early); an ICE restart after that allocates with the new ones."""
    site = await relay_site(aiohttp_server, tmp_path, coturn, secret=SECRET, ttl_seconds=8)
    therapist, client = await both_in_room(site, harness)
    await wait_for_video(client)
    first = await client.evaluate(TURN_USERNAME)
    assert first is not None

    renewed = await client.evaluate(
        """async ({ first, timeoutMs }) => {
          const deadline = performance.now() + timeoutMs;
          for (;;) {
            const pc = window.__attune.pc;
            const turn = pc.getConfiguration().iceServers.find((s) => s.username);
            if (turn && turn.username !== first) return turn.username;
            if (performance.now() > deadline) throw new Error("credentials were not renewed");
            await new Promise((resolve) => setTimeout(resolve, 200));
          }
        }""",
        {"first": first, "timeoutMs": RELAY_TIMEOUT_MS},
    )
    assert int(renewed.split(":")[0]) > int(first.split(":")[0])  # a later expiry
    frames = await frames_decoded(therapist)
    await client.evaluate("window.__attune.call.restartIce()")
    await wait_for_video(therapist, more_than=frames)

    assert await eventually(lambda: renewed in coturn.allocating_usernames()), coturn.log()[-3000:]
    pair = await selected_pair(client)
    assert pair["local"] == "relay" and pair["remote"] == "relay"
    harness.assert_no_policy_violations()

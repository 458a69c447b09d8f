"""Redis goes away mid-call, in real Chromium: both pages say live sessions are briefly
unavailable while the call's video keeps being decoded, and once Redis is back the words go
and the room works again (a pulse check-in goes through).

The app runs with the Redis bus against the outage test's own `redis-server` (killed with
SIGKILL and started again, empty, on the same port), never the machine's.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import unused_port
from playwright.async_api import Browser, Page, expect

from server.app import create_app
from server.keys import HUB
from server.settings import Settings
from tests.browser.conftest import BrowserHarness, LiveSite
from tests.browser.video_helpers import (
    admit,
    client_reaches_waiting_room,
    frames_decoded,
    grant_telehealth,
    schedule_session,
    therapist_opens_room,
    wait_for_video,
)
from tests.conftest import with_migrated_database
from tests.integration.test_redis_outage import (
    OwnRedis,
    own_redis,  # noqa: F401 - a fixture
)

pytestmark = pytest.mark.browser

THERAPIST_SAYS = "Live sessions are briefly unavailable; the call goes on. Reconnecting…"
CLIENT_SAYS = "Live sessions are briefly unavailable; your call goes on. Reconnecting…"
LEASE_MS = 900
# The pages' reconnect back-off grows to 15 s (jittered): a reconnect can come that late.
BACK_WITHIN_MS = 30_000
WATCH_STATUS = """
(ids) => {
  window.__statusSeen = [];
  for (const id of ids) {
    const element = document.getElementById(id);
    if (!element) continue;
    new MutationObserver(() => window.__statusSeen.push(element.textContent))
      .observe(element, { childList: true, characterData: true, subtree: true });
  }
}
"""
STATUS_SEEN = "(text) => window.__statusSeen.includes(text)"
SOCKET_OPEN = "() => window.__attune.connection.state === 'open'"


@pytest.fixture
async def site(
    aiohttp_server: Any,
    tmp_path: Path,
    own_redis: OwnRedis,  # noqa: F811 - the fixture imported above
) -> LiveSite:
    """The app on a loopback port with the Redis bus on the test's own redis-server."""
    port = unused_port()
    settings = Settings(
        data_dir=with_migrated_database(tmp_path / "data"),
        host="127.0.0.1",
        port=port,
        redis_url=own_redis.url,
        redis_prefix="attune-browser-outage:",
        redis_lease_ms=LEASE_MS,
    )
    app = create_app(settings)
    await aiohttp_server(app, host="127.0.0.1", port=port)
    return LiveSite(app=app, base_url=settings.base_url)


@pytest.fixture
def harness(media_browser: Browser) -> BrowserHarness:
    """One headless browser with fake devices; records CSP violations and page errors."""
    return BrowserHarness(media_browser)


async def _until_both_say_so(site: LiveSite, session_id: str, pages: list[Page]) -> None:
    """Once the room's lease has lapsed by the app's own clock, the next action of a socket
    cannot be routed and is closed with 1013. A quiet page pings only after 20 s, so each
    page sends a `ping` now and then until both show their words."""
    said = [(pages[0], THERAPIST_SAYS), (pages[1], CLIENT_SAYS)]
    deadline = time.monotonic() + 15
    while True:
        shown = [await page.evaluate(STATUS_SEEN, text) for page, text in said]
        if all(shown):
            return
        assert time.monotonic() < deadline, f"the outage words shown (therapist, client): {shown}"
        if not site.app[HUB].bus.owns(session_id):
            for page, _text in said:
                await page.evaluate(
                    "() => { const c = window.__attune.connection;"
                    " if (c.state === 'open') c.send({ type: 'ping' }); }"
                )
        await asyncio.sleep(0.2)  # the lease lapses on the app's clock: poll, bounded above


async def test_redis_going_away_mid_call_says_so_on_both_pages_while_the_video_goes_on(
    site: LiveSite,
    harness: BrowserHarness,
    own_redis: OwnRedis,  # noqa: F811 - the fixture imported above
) -> None:
    scheduled = await schedule_session(site)
    await grant_telehealth(site, scheduled.client_id)
    therapist = await harness.new_page()
    await therapist_opens_room(therapist, site, scheduled.session_id)
    client = await harness.new_page()
    await client_reaches_waiting_room(client, scheduled.link, consent=False)
    await admit(therapist, scheduled.alias)
    await wait_for_video(client)
    await wait_for_video(therapist)
    client_pc = await client.evaluate_handle("window.__attune.pc")
    therapist_pc = await therapist.evaluate_handle("window.__attune.pc")
    for page in (therapist, client):
        await page.evaluate(WATCH_STATUS, ["host-connection", "call-status"])

    await own_redis.kill()

    await _until_both_say_so(site, scheduled.session_id, [therapist, client])
    await expect(therapist.get_by_text(THERAPIST_SAYS)).to_be_visible()
    await expect(client.get_by_text(CLIENT_SAYS)).to_be_visible()
    # The call is peer to peer: its video keeps being decoded on both sides meanwhile.
    for page in (therapist, client):
        await wait_for_video(page, more_than=await frames_decoded(page))
    for page in (therapist, client):
        await wait_for_video(page, more_than=await frames_decoded(page))
    assert await client.evaluate(SOCKET_OPEN) is False  # still away, still saying so
    await expect(client.get_by_text(CLIENT_SAYS)).to_be_visible()

    await own_redis.start()  # the same port, empty: it saved nothing

    for page in (therapist, client):
        await page.wait_for_function(SOCKET_OPEN, timeout=BACK_WITHIN_MS, polling=100)
    await expect(therapist.get_by_text(THERAPIST_SAYS)).to_have_count(0)
    await expect(client.get_by_text(CLIENT_SAYS)).to_have_count(0)
    await expect(
        therapist.get_by_role("status").filter(has_text=re.compile("^Connected$"))
    ).to_be_visible()
    # The same room: no knock, no admission; and it works again.
    await expect(client.get_by_role("heading", name="Waiting room", level=1)).to_be_hidden()
    await expect(therapist.get_by_role("button", name=f"Admit {scheduled.alias}")).to_have_count(0)
    await therapist.get_by_role("button", name="Ask a pulse question").click()
    await client.get_by_role("button", name=re.compile(r"^4$")).click()
    panel = therapist.get_by_role("complementary", name="Private panel")
    await expect(panel.get_by_role("heading", name="Pulse check-in: Pulse 4/5")).to_be_visible()
    # Neither page restarted its call, and the video still comes.
    assert await client.evaluate("(pc) => pc === window.__attune.pc", client_pc)
    assert await therapist.evaluate("(pc) => pc === window.__attune.pc", therapist_pc)
    for page in (therapist, client):
        await wait_for_video(page, more_than=await frames_decoded(page))
    harness.assert_no_policy_violations()

"""Check-ins and cues in real browsers: what the client answers and the therapist is shown.

Each test runs a therapist and a client in headless Chromium against a live server; the cue
test gives each browser known media (speech and motion on one side, silence and stillness on
the other) through Chromium's fake devices.
"""

from __future__ import annotations

import re
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import unused_port
from playwright.async_api import Browser, Page, expect

from privacy.consent import Channel, ConsentDecision, Purpose
from server.app import create_app
from server.keys import AUDIT, CONSENTS, DB, SETTINGS
from server.settings import Settings
from tests.browser.conftest import BrowserHarness, LiveSite
from tests.browser.test_features_browser import Media, browser_playing, media  # noqa: F401
from tests.browser.video_helpers import (
    admit,
    client_reaches_waiting_room,
    grant_telehealth,
    schedule_session,
    therapist_opens_room,
    wait_for_video,
)
from tests.conftest import with_migrated_database

pytestmark = pytest.mark.browser


@pytest.fixture
async def cue_site(aiohttp_server: Any, tmp_path: Path) -> LiveSite:
    """A live server whose cue rules watch seconds instead of minutes (cue_time_scale)."""
    port = unused_port()
    settings = Settings(
        data_dir=with_migrated_database(tmp_path / "data"),
        host="127.0.0.1",
        port=port,
        cue_time_scale=0.02,
    )
    app = create_app(settings)
    await aiohttp_server(app, host="127.0.0.1", port=port)
    return LiveSite(app=app, base_url=settings.base_url)


async def _grant(site: LiveSite, client_id: str, purpose: Purpose) -> None:
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


def _stored(site: LiveSite, kind: str) -> int:
    with sqlite3.connect(site.app[SETTINGS].data_dir / "attune.db") as conn:
        return int(
            conn.execute(
                "SELECT count(*) FROM checkin_responses WHERE kind = ?", (kind,)
            ).fetchone()[0]
        )


async def _in_call(site: LiveSite, therapist: Page, client: Page, *, storage: bool) -> str:
    scheduled = await schedule_session(site)
    await grant_telehealth(site, scheduled.client_id)
    if storage:
        await _grant(site, scheduled.client_id, Purpose.CHECKIN_STORAGE)
    await therapist_opens_room(therapist, site, scheduled.session_id)
    await client_reaches_waiting_room(client, scheduled.link, consent=False)
    # The before-session check-in opens in the waiting room; this client skips it.
    await client.get_by_role("button", name="Skip this check-in").click()
    # A skip is not called an answer (issue #11, item 9).
    skipped = client.get_by_role("status").filter(has_text="Skipped — that is fine")
    await expect(skipped).to_be_visible()
    await expect(client.get_by_text("reached your therapist")).to_have_count(0)
    await admit(therapist, scheduled.alias)
    await wait_for_video(client)
    await wait_for_video(therapist)
    return scheduled.session_id


async def test_a_low_pulse_and_a_low_after_session_bond_reach_the_therapist_as_alerts(
    live_site: LiveSite, media_browser: Browser
) -> None:
    harness = BrowserHarness(media_browser)
    therapist, client = await harness.new_page(), await harness.new_page()
    session_id = await _in_call(live_site, therapist, client, storage=True)

    await therapist.get_by_role("button", name="Ask a pulse question").click()
    await client.get_by_role("button", name=re.compile(r"^1 – ")).click()
    panel = therapist.get_by_role("complementary", name="Private panel")
    await expect(panel.get_by_role("heading", name="Pulse check-in: Pulse 1/5")).to_be_visible()
    await expect(panel.get_by_text(re.compile("^Try: "))).to_be_visible()

    await therapist.get_by_role("button", name="End session").click()
    dialog = therapist.get_by_role("dialog", name="End the session for everyone?")
    await dialog.get_by_role("button", name="Yes, end the session").click()
    await expect(client.get_by_role("heading", name="Your session has ended")).to_be_visible()
    await client.get_by_role("link", name=re.compile("Tell your therapist")).click()
    bond = client.get_by_label(re.compile("understood and taken seriously", re.IGNORECASE))
    await bond.focus()
    await bond.press("Home")  # 0: keyboard-operable, and the value is shown
    await expect(client.get_by_text("Your answer: 0")).to_be_visible()
    await client.get_by_role("button", name="Send to my therapist").click()
    await expect(
        client.get_by_role("status").filter(has_text="reached your therapist")
    ).to_be_visible()

    await therapist.goto(live_site.url(f"/host/{session_id}/summary"))
    await expect(therapist.get_by_text(re.compile("After the session")).first).to_be_visible()
    await expect(therapist.get_by_role("note").first).to_be_visible()
    assert _stored(live_site, "after") == 1
    harness.assert_no_policy_violations()


async def test_a_pulse_answered_while_the_connection_is_down_arrives_exactly_once(
    live_site: LiveSite, media_browser: Browser
) -> None:
    harness = BrowserHarness(media_browser)
    therapist, client = await harness.new_page(), await harness.new_page()
    await _in_call(live_site, therapist, client, storage=True)
    await therapist.get_by_role("button", name="Ask a pulse question").click()
    answer = client.get_by_role("button", name=re.compile(r"^4$"))
    await expect(answer).to_be_visible()
    # The socket drops; the answer is given while it is down and waits in the outbox.
    await client.evaluate("window.__attune.connection.socket.close()")
    await answer.click()
    await expect(
        client.get_by_role("status").filter(has_text="reached your therapist")
    ).to_be_visible(timeout=30_000)
    panel = therapist.get_by_role("complementary", name="Private panel")
    await expect(panel.get_by_role("heading", name="Pulse check-in: Pulse 4/5")).to_have_count(1)
    assert _stored(live_site, "pulse") == 1


FEATURES_LOG = """
window.__features = [];
const original = WebSocket.prototype.send;
WebSocket.prototype.send = function (data) {
  try {
    const message = JSON.parse(data);
    if (message.type === "features") window.__features.push(message);
  } catch {}
  return original.call(this, data);
};
"""


RECEIVED_LOG = """
window.__received = [];
const NativeWebSocket = window.WebSocket;
window.WebSocket = class extends NativeWebSocket {
  constructor(...args) {
    super(...args);
    this.addEventListener("message", (event) => {
      try {
        const message = JSON.parse(event.data);
        if (["prompt", "panel-state"].includes(message.type)) window.__received.push(message);
      } catch {}
    });
  }
};
"""
PANEL_STATE_HAS = """(ids) => {
  const state = window.__received.find((m) => m.type === "panel-state");
  return Boolean(state) && ids.every((id) => state.prompts.some((p) => p.id === id));
}"""


async def test_known_media_gives_matching_features_and_a_prompt_that_survives_a_reload(
    cue_site: LiveSite,
    chromium: Path,
    media: Media,  # noqa: F811
) -> None:
    scheduled = await schedule_session(cue_site)
    await grant_telehealth(cue_site, scheduled.client_id)
    await _grant(cue_site, scheduled.client_id, Purpose.CUE_ANALYSIS)
    async with (
        browser_playing(chromium, media.speech.path, media.moving) as speaking,
        browser_playing(chromium, media.silence.path, media.still) as quiet,
    ):
        therapist = await speaking.new_page()
        client = await quiet.new_page()
        await therapist.add_init_script(FEATURES_LOG)
        await therapist.add_init_script(RECEIVED_LOG)
        await client.add_init_script(FEATURES_LOG)
        await therapist_opens_room(therapist, cue_site, scheduled.session_id)
        await client_reaches_waiting_room(client, scheduled.link, consent=False)
        await admit(therapist, scheduled.alias)
        await wait_for_video(client)
        panel = therapist.get_by_role("complementary", name="Private panel")
        await expect(panel.locator(".prompt-card").first).to_be_visible(timeout=30_000)
        sent_by_therapist = await therapist.evaluate("window.__features")
        sent_by_client = await client.evaluate("window.__features")

        # The therapist reloads: every prompt shown so far is back in the panel (issue #11).
        shown = await therapist.evaluate(
            "window.__received.filter((m) => m.type === 'prompt').map((m) => m.prompt)"
        )
        await therapist.reload()
        await therapist.wait_for_function(PANEL_STATE_HAS, arg=[p["id"] for p in shown])
        panel = therapist.get_by_role("complementary", name="Private panel")
        await expect(panel.locator(".prompt-card").nth(len(shown) - 1)).to_be_visible()
        await expect(panel.get_by_text(shown[0]["text"]).first).to_be_visible()

    assert sent_by_therapist and sent_by_client
    assert {m["role"] for m in sent_by_therapist} == {"therapist"}
    assert {m["role"] for m in sent_by_client} == {"client"}
    assert any(m["voiced"] for m in sent_by_therapist)  # the spoken sentence
    assert not any(m["voiced"] for m in sent_by_client)  # digital silence
    assert max(m["motion"] for m in sent_by_therapist) > 0.5  # the sliding square
    assert max(m["motion"] for m in sent_by_client) < 0.1  # the still square

"""The session room as two people live in it for 50 minutes (issue #11): the therapist at a
laptop (1280×720), the client on a phone (360×640), in real headless Chromium.

One call is set up per test and several moments of the same story are checked in it. Each
moment is also saved as a screenshot under /tmp/room-shots/ (or $ATTUNE_SHOTS_DIR; outside the
repository) for looking at.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, WebSocketRoute, expect

from tests.browser.conftest import MOBILE, THERAPIST_EMAIL, BrowserHarness, LiveSite, start_site
from tests.browser.test_foundation_flows import sign_in_with_form
from tests.browser.video_helpers import (
    admit,
    client_reaches_waiting_room,
    frames_decoded,
    grant_telehealth,
    schedule_session,
    therapist_opens_room,
    wait_for_video,
)
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser

LAPTOP = {"viewport": {"width": 1280, "height": 720}}
SHOTS = Path(os.environ.get("ATTUNE_SHOTS_DIR", "/tmp/room-shots"))
RECOVERY_S = 10
COMMENT = "I felt rushed near the end."


@pytest.fixture
async def site(aiohttp_server: Any, tmp_path: Path) -> LiveSite:
    """The app on a loopback port."""
    return await start_site(aiohttp_server, tmp_path)


@pytest.fixture
def harness(media_browser: Browser) -> BrowserHarness:
    """One headless browser with fake camera and microphone for both people."""
    return BrowserHarness(media_browser)


async def shot(page: Page, name: str) -> None:
    """Save what the person sees now (for the issue note; not an assertion)."""
    await page.screenshot(path=str(SHOTS / f"{name}.png"))  # Playwright makes the folder


async def box(page: Page, selector: str) -> dict[str, float]:
    found = await page.locator(selector).bounding_box()
    assert found is not None, selector
    return found


async def in_view(page: Page, name: str) -> None:
    """The button is entirely inside the viewport, without scrolling."""
    button = page.get_by_role("button", name=name, exact=True)
    await expect(button).to_be_visible()
    found = await button.bounding_box()
    size = page.viewport_size
    assert found is not None and size is not None
    assert found["y"] >= 0 and found["y"] + found["height"] <= size["height"], name


async def test_the_therapist_sees_the_client_largest_and_is_told_of_a_signal_and_a_mute(
    site: LiveSite, harness: BrowserHarness
) -> None:
    scheduled = await schedule_session(site)
    await grant_telehealth(site, scheduled.client_id)
    therapist = await harness.new_page(**LAPTOP)
    await therapist_opens_room(therapist, site, scheduled.session_id)
    client = await harness.new_page(**MOBILE)
    await client_reaches_waiting_room(client, scheduled.link, consent=False)
    await client.get_by_role("button", name="Skip this check-in").click()
    await expect(client.get_by_role("status").filter(has_text="Skipped")).to_be_visible()
    panel = therapist.get_by_role("complementary", name="Private panel")
    lobby = panel.get_by_role("list", name="Waiting room")
    await expect(lobby).to_contain_text("J.M. waiting since")
    # the safety check, the knock, the skipped check-in
    assert (await therapist.title()).startswith("(3 new)")
    await shot(therapist, "therapist-1280-waiting")
    await shot(client, "client-360-waiting")

    await admit(therapist, scheduled.alias)
    await wait_for_video(client)
    await wait_for_video(therapist)
    # the skip's note folds away by itself: no sheet stays over the call
    await expect(client.get_by_text("Skipped — that is fine")).to_be_hidden()
    await shot(therapist, "therapist-1280-in-call")
    await shot(client, "client-360-in-call")

    # The client's video is the largest thing on the therapist's screen; End and mute in view.
    video = await box(therapist, "#remote-video")
    side = await box(therapist, "#side-column")
    assert video["width"] * video["height"] > 1.5 * side["width"] * side["height"]
    assert video["width"] >= 640 and video["height"] >= 400
    for name in ("End session", "Mute microphone", "Turn off camera"):
        await in_view(therapist, name)
    # The client's phone keeps the therapist's video on screen, with Leave and mute.
    await expect(client.locator("#remote-video")).to_be_in_viewport()
    for name in ("Leave", "Mute microphone"):
        await in_view(client, name)
    await expect(client.get_by_role("timer", name="Time in session")).to_have_text(
        re.compile(r"^\d+:\d\d$")
    )

    # "I need a moment": highlighted at the top of the side column, counted in the title.
    await client.get_by_role("button", name="I need a moment").click()
    latest = panel.get_by_role("status").filter(has_text="I need a moment")
    await expect(latest).to_be_visible()
    await expect(latest).to_have_class(re.compile(r"\bis-new\b"))
    assert (await therapist.title()).startswith("(")
    await shot(therapist, "therapist-1280-alert")
    await panel.hover()
    await expect(latest).not_to_have_class(re.compile(r"\bis-new\b"))
    assert not (await therapist.title()).startswith("(")

    # The client mutes: the button now says what it will do, the therapist is told.
    await client.get_by_role("button", name="Mute microphone").click()
    await expect(client.get_by_role("button", name="Unmute microphone")).to_be_visible()
    await expect(therapist.get_by_text("J.M. turned off the microphone")).to_be_visible()
    await therapist.get_by_role("button", name="Turn off camera").click()
    await expect(client.get_by_text("Your therapist turned off the camera")).to_be_visible()

    # The client leaves (asked first) and joins again without redoing the checks.
    await client.get_by_role("button", name="Leave").click()
    await client.get_by_role("button", name="Yes, leave").click()
    await expect(client.get_by_role("heading", name="You have left the session")).to_be_visible()
    await client.get_by_role("link", name="Join again").click()
    await expect(client.get_by_role("heading", name="Welcome", level=1)).to_be_hidden()
    # within the resume grace the admitted place is still held: straight back into the call
    await wait_for_video(client)
    await expect(client.get_by_role("button", name="Leave")).to_be_visible()

    # The network drops for good: after a while the phone says what to do, never spins.
    async def unreachable(ws: WebSocketRoute) -> None:
        await ws.close(code=1011)

    await client.route_web_socket(re.compile(r"/ws/session/"), unreachable)
    await client.evaluate("window.__attune.connection.socket.close()")
    await expect(
        client.get_by_text(re.compile("reloading this page brings you straight back"))
    ).to_be_visible(timeout=20_000)
    await shot(client, "client-360-reconnecting")
    harness.assert_no_policy_violations()


async def test_after_reloads_on_either_side_the_call_and_the_panel_come_back(
    site: LiveSite, harness: BrowserHarness
) -> None:
    scheduled = await schedule_session(site)
    await grant_telehealth(site, scheduled.client_id)
    therapist = await harness.new_page(**LAPTOP)
    await therapist_opens_room(therapist, site, scheduled.session_id)
    client = await harness.new_page(**MOBILE)
    await client_reaches_waiting_room(client, scheduled.link, consent=False)
    await client.get_by_role("button", name="Skip this check-in").click()
    await admit(therapist, scheduled.alias)
    await wait_for_video(client)
    await wait_for_video(therapist)

    # A pulse on the phone: a sheet over the lower part, the video still on screen.
    await therapist.get_by_role("button", name="Ask a pulse question").click()
    answer = client.get_by_role("button", name=re.compile(r"^4\b"))
    await expect(answer).to_be_in_viewport()
    await expect(client.locator("#remote-video")).to_be_in_viewport()
    await shot(client, "client-360-pulse")
    assert await client.evaluate("document.documentElement.scrollWidth") <= 360
    await answer.click()
    panel = therapist.get_by_role("complementary", name="Private panel")
    await expect(panel.get_by_role("heading", name="Pulse check-in: Pulse 4/5")).to_be_visible()
    await client.get_by_role("button", name="Slow down").click()
    await expect(panel.get_by_text("Client: “Slow down”").first).to_be_visible()

    # The therapist reloads: the panel shows what came before, the call comes back.
    started = time.monotonic()
    await therapist.reload()
    panel = therapist.get_by_role("complementary", name="Private panel")
    await expect(panel.get_by_role("heading", name="Pulse check-in: Pulse 4/5")).to_be_visible()
    await expect(panel.get_by_text(re.compile("Client: “Slow down”"))).to_be_visible()
    await wait_for_video(therapist)
    assert time.monotonic() - started < RECOVERY_S
    await shot(therapist, "therapist-1280-after-reload")

    # The client reloads: back in the call within 10 s, without the device check.
    started = time.monotonic()
    await client.reload()
    await shot(therapist, "therapist-1280-client-reconnecting")
    await expect(client.get_by_role("heading", name="Welcome", level=1)).to_be_hidden()
    await wait_for_video(client)
    assert time.monotonic() - started < RECOVERY_S
    await expect(client.get_by_role("button", name="Leave")).to_be_visible()
    await shot(client, "client-360-after-reload")

    # The other sizes: the therapist on a phone, the client on a laptop.
    await therapist.set_viewport_size({"width": 360, "height": 640})
    await client.set_viewport_size({"width": 1280, "height": 720})
    for name in ("End session", "Mute microphone"):
        await in_view(therapist, name)
    await shot(therapist, "therapist-360-in-call")
    await shot(client, "client-1280-in-call")
    width: int = await therapist.evaluate("document.documentElement.scrollWidth")
    assert width <= 360

    # After the reconnects the session ends; the client's low after-session answers, rupture
    # and comment read as words in the summary (item 1: this page once answered 500).
    await therapist.set_viewport_size({"width": 1280, "height": 720})
    await client.set_viewport_size({"width": 360, "height": 640})
    await therapist.get_by_role("button", name="End session").click()
    await therapist.get_by_role("button", name="Yes, end the session").click()
    await client.get_by_role("link", name="Tell your therapist how today's session was").click()
    for question in ("understood and taken seriously", "spent the time on what matters"):
        await client.get_by_label(re.compile(question, re.IGNORECASE)).evaluate(
            "(el) => { el.value = '2'; el.dispatchEvent(new Event('change')); }"
        )
    await client.get_by_label("Quite a bit").check()
    await client.get_by_label(re.compile("Anything you would like")).fill(COMMENT)
    await client.get_by_role("button", name="Send to my therapist").click()
    await expect(client.get_by_text("Your answers reached your therapist")).to_be_visible()
    response = await therapist.goto(site.url(f"/host/{scheduled.session_id}/summary"))
    assert response is not None and response.status == 200
    await expect(therapist.get_by_text(COMMENT)).to_be_visible()
    await expect(therapist.get_by_text(re.compile("Uneasy moment: Quite a bit"))).to_be_visible()
    await expect(therapist.get_by_text(re.compile("^Try: ")).first).to_be_visible()
    harness.assert_no_policy_violations()


class Network:
    """One person's network as the page's session socket meets it. When it goes, the sockets
    open at that moment are dead for good: closed at once (`lose_network`), or silent, as a
    connection left behind on the old network after a switch from Wi-Fi to mobile data; new
    sockets are refused until it is back."""

    def __init__(self) -> None:
        self.up = True
        self.refused = 0
        self.generation = 0
        self.sockets: list[WebSocketRoute] = []

    async def route(self, ws: WebSocketRoute) -> None:
        if not self.up:
            self.refused += 1
            await ws.close(code=1011)
            return
        born = self.generation
        server = ws.connect_to_server()

        def to_server(message: str | bytes) -> None:
            if self.up and self.generation == born:
                server.send(message)

        def to_page(message: str | bytes) -> None:
            if self.up and self.generation == born:
                ws.send(message)

        ws.on_message(to_server)
        server.on_message(to_page)
        self.sockets.append(ws)

    async def attach(self, page: Page) -> None:
        await page.route_web_socket(re.compile(r"/ws/session/"), self.route)


ICE_UFRAGS = """() => {
  const pc = window.__attune.pc;
  const ufrag = (d) => (d?.sdp.match(/a=ice-ufrag:(\\S+)/) || [])[1] || null;
  return pc && pc.signalingState === "stable"
    ? [ufrag(pc.localDescription), ufrag(pc.remoteDescription)]
    : null;
}"""
SOCKET_OPEN = "() => window.__attune.connection?.state === 'open'"


async def lose_network(page: Page, network: Network, *, silently: bool = False) -> None:
    """The network goes: the browser is offline and the open sockets are dead."""
    network.up = False
    network.generation += 1
    await page.context.set_offline(True)
    if not silently:
        for ws in network.sockets:
            await ws.close(code=1011)
    network.sockets = []


async def network_back(page: Page, network: Network) -> float:
    """The network comes back (the browser says so: `online`); when that happened."""
    network.up = True
    await page.context.set_offline(False)
    return time.monotonic()


async def one_more_refused_attempt(page: Page, network: Network) -> None:
    """The page tries again now (as after its back-off) and is refused once more."""
    before = network.refused
    await page.evaluate("window.__attune.connection.reconnectNow()")
    await page.wait_for_function(
        "() => window.__attune.connection.state === 'reconnecting'", polling=100
    )
    assert network.refused > before


async def test_a_network_change_on_either_side_recovers_and_a_lost_network_says_what_to_do(
    site: LiveSite, harness: BrowserHarness
) -> None:
    scheduled = await schedule_session(site)
    await grant_telehealth(site, scheduled.client_id)
    therapist = await harness.new_page(**LAPTOP)
    therapist_network, client_network = Network(), Network()
    await therapist_network.attach(therapist)
    await therapist_opens_room(therapist, site, scheduled.session_id)
    client = await harness.new_page(**MOBILE)
    await client_network.attach(client)
    await client_reaches_waiting_room(client, scheduled.link, consent=False)
    await client.get_by_role("button", name="Skip this check-in").click()
    waiting = client.get_by_role("status").filter(has_text="Your therapist knows you are here.")
    await expect(waiting).to_be_visible()

    # In the waiting room the phone loses its network: within 10 s it says what to do, and
    # the next refused attempt does not take that back.
    help_text = re.compile("Check that you are online; reloading this page brings you")
    await lose_network(client, client_network)
    await expect(client.get_by_text(help_text)).to_be_visible(timeout=RECOVERY_S * 1000)
    await one_more_refused_attempt(client, client_network)
    await expect(client.get_by_text(help_text)).to_be_visible()
    await network_back(client, client_network)
    await expect(waiting).to_be_visible(timeout=RECOVERY_S * 1000)

    await admit(therapist, scheduled.alias)
    await wait_for_video(client)
    await wait_for_video(therapist)

    # A network change on either side (Wi-Fi to mobile data: offline for a moment, and the
    # socket of the old network silently dead): the socket is replaced, the call restarts its
    # ICE (new credentials on both ends) and video flows again, all within 10 s.
    for page, network in ((client, client_network), (therapist, therapist_network)):
        ufrags = await page.evaluate(ICE_UFRAGS)
        assert ufrags and all(ufrags)
        await lose_network(page, network, silently=True)
        back_at = await network_back(page, network)
        await page.wait_for_function(
            "(old) => { const now = (" + ICE_UFRAGS + ")();"
            " return now && now[0] !== old[0] && now[1] !== old[1]; }",
            arg=ufrags,
            polling=100,
            timeout=RECOVERY_S * 1000,
        )
        await page.wait_for_function(SOCKET_OPEN, polling=100, timeout=RECOVERY_S * 1000)
        assert network.sockets, "a new socket on the new network"
        await wait_for_video(client, more_than=await frames_decoded(client))
        await wait_for_video(therapist, more_than=await frames_decoded(therapist))
        assert time.monotonic() - back_at < RECOVERY_S
    await expect(client.get_by_role("button", name="Leave")).to_be_visible()
    await expect(therapist.get_by_text("In the call with J.M.", exact=True)).to_be_visible()

    # The therapist's network goes for good: within 10 s the room says what to do (and keeps
    # saying it); the client's call goes on meanwhile (media is peer to peer).
    await lose_network(therapist, therapist_network)
    alert = therapist.get_by_role("alert").filter(has_text="Check that you are online")
    await expect(alert).to_be_visible(timeout=RECOVERY_S * 1000)
    await one_more_refused_attempt(therapist, therapist_network)
    await expect(alert).to_be_visible()
    for name in ("End session", "Mute microphone"):
        await in_view(therapist, name)
    await wait_for_video(client, more_than=await frames_decoded(client))
    await expect(client.get_by_role("button", name="Leave")).to_be_visible()
    await shot(therapist, "therapist-1280-network-lost")
    await network_back(therapist, therapist_network)
    await expect(alert).to_be_hidden(timeout=RECOVERY_S * 1000)
    await expect(therapist.get_by_text("In the call with J.M.", exact=True)).to_be_visible()
    harness.assert_no_policy_violations()


CHIMES = """
window.__chimes = 0;
const createOscillator = AudioContext.prototype.createOscillator;
AudioContext.prototype.createOscillator = function () {
  window.__chimes += 1;
  return createOscillator.call(this);
};
"""
TEXT_OVERFLOWS = (
    "(el) => el.scrollWidth > el.clientWidth + 1 || el.scrollHeight > el.clientHeight + 1"
)


def overlaps(a: dict[str, float], b: dict[str, float]) -> bool:
    return (
        a["x"] < b["x"] + b["width"]
        and b["x"] < a["x"] + a["width"]
        and a["y"] < b["y"] + b["height"]
        and b["y"] < a["y"] + a["height"]
    )


async def test_the_dashboard_says_who_is_waiting_and_a_folded_panel_still_announces_the_newest(
    site: LiveSite, harness: BrowserHarness
) -> None:
    scheduled = await schedule_session(site)
    await grant_telehealth(site, scheduled.client_id)
    therapist = await harness.new_page(**LAPTOP)
    await therapist.add_init_script(CHIMES)
    await sign_in_with_form(therapist, site, THERAPIST_EMAIL, PASSWORD)
    upcoming = therapist.get_by_role("region", name="Upcoming sessions")
    badge = upcoming.get_by_role("status").filter(has_text="J.M. is waiting")
    await expect(badge).to_have_count(0)

    # The client knocks: the dashboard says so without a reload, at the top of the page (the
    # sessions list is below the fold at 1280×720), beside the session and in the tab's title.
    client = await harness.new_page(**MOBILE)
    await client_reaches_waiting_room(client, scheduled.link, consent=False)
    banner = therapist.get_by_role("status").filter(has_text="J.M. is waiting.")
    await expect(banner).to_be_in_viewport()
    await expect(badge).to_be_visible()
    assert (await therapist.title()).startswith("(1 waiting)")
    await shot(therapist, "therapist-1280-dashboard-waiting")
    await banner.get_by_role("link", name="Open the room for J.M.").click()
    await client.get_by_role("button", name="Skip this check-in").click()
    await admit(therapist, scheduled.alias)
    await wait_for_video(client)
    await wait_for_video(therapist)

    # Item 10: on the phone every pulse answer fits its button, the video still on screen.
    await therapist.get_by_role("button", name="Ask a pulse question").click()
    answers = client.get_by_role("group", name=re.compile("How is this going")).get_by_role(
        "button"
    )
    await expect(answers).to_have_count(5)
    for answer in await answers.all():
        await expect(answer).to_be_in_viewport()
        assert not await answer.evaluate(TEXT_OVERFLOWS), await answer.text_content()
    await expect(client.locator("#remote-video")).to_be_in_viewport()
    await answers.filter(has_text="Really well").click()

    # The therapist opts into the soft sound and folds the panel away with the keyboard: the
    # client's video grows, and nothing of the panel covers it.
    panel = therapist.get_by_role("complementary", name="Private panel")
    await panel.get_by_text("Session details and panel settings").click()
    await panel.get_by_label("A soft sound when something new arrives").check()
    width_open = (await box(therapist, "#remote-video"))["width"]
    await panel.get_by_role("button", name="Hide panel").focus()
    await therapist.keyboard.press("Enter")
    toggle = panel.get_by_role("button", name=re.compile("^Show panel"))
    await expect(toggle).to_have_attribute("aria-expanded", "false")
    await therapist.mouse.move(5, 700)  # away from the column
    video = await box(therapist, "#remote-video")
    assert video["width"] > width_open
    await expect(panel.get_by_role("button", name="Ask a pulse question")).to_be_hidden()

    # Folded, it still tells of the newest item: the line at its top, the count on the button
    # and in the title, a soft chime; and it covers no face.
    chimes_before: int = await therapist.evaluate("window.__chimes")
    await client.get_by_role("button", name="I need a moment").click()
    await expect(toggle).to_have_text("Show panel (1 new)")
    latest = panel.get_by_role("status").filter(has_text="I need a moment")
    await expect(latest).to_be_visible()
    assert (await therapist.title()).startswith("(1 new)")
    assert await therapist.evaluate("window.__chimes") > chimes_before
    assert not overlaps(await box(therapist, "#side-column"), await box(therapist, "#remote-video"))
    for name in ("End session", "Mute microphone"):
        await in_view(therapist, name)
    await shot(therapist, "therapist-1280-panel-folded")

    # Unfolded again: the item is there and marked seen.
    await toggle.click()
    await expect(panel.get_by_role("button", name="Hide panel")).to_have_attribute(
        "aria-expanded", "true"
    )
    signal_note = re.compile(r"\d\d:\d\d .+ · Client: “I need a moment”")
    await expect(panel.get_by_text(signal_note)).to_be_visible()
    assert not (await therapist.title()).startswith("(")
    harness.assert_no_policy_violations()

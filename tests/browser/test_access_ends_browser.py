"""Access that ends, as the therapist sees it (issue #13): signing out in another tab closes
the room's socket with 4401, and the room page says why and stops reconnecting."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, Error, WebSocket, expect

from tests.browser.conftest import BrowserHarness, LiveSite
from tests.browser.video_helpers import schedule_session, therapist_opens_room

pytestmark = pytest.mark.browser

# Longer than the first reconnect's ceiling (500 ms, full jitter): a page that meant to
# reconnect would have opened a new socket within it.
NO_RECONNECT_WINDOW_MS = 2_500


@pytest.fixture
def harness(media_browser: Browser) -> BrowserHarness:
    """One headless browser with fake devices (the room page asks for the camera)."""
    return BrowserHarness(media_browser)


async def test_a_therapist_signed_out_in_another_tab_sees_the_room_say_why_and_stop_reconnecting(
    live_site: LiveSite, harness: BrowserHarness
) -> None:
    scheduled = await schedule_session(live_site)
    room = await harness.new_page()
    sockets: list[WebSocket] = []

    def opened(socket: WebSocket) -> None:
        sockets.append(socket)

    room.on("websocket", opened)
    await therapist_opens_room(room, live_site, scheduled.session_id)
    assert len(sockets) == 1

    other_tab = await room.context.new_page()  # same browser, same sign-in cookie
    await other_tab.goto(live_site.url("/dashboard"))
    await other_tab.get_by_role("button", name="Sign out").click()
    await expect(other_tab).to_have_url(live_site.url("/login"))

    await expect(room.get_by_role("alert")).to_have_text("Your sign-in ended — sign in again.")
    await expect(room.locator("#host-connection")).to_have_text("Disconnected")
    with pytest.raises(Error):  # bounded: asserts that no new socket opens in the window
        await room.wait_for_event("websocket", timeout=NO_RECONNECT_WINDOW_MS)
    assert len(sockets) == 1
    harness.assert_no_policy_violations()

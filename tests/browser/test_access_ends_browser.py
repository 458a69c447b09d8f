"""Access that ends, as each side sees it (issue #13): signing out in another tab closes the
room's socket with 4401, and the room page says why and stops reconnecting; a client on a
phone whose link is revoked while waiting is told so, and the page stays closed too."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from playwright.async_api import Browser, Error, WebSocket, expect

from server.keys import AUDIT, DB, LIVE
from server.services import scheduling
from tests.browser.conftest import MOBILE, BrowserHarness, LiveSite
from tests.browser.video_helpers import (
    client_reaches_waiting_room,
    fits_a_phone,
    schedule_session,
    therapist_opens_room,
)

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
    first_socket = asyncio.Event()

    def opened(socket: WebSocket) -> None:
        sockets.append(socket)
        first_socket.set()

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


async def test_a_client_whose_link_is_revoked_while_waiting_is_told_why_on_the_phone(
    live_site: LiveSite, harness: BrowserHarness
) -> None:
    scheduled = await schedule_session(live_site)
    phone = await harness.new_page(**MOBILE)
    sockets: list[WebSocket] = []
    first_socket = asyncio.Event()

    def opened(socket: WebSocket) -> None:
        sockets.append(socket)
        first_socket.set()

    phone.on("websocket", opened)
    await client_reaches_waiting_room(phone, scheduled.link)
    async with asyncio.timeout(5):  # the page's event reaches the test a moment later
        await first_socket.wait()
    assert len(sockets) == 1

    app = live_site.app
    await scheduling.revoke_invite(
        app[DB], app[AUDIT], app[LIVE], scheduled.therapist, scheduled.session_id, datetime.now(UTC)
    )

    stopped = phone.get_by_role("heading", name="This link does not work here any more", level=1)
    await expect(stopped).to_be_visible()
    await expect(phone.locator("#stopped-text")).to_have_text(
        "Your therapist withdrew this link. Please ask for a new one."
    )
    await expect(phone.get_by_role("heading", name="Waiting room", level=1)).to_be_hidden()
    with pytest.raises(Error):  # bounded: asserts that no new socket opens in the window
        await phone.wait_for_event("websocket", timeout=NO_RECONNECT_WINDOW_MS)
    assert len(sockets) == 1
    await fits_a_phone(phone)
    harness.assert_no_policy_violations()

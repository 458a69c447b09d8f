"""A client opens their invitation from webmail, as many do: a navigation that starts on
another site. Browsers keep SameSite=Strict cookies off every hop of a redirect chain that
began elsewhere, so a plain 303 from /join to /visit lost the new cookie there and the client
read "This link does not work" with the link already spent. In real headless Chromium."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import expect

from tests.browser.conftest import MOBILE, BrowserHarness, LiveSite
from tests.browser.video_helpers import schedule_session

pytestmark = pytest.mark.browser


async def test_a_client_opening_the_invitation_from_webmail_reaches_their_visit(
    live_site: LiveSite, harness: BrowserHarness
) -> None:
    scheduled = await schedule_session(live_site)
    page = await harness.new_page(**MOBILE)
    await page.route(
        "http://mail.example/inbox",
        lambda route: route.fulfill(
            content_type="text/html",
            body=f'<!doctype html><title>Inbox</title><a href="{scheduled.link}">Join</a>',
        ),
    )
    await page.goto("http://mail.example/inbox")
    await page.get_by_role("link", name="Join").click()

    await expect(page).to_have_url(re.compile(r"/visit$"))  # the token left the address bar
    # The visit knows the client (its cookie arrived): checked in, the device check next.
    await expect(page.get_by_role("heading", name="Welcome", level=1)).to_be_visible()
    await expect(page.get_by_role("heading", name="Your camera and microphone")).to_be_visible()
    await expect(page.get_by_role("heading", name="This link does not work")).to_have_count(0)
    harness.assert_no_policy_violations()

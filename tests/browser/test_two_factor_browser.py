"""Two-factor sign-in as a therapist on a phone does it (360x640, found by role and label):
set it up from the account page, save the recovery codes, then sign in with password and code.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyotp
import pytest
from playwright.async_api import Page, expect

from tests.browser.conftest import MOBILE, PHONE_WIDTH, THERAPIST_EMAIL, BrowserHarness, LiveSite
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser

MIN_TOUCH_TARGET_PX = 44


async def fits_a_phone(page: Page) -> None:
    """No sideways scrolling, and every visible button is a comfortable touch target."""
    widths = await page.evaluate(
        "() => ({scroll: document.documentElement.scrollWidth, inner: window.innerWidth})"
    )
    assert widths["inner"] == PHONE_WIDTH
    assert widths["scroll"] <= widths["inner"], page.url
    for control in await page.get_by_role("button").all() + await page.get_by_role("textbox").all():
        if await control.is_visible():
            box = await control.bounding_box()
            assert box is not None and box["height"] >= MIN_TOUCH_TARGET_PX, page.url


async def test_a_therapist_on_a_phone_sets_up_two_factor_and_signs_in_with_a_code(
    live_site: LiveSite, harness: BrowserHarness
) -> None:
    await live_site.add_therapist()
    page = await harness.new_page(**MOBILE)
    await page.goto(live_site.url("/login"))
    await page.get_by_label("Email").fill(THERAPIST_EMAIL)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await (
        page.get_by_role("navigation", name="Main")
        .get_by_role("link", name="Account security")
        .click()
    )
    await expect(page.get_by_role("heading", name="Account security", level=1)).to_be_visible()
    await expect(page.get_by_role("region", name="Where you are signed in")).to_contain_text(
        "(this browser)"
    )
    await fits_a_phone(page)

    await page.get_by_role("link", name="Set up two-factor sign-in").click()
    await expect(page.get_by_role("heading", name="Set up two-factor sign-in")).to_be_visible()
    await expect(page.get_by_role("figure", name="QR code of your two-factor key")).to_be_visible()
    await fits_a_phone(page)
    secret = (await page.get_by_label("Key (to type by hand):").inner_text()).replace(" ", "")
    totp = pyotp.TOTP(secret)
    await page.get_by_label("Code from the app").fill("000000")
    await page.get_by_role("button", name="Turn on two-factor sign-in").click()
    await expect(page.get_by_role("alert")).to_contain_text("does not match")
    await page.get_by_label("Code from the app").fill(totp.now())
    await page.get_by_role("button", name="Turn on two-factor sign-in").click()

    await expect(page.get_by_role("heading", name="Your recovery codes")).to_be_visible()
    await expect(
        page.get_by_role("list", name="Recovery codes").get_by_role("listitem")
    ).to_have_count(10)
    await fits_a_phone(page)
    await page.get_by_role("link", name="I have saved them — continue").click()
    await expect(page.get_by_role("region", name="Two-factor sign-in")).to_contain_text(
        "10 recovery codes left"
    )

    phone = await harness.new_page(**MOBILE)
    await phone.goto(live_site.url("/login"))
    await phone.get_by_label("Email").fill(THERAPIST_EMAIL)
    await phone.get_by_label("Password").fill(PASSWORD)
    await phone.get_by_role("button", name="Sign in").click()
    await expect(phone.get_by_role("heading", name="Enter your code")).to_be_visible()
    await fits_a_phone(phone)
    # The enrolment used this window's code; the next window's is within the allowed drift.
    await phone.get_by_role("textbox", name="Code").fill(
        totp.at(datetime.now(UTC) + timedelta(seconds=30))
    )
    await phone.get_by_role("button", name="Continue").click()
    # Signing in again lists the other sign-in and can end it.
    await expect(phone.get_by_role("heading", name="Your other sign-ins")).to_be_visible()
    await expect(phone.get_by_role("list", name="You are also signed in here")).to_be_visible()
    await fits_a_phone(phone)
    await phone.get_by_role("button", name="End all other sessions and continue").click()
    await expect(phone.get_by_role("heading", name="Your practice")).to_be_visible()
    await page.reload()
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    harness.assert_no_policy_violations()

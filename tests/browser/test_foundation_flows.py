"""The foundation as people use it, in real headless Chromium: sign in, invite, join, revoke.

Controls are found by role and label, as a screen reader would find them.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

import pytest
from playwright.async_api import Dialog, Page, expect

from tests.browser.conftest import MOBILE, PHONE_WIDTH, THERAPIST_EMAIL, BrowserHarness, LiveSite
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser

MIN_TOUCH_TARGET_PX = 44
# An invite token has 32 random bytes: 43 base64url characters.
UNKNOWN_TOKEN = "A" * 43


async def sign_in_with_form(page: Page, site: LiveSite, email: str, password: str) -> None:
    """Fill the sign-in form through its labelled controls and press the button."""
    await page.goto(site.url("/login"))
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()


async def test_therapist_invites_a_client_who_joins_without_an_account_until_revoked(
    live_site: LiveSite, harness: BrowserHarness
) -> None:
    await live_site.add_therapist()
    therapist = await harness.new_page(permissions=["clipboard-read", "clipboard-write"])
    await sign_in_with_form(therapist, live_site, THERAPIST_EMAIL, PASSWORD)
    await expect(therapist).to_have_url(live_site.url("/dashboard"))

    await therapist.get_by_label("Client alias").fill("J.M.")
    await therapist.get_by_role("button", name="Add client").click()
    await expect(therapist.get_by_role("list", name="Your clients")).to_contain_text("J.M.")

    new_session = therapist.get_by_role("region", name="New session")
    await new_session.get_by_label("Client", exact=True).select_option(label="J.M.")
    await new_session.get_by_role("button", name="Create session").click()

    await expect(therapist.get_by_role("heading", name="Invite link for J.M.")).to_be_visible()
    join_link = await therapist.get_by_label("Client's link").input_value()
    assert re.fullmatch(re.escape(live_site.url("/join/")) + r"[A-Za-z0-9_-]{43}", join_link)
    token = join_link.rsplit("/", 1)[1]
    qr_code = therapist.get_by_role("figure", name="QR code of the client's link")
    await expect(qr_code.locator("svg")).to_be_visible()
    await therapist.get_by_role("button", name="Copy link").click()
    await expect(therapist.get_by_role("status")).to_have_text("Link copied.")
    assert await therapist.evaluate("navigator.clipboard.readText()") == join_link

    client = await harness.new_page()
    await client.goto(join_link)
    await expect(client).to_have_url(live_site.url("/visit"))
    assert token not in client.url
    await expect(client.get_by_role("heading", name="Welcome")).to_be_visible()
    await expect(client.get_by_text("You do not need an account")).to_be_visible()

    await therapist.get_by_role("link", name="Back to the dashboard").click()
    questions: list[str] = []

    async def agree(dialog: Dialog) -> None:
        questions.append(dialog.message)
        await dialog.accept()

    therapist.once("dialog", agree)  # revoking asks first (issue #11, item 6)
    await therapist.get_by_role("button", name=re.compile(r"^Revoke link for J\.M\. ")).click()
    session_row = therapist.get_by_role("row", name=re.compile(r"J\.M\."))
    await expect(session_row.get_by_role("cell", name="revoked", exact=True)).to_be_visible()
    assert questions == ["Revoke the link for J.M.? It stops working at once."]

    latecomer = await harness.new_page()
    response = await latecomer.goto(join_link)
    assert response is not None and response.status == 404
    await expect(latecomer.get_by_role("heading", name="This link does not work")).to_be_visible()
    harness.assert_no_policy_violations()


async def test_wrong_password_is_announced_as_an_alert_and_keeps_the_email(
    live_site: LiveSite, harness: BrowserHarness
) -> None:
    await live_site.add_therapist()
    page = await harness.new_page()
    await sign_in_with_form(page, live_site, THERAPIST_EMAIL, "not the right passphrase")

    await expect(page.get_by_role("alert")).to_have_text("Email or password is wrong.")
    email_field = page.get_by_label("Email")
    await expect(email_field).to_have_value(THERAPIST_EMAIL)
    await expect(email_field).to_have_accessible_description("Email or password is wrong.")
    await expect(page.get_by_label("Password")).to_have_value("")
    await expect(page).to_have_url(live_site.url("/login"))
    harness.assert_no_policy_violations()


async def sign_in_page(site: LiveSite) -> str:
    return site.url("/login")


async def visit_page(site: LiveSite) -> str:
    """The invite link; the server redirects it to /visit."""
    return await site.issue_link(await site.add_therapist())


async def link_problem_page(site: LiveSite) -> str:
    return site.url(f"/join/{UNKNOWN_TOKEN}")


@pytest.mark.parametrize(
    ("open_url", "heading", "primary_button"),
    [
        pytest.param(sign_in_page, "Sign in", "Sign in", id="sign-in"),
        pytest.param(visit_page, "Welcome", None, id="visit"),
        pytest.param(link_problem_page, "This link does not work", None, id="link-problem"),
    ],
)
async def test_page_fits_a_phone_without_sideways_scrolling(
    live_site: LiveSite,
    harness: BrowserHarness,
    open_url: Callable[[LiveSite], Awaitable[str]],
    heading: str,
    primary_button: str | None,
) -> None:
    page = await harness.new_page(**MOBILE)
    await page.goto(await open_url(live_site))
    await expect(page.get_by_role("heading", name=heading, level=1)).to_be_visible()

    widths = await page.evaluate(
        "() => ({scroll: document.documentElement.scrollWidth, inner: window.innerWidth})"
    )
    # A mobile browser widens the layout viewport to fit wide content, hence both checks.
    assert widths["inner"] == PHONE_WIDTH
    assert widths["scroll"] <= widths["inner"]
    if primary_button is not None:
        await expect(page.get_by_role("button", name=primary_button)).to_be_visible()
    for button in await page.get_by_role("button").all():
        if await button.is_visible():
            box = await button.bounding_box()
            assert box is not None and box["height"] >= MIN_TOUCH_TARGET_PX, (
                await button.text_content()
            )
    harness.assert_no_policy_violations()


async def test_keyboard_alone_signs_in(live_site: LiveSite, harness: BrowserHarness) -> None:
    await live_site.add_therapist()
    page = await harness.new_page()
    await page.goto(live_site.url("/login"))
    email = page.get_by_label("Email")

    # The skip link may come first; the email field must follow within a few presses.
    for _ in range(3):
        if await email.evaluate("field => field === document.activeElement"):
            break
        await page.keyboard.press("Tab")
    await expect(email).to_be_focused()
    await page.keyboard.type(THERAPIST_EMAIL)
    await page.keyboard.press("Tab")
    await expect(page.get_by_label("Password")).to_be_focused()
    await page.keyboard.type(PASSWORD)
    await page.keyboard.press("Tab")
    await expect(page.get_by_role("button", name="Sign in")).to_be_focused()
    await page.keyboard.press("Enter")

    await expect(page).to_have_url(live_site.url("/dashboard"))
    await expect(page.get_by_role("heading", name="Your practice")).to_be_visible()
    harness.assert_no_policy_violations()


async def test_policy_check_catches_a_blocked_inline_script(
    live_site: LiveSite, harness: BrowserHarness
) -> None:
    """The CSP log the other tests assert empty does fill up when the policy bites."""
    page = await harness.new_page()
    await page.goto(live_site.url("/login"))
    async with page.expect_console_message(lambda m: "Content Security Policy" in m.text):
        await page.evaluate(
            "() => { const s = document.createElement('script');"
            " s.textContent = 'window.injected = true'; document.body.append(s); }"
        )
    assert await page.evaluate("() => window.injected === undefined")
    assert len(harness.csp_violations) == 1

"""The safety check before the waiting room (issue #16), as the client and the therapist live
it in real headless Chromium: the client on a phone (360×640), the therapist at a laptop
(1280×720). Screenshots go to /tmp/shots-safe/ (outside the repository) for looking at.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, Request, expect

from server.core.models import Role
from server.keys import AUDIT, DB
from server.services import scheduling
from tests.browser.conftest import MOBILE, BrowserHarness, LiveSite, start_site
from tests.browser.video_helpers import (
    answer_safety_check,
    client_reaches_waiting_room,
    fits_a_phone,
    grant_telehealth,
    schedule_session,
    therapist_opens_room,
)
from tests.conftest import PASSWORD, add_account

pytestmark = pytest.mark.browser

LAPTOP = {"viewport": {"width": 1280, "height": 720}}
PHONE = {"width": 360, "height": 640}
SHOTS = Path("/tmp/shots-safe")
MARKER = "flat-above-the-bakery-b7e1"
BERLIN = {"latitude": 52.520008, "longitude": 13.404954}
ADMIN_EMAIL = "admin@example.org"


def make_site(safety_check: bool = True) -> Any:
    """A fixture: the app on a loopback port, with the clinic's emergency number."""

    @pytest.fixture
    async def site(aiohttp_server: Any, tmp_path: Path) -> LiveSite:
        return await start_site(
            aiohttp_server, tmp_path, clinic_emergency_number="112", safety_check=safety_check
        )

    return site


site = make_site()
site_without_step = make_site(safety_check=False)


@pytest.fixture
def harness(media_browser: Browser) -> BrowserHarness:
    """One headless browser with fake camera and microphone for both people."""
    return BrowserHarness(media_browser)


async def shot_both(page: Page, name: str, *, back_to: dict[str, int] = PHONE) -> None:
    """What the person sees now at a phone's and at a laptop's size."""
    await page.set_viewport_size(PHONE)
    await page.screenshot(path=str(SHOTS / f"{name}-360.png"), full_page=True)
    await page.set_viewport_size(LAPTOP["viewport"])
    await page.screenshot(path=str(SHOTS / f"{name}-1280.png"), full_page=True)
    await page.set_viewport_size(back_to)


async def up_to_the_safety_step(page: Page, link: str) -> None:
    """Open the link, pass the device check, skip the connection check (consent is given)."""
    await page.goto(link)
    await expect(page.get_by_role("combobox", name="Camera", exact=True)).to_be_enabled()
    await page.get_by_role("button", name="Continue").click()
    await page.get_by_role("button", name="Skip this check").click()
    await expect(page.get_by_role("heading", name="Before you join", level=1)).to_be_visible()


def raw_files(data_dir: Path) -> bytes:
    """Every byte under the data directory, recursively."""
    return b"".join(p.read_bytes() for p in sorted(data_dir.rglob("*")) if p.is_file())


async def test_a_client_says_where_they_are_and_the_therapist_sees_it_with_whom_to_call(
    site: LiveSite, harness: BrowserHarness, tmp_path: Path
) -> None:
    scheduled = await schedule_session(site)
    await grant_telehealth(site, scheduled.client_id)
    therapist = await harness.new_page(**LAPTOP)
    await therapist_opens_room(therapist, site, scheduled.session_id)
    panel = therapist.get_by_role("complementary", name="Private panel")
    safety = panel.get_by_role("region", name="Safety check")
    await expect(safety).to_contain_text("Not answered yet.")
    client = await harness.new_page(**MOBILE, geolocation=BERLIN, permissions=["geolocation"])
    sent: list[str] = []

    def record(request: Request) -> None:
        if request.method == "POST" and request.post_data:
            sent.append(request.post_data)

    client.on("request", record)
    await up_to_the_safety_step(client, scheduled.link)

    # Nothing is prefilled the first time; the place is typed, or coarse coordinates on request.
    place = client.get_by_label("Where are you right now?")
    await expect(place).to_have_value("")
    await expect(client.get_by_role("button", name="Still the same")).to_be_hidden()
    await expect(client.get_by_role("button", name="Quick exit")).to_be_in_viewport()
    await fits_a_phone(client)
    await shot_both(client, "client-safety-step")
    await client.get_by_role("button", name="Use my device's location").click()
    await expect(place).to_have_value("near 52.52, 13.40")
    await expect(place).to_be_focused()
    await expect(client.get_by_role("status").filter(has_text="Filled in roughly")).to_be_visible()
    await place.fill(f"Near 52.52, 13.40: {MARKER}, Hauptstr. 5")
    await client.get_by_label("Not really").check()
    # A mistake is named in words and the field to correct gets the focus.
    await client.get_by_label("Name", exact=True).fill("Anna")
    await client.get_by_label("Phone", exact=True).fill("ring her")
    await client.get_by_role("button", name="Continue", exact=True).click()
    await expect(client.get_by_role("alert")).to_contain_text("phone number with digits")
    await expect(client.get_by_label("Phone", exact=True)).to_be_focused()
    await client.get_by_label("Phone", exact=True).fill("+49 171 5551234")
    await client.get_by_label(re.compile("^Code word")).fill("blue umbrella")
    await fits_a_phone(client)
    await shot_both(client, "client-safety-step-filled")
    await client.get_by_role("button", name="Continue", exact=True).click()
    await expect(client.get_by_role("heading", name="Waiting room", level=1)).to_be_visible()

    # Only the text the client confirmed left the page: no finer coordinates, nowhere.
    (posted,) = [json.loads(body) for body in sent if MARKER in body]
    assert posted["location"] == f"Near 52.52, 13.40: {MARKER}, Hauptstr. 5"
    assert not [body for body in sent if "13.4049" in body or "52.5200" in body]

    # The therapist sees it at once, under the clinic's emergency number, "not really" flagged.
    await expect(safety).to_contain_text(MARKER)
    await expect(safety.get_by_text("May not be able to talk freely")).to_be_visible()
    await expect(safety.get_by_role("link", name="+49 171 5551234")).to_have_attribute(
        "href", "tel:+491715551234"
    )
    await expect(safety).to_contain_text("blue umbrella")
    await expect(panel.get_by_role("link", name="112")).to_be_visible()
    await therapist.screenshot(path=str(SHOTS / "therapist-panel-1280.png"))
    await therapist.set_viewport_size(PHONE)
    await safety.scroll_into_view_if_needed()
    await therapist.screenshot(path=str(SHOTS / "therapist-panel-360.png"))
    await therapist.set_viewport_size(LAPTOP["viewport"])

    # A reload of the room brings it back (panel-state); a quick exit names the code word.
    await therapist.reload()
    await expect(safety).to_contain_text(MARKER)
    await client.get_by_role("button", name="Quick exit").first.click()
    await client.wait_for_url(re.compile(r"/weather$"))
    await expect(panel.get_by_role("list", name="Safety notices")).to_contain_text(
        "agreed code word: “blue umbrella”"
    )

    # Encrypted at rest; in the client's own export; on the therapist's summary.
    assert MARKER.encode() not in raw_files(tmp_path / "data")
    export = await client.request.get(site.url("/visit/data/export.json"))
    assert MARKER in await export.text()
    await therapist.goto(site.url(f"/host/{scheduled.session_id}/summary"))
    await expect(therapist.get_by_role("region", name="Safety check")).to_contain_text(MARKER)
    await shot_both(therapist, "therapist-summary", back_to=LAPTOP["viewport"])
    # The client's data page says the answers are kept, and for how long.
    await client.goto(site.url("/visit/data"))
    kept = client.get_by_role("listitem").filter(has_text="Your safety check answers")
    await expect(kept).to_contain_text("kept about 3 months")
    await shot_both(client, "client-data-page")

    # No admin page shows it; the retention page lists the category.
    await add_account(site.app, ADMIN_EMAIL, Role.ADMIN)
    admin = await harness.new_page(**LAPTOP)
    await admin.goto(site.url("/login?next=/admin"))
    await admin.get_by_label("Email").fill(ADMIN_EMAIL)
    await admin.get_by_label("Password").fill(PASSWORD)
    await admin.get_by_role("button", name="Sign in").click()
    await expect(admin).to_have_url(site.url("/admin"))
    for path in (
        "/admin",
        "/admin/audit",
        "/admin/retention",
        "/admin/holds",
        "/admin/purge-reports",
    ):
        await admin.goto(site.url(path))
        assert MARKER not in await admin.content(), path
        assert "blue umbrella" not in await admin.content(), path
    await admin.goto(site.url("/admin/retention"))
    await expect(admin.get_by_text("safety", exact=True).first).to_be_visible()
    harness.assert_no_policy_violations()


async def test_the_next_session_offers_still_the_same_and_asks_where_afresh(
    site: LiveSite, harness: BrowserHarness
) -> None:
    scheduled = await schedule_session(site)
    await grant_telehealth(site, scheduled.client_id)
    first = await harness.new_page(**MOBILE)
    await up_to_the_safety_step(first, scheduled.link)
    await answer_safety_check(first, "At home", contact=("Anna", "+49 171 5551234"))
    await expect(first.get_by_role("heading", name="Waiting room", level=1)).to_be_visible()
    await first.context.close()

    # A week later (here: at once) the next session, in a fresh browser.
    now = datetime.now(UTC)
    client_row = await scheduling.get_client(site.app[DB], scheduled.therapist, scheduled.client_id)
    next_session, invite = await scheduling.create_session(
        site.app[DB],
        site.app[AUDIT],
        scheduled.therapist,
        client_id=client_row.id,
        starts_at=now,
        minutes=50,
        now=now,
    )
    client = await harness.new_page(**MOBILE)
    await up_to_the_safety_step(client, site.url(f"/join/{invite.token}"))
    place = client.get_by_label("Where are you right now?")
    await expect(place).to_have_value("")  # where they are is asked afresh
    await expect(client.get_by_text("Last time: Anna, +49 171 5551234.")).to_be_visible()
    await expect(client.get_by_label("Name", exact=True)).to_be_hidden()
    # Without permission the browser shares no location, and the page says so plainly.
    await client.get_by_role("button", name="Use my device's location").click()
    await expect(
        client.get_by_role("status").filter(has_text=re.compile("type where you are"))
    ).to_be_visible()
    await client.get_by_role("button", name="Same place as last time").click()
    await expect(place).to_have_value("At home")
    await place.fill("At the office, room 4")
    await client.get_by_label("Yes", exact=True).check()
    await fits_a_phone(client)
    await shot_both(client, "client-safety-still-the-same")
    await client.get_by_role("button", name="Still the same").click()
    await expect(client.get_by_role("heading", name="Waiting room", level=1)).to_be_visible()

    therapist = await harness.new_page(**LAPTOP)
    await therapist_opens_room(therapist, site, next_session.id)
    safety = therapist.get_by_role("region", name="Safety check")
    await expect(safety).to_contain_text("At the office, room 4")
    await expect(safety).to_contain_text("Anna")
    await expect(safety.get_by_role("link", name="+49 171 5551234")).to_be_visible()
    await expect(safety.get_by_text("May not be able to talk freely")).to_be_hidden()
    harness.assert_no_policy_violations()


async def test_a_clinic_that_collects_this_elsewhere_has_no_safety_step(
    site_without_step: LiveSite, harness: BrowserHarness
) -> None:
    scheduled = await schedule_session(site_without_step)
    await grant_telehealth(site_without_step, scheduled.client_id)
    client = await harness.new_page(**MOBILE)
    seen: list[str] = []

    async def no_safety_step(page: Page) -> None:
        if await page.get_by_role("heading", name="Before you join").is_visible():
            seen.append(page.url)

    await client_reaches_waiting_room(
        client, scheduled.link, consent=False, safety=False, at_each_step=no_safety_step
    )
    assert seen == []
    therapist = await harness.new_page(**LAPTOP)
    await therapist_opens_room(therapist, site_without_step, scheduled.session_id)
    await expect(therapist.get_by_role("region", name="Safety check")).to_have_count(0)
    await expect(therapist.get_by_role("link", name="112")).to_be_visible()
    harness.assert_no_policy_violations()

"""The therapist's panel in a couple session: each partner's check-ins under their own name,
side by side (the panel is about as wide on a phone as beside the video on a laptop), the
split alliance above them, read the same after a reload, and no serious accessibility
violation at either size."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from server.keys import AUDIT, DB, LIVE
from server.services import scheduling
from tests.browser.conftest import LAPTOP_SIZE, PHONE_SIZE, BrowserHarness, LiveSite
from tests.browser.test_accessibility_axe import AXE, _at_both_sizes
from tests.browser.video_helpers import schedule_session, therapist_opens_room

pytestmark = pytest.mark.browser


def _after(total_each: int) -> dict[str, object]:
    """After-session answers whose alliance total is 4 × `total_each`."""
    return {
        "bond": total_each,
        "goals": total_each,
        "approach": total_each,
        "technology": 9,
        "overall": total_each,
        "rupture": "no",
    }


@pytest.fixture
def harness(browser: Browser) -> BrowserHarness:
    return BrowserHarness(browser)


@pytest.fixture
def axe_source() -> str:
    """axe-core from npm (`npm ci`); CI fails without it, as the accessibility test does."""
    if not AXE.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{AXE} is missing; `npm ci` (make jscheck) installs it")
        pytest.skip("axe-core is not installed (npm ci)")
    return AXE.read_text()


async def test_the_panel_shows_each_partners_checkins_side_by_side_and_the_split(
    live_site: LiveSite,
    harness: BrowserHarness,
    axe_source: str,
    tmp_path: Path,
) -> None:
    scheduled = await schedule_session(live_site)
    app = live_site.app
    partner = await scheduling.create_client(
        app[DB], app[AUDIT], scheduled.therapist, "R.M.", datetime.now(UTC)
    )
    page = await harness.new_page(viewport={"width": 1280, "height": 720})
    await therapist_opens_room(page, live_site, scheduled.session_id)
    live = app[LIVE]
    for key, answers, client_id in (
        ("first-partner-pulse1", None, None),
        ("first-partner-after1", _after(10), None),
        ("second-partner-after", _after(7), partner.id),
    ):
        if answers is None:
            await live.submit_checkin(
                scheduled.session_id,
                instrument_id="pulse",
                answers={"pulse": 4},
                idempotency_key=key,
            )
        else:
            await live.submit_checkin(
                scheduled.session_id,
                instrument_id="after",
                answers=answers,
                idempotency_key=key,
                client_id=client_id,
            )
    first = page.get_by_role("region", name="J.M.")
    second = page.get_by_role("region", name="R.M.")
    for column, heading in (
        (first, "After check-in: Alliance 40/40"),
        (first, "Pulse check-in: Pulse 4/5"),
        (second, "After check-in: Alliance 28/40"),
    ):
        await expect(column.get_by_role("heading", name=heading)).to_be_visible()
    split = page.locator(".split-alliance")
    await expect(split).to_contain_text("12 points apart (28 and 40 of 40)")
    await expect(split).to_contain_text("ask what each wants from today")
    section = page.get_by_role("region", name="Check-ins")
    for size in (PHONE_SIZE, LAPTOP_SIZE):  # the panel is about as wide on both
        await page.set_viewport_size(size)
        # side by side: the two columns start at the same height, the second to the right
        first_box, second_box = await first.bounding_box(), await second.bounding_box()
        assert first_box and second_box and abs(first_box["y"] - second_box["y"]) < 2
        assert second_box["x"] >= first_box["x"] + first_box["width"]
        assert await page.evaluate("document.documentElement.scrollWidth") <= size["width"]
        await section.scroll_into_view_if_needed()
        await page.screenshot(path=tmp_path / f"couple-panel-{size['width']}.png")
        await section.screenshot(path=tmp_path / f"couple-checkins-{size['width']}.png")
    print(f"screenshots: {tmp_path}/couple-*.png")
    await page.set_viewport_size(PHONE_SIZE)

    await page.reload()  # panel-state rebuilds the same columns and the split
    await expect(page.get_by_role("region", name="R.M.")).to_contain_text("Alliance 28/40")
    await expect(page.locator(".split-alliance")).to_contain_text("12 points apart")
    assert await _at_both_sizes(page, axe_source) == []
    harness.assert_no_policy_violations()

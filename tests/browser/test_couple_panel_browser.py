"""The therapist's panel in a couple session: each partner's check-ins under their own name,
side by side (the panel is about as wide on a phone as beside the video on a laptop), the
split alliance above them, read the same after a reload, and no serious accessibility
violation at either size."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from privacy.consent import Channel, ConsentDecision, Purpose
from server.core.cues.group_synthetic import PARTNER_B, group_scenario
from server.core.participants import THERAPIST_PEER_ID
from server.keys import AUDIT, DB, LIVE
from server.services import scheduling
from tests.browser.axe import axe_at_both_sizes
from tests.browser.conftest import LAPTOP_SIZE, PHONE_SIZE, BrowserHarness, LiveSite
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
    for client_id in (scheduled.client_id, partner.id):  # kept, so the summary shows them too
        await live.decide_consent(
            client_id, Purpose.CHECKIN_STORAGE, ConsentDecision.GRANTED, 1, Channel.PAGE
        )
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
    assert await axe_at_both_sizes(page, axe_source) == []

    # both partners agreed to cue analysis: a couple conversation, then the summary per person
    for client_id in (scheduled.client_id, partner.id):
        await live.decide_consent(
            client_id, Purpose.CUE_ANALYSIS, ConsentDecision.GRANTED, 1, Channel.PAGE
        )
    owners = {THERAPIST_PEER_ID: scheduled.client_id, PARTNER_B: partner.id}
    for peer, kind, frame in group_scenario("couple_dominant", minutes=2):
        await live.feed_features(
            scheduled.session_id,
            owners.get(peer, scheduled.client_id),
            frame.to_message(),
            peer_id=peer,
            kind=kind,
        )
    await page.get_by_role("button", name="End session").click()
    ending = page.get_by_role("dialog", name="End the session for everyone?")
    await ending.get_by_role("button", name="Yes, end the session").click()
    await expect(page.get_by_role("link", name=re.compile("summary", re.I))).to_be_visible()
    await page.goto(live_site.url(f"/host/{scheduled.session_id}/summary"))
    await expect(page.get_by_role("heading", name="Split alliance")).to_be_visible()
    await expect(page.get_by_role("table", name="Talk share per person")).to_be_visible()
    for alias in ("J.M.", "R.M."):
        await expect(page.get_by_role("heading", name=alias, exact=True)).to_be_visible()
    await page.screenshot(path=tmp_path / "couple-summary-360.png", full_page=True)
    await page.set_viewport_size(LAPTOP_SIZE)
    await page.screenshot(path=tmp_path / "couple-summary-1280.png", full_page=True)
    await page.set_viewport_size(PHONE_SIZE)
    assert await axe_at_both_sizes(page, axe_source) == []
    harness.assert_no_policy_violations()

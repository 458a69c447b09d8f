"""Shared goals in real browsers: what one person changes in the call, the other sees at once,
and the progress the client gives after the session shows on both sides' charts and tables."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect

from privacy.consent import Channel, ConsentDecision, Purpose
from server.keys import AUDIT, CONSENTS, DB
from tests.browser.conftest import MOBILE, BrowserHarness, LiveSite
from tests.browser.video_helpers import (
    admit,
    client_reaches_waiting_room,
    grant_telehealth,
    schedule_session,
    therapist_opens_room,
    wait_for_video,
)

pytestmark = pytest.mark.browser
SHOTS = Path("/tmp/shots-goals")
SHOTS.mkdir(exist_ok=True)


async def _grant_storage(site: LiveSite, client_id: str) -> None:
    consents = site.app[CONSENTS]
    await consents.decide(
        site.app[DB],
        site.app[AUDIT],
        client_id=client_id,
        purpose=Purpose.CHECKIN_STORAGE,
        decision=ConsentDecision.GRANTED,
        notice_version=consents.catalog.current(Purpose.CHECKIN_STORAGE).version,
        channel=Channel.API,
        now=datetime.now(UTC),
    )


async def _in_call(site: LiveSite, therapist: Page, client: Page) -> tuple[str, str]:
    scheduled = await schedule_session(site)
    await grant_telehealth(site, scheduled.client_id)
    await _grant_storage(site, scheduled.client_id)
    await therapist_opens_room(therapist, site, scheduled.session_id)
    await client_reaches_waiting_room(client, scheduled.link, consent=False)
    await client.get_by_role("button", name="Skip this check-in").click()
    await admit(therapist, scheduled.alias)
    await wait_for_video(client)
    await wait_for_video(therapist)
    return scheduled.session_id, scheduled.client_id


async def _shoot(page: Page, name: str) -> None:
    """A screenshot for looking at by eye (the lead's rule: every changed page, both sizes)."""
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


async def test_a_goal_the_client_adds_and_rewords_in_the_call_appears_on_the_therapists_screen(
    live_site: LiveSite, media_browser: Browser
) -> None:
    harness = BrowserHarness(media_browser)
    therapist = await harness.new_page(viewport={"width": 1280, "height": 720})
    client = await harness.new_page(**MOBILE)
    await _in_call(live_site, therapist, client)
    client_goals = client.get_by_role("region", name="Shared goals")
    therapist_goals = therapist.get_by_role("region", name="Shared goals")
    await expect(therapist_goals.get_by_text("No goals yet.")).to_be_visible()

    await client_goals.get_by_label("New goal").fill("Go back to the choir")
    await client_goals.get_by_label("New goal").press("Enter")

    await expect(therapist_goals.get_by_role("listitem")).to_have_text(
        re.compile("Go back to the choir")
    )
    await expect(therapist_goals.get_by_role("status")).to_have_text(
        "The client added a goal: Go back to the choir"
    )

    await client_goals.get_by_role("button", name="Edit goal: Go back to the choir").click()
    field = client_goals.get_by_label("Goal", exact=True)
    await field.fill("Sing with the choir again by spring")
    await field.press("Enter")
    await expect(therapist_goals.get_by_role("listitem")).to_have_text(
        re.compile("Sing with the choir again by spring")
    )

    await therapist_goals.get_by_role(
        "button", name="Mark reached: Sing with the choir again by spring"
    ).click()
    await expect(client_goals.get_by_text("Reached", exact=True)).to_be_visible()
    await expect(client_goals.get_by_role("status")).to_have_text(
        "Your therapist marked a goal reached: Sing with the choir again by spring"
    )
    for page, goals, name in (
        (client, client_goals, "client"),
        (therapist, therapist_goals, "therapist"),
    ):
        for width, height in ((360, 640), (1280, 720)):
            await page.set_viewport_size({"width": width, "height": height})
            await goals.scroll_into_view_if_needed()
            await goals.screenshot(path=str(SHOTS / f"call-goals-{name}-{width}.png"))
    await _shoot(client, "call-client-1280")
    harness.assert_no_policy_violations()


async def test_progress_given_after_the_session_shows_on_both_sides_charts_and_tables(
    live_site: LiveSite, media_browser: Browser
) -> None:
    harness = BrowserHarness(media_browser)
    therapist = await harness.new_page(viewport={"width": 1280, "height": 720})
    client = await harness.new_page(**MOBILE)
    _session_id, client_id = await _in_call(live_site, therapist, client)
    goals = therapist.get_by_role("region", name="Shared goals")
    await goals.get_by_label("New goal").fill("Go back to the choir")
    await goals.get_by_role("button", name="Add goal").click()
    await expect(
        client.get_by_role("region", name="Shared goals").get_by_role("listitem")
    ).to_have_text(re.compile("Go back to the choir"))

    await therapist.get_by_role("button", name="End session").click()
    dialog = therapist.get_by_role("dialog", name="End the session for everyone?")
    await dialog.get_by_role("button", name="Yes, end the session").click()
    await client.get_by_role("link", name=re.compile("Tell your therapist")).click()
    progress = client.get_by_label(re.compile("Progress on your goal: .Go back to the choir"))
    await progress.focus()
    await progress.press("End")  # 10, by keyboard
    await expect(client.get_by_text("Your answer: 10")).to_be_visible()
    await _shoot(client, "after-form-360")
    await client.set_viewport_size({"width": 1280, "height": 720})
    await _shoot(client, "after-form-1280")
    await client.set_viewport_size({"width": 360, "height": 640})
    await client.get_by_role("button", name="Send to my therapist").click()
    await expect(
        client.get_by_role("status").filter(has_text="reached your therapist")
    ).to_be_visible()

    # The client's own page: their goal with its answer, in a chart and a table.
    await client.get_by_role("link", name="Your progress").click()
    mine = client.get_by_role("region", name="Your goals")
    await expect(mine.get_by_role("img", name="Progress on your goals")).to_be_visible()
    row = mine.get_by_role("row", name=re.compile("Go back to the choir"))
    await expect(row.get_by_role("cell").nth(2)).to_have_text(re.compile(r": 10$"))
    await _shoot(client, "client-progress-360")
    await client.set_viewport_size({"width": 1280, "height": 720})
    await _shoot(client, "client-progress-1280")

    # The therapist's client page: the same answer on the goal's progress line and table.
    await therapist.goto(live_site.url(f"/dashboard/clients/{client_id}"))
    theirs = therapist.get_by_role("region", name="Shared goals")
    await expect(theirs.get_by_role("img", name="Progress on shared goals")).to_be_visible()
    row = theirs.get_by_role("row", name=re.compile("Go back to the choir"))
    await expect(row.get_by_role("cell").nth(2)).to_have_text(re.compile(r": 10$"))
    await _shoot(therapist, "client-page-1280")
    await therapist.set_viewport_size({"width": 360, "height": 640})
    await _shoot(therapist, "client-page-360")
    harness.assert_no_policy_violations()


async def test_a_spanish_client_is_asked_about_each_goal_in_spanish_after_the_session(
    live_site: LiveSite, media_browser: Browser
) -> None:
    harness = BrowserHarness(media_browser)
    therapist = await harness.new_page(viewport={"width": 1280, "height": 720})
    client = await harness.new_page(**MOBILE)
    await _in_call(live_site, therapist, client)
    goals = therapist.get_by_role("region", name="Shared goals")
    await goals.get_by_label("New goal").fill("Volver al coro")
    await goals.get_by_role("button", name="Add goal").click()
    await expect(
        client.get_by_role("region", name="Shared goals").get_by_role("listitem")
    ).to_have_text(re.compile("Volver al coro"))
    await therapist.get_by_role("button", name="End session").click()
    dialog = therapist.get_by_role("dialog", name="End the session for everyone?")
    await dialog.get_by_role("button", name="Yes, end the session").click()

    # The client chose Spanish (the language cookie the switcher sets), then opens the form.
    await client.context.add_cookies(
        [{"name": "attune-lang", "value": "es", "url": live_site.base_url}]
    )
    await client.goto(live_site.url("/visit/after"))
    progress = client.get_by_label(re.compile("Avance en su objetivo: «Volver al coro»"))
    await expect(progress).to_be_visible()
    form = client.locator("#after-checkin")
    await expect(form).to_contain_text("sin avances todavía")
    await expect(form).to_contain_text("plenamente conseguido")
    await expect(form).not_to_contain_text("Progress on your goal")
    await expect(form).not_to_contain_text("no progress yet")
    await _shoot(client, "after-form-es-360")

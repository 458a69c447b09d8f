"""The therapist's practice pages as used in a browser in another time zone (issue #11, items
5, 6 and 8): times in the viewer's own zone with the zone named, post/redirect/get, upcoming
sessions first, and a question before anything destructive."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import Dialog, expect

from server.core.models import Role
from server.keys import AUDIT, DB, SETTINGS
from server.services import scheduling
from tests.browser.conftest import THERAPIST_EMAIL, BrowserHarness, LiveSite
from tests.browser.test_foundation_flows import sign_in_with_form
from tests.conftest import PASSWORD, add_account

pytestmark = pytest.mark.browser

CHICAGO = {"timezone_id": "America/Chicago", "locale": "en-US"}
CHICAGO_ZONE = ZoneInfo("America/Chicago")


def _other_season_day() -> date:
    """A day within the next year on which Chicago's clocks differ from today's (summer time
    in winter, standard time in summer)."""
    now = datetime.now(CHICAGO_ZONE)
    day = now.date() + timedelta(days=30)
    while datetime(day.year, day.month, day.day, 12, tzinfo=CHICAGO_ZONE).dst() == now.dst():
        day += timedelta(days=30)
    return day


async def test_a_session_booked_at_7_16_local_shows_7_16_with_the_zone_and_a_reload_books_nothing(
    live_site: LiveSite, harness: BrowserHarness
) -> None:
    therapist_account = await live_site.add_therapist()
    page = await harness.new_page(**CHICAGO)
    await sign_in_with_form(page, live_site, THERAPIST_EMAIL, PASSWORD)
    await page.get_by_label("Client alias").fill("J.M.")
    await page.get_by_role("button", name="Add client").click()
    tomorrow = (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%d")
    new_session = page.get_by_role("region", name="New session")
    await new_session.get_by_label("Starts at").fill(f"{tomorrow}T07:16")
    await new_session.get_by_role("button", name="Create session").click()

    # Post/redirect/get: the link page has its own address, and reloading it books nothing.
    await expect(page.get_by_role("heading", name="Invite link for J.M.")).to_be_visible()
    await expect(page).to_have_url(re.compile(r"/dashboard/sessions/[0-9a-f]{32}/link$"))
    link = await page.get_by_label("Client's link").input_value()
    await expect(page.get_by_text(re.compile(r"07:16 AM CST"))).to_be_visible()
    await page.reload()
    await expect(page.get_by_label("Client's link")).to_have_value(link)
    sessions = await scheduling.list_sessions(live_site.app[DB], therapist_account)
    assert len(sessions) == 1
    assert sessions[0].starts_at.strftime("%H:%M") == "13:16"  # stored in UTC

    # The dashboard: the same local time, the zone named; upcoming sessions first.
    await page.get_by_role("link", name="Back to the dashboard").click()
    upcoming = page.get_by_role("region", name="Upcoming sessions")
    await expect(upcoming.get_by_role("row", name=re.compile("J.M."))).to_contain_text(
        re.compile(r"07:16 AM CST")
    )

    # Reschedule to 09:30 keeping the link: the same link still opens the session (audited).
    await upcoming.get_by_role(
        "link", name=re.compile(r"^Reschedule the session with J\.M\.")
    ).click()
    await expect(page.get_by_label("Starts at")).to_have_value(f"{tomorrow}T07:16")
    await page.get_by_label("Starts at").fill(f"{tomorrow}T09:30")
    await page.get_by_role("button", name="Save the new time").click()
    await expect(page).to_have_url(live_site.url("/dashboard"))
    await expect(upcoming.get_by_role("row", name=re.compile("J.M."))).to_contain_text(
        re.compile(r"09:30 AM CST")
    )
    (moved,) = await scheduling.list_sessions(live_site.app[DB], therapist_account)
    assert moved.starts_at.strftime("%H:%M") == "15:30" and moved.invite_active
    with sqlite3.connect(live_site.app[SETTINGS].data_dir / "attune.db") as conn:
        (details,) = conn.execute(
            "SELECT details FROM audit_log WHERE action = 'session.reschedule'"
        ).fetchone()
    assert '"new_link":false' in details.replace(" ", "")

    # Cancel asks first; saying no keeps the session, saying yes moves it to the past.
    asked: list[str] = []

    async def decline(dialog: Dialog) -> None:
        asked.append(dialog.message)
        await dialog.dismiss()

    page.once("dialog", decline)
    await upcoming.get_by_role("button", name=re.compile(r"^Cancel session with J\.M\.")).click()
    assert asked and "Cancel the session with J.M." in asked[0]
    await expect(upcoming.get_by_role("row", name=re.compile("J.M."))).to_have_count(1)

    async def accept(dialog: Dialog) -> None:
        await dialog.accept()

    page.once("dialog", accept)
    await upcoming.get_by_role("button", name=re.compile(r"^Cancel session with J\.M\.")).click()
    past = page.get_by_role("region", name="Past and cancelled sessions")
    await expect(past.get_by_role("row", name=re.compile("J.M."))).to_contain_text("cancelled")
    await expect(page.get_by_text("No upcoming sessions.")).to_be_visible()
    harness.assert_no_policy_violations()


async def test_a_client_who_comes_too_early_is_told_when_in_their_own_time_zone(
    live_site: LiveSite, harness: BrowserHarness
) -> None:
    therapist = await live_site.add_therapist()
    now = datetime.now(UTC)
    db, audit = live_site.app[DB], live_site.app[AUDIT]
    client = await scheduling.create_client(db, audit, therapist, "J.M.", now)
    starts = (now + timedelta(days=1)).replace(hour=13, minute=16, second=0, microsecond=0)
    _session, invite = await scheduling.create_session(
        db, audit, therapist, client_id=client.id, starts_at=starts, minutes=50, now=now
    )
    page = await harness.new_page(**CHICAGO)
    await page.goto(live_site.url(f"/join/{invite.token}"))
    await expect(page.get_by_role("heading", name="It is a little early")).to_be_visible()
    await expect(page.get_by_text("Your session starts")).to_contain_text("07:16 AM CST")
    await expect(page.get_by_text("This link opens at")).to_contain_text("07:01 AM CST")
    harness.assert_no_policy_violations()


async def test_a_session_booked_across_a_clock_change_keeps_its_local_time_and_can_get_a_new_link(
    live_site: LiveSite, harness: BrowserHarness
) -> None:
    therapist_account = await live_site.add_therapist()
    page = await harness.new_page(**CHICAGO)
    await sign_in_with_form(page, live_site, THERAPIST_EMAIL, PASSWORD)
    await page.get_by_label("Client alias").fill("J.M.")
    await page.get_by_role("button", name="Add client").click()
    day = _other_season_day()
    zone = datetime(day.year, day.month, day.day, 7, 16, tzinfo=CHICAGO_ZONE).tzname()
    assert zone is not None
    new_session = page.get_by_role("region", name="New session")
    await new_session.get_by_label("Starts at").fill(f"{day.isoformat()}T07:16")
    await new_session.get_by_role("button", name="Create session").click()

    # 07:16 on that day is 07:16 in that day's zone (CDT or CST), not an hour off.
    await expect(page.get_by_text(re.compile(rf"07:16 AM {zone}"))).to_be_visible()
    old_link = await page.get_by_label("Client's link").input_value()
    (session,) = await scheduling.list_sessions(live_site.app[DB], therapist_account)
    assert session.starts_at.astimezone(CHICAGO_ZONE).strftime("%H:%M") == "07:16"

    # "New link" asks first (the sent link would stop working); saying no changes nothing.
    await page.get_by_role("link", name="Back to the dashboard").click()
    upcoming = page.get_by_role("region", name="Upcoming sessions")
    asked: list[str] = []

    async def decline(dialog: Dialog) -> None:
        asked.append(dialog.message)
        await dialog.dismiss()

    page.once("dialog", decline)
    await upcoming.get_by_role("button", name=re.compile(r"^New link for J\.M\.")).click()
    assert asked == ["Make a new link for J.M.? The link you sent stops working at once."]
    await expect(page).to_have_url(live_site.url("/dashboard"))

    # Rescheduled to 18:05 that day with a new link: the new link is shown, the old one ends.
    await upcoming.get_by_role(
        "link", name=re.compile(r"^Reschedule the session with J\.M\.")
    ).click()
    await page.get_by_label("Starts at").fill(f"{day.isoformat()}T18:05")
    await page.get_by_label(re.compile("Make a new link")).check()
    await page.get_by_role("button", name="Save the new time").click()
    await expect(page.get_by_role("heading", name="Invite link for J.M.")).to_be_visible()
    await expect(page.get_by_text(re.compile(rf"06:05 PM {zone}"))).to_be_visible()
    new_link = await page.get_by_label("Client's link").input_value()
    assert new_link != old_link
    (moved,) = await scheduling.list_sessions(live_site.app[DB], therapist_account)
    assert moved.starts_at.astimezone(CHICAGO_ZONE).strftime("%H:%M") == "18:05"

    client = await harness.new_page(**CHICAGO)
    response = await client.goto(old_link)
    assert response is not None and response.status == 404
    await expect(client.get_by_role("heading", name="This link does not work")).to_be_visible()
    await client.goto(new_link)  # months early: the page says when, in the client's zone
    await expect(client.get_by_role("heading", name="It is a little early")).to_be_visible()
    await expect(client.get_by_text("Your session starts")).to_contain_text(f"06:05 PM {zone}")
    harness.assert_no_policy_violations()


async def test_the_admins_disable_and_purge_now_ask_first_and_no_means_nothing_happened(
    live_site: LiveSite, harness: BrowserHarness
) -> None:
    await add_account(live_site.app, "admin@example.org", Role.ADMIN)
    therapist = await live_site.add_therapist()
    page = await harness.new_page()
    await sign_in_with_form(page, live_site, "admin@example.org", PASSWORD)
    asked: list[str] = []

    def answer(accept: bool) -> Callable[[Dialog], Awaitable[None]]:
        async def reply(dialog: Dialog) -> None:
            asked.append(dialog.message)
            await (dialog.accept() if accept else dialog.dismiss())

        return reply

    # Disable: "no" keeps the account; "yes" disables it, on a page of its own address.
    await page.goto(live_site.url(f"/admin/accounts/{therapist.id}"))
    page.once("dialog", answer(False))
    await page.get_by_role("button", name="Disable this account").click()
    assert asked == [f"Disable {THERAPIST_EMAIL}? Their sign-ins end at once."]
    await expect(page.get_by_role("button", name="Disable this account")).to_be_visible()
    page.once("dialog", answer(True))
    await page.get_by_role("button", name="Disable this account").click()
    await expect(page.get_by_role("button", name="Enable this account")).to_be_visible()
    await expect(page).to_have_url(re.compile(r"\?done=disable$"))

    # Run the purge now: "no" runs nothing (no new report), "yes" runs it once; the dry run
    # never asks.
    await page.goto(live_site.url("/admin/purge-reports"))
    runs = page.locator("tbody tr")
    before = await runs.count()
    await page.goto(live_site.url("/admin/retention"))
    asked.clear()
    await page.get_by_role("button", name="Preview (dry run)").click()
    dry_run = page.get_by_text(re.compile("^Dry run: this is what a purge would do"))
    await expect(dry_run).to_be_visible()
    assert asked == []
    page.once("dialog", answer(False))
    await page.get_by_role("button", name="Run the purge now").click()
    assert asked[-1].startswith("Run the purge now? Data past its retention period")
    await page.goto(live_site.url("/admin/purge-reports"))
    await expect(runs).to_have_count(before)
    await page.goto(live_site.url("/admin/retention"))
    page.once("dialog", answer(True))
    await page.get_by_role("button", name="Run the purge now").click()
    await expect(page).to_have_url(live_site.url("/admin/purge-reports"))
    await expect(runs).to_have_count(before + 1)
    harness.assert_no_policy_violations()

"""Outcome measures as the client and the therapist live them, in real headless Chromium: the
therapist at a laptop (1280×720) chooses the PHQ-9 for a client, the client on a phone
(360×640) answers it before the session, and a thought of self-harm reaches the therapist's
room at once while the client sees where to get help. Then a client whose scores worsened over
three sessions is flagged not on track on the therapist's client page.

Screenshots go to /tmp/shots-measures/ (outside the repository) for looking at.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.async_api import Page, ViewportSize, expect

from privacy.vault import FieldContext
from server.core.measures.schedule import Frequency, Plan
from server.db import measures as measure_rows
from server.db.scheduling import session_by_id
from server.keys import AUDIT, DB, LIVE, MEASURES, VAULT
from server.services import scheduling
from tests.browser.conftest import (
    LAPTOP,
    LAPTOP_SIZE,
    MOBILE,
    PHONE_SIZE,
    BrowserHarness,
    LiveSite,
    screenshots,
)
from tests.browser.video_helpers import (
    fits_a_phone,
    grant_telehealth,
    schedule_session,
    therapist_opens_room,
)
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser

SHOTS = Path("/tmp/shots-measures")
CODES = ("LA6568-5", "LA6569-3", "LA6570-1", "LA6571-9")
ITEM_9 = re.compile(r"^9\. Thoughts that you would be better off dead")


async def shots(page: Page, name: str, *, back_to: ViewportSize) -> None:
    """What the person sees, at a phone's and a laptop's size (for looking at)."""
    await screenshots(page, SHOTS / name, back_to=back_to, full_page=True)


async def test_a_thought_of_self_harm_before_the_session_reaches_the_therapists_room_at_once(
    emergency_site: LiveSite, media_harness: BrowserHarness
) -> None:
    scheduled = await schedule_session(emergency_site)
    await grant_telehealth(emergency_site, scheduled.client_id)
    therapist = await media_harness.new_page(**LAPTOP)
    await therapist_opens_room(therapist, emergency_site, scheduled.session_id)

    # The therapist chooses the PHQ-9 for this client, every session, on the client page.
    plan = await therapist.context.new_page()
    await plan.goto(emergency_site.url(f"/dashboard/clients/{scheduled.client_id}"))
    measures = plan.get_by_role("region", name="Outcome measures")
    await measures.get_by_role("checkbox", name="PHQ-9").check()
    await measures.get_by_role("radio", name="Every session").check()
    await measures.get_by_role("button", name="Save measures").click()
    await expect(plan.get_by_role("status").filter(has_text="Saved.")).to_be_visible()
    await expect(measures.get_by_role("checkbox", name="PHQ-9")).to_be_checked()
    await shots(plan, "therapist-client-plan", back_to=LAPTOP_SIZE)
    await plan.close()

    # The client opens the link on a phone: the PHQ-9 is there before anything else.
    client = await media_harness.new_page(**MOBILE)
    await client.goto(scheduled.link)
    card = client.get_by_role("region", name="Before your session: PHQ-9")
    await expect(card).to_be_visible()
    await expect(card).to_contain_text("You can skip any question")
    groups = card.get_by_role("group")
    await expect(groups).to_have_count(9)
    for number in range(1, 9):
        group = card.get_by_role("group", name=re.compile(rf"^{number}\. "))
        await group.get_by_role("radio", name="Several days").check()
    # Item 9 by keyboard: onto "Not at all", then the arrow key moves to "Several days".
    item9 = card.get_by_role("group", name=ITEM_9)
    await item9.get_by_role("radio", name="Not at all").focus()
    await client.keyboard.press("Space")
    await client.keyboard.press("ArrowDown")
    await expect(item9.get_by_role("radio", name="Several days")).to_be_checked()
    await fits_a_phone(client)
    await shots(client, "client-phq9-form", back_to=PHONE_SIZE)
    await card.get_by_role("button", name="Send to my therapist").click()

    # The client sees where to get help right now, with the clinic's number.
    help_now = client.get_by_role("alert").filter(has_text="Help is available now")
    await expect(help_now).to_be_visible()
    await expect(help_now).to_contain_text("emergency")
    await expect(help_now).to_contain_text("112")
    await fits_a_phone(client)
    await shots(client, "client-help-text", back_to=PHONE_SIZE)

    # The therapist's room shows the safety alert at once, on top of the private panel.
    panel = therapist.get_by_role("complementary", name="Private panel")
    notices = panel.get_by_role("list", name="Safety notices")
    await expect(notices).to_contain_text("Safety alert for J.M. (PHQ-9)", timeout=5_000)
    await expect(notices).to_contain_text("hurting themselves")
    await expect(notices).not_to_contain_text("Several days")
    await expect(therapist.locator("#panel-latest")).to_contain_text("Safety alert for J.M.")
    await shots(therapist, "therapist-room-safety-alert", back_to=LAPTOP_SIZE)

    # A reload keeps it (panel-state), once.
    await therapist.reload()
    await expect(notices).to_contain_text("Safety alert for J.M. (PHQ-9)")
    await expect(notices.get_by_role("listitem")).to_have_count(1)

    # And the dashboard lists it until marked seen.
    dashboard = await therapist.context.new_page()
    await dashboard.goto(emergency_site.url("/dashboard"))
    alerts = dashboard.get_by_role("region", name="Safety alerts")
    await expect(alerts).to_contain_text("J.M.")
    await shots(dashboard, "therapist-dashboard-safety-alert", back_to=LAPTOP_SIZE)
    await alerts.get_by_role("button", name=re.compile("^Mark as seen")).click()
    await expect(dashboard.get_by_role("region", name="Safety alerts")).to_have_count(0)
    media_harness.assert_no_policy_violations()


async def test_three_sessions_of_worsening_scores_show_not_on_track_on_the_client_page(
    emergency_site: LiveSite, media_harness: BrowserHarness
) -> None:
    scheduled = await schedule_session(emergency_site)
    app = emergency_site.app
    for week, total in enumerate((5, 9, 14)):
        created, _invite = await scheduling.create_session(
            app[DB],
            app[AUDIT],
            scheduled.therapist,
            client_id=scheduled.client_id,
            starts_at=_in_weeks(week + 1),
            minutes=50,
            now=_in_weeks(0),
        )
        async with app[DB].read() as conn:
            session = await session_by_id(conn, created.id)
        assert session is not None
        scores = [min(3, max(0, total - 3 * n)) for n in range(8)] + [0]
        await app[MEASURES].submit(
            session=session,
            measure_id="phq9",
            answers={f"phq9-{n}": CODES[s] for n, s in enumerate(scores, start=1)},
            idempotency_key=f"browser-worsening-{week:04d}",
            now=session.starts_at,
        )

    therapist = await media_harness.new_page(**LAPTOP)
    await therapist.goto(emergency_site.url(f"/dashboard/clients/{scheduled.client_id}"))
    await therapist.get_by_label("Email").fill(scheduled.therapist.email)
    await therapist.get_by_label("Password").fill(PASSWORD)
    await therapist.get_by_role("button", name="Sign in").click()
    measures = therapist.get_by_role("region", name="Outcome measures")
    flags = measures.get_by_role("group", name="Not on track")
    await expect(flags).to_be_visible()
    await expect(flags).to_contain_text("PHQ-9 rose from 5 to 14")
    await therapist.set_viewport_size(PHONE_SIZE)
    await fits_a_phone(therapist)
    await shots(therapist, "therapist-client-not-on-track", back_to=LAPTOP_SIZE)
    media_harness.assert_no_policy_violations()


def _in_weeks(weeks: int) -> datetime:
    return datetime.now(UTC).replace(microsecond=0) + timedelta(weeks=weeks, minutes=5)


async def test_an_open_dashboard_shows_and_announces_new_alerts_and_flags_without_a_reload(
    emergency_site: LiveSite, media_harness: BrowserHarness
) -> None:
    scheduled = await schedule_session(emergency_site)
    therapist = await media_harness.new_page(**LAPTOP)
    await therapist.goto(emergency_site.url("/dashboard"))
    await therapist.get_by_label("Email").fill(scheduled.therapist.email)
    await therapist.get_by_label("Password").fill(PASSWORD)
    await therapist.get_by_role("button", name="Sign in").click()
    await expect(therapist.get_by_role("heading", name="Your practice")).to_be_visible()
    await expect(therapist.get_by_role("region", name="Safety alerts")).to_have_count(0)
    await expect(therapist.get_by_role("region", name="Not on track")).to_have_count(0)

    # The client answers the PHQ-9 with a thought of self-harm (as the visit page would).
    app = emergency_site.app
    await app[LIVE].submit_measure(
        scheduled.session_id,
        measure_id="phq9",
        answers={f"phq9-{n}": CODES[1 if n == 9 else 0] for n in range(1, 10)},
        idempotency_key="browser-live-dashboard-01",
    )
    alerts = therapist.get_by_role("region", name="Safety alerts")
    await expect(alerts).to_contain_text("J.M. · PHQ-9")
    await expect(therapist.locator("#alerts-announcer")).to_have_text(
        "New safety alert: J.M. (PHQ-9)"
    )
    await expect(therapist.locator("#alerts-announcer")).to_have_attribute("role", "alert")
    await shots(therapist, "therapist-dashboard-live-alert", back_to=LAPTOP["viewport"])

    # Three more sessions of worsening scores: the flag appears, announced politely.
    for week, total in enumerate((5, 9, 14)):
        created, _invite = await scheduling.create_session(
            app[DB],
            app[AUDIT],
            scheduled.therapist,
            client_id=scheduled.client_id,
            starts_at=_in_weeks(week + 1),
            minutes=50,
            now=_in_weeks(0),
        )
        async with app[DB].read() as conn:
            session = await session_by_id(conn, created.id)
        assert session is not None
        scores = [min(3, max(0, total - 3 * n)) for n in range(8)] + [0]
        await app[MEASURES].submit(
            session=session,
            measure_id="phq9",
            answers={f"phq9-{n}": CODES[s] for n, s in enumerate(scores, start=1)},
            idempotency_key=f"browser-live-flag-{week:04d}",
            now=session.starts_at,
        )
    flags = therapist.get_by_role("region", name="Not on track")
    await expect(flags).to_contain_text("J.M. · PHQ-9")
    await expect(therapist.locator("#flags-announcer")).to_have_text("Not on track: J.M. (PHQ-9)")
    await expect(alerts.get_by_role("listitem")).to_have_count(1)  # shown once, not per poll

    # Marking the alert seen (a form built by the page) works like the rendered one.
    await alerts.get_by_role("button", name=re.compile("^Mark as seen")).click()
    await expect(therapist.get_by_role("region", name="Safety alerts")).to_have_count(0)
    await expect(therapist.get_by_role("region", name="Not on track")).to_be_visible()
    await therapist.set_viewport_size(PHONE_SIZE)
    await fits_a_phone(therapist)
    await shots(therapist, "therapist-dashboard-live-flag", back_to=LAPTOP["viewport"])
    media_harness.assert_no_policy_violations()


async def test_a_spanish_client_answers_the_phq9_in_spanish_on_a_phone(
    emergency_site: LiveSite, media_harness: BrowserHarness
) -> None:
    scheduled = await schedule_session(emergency_site)
    await grant_telehealth(emergency_site, scheduled.client_id)
    app = emergency_site.app
    await app[MEASURES].set_plan(
        therapist_id=scheduled.therapist.id,
        client_id=scheduled.client_id,
        plan=Plan(("phq9",), Frequency.EVERY_SESSION),
        now=datetime.now(UTC),
        audit=app[AUDIT],
    )
    client = await media_harness.new_page(**MOBILE, locale="es-ES")  # a browser in Spanish
    await client.goto(scheduled.link)
    card = client.get_by_role("region", name="Antes de su sesión: PHQ-9")
    await expect(card).to_be_visible()
    await expect(card).to_contain_text("Puede saltarse cualquier pregunta")
    await expect(card).to_contain_text("¿qué tan seguido ha tenido molestias")
    for number in range(1, 9):
        group = card.get_by_role("group", name=re.compile(rf"^{number}\. "))
        await group.get_by_role("radio", name="Varios días").check()
    item9 = card.get_by_role("group", name=re.compile(r"^9\. Pensamientos de que estaría mejor"))
    await item9.get_by_role("radio", name="Ningún día").focus()
    await client.keyboard.press("Space")
    await client.keyboard.press("ArrowDown")
    await expect(item9.get_by_role("radio", name="Varios días")).to_be_checked()
    english = re.compile(
        r"Not at all|Several days|Send to my therapist|Before your session|Over the"
    )
    await expect(card).not_to_contain_text(english)
    await fits_a_phone(client)
    await shots(client, "client-phq9-form-es", back_to=PHONE_SIZE)
    await card.get_by_role("button", name="Enviar a mi terapeuta").click()

    help_now = client.get_by_role("alert").filter(has_text="Hay ayuda disponible ahora")
    await expect(help_now).to_be_visible()
    await expect(help_now).to_contain_text("Si ahora está en peligro")
    await expect(help_now).to_contain_text("112")
    await shots(client, "client-help-text-es", back_to=PHONE_SIZE)

    [stored] = await app[MEASURES].history(scheduled.client_id)
    assert stored.score.total == 9 and stored.alert is not None
    async with app[DB].read() as conn:
        [row] = await measure_rows.for_client(conn, scheduled.client_id)
        payload = await app[VAULT].decrypt_json(
            conn,
            FieldContext("measure_responses", row.id, "payload", scheduled.client_id),
            row.payload_ciphertext,
        )
    assert payload["language"] == "es"
    media_harness.assert_no_policy_violations()

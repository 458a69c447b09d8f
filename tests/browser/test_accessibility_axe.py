"""axe-core finds no serious or critical accessibility violation on the client's pages, in
English, Spanish and German: the join pages on a phone (360×640), the client's other pages
(data rights, email reminders, the 503 and error pages, after the session) on a phone and on a
laptop (1280×720), and the call and the check-in forms (before, pulse, after), the leave dialog
and the ended screen in Spanish and German at 360×640 and 1280×720; and every page of the
therapist's and the admin's (English), the room with a client in the call included, at both
sizes.

axe-core comes from npm (`package.json`, a development dependency; `make jscheck` installs it
with `npm ci`); the test evaluates it in the page from `node_modules`. Attune never serves it.
"""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Browser, Page, expect

from server.core.models import Role
from server.keys import HUB, LIVE
from tests.browser.axe import axe_at_both_sizes, axe_violations
from tests.browser.conftest import MOBILE, BrowserHarness, LiveSite
from tests.browser.test_call_languages_browser import (
    BROWSERS,
    WORDS,
    client_in_waiting_room,
)
from tests.browser.test_foundation_flows import sign_in_with_form
from tests.browser.video_helpers import (
    MEDIA_TIMEOUT_MS,
    admit,
    grant_telehealth,
    schedule_session,
    therapist_opens_room,
    wait_for_video,
)
from tests.conftest import PASSWORD, add_account

pytestmark = pytest.mark.browser

HEADINGS = {
    "en": ("Welcome", "Continue", "Skip this check", "Your consent", "This link does not work"),
    "es": (
        "Le damos la bienvenida",
        "Continuar",
        "Omitir esta comprobación",
        "Su consentimiento",
        "Este enlace no funciona",
    ),
    "de": (
        "Willkommen",
        "Weiter",
        "Diese Prüfung überspringen",
        "Ihre Einwilligung",
        "Dieser Link funktioniert nicht",
    ),
}


@pytest.fixture
def harness(media_browser: Browser) -> BrowserHarness:
    """A headless browser with a fake camera and microphone."""
    return BrowserHarness(media_browser)


@pytest.mark.parametrize("language", ["en", "es", "de"])
async def test_the_join_pages_have_no_serious_accessibility_violations(
    live_site: LiveSite, harness: BrowserHarness, axe_source: str, language: str
) -> None:
    welcome, go_on, skip, consent, broken_link = HEADINGS[language]
    session = await schedule_session(live_site)
    page = await harness.new_page(**MOBILE, locale=language)
    found: dict[str, list[str]] = {}

    await page.goto(session.link)
    await expect(page.get_by_role("heading", name=welcome, level=1)).to_be_visible()
    await expect(page.locator("#camera-select")).to_be_enabled()
    found["devices"] = await axe_violations(page, axe_source)

    await page.get_by_role("button", name=go_on, exact=True).click()
    await page.get_by_role("button", name=skip).click()
    await expect(page.get_by_role("heading", name=consent, level=1)).to_be_visible()
    found["consent"] = await axe_violations(page, axe_source)

    await page.locator("#join-consent-telehealth").check()
    await page.locator("#consent-form button[type=submit]").click()
    await expect(page.locator("#step-safety")).to_be_visible()
    await page.locator("#safety-continue").click()  # unanswered: the error is shown too
    await expect(page.locator("#safety-error")).to_be_visible()
    found["safety check"] = await axe_violations(page, axe_source)
    await page.locator("#safety-location").fill("Home")
    await page.locator("#safety-private-yes").check()
    await page.locator("#safety-contact-name").fill("Anna")
    await page.locator("#safety-contact-phone").fill("+49 171 5551234")
    await page.locator("#safety-continue").click()
    await expect(page.locator("#step-waiting")).to_be_visible()
    found["waiting room"] = await axe_violations(page, axe_source)

    await page.goto(live_site.url("/visit/consent"))
    await expect(page.locator("#consent-telehealth")).to_be_checked()
    found["consent page"] = await axe_violations(page, axe_source)

    await page.goto(live_site.url("/join/not-a-real-link"))
    await expect(page.get_by_role("heading", name=broken_link)).to_be_visible()
    found["link problem"] = await axe_violations(page, axe_source)

    await page.goto(live_site.url("/weather"))
    found["neutral page"] = await axe_violations(page, axe_source)

    assert {step: problems for step, problems in found.items() if problems} == {}


CLIENT_PAGES = {
    "en": ("Your data", "Done", "Your session has ended"),
    "es": ("Sus datos", "Hecho", "Su sesión ha terminado"),
    "de": ("Ihre Daten", "Erledigt", "Ihre Sitzung ist beendet"),
}


@pytest.mark.parametrize("language", ["en", "es", "de"])
async def test_the_clients_other_pages_have_no_serious_accessibility_violations(
    live_site: LiveSite,
    harness: BrowserHarness,
    axe_source: str,
    language: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The data rights pages, email reminders, a reminder's stop page, the client's own
    progress, the "live sessions are unavailable" page (503), the after-session page and an
    error page, in each language, on a phone and on a laptop."""
    data, done, ended = CLIENT_PAGES[language]
    session = await schedule_session(live_site)
    page = await harness.new_page(**MOBILE, locale=language)
    await page.goto(session.link)
    found: dict[str, list[str]] = {}

    await page.goto(live_site.url("/visit/data"))
    await expect(page.get_by_role("heading", name=data, level=1)).to_be_visible()
    found["data"] = await axe_at_both_sizes(page, axe_source)
    await page.locator("#erase-confirm").check()
    await page.locator("form[action='/visit/data/erase'] button").click()
    await expect(page.get_by_role("heading", name=done, level=1)).to_be_visible()
    found["erased"] = await axe_at_both_sizes(page, axe_source)

    await page.goto(live_site.url("/visit/contact"))
    found["email reminders"] = await axe_at_both_sizes(page, axe_source)
    response = await page.goto(live_site.url("/visit/progress"))
    assert response is not None and response.status == 200
    found["own progress"] = await axe_at_both_sizes(page, axe_source)
    await page.goto(live_site.url("/email/unsubscribe/" + "A" * 43))
    found["stop reminders"] = await axe_at_both_sizes(page, axe_source)

    async def unavailable() -> bool:
        return False

    with monkeypatch.context() as patch:  # live sessions cannot start (Redis away)
        patch.setattr(live_site.app[HUB].bus, "available", unavailable)
        response = await page.goto(live_site.url("/visit"))
        assert response is not None and response.status == 503
        found["live sessions unavailable"] = await axe_at_both_sizes(page, axe_source)

    await live_site.app[LIVE].end_session(session.therapist, session.session_id)
    await page.goto(live_site.url("/visit/after"))
    await expect(page.get_by_role("heading", name=ended, level=1)).to_be_visible()
    await expect(page.locator("#after-checkin input").first).to_be_visible()
    found["after the session"] = await axe_at_both_sizes(page, axe_source)

    stranger = await harness.new_page(**MOBILE, locale=language)
    response = await stranger.goto(live_site.url("/visit/after"))
    assert response is not None and response.status == 401
    found["error page"] = await axe_at_both_sizes(stranger, axe_source)


@pytest.mark.parametrize("language", ["es", "de"])
async def test_the_call_and_the_checkins_have_no_serious_accessibility_violations(
    live_site: LiveSite, harness: BrowserHarness, axe_source: str, language: str
) -> None:
    words = WORDS[language]
    session = await schedule_session(live_site)
    await grant_telehealth(live_site, session.client_id)
    therapist = await harness.new_page()
    await therapist_opens_room(therapist, live_site, session.session_id)
    client = await harness.new_page(**MOBILE, **BROWSERS[language])
    await client_in_waiting_room(client, session, language)
    found: dict[str, list[str]] = {}

    before = client.get_by_role("form", name=words.before_title)
    await expect(before).to_be_visible()
    found["before check-in"] = await axe_at_both_sizes(client, axe_source)
    await before.get_by_role("button", name=words.send).click()  # nothing moved: a skip
    await expect(before).to_be_hidden()

    await admit(therapist, session.alias)
    await wait_for_video(client)
    code = client.get_by_role("status", name=words.safety_code, exact=True)
    await expect(code).to_have_text(re.compile(r"^\d{4} \d{4}$"), timeout=MEDIA_TIMEOUT_MS)
    found["call"] = await axe_at_both_sizes(client, axe_source)

    await therapist.get_by_role("button", name="Ask a pulse question").click()
    await expect(client.get_by_role("group", name=words.pulse_question)).to_be_visible()
    found["pulse"] = await axe_at_both_sizes(client, axe_source)
    await client.get_by_role("button", name=words.pulse_low).click()

    await client.get_by_role("button", name=words.leave, exact=True).click()
    await expect(client.get_by_role("dialog", name=words.leave_title)).to_be_visible()
    found["leave dialog"] = await axe_at_both_sizes(client, axe_source)
    await client.get_by_role("button", name=words.stay).click()

    await therapist.get_by_role("button", name="End session").click()
    ending = therapist.get_by_role("dialog", name="End the session for everyone?")
    await ending.get_by_role("button", name="Yes, end the session").click()
    await expect(client.get_by_role("heading", name=words.ended)).to_be_visible()
    found["ended"] = await axe_at_both_sizes(client, axe_source)
    await client.get_by_role("link", name=words.after_link).click()
    await expect(client.get_by_role("form", name=words.after_title)).to_be_visible()
    found["after check-in"] = await axe_at_both_sizes(client, axe_source)

    assert {step: problems for step, problems in found.items() if problems} == {}


async def _staff_page(page: Page, site: LiveSite, path: str, axe_source: str) -> list[str]:
    response = await page.goto(site.url(path))
    assert response is not None and response.status == 200, path
    return [f"{path} {problem}" for problem in await axe_at_both_sizes(page, axe_source)]


async def test_the_therapists_and_the_admins_pages_have_no_serious_accessibility_violations(
    live_site: LiveSite, harness: BrowserHarness, axe_source: str
) -> None:
    """Every page of the therapist's and the admin's (English: docs/languages.md), on a phone
    and on a laptop, the therapist's room with a client in the call included."""
    scheduled = await schedule_session(live_site)
    await grant_telehealth(live_site, scheduled.client_id)
    found: list[str] = []

    anonymous = await harness.new_page(**MOBILE)
    found += await _staff_page(anonymous, live_site, "/login", axe_source)

    therapist = await harness.new_page(**MOBILE)
    await therapist_opens_room(therapist, live_site, scheduled.session_id)
    client = await harness.new_page(**MOBILE)
    await client_in_waiting_room(client, scheduled, "en")
    await admit(therapist, scheduled.alias)
    await wait_for_video(therapist)
    found += [f"/host {p}" for p in await axe_at_both_sizes(therapist, axe_source)]
    await therapist.get_by_role("button", name="End session").click()
    for path in (
        "/dashboard",
        f"/dashboard/clients/{scheduled.client_id}",
        f"/dashboard/sessions/{scheduled.session_id}/edit",
        f"/host/{scheduled.session_id}/summary",
        "/account",
        "/account/two-factor",
        "/account/notices",
    ):
        found += await _staff_page(therapist, live_site, path, axe_source)

    await add_account(live_site.app, "admin@example.org", Role.ADMIN)
    admin = await harness.new_page(**MOBILE)
    await sign_in_with_form(admin, live_site, "admin@example.org", PASSWORD)
    for path in (
        "/admin",
        "/admin/audit",
        "/admin/holds",
        "/admin/notices",
        "/admin/purge-reports",
        "/admin/retention",
    ):
        found += await _staff_page(admin, live_site, path, axe_source)
    assert found == []

"""The join path in the client's language, in real headless Chromium on a phone (360×640).

A client whose browser asks for German walks the whole join path in German (devices,
connection check, consent, waiting room) with no English left on screen; a client who switches
to Spanish on the first page keeps Spanish on the next step and the next page.
Screenshots (phone and laptop size) go to /tmp/shots-i18n/ (outside the repository).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from playwright.async_api import Browser, Page, expect

from privacy.consent import Purpose
from server.keys import CONSENTS, DB
from tests.browser.conftest import MOBILE, PHONE_HEIGHT, PHONE_WIDTH, BrowserHarness, LiveSite
from tests.browser.video_helpers import MEDIA_TIMEOUT_MS, fits_a_phone, schedule_session

pytestmark = pytest.mark.browser

SHOTS = Path("/tmp/shots-i18n")
LAPTOP = {"width": 1280, "height": 720}
LOCALES = Path(__file__).resolve().parents[2] / "client_web" / "locales"
GERMAN_BROWSER = {**MOBILE, "locale": "de-DE", "timezone_id": "Europe/Berlin"}


def _english_sentences() -> list[str]:
    """Every translated English message of more than one word, placeholders cut off: none of
    them may be on screen when the page speaks another language."""
    found = []
    for domain in ("messages", "js"):
        with (LOCALES / f"{domain}.pot").open("rb") as handle:
            for message in read_po(handle):
                text = re.split(r"%\(|\{", str(message.id))[0].strip() if message.id else ""
                if len(text.split()) > 1:
                    found.append(text)
    return found


ENGLISH = _english_sentences()


@pytest.fixture
def harness(media_browser: Browser) -> BrowserHarness:
    """A headless browser with a fake camera and microphone."""
    return BrowserHarness(media_browser)


async def _no_english_and_fits(page: Page, name: str) -> None:
    """Nothing English in the step on screen (with the check-in form that may open in the
    waiting room), the page fits a phone; screenshots at both sizes."""
    visible = await page.locator("header").inner_text()
    for step in await page.locator("section.step, #checkin-area").all():
        if await step.is_visible():
            visible += "\n" + await step.inner_text()
    assert [sentence for sentence in ENGLISH if sentence in visible] == [], name
    await fits_a_phone(page)
    await page.screenshot(path=SHOTS / f"{name}-360.png", full_page=True)
    await page.set_viewport_size(LAPTOP)
    await page.screenshot(path=SHOTS / f"{name}-1280.png", full_page=True)
    await page.set_viewport_size({"width": PHONE_WIDTH, "height": PHONE_HEIGHT})


async def test_a_german_browser_walks_the_join_path_in_german(
    live_site: LiveSite, harness: BrowserHarness
) -> None:
    session = await schedule_session(live_site)
    page = await harness.new_page(**GERMAN_BROWSER)

    await page.goto(session.link)
    await expect(page.locator("html")).to_have_attribute("lang", "de")
    await expect(page.get_by_role("heading", name="Willkommen", level=1)).to_be_visible()
    await expect(page.get_by_role("combobox", name="Kamera", exact=True)).to_be_enabled()
    await expect(page.get_by_role("button", name="Deutsch")).to_have_attribute(
        "aria-current", "true"
    )
    # the session's start, in the client's own zone, written the German way
    await expect(page.locator("#step-devices time")).to_have_text(re.compile(r"^\d\d:\d\d MEZ$"))
    await _no_english_and_fits(page, "de-1-devices")

    await page.get_by_role("button", name="Weiter").click()
    await expect(page.get_by_role("heading", name="Ihre Verbindung wird geprüft")).to_be_visible()
    next_step = page.get_by_role("button", name="Weiter")
    await expect(next_step).to_be_enabled(timeout=MEDIA_TIMEOUT_MS)
    verdict = re.compile(r"^(Ihre Verbindung ist gut für Video\.|Das Video kann ruckeln; .*)$")
    await expect(page.get_by_role("status").filter(has_text=verdict)).to_be_visible()
    await _no_english_and_fits(page, "de-2-connection")
    await next_step.click()

    await expect(page.get_by_role("heading", name="Ihre Einwilligung", level=1)).to_be_visible()
    await expect(
        page.get_by_text("Ihre Therapeutin oder Ihren Therapeuten per Video treffen").first
    ).to_be_visible()
    optional = await page.get_by_label(re.compile(r"^Ja, ich willige ein: ")).all()
    assert len(optional) == 3
    for box in optional:
        await expect(box).not_to_be_checked()
    await _no_english_and_fits(page, "de-3-consent")
    # saying no to video is explained in German
    await page.get_by_role("button", name="Speichern und weiter").click()
    await expect(page.get_by_role("alert").filter(has_text="Videobehandlung")).to_be_visible()
    await page.get_by_label(re.compile(r"^Ich willige in die Videobehandlung ein: ")).check()
    await page.get_by_role("button", name="Speichern und weiter").click()

    # the safety check, in German too; a missing answer is explained in German
    await expect(page.get_by_role("heading", name="Bevor Sie beitreten", level=1)).to_be_visible()
    await _no_english_and_fits(page, "de-4-safety")
    await page.get_by_role("button", name="Weiter", exact=True).click()
    await expect(page.get_by_role("alert")).to_have_text("Bitte schreiben Sie, wo Sie gerade sind.")
    await page.get_by_label("Wo sind Sie gerade?").fill("Zu Hause")
    await page.get_by_label("Ja", exact=True).check()
    await page.get_by_label("Name", exact=True).fill("Anna")
    await page.get_by_label("Telefon", exact=True).fill("+49 171 5551234")
    await page.get_by_role("button", name="Weiter", exact=True).click()

    await expect(page.get_by_role("heading", name="Wartezimmer", level=1)).to_be_visible()
    await expect(page.locator("#waiting-status")).to_have_text(
        re.compile(r"^(Ihre Therapeutin oder Ihr Therapeut .*|Verbindung wird aufgebaut…)$")
    )
    await expect(page.get_by_role("button", name="Schnell verlassen")).to_be_visible()
    # no language buttons in the waiting room: a press would reload the page there
    await expect(page.get_by_role("button", name="Español")).to_be_hidden()
    await _no_english_and_fits(page, "de-5-waiting")

    # the consent record names the German text and carries its hash
    german = live_site.app[CONSENTS].catalog.get(Purpose.TELEHEALTH, 1, "de")
    async with live_site.app[DB].read() as conn:
        rows = (
            await conn.exec_driver_sql(
                "SELECT purpose, decision, notice_language, notice_sha256 FROM consent_records"
            )
        ).all()
    assert [tuple(row) for row in rows] == [("telehealth", "granted", "de", german.sha256)]
    harness.assert_no_policy_violations()


async def test_switching_to_spanish_on_the_first_page_sticks(
    live_site: LiveSite, harness: BrowserHarness
) -> None:
    session = await schedule_session(live_site)
    page = await harness.new_page(**GERMAN_BROWSER)
    await page.goto(session.link)
    await expect(page.get_by_role("heading", name="Willkommen", level=1)).to_be_visible()

    spanish = page.get_by_role("button", name="Español")
    await expect(spanish).to_have_attribute("lang", "es")
    await spanish.focus()
    await page.keyboard.press("Enter")  # keyboard alone is enough

    await expect(page.locator("html")).to_have_attribute("lang", "es")
    await expect(page.get_by_role("heading", name="Le damos la bienvenida")).to_be_visible()
    await expect(page.get_by_role("combobox", name="Cámara", exact=True)).to_be_enabled()
    await expect(page.locator("#step-devices time")).to_have_text(re.compile(r"CET$"))
    await _no_english_and_fits(page, "es-1-devices")

    # the next step is in Spanish too (its words come from the page's catalogue block)
    await page.get_by_role("button", name="Continuar").click()
    await expect(page.get_by_role("heading", name="Comprobando su conexión")).to_be_visible()
    await page.get_by_role("button", name="Omitir esta comprobación").click()
    await expect(page.get_by_role("heading", name="Su consentimiento", level=1)).to_be_visible()
    await expect(page.get_by_text("Leer el texto completo").first).to_be_visible()
    await _no_english_and_fits(page, "es-3-consent")

    # the consent page the step links to is in Spanish too
    await page.get_by_role("link", name="Todas sus decisiones de consentimiento").click()
    await expect(
        page.get_by_role("heading", name="Sus decisiones de consentimiento")
    ).to_be_visible()
    await expect(page.locator("html")).to_have_attribute("lang", "es")
    await _no_english_and_fits(page, "es-5-consent-page")

    # and so is the next page this browser opens, although it still asks for German
    other = await page.context.new_page()
    await other.goto(live_site.url("/join/not-a-real-link"))
    await expect(other.locator("html")).to_have_attribute("lang", "es")
    await expect(other.get_by_role("heading", name="Este enlace no funciona")).to_be_visible()
    harness.assert_no_policy_violations()

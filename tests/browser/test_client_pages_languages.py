"""The client's other pages in the client's language, in real headless Chromium on a phone
(360×640): a Spanish and a German client walk the data rights pages (what is kept, erase, the
"done" page), the email reminders page, a reminder's stop page and, once the session has
ended, the after-session page, and an error page (no link opened), with none of the
English words left on screen and each page fitting a phone.

Screenshots at 360×640 and 1280×720 go to /work/shots/i19pages/ (outside the repository).
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from playwright.async_api import Browser, Page, expect

from privacy.consent import Channel, ConsentDecision, Purpose
from server.keys import AUDIT, CONSENTS, DB, LIVE
from tests.browser.conftest import MOBILE, PHONE_HEIGHT, PHONE_WIDTH, BrowserHarness, LiveSite
from tests.browser.video_helpers import fits_a_phone, schedule_session

pytestmark = pytest.mark.browser

SHOTS = Path(os.environ.get("ATTUNE_SHOTS", "/work/shots/i19pages"))
LAPTOP = {"width": 1280, "height": 720}
LOCALES = Path(__file__).resolve().parents[2] / "client_web" / "locales"


def _english_sentences() -> list[str]:
    """Every English message of the server's pages of more than one word, placeholders cut off:
    none may be on screen when the page speaks another language."""
    with (LOCALES / "messages.pot").open("rb") as handle:
        ids = [m.id if isinstance(m.id, str) else m.id[0] for m in read_po(handle) if m.id]
    cut = (re.split(r"%\(", str(text))[0].strip() for text in ids)
    return [text for text in cut if len(text.split()) > 1]


ENGLISH = _english_sentences()
# A few of them by name, so that a change to the catalogue cannot empty the check unnoticed.
KNOWN_ENGLISH = (
    "Your data",
    "Download my data",
    "What the clinic must keep, and why",
    "Refusing costs you nothing and changes nothing about your care.",
    "Erase optional data",
    "Email reminders",
    "Stop email reminders?",
    "Your session has ended",
    "Thank you for today.",
    "Open your session link again.",
)
WORDS = {
    "es": {
        "data": "Sus datos",
        "download": "Descargar mis datos",
        "kept": "unos 6 años",
        "confirm": "Sí, desactivar las partes opcionales y borrar esos datos",
        "erase": "Borrar los datos opcionales",
        "done": "Hecho",
        "switched_off": "Desactivado:",
        "contact": "Recordatorios por correo",
        "no_email": "Esta consulta no envía correos electrónicos.",
        "stop": "¿Dejar de recibir recordatorios por correo?",
        "stop_button": "Dejar de recibir recordatorios",
        "ended": "Su sesión ha terminado",
        "thanks": "Gracias por hoy.",
        "no_link": "Vuelva a abrir el enlace de su sesión.",
        "start": "Volver al inicio",
        "no_link_page": "Este enlace no funciona",
    },
    "de": {
        "data": "Ihre Daten",
        "download": "Meine Daten herunterladen",
        "kept": "etwa 6 Jahre",
        "confirm": "Ja, die freiwilligen Teile ausschalten und diese Daten löschen",
        "erase": "Freiwillige Daten löschen",
        "done": "Erledigt",
        "switched_off": "Ausgeschaltet:",
        "contact": "Erinnerungen per E-Mail",
        "no_email": "Diese Praxis verschickt keine E-Mails.",
        "stop": "Erinnerungen per E-Mail abbestellen?",
        "stop_button": "Erinnerungen abbestellen",
        "ended": "Ihre Sitzung ist beendet",
        "thanks": "Danke für heute.",
        "no_link": "Bitte öffnen Sie den Link zu Ihrer Sitzung noch einmal.",
        "start": "Zurück zum Anfang",
        "no_link_page": "Dieser Link funktioniert nicht",
    },
}


@pytest.fixture
def harness(media_browser: Browser) -> BrowserHarness:
    """A headless browser with a fake camera and microphone."""
    return BrowserHarness(media_browser)


async def _shown_in(page: Page, language: str, name: str, *, leave_out: str = "") -> None:
    """The page says it is in `language`, shows no English sentence of the catalogue (outside
    `leave_out`, a part another catalogue fills), fits a phone; screenshots at both sizes."""
    await expect(page.locator("html")).to_have_attribute("lang", language)
    visible: str = await page.evaluate(
        """(leaveOut) => {
          const copy = document.body.cloneNode(true);
          copy.querySelectorAll("script" + (leaveOut ? ", " + leaveOut : "")).forEach(
            (el) => el.remove()
          );
          return copy.innerText;
        }""",
        leave_out,
    )
    assert [s for s in ENGLISH if s in visible] == [], name
    assert [s for s in KNOWN_ENGLISH if s in visible] == [], name
    await fits_a_phone(page)
    await page.screenshot(path=SHOTS / f"{name}-360.png", full_page=True)
    await page.set_viewport_size(LAPTOP)
    await page.screenshot(path=SHOTS / f"{name}-1280.png", full_page=True)
    await page.set_viewport_size({"width": PHONE_WIDTH, "height": PHONE_HEIGHT})


def test_the_english_list_holds_these_pages_sentences() -> None:
    """The check is only as good as its list."""
    for known in KNOWN_ENGLISH:
        assert any(sentence.startswith(known) for sentence in ENGLISH), known


@pytest.mark.parametrize("language", ["es", "de"])
async def test_a_client_walks_the_data_rights_and_after_session_pages_in_their_language(
    live_site: LiveSite, harness: BrowserHarness, language: str
) -> None:
    words = WORDS[language]
    session = await schedule_session(live_site)
    app = live_site.app
    consents = app[CONSENTS]
    storage = consents.catalog.current(Purpose.CHECKIN_STORAGE, language)
    await consents.decide(  # the client said yes to keeping check-ins, on their join path
        app[DB],
        app[AUDIT],
        client_id=session.client_id,
        purpose=Purpose.CHECKIN_STORAGE,
        decision=ConsentDecision.GRANTED,
        notice_version=storage.version,
        channel=Channel.PAGE,
        now=datetime.now(UTC),
        notice_language=language,
    )
    page = await harness.new_page(**MOBILE, locale=language)
    await page.goto(session.link)
    await expect(page.locator("html")).to_have_attribute("lang", language)

    # what is kept and why, the download, the erasure form
    await page.goto(live_site.url("/visit/data"))
    await expect(page.get_by_role("heading", name=words["data"], level=1)).to_be_visible()
    await expect(page.get_by_role("link", name=words["download"])).to_be_visible()
    await expect(page.get_by_text(words["kept"]).first).to_be_visible()
    await expect(page.get_by_text(storage.title)).to_be_visible()
    await _shown_in(page, language, f"{language}-data")

    await page.get_by_label(words["confirm"]).check()
    await page.get_by_role("button", name=words["erase"]).click()
    await expect(page.get_by_role("heading", name=words["done"], level=1)).to_be_visible()
    status = page.get_by_role("status")
    await expect(status).to_contain_text(f"{words['switched_off']} {storage.title}.")
    assert "checkin_storage" not in await status.inner_text()
    await _shown_in(page, language, f"{language}-erased")

    # email reminders (this clinic sends none) and a reminder's stop page
    await page.goto(live_site.url("/visit/contact"))
    await expect(page.get_by_role("heading", name=words["contact"], level=1)).to_be_visible()
    await expect(page.get_by_text(words["no_email"])).to_be_visible()
    await _shown_in(page, language, f"{language}-contact")
    await page.goto(live_site.url("/email/unsubscribe/" + "A" * 43))
    await expect(page.get_by_role("heading", name=words["stop"], level=1)).to_be_visible()
    await expect(page.get_by_role("button", name=words["stop_button"])).to_be_visible()
    await _shown_in(page, language, f"{language}-unsubscribe")

    # the session ends: the after-session page (its check-in form is checkins.js's own)
    await app[LIVE].end_session(session.therapist, session.session_id)
    await page.goto(live_site.url("/visit"))
    await expect(page).to_have_url(re.compile(r"/visit/after$"))
    await expect(page.get_by_role("heading", name=words["ended"], level=1)).to_be_visible()
    await expect(page.get_by_text(words["thanks"])).to_be_visible()
    await _shown_in(page, language, f"{language}-after", leave_out="#after-checkin")

    # a browser without the link's cookie is told what to do, in its own language
    stranger = await harness.new_page(**MOBILE, locale=language)
    await stranger.goto(live_site.url("/visit/after"))
    await expect(stranger.get_by_role("alert")).to_have_text(words["no_link"])
    await _shown_in(stranger, language, f"{language}-error")
    await stranger.get_by_role("link", name=words["start"]).click()  # to a client's start
    await expect(stranger).to_have_url(re.compile(r"/visit$"))
    await expect(stranger.get_by_role("heading", name=words["no_link_page"])).to_be_visible()
    harness.assert_no_policy_violations()

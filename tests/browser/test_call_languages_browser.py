"""The call and the check-ins in the client's language, in real headless Chromium (issue #19).

A Spanish and a German client (their browsers ask for the language) go through a call with an
English-speaking therapist: the before-session check-in in the waiting room, the call with its
controls, safety code, signals, chat and the pulse, Leave, and the after-session form. On every
screen the visible words and the screen reader's names are in the client's language (no
English message of the catalogues or the instruments is left, and known translations are
there); the live regions say what happens in that language; the therapist's FHIR export keeps
the wording the client read. Screenshots (phone and laptop size) go to /work/shots/i19call/
(outside the repository) when that folder exists.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect

from privacy.consent import Channel, ConsentDecision, Purpose
from server.keys import AUDIT, CONSENTS, DB
from tests.browser.conftest import MOBILE, PHONE_HEIGHT, PHONE_WIDTH, BrowserHarness, LiveSite
from tests.browser.test_languages_browser import ENGLISH
from tests.browser.test_video_call import STATUS_SEEN, WATCH_CALL_STATUS
from tests.browser.video_helpers import (
    MEDIA_TIMEOUT_MS,
    ScheduledSession,
    admit,
    fits_a_phone,
    grant_telehealth,
    schedule_session,
    therapist_opens_room,
    wait_for_video,
)

pytestmark = pytest.mark.browser

SHOTS = Path("/work/shots/i19call")
TAKE_SHOTS = SHOTS.is_dir()
LAPTOP = {"width": 1280, "height": 720}
BROWSERS = {
    "es": {"locale": "es-ES", "timezone_id": "Europe/Madrid"},
    "de": {"locale": "de-DE", "timezone_id": "Europe/Berlin"},
}


def _instrument_english() -> list[str]:
    """The English texts of the shipped check-ins a client reads (more than one word)."""
    found: list[str] = []
    folder = resources.files("server.core.checkins").joinpath("instruments")
    for name in ("before.json", "pulse.json", "after.json"):
        resource = json.loads(folder.joinpath(name).read_text(encoding="utf-8"))
        found.append(resource["title"])
        for item in resource["item"]:
            found.append(item["text"])
        for extension in [
            *resource["extension"],
            *(e for i in resource["item"] for e in i.get("extension", [])),
        ]:
            if "_valueString" in extension:
                found.append(extension["valueString"])
    return [text for text in found if len(text.split()) > 1]


ENGLISH_SHOWN = [*ENGLISH, *_instrument_english()]


@dataclass(frozen=True)
class Words:
    """What the client's page says in one language (the test's own expectations)."""

    waiting: str
    before_title: str
    send: str
    thanks: str
    controls: str
    mute: str
    camera_off: str
    leave: str
    quick_exit: str
    timer: str
    safety_code: str
    need_a_moment: str
    signal_sent: str
    therapist_video: str
    own_camera: str
    messages: str
    therapist_says: str
    pulse_question: str
    reconnecting: str
    therapist_reconnecting: str
    pulse_low: str
    leave_title: str
    stay: str
    ended: str
    after_link: str
    after_title: str
    rupture: str
    a_little: str
    talked_through: str


WORDS = {
    "es": Words(
        waiting="Su terapeuta sabe que usted está aquí.",
        before_title="Antes de la sesión: su última semana",
        send="Enviar a mi terapeuta",
        thanks="Gracias. Sus respuestas han llegado a su terapeuta.",
        controls="Controles de la llamada",
        mute="Silenciar el micrófono",
        camera_off="Apagar la cámara",
        leave="Salir",
        quick_exit="Salida rápida",
        timer="Tiempo de sesión",
        safety_code="Código de seguridad",
        need_a_moment="Necesito un momento",
        signal_sent="Enviado a su terapeuta: «Necesito un momento».",
        therapist_video="Vídeo de su terapeuta",
        own_camera="Su propia cámara",
        messages="Mensajes",
        therapist_says="Su terapeuta: ",
        pulse_question="¿Cómo va esto para usted en este momento?",
        reconnecting="Volviendo a conectar…",
        therapist_reconnecting="Su terapeuta se está volviendo a conectar…",
        pulse_low="1 – Mal",
        leave_title="¿Salir de la sesión?",
        stay="Quedarme",
        ended="Su sesión ha terminado",
        after_link="Cuéntele a su terapeuta cómo fue la sesión de hoy",
        after_title="Después de la sesión",
        rupture=(
            "¿Hubo algún momento de incomodidad, de malentendido o de desacuerdo con su terapeuta?"
        ),
        a_little="Un poco",
        talked_through="¿Pudieron hablarlo?",
    ),
    "de": Words(
        waiting="Ihre Therapeutin oder Ihr Therapeut weiß, dass Sie da sind.",
        before_title="Vor der Sitzung: Ihre letzte Woche",
        send="An meine Therapeutin oder meinen Therapeuten senden",
        thanks=(
            "Danke. Ihre Antworten sind bei Ihrer Therapeutin oder Ihrem Therapeuten angekommen."
        ),
        controls="Anrufsteuerung",
        mute="Mikrofon stummschalten",
        camera_off="Kamera ausschalten",
        leave="Verlassen",
        quick_exit="Schnell verlassen",
        timer="Zeit in der Sitzung",
        safety_code="Sicherheitscode",
        need_a_moment="Ich brauche einen Moment",
        signal_sent=(
            "An Ihre Therapeutin oder Ihren Therapeuten gesendet: „Ich brauche einen Moment“."
        ),
        therapist_video="Video Ihrer Therapeutin oder Ihres Therapeuten",
        own_camera="Ihre eigene Kamera",
        messages="Nachrichten",
        therapist_says="Ihre Therapeutin oder Ihr Therapeut: ",
        pulse_question="Wie geht es Ihnen gerade mit dem Gespräch?",
        reconnecting="Verbindung wird wiederhergestellt…",
        therapist_reconnecting="Ihre Therapeutin oder Ihr Therapeut verbindet sich neu…",
        pulse_low="1 – Nicht gut",
        leave_title="Sitzung verlassen?",
        stay="Bleiben",
        ended="Ihre Sitzung ist beendet",
        after_link=(
            "Sagen Sie Ihrer Therapeutin oder Ihrem Therapeuten, wie die heutige Sitzung war"
        ),
        after_title="Nach der Sitzung",
        rupture=(
            "Gab es einen Moment, in dem Sie sich unwohl, missverstanden oder uneins mit Ihrer "
            "Therapeutin oder Ihrem Therapeuten gefühlt haben?"
        ),
        a_little="Ein wenig",
        talked_through="Konnten Sie darüber sprechen?",
    ),
}
# Every accessible name and live text on the client's page, gathered in the page.
NAMES_AND_LABELS = """
() => {
  const root = document.getElementById("visit");
  const out = [];
  for (const el of root.querySelectorAll("[aria-label], [title], [placeholder]")) {
    for (const name of ["aria-label", "title", "placeholder"]) {
      const value = el.getAttribute(name);
      if (value) out.push(value);
    }
  }
  return out.join("\\n");
}
"""


@pytest.fixture
def harness(media_browser: Browser) -> BrowserHarness:
    """A headless browser with a fake camera and microphone."""
    return BrowserHarness(media_browser)


async def grant_checkin_storage(site: LiveSite, client_id: str) -> None:
    """The optional consent that keeps check-in answers (so the export has them)."""
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


async def client_in_waiting_room(page: Page, session: ScheduledSession, language: str) -> None:
    """The client's way in, in their language (the consent is already given): device check,
    connection check skipped, safety check, waiting room."""
    await page.goto(session.link)
    await expect(page.locator("html")).to_have_attribute("lang", language)
    await expect(page.locator("#camera-select")).to_be_enabled()
    await page.locator("#devices-continue").click()
    await page.locator("#network-skip").click()
    await expect(page.locator("#step-safety")).to_be_visible()
    await page.locator("#safety-location").fill("Calle Mayor 5" if language == "es" else "Zu Hause")
    await page.locator("#safety-private-yes").check()
    await page.locator("#safety-contact-name").fill("Ana")
    await page.locator("#safety-contact-phone").fill("+34 600 123 456")
    await page.locator("#safety-continue").click()
    await expect(page.locator("#step-waiting")).to_be_visible()


async def visible_words(page: Page) -> str:
    """The text on screen (the client's page without the shared goals, which are not
    translated yet) plus every accessible name and label."""
    shown = ""
    for part in await page.locator("#visit > section, #visit > .card, main > section").all():
        if await part.is_visible():
            shown += "\n" + await part.inner_text()
    goals = page.locator("#goals")
    if await goals.is_visible():
        shown = shown.replace(await goals.inner_text(), "")
    names: str = (
        await page.evaluate(NAMES_AND_LABELS) if await page.locator("#visit").count() else ""
    )
    return f"{shown}\n{names}"


async def no_english(page: Page, where: str) -> None:
    """No English message of the catalogues or the instruments on screen or in a name."""
    words = await visible_words(page)
    assert [sentence for sentence in ENGLISH_SHOWN if sentence in words] == [], where


async def screenshots(page: Page, name: str) -> None:
    """The page as its user sees it, at phone and laptop size (when the folder exists)."""
    if not TAKE_SHOTS:
        return
    await page.screenshot(path=SHOTS / f"{name}-360.png", full_page=True)
    await page.set_viewport_size(LAPTOP)
    await page.screenshot(path=SHOTS / f"{name}-1280.png", full_page=True)
    await page.set_viewport_size({"width": PHONE_WIDTH, "height": PHONE_HEIGHT})


@pytest.mark.parametrize("language", ["es", "de"])
async def test_a_client_goes_through_the_call_and_the_checkins_in_their_own_language(
    live_site: LiveSite, harness: BrowserHarness, language: str
) -> None:
    words = WORDS[language]
    session = await schedule_session(live_site)
    await grant_telehealth(live_site, session.client_id)
    await grant_checkin_storage(live_site, session.client_id)
    therapist = await harness.new_page()
    await therapist_opens_room(therapist, live_site, session.session_id)
    client = await harness.new_page(**MOBILE, **BROWSERS[language])
    await client_in_waiting_room(client, session, language)

    # the waiting room's live region says the therapist knows, in the client's language
    await expect(client.get_by_role("status").filter(has_text=words.waiting)).to_be_visible()
    # the before-session check-in in the waiting room (a polite live region), by keyboard
    await expect(client.locator("#checkin-area")).to_have_attribute("aria-live", "polite")
    form = client.get_by_role("form", name=words.before_title)
    await expect(form).to_be_visible()
    await no_english(client, "before check-in")
    await fits_a_phone(client)
    await screenshots(client, f"{language}-1-before-checkin")
    first = form.get_by_role("slider").first
    await first.focus()
    await client.keyboard.press("ArrowRight")
    await expect(first).to_have_attribute("aria-valuetext", re.compile(r"^6 (de|von) 10$"))
    await form.get_by_role("button", name=words.send).click()
    await expect(client.get_by_role("status").filter(has_text=words.thanks)).to_be_visible()

    # into the call
    await admit(therapist, session.alias)
    await wait_for_video(client)
    await wait_for_video(therapist)
    controls = client.get_by_role("group", name=words.controls)
    await expect(controls.get_by_role("button", name=words.mute)).to_be_visible()
    await expect(controls.get_by_role("button", name=words.camera_off)).to_be_visible()
    await expect(controls.get_by_role("button", name=words.leave, exact=True)).to_be_visible()
    await expect(controls.get_by_role("button", name=words.quick_exit)).to_be_visible()
    await expect(client.get_by_role("timer", name=words.timer)).to_have_text(
        re.compile(r"^\d+:\d\d$")
    )
    await expect(client.get_by_label(words.therapist_video, exact=True)).to_be_attached()
    await expect(client.get_by_label(words.own_camera, exact=True)).to_be_attached()
    code = client.get_by_role("status", name=words.safety_code, exact=True)
    await expect(code).to_have_text(re.compile(r"^\d{4} \d{4}$"), timeout=MEDIA_TIMEOUT_MS)
    await no_english(client, "call")
    await fits_a_phone(client)
    await screenshots(client, f"{language}-2-call")

    # a signal: the live region under the buttons says it went, in the client's language
    await client.get_by_role("button", name=words.need_a_moment).click()
    await expect(client.get_by_role("status").filter(has_text=words.signal_sent)).to_be_visible()
    panel = therapist.get_by_role("complementary", name="Private panel")
    await expect(panel.get_by_text("Client: “I need a moment”").first).to_be_visible()

    # chat: the log names the therapist the client's way
    await therapist.get_by_label("Message", exact=True).fill("Hola / Hallo")
    await therapist.get_by_label("Message", exact=True).press("Enter")
    log = client.get_by_role("log", name=words.messages)
    await expect(log).to_contain_text(f"{words.therapist_says}Hola / Hallo")

    # the call's status line (a live region) says what happens when a connection drops
    await client.evaluate(WATCH_CALL_STATUS)
    await client.evaluate("window.__attune.connection.socket.close(4000, 'test: network drop')")
    await client.wait_for_function(STATUS_SEEN, arg=words.reconnecting, polling="raf")
    await client.wait_for_function("() => window.__attune.connection.state === 'open'")
    await therapist.evaluate("window.__attune.connection.socket.close(4000, 'test: drop')")
    await client.wait_for_function(STATUS_SEEN, arg=words.therapist_reconnecting, polling="raf")
    await therapist.wait_for_function("() => window.__attune.connection.state === 'open'")
    await expect(client.locator("#call-status")).to_have_attribute("role", "status")
    await expect(client.locator("#call-status")).to_have_text("")

    # the pulse: a one-tap question whose buttons have names in the client's language
    await therapist.get_by_role("button", name="Ask a pulse question").click()
    pulse = client.get_by_role("group", name=words.pulse_question)
    await expect(pulse).to_be_visible()
    await expect(client.locator("#checkin-area")).to_have_attribute("aria-live", "polite")
    await no_english(client, "pulse")
    await screenshots(client, f"{language}-3-pulse")
    await pulse.get_by_role("button", name=words.pulse_low).click()
    await expect(client.get_by_role("status").filter(has_text=words.thanks)).to_be_visible()
    await expect(panel.get_by_role("heading", name="Pulse check-in: Pulse 1/5")).to_be_visible()

    # Leave asks first, in the client's language; staying keeps the call
    await controls.get_by_role("button", name=words.leave, exact=True).click()
    dialog = client.get_by_role("dialog", name=words.leave_title)
    await expect(dialog).to_be_visible()
    await no_english(client, "leave dialog")
    await dialog.get_by_role("button", name=words.stay).click()
    await expect(dialog).to_be_hidden()

    # the end, and the after-session form on its own page
    await therapist.get_by_role("button", name="End session").click()
    ending = therapist.get_by_role("dialog", name="End the session for everyone?")
    await ending.get_by_role("button", name="Yes, end the session").click()
    await expect(client.get_by_role("heading", name=words.ended)).to_be_visible()
    await no_english(client, "ended")
    await client.get_by_role("link", name=words.after_link).click()
    await expect(client.locator("html")).to_have_attribute("lang", language)
    after = client.get_by_role("form", name=words.after_title)
    await expect(after).to_be_visible()
    await no_english(client, "after")
    await fits_a_phone(client)
    await screenshots(client, f"{language}-4-after")
    rupture = after.get_by_role("group", name=words.rupture)
    await rupture.get_by_label(words.a_little, exact=True).check()
    await expect(after.get_by_role("group", name=words.talked_through)).to_be_visible()
    await after.get_by_role("button", name=words.send).click()
    await expect(client.get_by_role("status").filter(has_text=words.thanks)).to_be_visible()

    # the therapist's FHIR export keeps the wording the client read, and says in which language
    response = await therapist.request.get(
        live_site.url(f"/api/v1/clients/{session.client_id}/checkins?format=fhir")
    )
    assert response.ok
    bundle: dict[str, Any] = await response.json()
    answered = {
        entry["resource"]["questionnaire"].split("/")[-1].split("|")[0]: entry["resource"]
        for entry in bundle["entry"]
        if entry["resource"]["resourceType"] == "QuestionnaireResponse"
    }
    assert set(answered) == {"before", "pulse", "after"}
    assert {r["language"] for r in answered.values()} == {language}
    pulse_item = answered["pulse"]["item"][0]
    assert (pulse_item["text"], pulse_item["answer"]) == (
        words.pulse_question,
        [{"valueInteger": 1}],
    )
    after_items = {item["linkId"]: item for item in answered["after"]["item"]}
    assert after_items["rupture"]["text"] == words.rupture
    assert after_items["rupture"]["answer"][0]["valueCoding"]["display"] == words.a_little
    harness.assert_no_policy_violations()

"""Client pages in the client's language: chosen on the first page, else Accept-Language, else
the clinic's default; the consent record keeps the language and hash of the notice shown."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from privacy.consent import Purpose
from server.app import create_app
from server.keys import CONSENTS, DB
from server.settings import Settings
from tests.conftest import FakeClock, add_account, sign_in


async def _schedule(client: TestClient, starts_at: str = "2026-11-23T09:05:00Z") -> str:
    """A therapist schedules a session; returns its invite token (the therapist signs out)."""
    await add_account(client.app, "t@example.org")
    csrf = await sign_in(client, "t@example.org")
    headers = {"X-CSRF-Token": csrf}
    created = await (
        await client.post("/api/v1/clients", json={"alias": "J.M."}, headers=headers)
    ).json()
    body = await (
        await client.post(
            "/api/v1/sessions",
            json={"client_id": created["id"], "starts_at": starts_at},
            headers=headers,
        )
    ).json()
    client.session.cookie_jar.clear(lambda c: c.key == "attune")  # the client has no account
    return str(body["join_url"].split("/join/")[1])


async def _join(client: TestClient, **headers: str) -> str:
    """Open the link and land on the join page; returns its HTML."""
    token = await _schedule(client)
    await client.get(f"/join/{token}", headers=headers)
    response = await client.get("/visit", headers=headers)
    assert response.status == 200
    return await response.text()


def _lang(page: str) -> str:
    match = re.search(r'<html lang="([a-z]+)" dir="ltr">', page)
    assert match, page[:200]
    return match.group(1)


def _js_messages(page: str) -> dict[str, str]:
    match = re.search(r'<script type="application/json" id="i18n-messages">(.*?)</script>', page)
    return json.loads(match.group(1)) if match else {}


def _csrf(page: str) -> str:
    match = re.search(r'name="csrf-token" content="([^"]+)"', page)
    assert match
    return match.group(1)


@pytest.mark.parametrize(
    ("accept_language", "lang", "title", "waiting_room", "js_key", "js_text", "time_text"),
    [
        (
            "de-DE,de;q=0.9,en;q=0.5",
            "de",
            "Willkommen",
            "Wartezimmer",
            "Your connection is good for video.",
            "Ihre Verbindung ist gut für Video.",
            "09:05 UTC",
        ),
        (
            "es-MX,es;q=0.8",
            "es",
            "Le damos la bienvenida",
            "Sala de espera",
            "Your connection is good for video.",
            "Su conexión es buena para el vídeo.",
            "9:05 UTC",  # CLDR: Spanish writes hours without a leading zero
        ),
    ],
)
async def test_the_join_page_speaks_the_browsers_language(
    client: TestClient,
    accept_language: str,
    lang: str,
    title: str,
    waiting_room: str,
    js_key: str,
    js_text: str,
    time_text: str,
) -> None:
    page = await _join(client, **{"Accept-Language": accept_language})
    assert _lang(page) == lang
    assert f'<h1 id="visit-title" tabindex="-1">{title}</h1>' in page
    assert f'<h1 id="waiting-title">{waiting_room}</h1>' in page
    assert "Welcome" not in page and "Waiting room" not in page
    # the browser modules' strings come in the page, nothing is fetched for them
    assert _js_messages(page)[js_key] == js_text
    # the session's time is in the page's language too (Babel), for the browser to localise
    assert f'<time datetime="2026-11-23T09:05:00Z" data-local="time">{time_text}</time>' in page


async def test_an_english_browser_gets_english_and_no_catalogue_block(client: TestClient) -> None:
    page = await _join(client, **{"Accept-Language": "en-GB,en;q=0.9"})
    assert _lang(page) == "en"
    assert "Welcome" in page and _js_messages(page) == {}


async def test_the_clients_choice_sticks_for_the_next_page_over_accept_language(
    client: TestClient,
) -> None:
    german = {"Accept-Language": "de"}
    page = await _join(client, **german)
    assert _lang(page) == "de"
    # the buttons name each language in that language, the current one marked
    assert re.search(r'value="de" lang="de" class="link-button" aria-current="true">Deutsch', page)
    assert 'value="es" lang="es" class="link-button">Español' in page
    chosen = await client.post(
        "/language",
        data={"lang": "es", "next": "/visit", "csrf_token": _csrf(page)},
        headers=german,
        allow_redirects=False,
    )
    assert chosen.status == 303 and chosen.headers["Location"] == "/visit"
    cookie = chosen.cookies["attune-lang"]
    assert cookie.value == "es" and cookie["httponly"] and cookie["samesite"] == "Strict"
    assert not cookie["max-age"] and not cookie["expires"]  # ends with the browser session
    again = await (await client.get("/visit", headers=german)).text()
    assert _lang(again) == "es" and "Sala de espera" in again
    # the link-problem page of the same browser follows the choice too
    problem = await client.get("/join/not-a-real-token", headers=german)
    assert problem.status == 404
    assert "Este enlace no funciona" in await problem.text()


async def test_choosing_a_language_needs_the_pages_token_and_an_offered_language(
    client: TestClient,
) -> None:
    page = await _join(client)
    refused = await client.post("/language", data={"lang": "es", "next": "/visit"})
    assert refused.status == 403  # the client cookie's CSRF token is missing
    for lang in ("fr", "", "ES", "es-MX"):
        bad = await client.post(
            "/language",
            data={"lang": lang, "next": "/visit", "csrf_token": _csrf(page)},
            allow_redirects=False,
        )
        assert bad.status == 422, lang  # InvalidInput
    elsewhere = await client.post(
        "/language",
        data={"lang": "de", "next": "https://evil.example/", "csrf_token": _csrf(page)},
        allow_redirects=False,
    )
    assert elsewhere.status == 303 and elsewhere.headers["Location"] == "/visit"


async def test_pages_not_yet_translated_stay_english_and_say_so(client: TestClient) -> None:
    login = await (await client.get("/login", headers={"Accept-Language": "de"})).text()
    assert _lang(login) == "en" and "Skip to content" in login
    assert "language-switcher" not in login


async def test_too_early_and_link_problem_pages_in_german_with_a_german_date(
    client: TestClient,
) -> None:
    token = await _schedule(client, starts_at="2026-11-23T10:00:00Z")  # now is 09:00
    response = await client.get(f"/join/{token}", headers={"Accept-Language": "de"})
    assert response.status == 403
    page = await response.text()
    assert _lang(page) == "de" and "Es ist noch etwas früh" in page
    assert 'data-local="datetime">Mo., 23. Nov. 2026, 10:00 UTC</time>' in page
    assert "Dieser Link öffnet um" in page


async def test_error_pages_on_translated_routes_are_translated(client: TestClient) -> None:
    page = await (
        await client.post("/language", data={"lang": "xx"}, headers={"Accept-Language": "es"})
    ).text()
    assert _lang(page) == "es" and "Algo no ha ido bien" in page
    assert "Elija uno de los idiomas disponibles." in page  # the error's own words, translated
    # a message made from what was sent is escaped, never taken as markup
    odd = await client.post(
        "/language", data={"<b>odd</b>": "x" * 5000}, headers={"Accept-Language": "es"}
    )
    text = await odd.text()
    assert odd.status == 422 and "&lt;b&gt;odd&lt;/b&gt;" in text and "<b>odd" not in text


async def test_the_neutral_page_follows_the_language(client: TestClient) -> None:
    page = await (await client.get("/weather", headers={"Accept-Language": "es"})).text()
    assert _lang(page) == "es"
    assert "<h1>El tiempo</h1>" in page
    assert "Hoy · lunes, 23 de noviembre" in page  # the clock says Monday 23 November
    assert '<span class="day">martes</span> <span class="sky">Intervalos de sol</span>' in page


@pytest.fixture
def german_clinic(tmp_path: Path, clock: FakeClock) -> web.Application:
    return create_app(Settings(data_dir=tmp_path / "data", default_language="de"), clock=clock)


async def test_without_a_choice_or_a_known_browser_language_the_clinic_default_applies(
    aiohttp_client: Any, german_clinic: web.Application
) -> None:
    client = await aiohttp_client(german_clinic)
    page = await _join(client, **{"Accept-Language": "fr-FR,fr;q=0.9"})
    assert _lang(page) == "de" and "Wartezimmer" in page


async def test_the_consent_record_keeps_the_language_and_hash_of_the_text_shown(
    client: TestClient,
) -> None:
    spanish = {"Accept-Language": "es"}
    page = await _join(client, **spanish)
    items = (await (await client.get("/api/v1/visit/consents", headers=spanish)).json())["items"]
    telehealth = next(item for item in items if item["purpose"] == "telehealth")
    notice = client.app[CONSENTS].catalog.get(Purpose.TELEHEALTH, 1, "es")
    english = client.app[CONSENTS].catalog.get(Purpose.TELEHEALTH, 1, "en")
    assert telehealth["notice"]["language"] == "es"
    assert telehealth["notice"]["title"] == "Reunirse con su terapeuta por vídeo"
    assert telehealth["notice"]["sha256"] == notice.sha256 != english.sha256

    granted = await client.post(
        "/api/v1/visit/consents",
        json={
            "purpose": "telehealth",
            "decision": "granted",
            "notice_version": 1,
            "notice_language": "es",
        },
        headers={"X-CSRF-Token": _csrf(page), **spanish},
    )
    assert granted.status == 201
    body = await granted.json()
    assert body["notice_language"] == "es" and body["notice_sha256"] == notice.sha256

    # what is stored is what was shown
    async with client.app[DB].read() as conn:
        rows = (
            await conn.exec_driver_sql(
                "SELECT purpose, notice_version, notice_language, notice_sha256"
                " FROM consent_records"
            )
        ).all()
    assert [tuple(row) for row in rows] == [("telehealth", 1, "es", notice.sha256)]
    receipt = await (await client.get("/api/v1/visit/consents/receipt")).json()
    (entry,) = receipt["records"]
    assert entry["notice_language"] == "es"
    assert entry["notice_title"] == "Reunirse con su terapeuta por vídeo"
    # and the state is "granted" whatever language the client reads in next
    german = await (
        await client.get("/api/v1/visit/consents", headers={"Accept-Language": "de"})
    ).json()
    state = {item["purpose"]: item for item in german["items"]}["telehealth"]
    assert state["state"] == "granted" and state["notice"]["language"] == "de"


async def test_a_decision_without_a_language_records_the_one_this_request_is_shown(
    client: TestClient,
) -> None:
    german = {"Accept-Language": "de"}
    page = await _join(client, **german)
    granted = await client.post(
        "/api/v1/visit/consents",
        json={"purpose": "telehealth", "decision": "granted", "notice_version": 1},
        headers={"X-CSRF-Token": _csrf(page), **german},
    )
    body = await granted.json()
    notice = client.app[CONSENTS].catalog.get(Purpose.TELEHEALTH, 1, "de")
    assert body["notice_language"] == "de" and body["notice_sha256"] == notice.sha256
    unknown = await client.post(
        "/api/v1/visit/consents",
        json={
            "purpose": "cue_analysis",
            "decision": "granted",
            "notice_version": 1,
            "notice_language": "fr",
        },
        headers={"X-CSRF-Token": _csrf(page)},
    )
    assert unknown.status in (400, 422)  # refused by the schema


async def _therapist_sets_language(client: TestClient, language: str) -> int:
    """The therapist (signed in again) sets the client's language on the client's page."""
    csrf = await sign_in(client, "t@example.org")
    clients = await (await client.get("/api/v1/clients")).json()
    client_id = clients["items"][0]["id"] if "items" in clients else clients[0]["id"]
    page = await (await client.get(f"/dashboard/clients/{client_id}")).text()
    assert '<select id="client-language" name="language">' in page
    response = await client.post(
        f"/dashboard/clients/{client_id}/language",
        data={"language": language, "csrf_token": csrf},
        allow_redirects=False,
    )
    client.session.cookie_jar.clear(lambda c: c.key == "attune")
    return response.status


async def test_the_therapists_setting_comes_after_the_clients_own_choice(
    client: TestClient,
) -> None:
    spanish_browser = {"Accept-Language": "es"}
    assert _lang(await _join(client, **spanish_browser)) == "es"
    assert await _therapist_sets_language(client, "de") == 303
    # the client's browser asks for Spanish, but their language is set to German
    page = await (await client.get("/visit", headers=spanish_browser)).text()
    assert _lang(page) == "de"
    # the client's own choice on the page wins, and is remembered for the client
    await client.post(
        "/language",
        data={"lang": "en", "next": "/visit", "csrf_token": _csrf(page)},
        headers=spanish_browser,
    )
    client.session.cookie_jar.clear(lambda c: c.key == "attune-lang")  # a new browser session
    again = await (await client.get("/visit", headers=spanish_browser)).text()
    assert _lang(again) == "en"
    # cleared: the browser's language again
    assert await _therapist_sets_language(client, "") == 303
    cleared = await (await client.get("/visit", headers=spanish_browser)).text()
    assert _lang(cleared) == "es"
    assert await _therapist_sets_language(client, "fr") == 422
    async with client.app[DB].read() as conn:
        actions = (
            await conn.exec_driver_sql(
                "SELECT actor, details FROM audit_log WHERE action = 'client.language' ORDER BY seq"
            )
        ).all()
    assert [
        (actor.split(":")[0], json.loads(details).get("language")) for actor, details in actions
    ] == [
        ("account", "de"),
        ("client", "en"),
        ("account", None),
    ]


async def test_the_consent_page_and_receipt_follow_the_language_and_record_the_text_shown(
    client: TestClient,
) -> None:
    german = {"Accept-Language": "de"}
    await _join(client, **german)
    page = await (await client.get("/visit/consent", headers=german)).text()
    assert _lang(page) == "de" and '<h1 id="consent-title">Ihre Einwilligungen</h1>' in page
    assert "Ich willige in die Videobehandlung ein: Ihre Therapeutin oder Ihren" in page
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert csrf and 'name="language_telehealth" value="de"' in page
    saved = await client.post(
        "/visit/consent",
        data={
            "csrf_token": csrf.group(1),
            "grant": ["telehealth"],
            "version_telehealth": "1",
            "language_telehealth": "de",
        },
        headers=german,
        allow_redirects=False,
    )
    assert saved.status == 303
    receipt = await (await client.get("/visit/consent/receipt", headers=german)).text()
    assert _lang(receipt) == "de" and "Ihr Beleg der Einwilligungen" in receipt
    german_notice = client.app[CONSENTS].catalog.get(Purpose.TELEHEALTH, 1, "de")
    assert f'v1 (de) <span class="mono hint">{german_notice.sha256[:12]}…' in receipt
    assert "<td>erteilt</td>" in receipt


@pytest.mark.parametrize(
    ("language", "words"),
    [
        ("de", "Der Text hat sich geändert, seit Sie ihn gelesen haben."),
        ("es", "El texto ha cambiado desde que lo leyó."),
        ("en", "The notice has changed since you read it."),
    ],
)
async def test_the_client_apis_error_messages_come_in_the_clients_language(
    client: TestClient, language: str, words: str
) -> None:
    """Pages show these messages as they are; the code stays the same for the scripts."""
    browser = {"Accept-Language": language}
    page = await _join(client, **browser)
    stale = await client.post(
        "/api/v1/visit/consents",
        json={"purpose": "telehealth", "decision": "granted", "notice_version": 99},
        headers={"X-CSRF-Token": _csrf(page), **browser},
    )
    assert stale.status == 409
    error = (await stale.json())["error"]
    assert error["message"].startswith(words) and error["code"] == "conflict"


@pytest.mark.parametrize(
    ("language", "kept", "switched_off", "deleted"),
    [
        (
            "de",
            "etwa 6 Jahre lang aufbewahrt",
            "Ausgeschaltet:",
            "0 gespeicherte Einträge gelöscht",
        ),
        ("es", "se conservan unos 6 años", "Desactivado:", "Se han borrado 0 registros guardados"),
    ],
)
async def test_the_data_rights_pages_follow_the_clients_language(
    client: TestClient, language: str, kept: str, switched_off: str, deleted: str
) -> None:
    browser = {"Accept-Language": language}
    page = await _join(client, **browser)
    csrf = _csrf(page)
    storage = client.app[CONSENTS].catalog.current(Purpose.CHECKIN_STORAGE, language)
    granted = await client.post(
        "/api/v1/visit/consents",
        json={
            "purpose": "checkin_storage",
            "decision": "granted",
            "notice_version": storage.version,
            "notice_language": language,
        },
        headers={"X-CSRF-Token": csrf, **browser},
    )
    assert granted.status == 201
    data = await (await client.get("/visit/data", headers=browser)).text()
    assert _lang(data) == language and kept in data
    assert f'<span lang="{language}">{storage.title}</span>' in data
    assert "about 6 years" not in data and "What the clinic must keep" not in data
    done = await client.post(
        "/visit/data/erase", data={"csrf_token": csrf, "confirm": "yes"}, headers=browser
    )
    text = await done.text()
    assert done.status == 200 and _lang(text) == language
    assert f'{switched_off} <span lang="{language}">{storage.title}</span>.' in text
    assert deleted in text and "checkin_storage" not in text and "Deleted" not in text


async def test_a_page_refused_before_its_handler_still_speaks_the_clients_language(
    client: TestClient,
) -> None:
    german = {"Accept-Language": "de"}
    await _join(client, **german)
    refused = await client.post("/visit/data/erase", data={"confirm": "yes"}, headers=german)
    text = await refused.text()
    assert refused.status == 403 and _lang(text) == "de"  # no CSRF token: refused early
    assert "Das Sicherheitsmerkmal der Seite fehlt oder stimmt nicht" in text
    assert "CSRF" not in text
    # "back to the start" leads a client to their visit, never to the staff sign-in
    assert '<a href="/visit">Zurück zum Anfang</a>' in text
    staff = await (await client.get("/dashboard/nothing-here", headers=german)).text()
    assert '<a href="/">Back to the start</a>' in staff and _lang(staff) == "en"

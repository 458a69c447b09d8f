"""Quick exit: the client leaves at once for a neutral page; the therapist sees a safety
notice, not a dropped connection; nothing is held for resume."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from aiohttp.test_utils import TestClient

from server.app import create_app
from server.settings import Settings
from tests.conftest import FakeClock
from tests.integration.test_signaling import _admitted, _setup


async def test_a_client_who_quick_exits_the_call_is_a_safety_notice_for_the_therapist(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, visitor, _ = await _setup(client, aiohttp_client)
    welcome = await _admitted(therapist, visitor)
    await visitor.send({"type": "leave", "reason": "quick-exit"})
    left = await therapist.expect("peer-left")
    assert left["reconnecting"] is False  # not "reconnecting…": they chose to go
    notice = await therapist.expect("quick-exit")
    assert notice == {"type": "quick-exit", "label": "J.M.", "in_call": True}
    assert visitor.ws is not None
    await visitor.ws.close()  # the page closes normally right after
    again = await visitor.connect(resume=welcome["resume_token"])
    assert again["state"] == "waiting"  # the old place is gone: back only through admission


async def test_a_waiting_client_who_quick_exits_leaves_the_lobby_with_a_notice(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, visitor, _ = await _setup(client, aiohttp_client)
    await therapist.connect()
    await visitor.connect()
    lobby = await therapist.expect("lobby")
    while not lobby["waiting"]:
        lobby = await therapist.expect("lobby")
    await visitor.send({"type": "leave", "reason": "quick-exit"})
    notice = await therapist.expect("quick-exit")
    assert notice == {"type": "quick-exit", "label": "J.M.", "in_call": False}
    assert (await therapist.expect("lobby"))["waiting"] == []


async def test_a_therapist_cannot_send_a_quick_exit_and_a_bad_reason_is_an_error(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, visitor, _ = await _setup(client, aiohttp_client)
    await _admitted(therapist, visitor)
    await therapist.send({"type": "leave", "reason": "quick-exit"})
    assert (await therapist.expect("error"))["code"] == "forbidden"
    await visitor.send({"type": "leave", "reason": "bored"})
    assert (await visitor.expect("error"))["code"] == "invalid"
    assert visitor.ws is not None and therapist.ws is not None
    assert not visitor.ws.closed and not therapist.ws.closed


async def test_the_neutral_page_looks_like_a_weather_page_and_nothing_like_attune(
    client: TestClient,
) -> None:
    response = await client.get("/weather")
    assert response.status == 200
    body = await response.text()
    assert "<title>Weather</title>" in body
    assert "attune" not in body.lower()
    assert "session" not in body.lower() and "therap" not in body.lower()
    assert not re.search(r"(src|href)=\"(https?:)?//", body)  # nothing from elsewhere
    assert "Set-Cookie" not in response.headers


async def test_the_visit_page_carries_the_quick_exit_address_and_its_buttons(
    client: TestClient, aiohttp_client: Any
) -> None:
    _, visitor, _ = await _setup(client, aiohttp_client)
    page = await (await visitor.http.get("/visit")).text()
    assert 'data-quick-exit-url="/weather"' in page
    assert page.count("data-quick-exit ") == 3  # the safety check's, the waiting room's, the call's


async def test_a_configured_quick_exit_address_reaches_the_visit_page(
    aiohttp_client: Any, settings: Settings, clock: FakeClock
) -> None:
    app = create_app(replace(settings, quick_exit_url="https://news.example/"), clock=clock)
    therapist_http = await aiohttp_client(app)
    _, visitor, _ = await _setup(therapist_http, aiohttp_client)
    page = await (await visitor.http.get("/visit")).text()
    assert 'data-quick-exit-url="https://news.example/"' in page


async def test_the_therapists_room_shows_the_clinics_emergency_number_when_one_is_set(
    aiohttp_client: Any, settings: Settings, clock: FakeClock
) -> None:
    app = create_app(replace(settings, clinic_emergency_number="+49 30 112"), clock=clock)
    http = await aiohttp_client(app)
    therapist, _, _ = await _setup(http, aiohttp_client)
    page = await (await http.get(f"/host/{therapist.session_id}")).text()
    assert 'Emergency: <a href="tel:+4930112">+49 30 112</a>' in page


async def test_without_an_emergency_number_the_room_shows_none(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, _, _ = await _setup(client, aiohttp_client)
    page = await (await client.get(f"/host/{therapist.session_id}")).text()
    assert "Emergency:" not in page

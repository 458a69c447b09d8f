"""The client's safety check before the waiting room, through the app: answered with the
link's cookie, shown live and after a reload to the session's therapist only, encrypted at
rest, in the client's export, purged after its retention, erased with the client."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient

from privacy.retention import Action, Category
from server.app import create_app
from server.core.models import Role
from server.db.tables import audit_log, data_keys, safety_checks
from server.keys import AUDIT, DB, VAULT
from server.services.retention import Retention
from server.settings import Settings
from tests.conftest import FakeClock, add_account, sign_in
from tests.integration.test_signaling import Party, _setup

MARKER = "SAFETY-MARKER-9d2e-flat-above-the-bakery"
ANSWERS: dict[str, Any] = {
    "location": f"At my aunt's, {MARKER}",
    "private": False,
    "contact_name": "Anna",
    "contact_phone": "+49 171 5551234",
    "code_word": "blue umbrella",
}


async def visit_csrf(visitor: Party) -> str:
    """The CSRF token the visit page gives its scripts."""
    page = await (await visitor.http.get("/visit")).text()
    match = re.search(r'name="csrf-token" content="([^"]+)"', page)
    assert match
    return match.group(1)


async def answer(visitor: Party, answers: dict[str, Any] = ANSWERS) -> Any:
    """The client sends the safety check as the visit page does."""
    return await visitor.http.post(
        "/api/v1/visit/safety",
        json=answers,
        headers={"X-CSRF-Token": await visit_csrf(visitor)},
    )


def raw_files(data_dir: Path) -> bytes:
    """Every byte under the data directory (database, WAL, keys), recursively."""
    return b"".join(p.read_bytes() for p in sorted(data_dir.rglob("*")) if p.is_file())


async def test_the_therapist_in_the_room_sees_the_answers_at_once_and_again_after_a_reload(
    client: TestClient, aiohttp_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    therapist, visitor, _ = await _setup(client, aiohttp_client)
    await therapist.connect()
    first_panel = await therapist.expect("panel-state")
    assert "safety" not in first_panel  # not answered yet

    response = await answer(visitor)

    assert response.status == 201
    live = await therapist.expect("safety-check")
    assert {k: v for k, v in live["check"].items() if k != "submitted_at_ms"} == ANSWERS
    assert therapist.ws is not None
    await therapist.ws.close()
    await therapist.connect()
    panel = await therapist.expect("panel-state")
    assert panel["safety"]["location"] == ANSWERS["location"]
    assert panel["safety"]["contact_phone"] == "+49 171 5551234"
    assert MARKER not in caplog.text  # never logged


async def test_the_answers_are_ciphertext_on_disk_and_plain_in_the_clients_export(
    client: TestClient, aiohttp_client: Any, data_dir: Path
) -> None:
    _, visitor, _ = await _setup(client, aiohttp_client)
    assert (await answer(visitor)).status == 201

    assert MARKER.encode() not in raw_files(data_dir)
    assert MARKER.encode("utf-16-le") not in raw_files(data_dir)
    export = await (await visitor.http.get("/api/v1/visit/export")).json()
    (stored,) = export["records"]["safety_checks"]
    assert stored["payload"] == ANSWERS
    assert stored["session_id"] == visitor.session_id


# case -> (answers, status, words of the answer)
REFUSED = {
    "no-place": ({**ANSWERS, "location": " "}, 422, "Please fill in where you are"),
    "place-too-long": ({**ANSWERS, "location": "x" * 201}, 422, "at most 200 characters"),
    "privacy-unanswered": ({k: v for k, v in ANSWERS.items() if k != "private"}, 422, "private"),
    "phone-with-letters": ({**ANSWERS, "contact_phone": "ring Anna"}, 422, "digits only"),
    "unknown-field": ({**ANSWERS, "latitude": 52.52}, 422, "latitude"),
    "answers-not-an-object": (["At home"], 422, "object"),
    "phone-as-number": ({**ANSWERS, "contact_phone": 112}, 422, "contact_phone"),
    "place-far-too-long": ({**ANSWERS, "location": "x" * 5000}, 422, "location"),
}


@pytest.mark.parametrize(("body", "status", "words"), REFUSED.values(), ids=REFUSED.keys())
async def test_answers_to_correct_are_refused_in_plain_words_and_nothing_is_stored(
    client: TestClient, aiohttp_client: Any, body: Any, status: int, words: str
) -> None:
    _, visitor, _ = await _setup(client, aiohttp_client)
    response = await visitor.http.post(
        "/api/v1/visit/safety", json=body, headers={"X-CSRF-Token": await visit_csrf(visitor)}
    )
    assert response.status == status
    error = (await response.json())["error"]
    assert words in error["message"]
    assert "Traceback" not in error["message"]
    async with client.app[DB].read() as conn:
        assert (
            await conn.execute(sa.select(sa.func.count()).select_from(safety_checks))
        ).scalar() == 0


@pytest.mark.parametrize(
    ("language", "words"),
    [
        ("es", "El lugar donde está contiene caracteres que no son texto normal."),
        ("de", "Ihr Aufenthaltsort enthält Zeichen, die kein normaler Text sind."),
    ],
)
async def test_a_refusal_comes_in_the_clients_language(
    client: TestClient, aiohttp_client: Any, language: str, words: str
) -> None:
    """The page checks most rules first, in the client's language; what only the server
    refuses (here a right-to-left override, which could reorder what the therapist reads)
    reads in that language too, with its code unchanged."""
    _, visitor, _ = await _setup(client, aiohttp_client)
    response = await visitor.http.post(
        "/api/v1/visit/safety",
        json={**ANSWERS, "location": "home\u202e"},
        headers={"X-CSRF-Token": await visit_csrf(visitor), "Accept-Language": language},
    )
    assert response.status == 422
    error = (await response.json())["error"]
    assert (error["message"], error["code"]) == (words, "invalid-location")


async def test_without_the_links_cookie_or_its_csrf_token_nothing_is_accepted(
    client: TestClient, aiohttp_client: Any
) -> None:
    _, visitor, _ = await _setup(client, aiohttp_client)
    stranger = await aiohttp_client(client.server)
    assert (await stranger.post("/api/v1/visit/safety", json=ANSWERS)).status in {401, 403}
    assert (await stranger.get("/api/v1/visit/safety")).status == 401
    assert (await visitor.http.post("/api/v1/visit/safety", json=ANSWERS)).status == 403


async def test_only_the_sessions_therapist_reads_it_and_each_read_is_audited_without_it(
    client: TestClient, aiohttp_client: Any
) -> None:
    _, visitor, _ = await _setup(client, aiohttp_client)
    await answer(visitor)
    summary = f"/host/{visitor.session_id}/summary"

    own = await (await client.get(summary)).text()
    assert MARKER in own and "blue umbrella" in own
    assert "Not really private" in own
    await add_account(client.app, "other@example.org")
    await add_account(client.app, "admin@example.org", Role.ADMIN)
    other = await aiohttp_client(client.server)
    await sign_in(other, "other@example.org")
    assert (await other.get(summary)).status == 404
    admin = await aiohttp_client(client.server)
    await sign_in(admin, "admin@example.org")
    assert (await admin.get(summary)).status == 403
    assert MARKER not in await (await admin.get("/admin/audit")).text()

    async with client.app[DB].read() as conn:
        rows = (await conn.execute(sa.select(audit_log.c.action, audit_log.c.details))).all()
    entries = [(action, json.loads(details)) for action, details in rows]
    assert ("safety.submit", {"replaced": False}) in entries
    assert ("clinical.read", {"what": "safety-check", "where": "summary"}) in entries
    assert not [e for e in entries if MARKER in json.dumps(e)]


async def test_the_next_session_is_prefilled_from_the_last_but_not_for_another_device(
    client: TestClient, aiohttp_client: Any
) -> None:
    _, visitor, _ = await _setup(client, aiohttp_client)
    before = await (await visitor.http.get("/api/v1/visit/safety")).json()
    assert before == {"enabled": True, "previous": None}
    await answer(visitor)
    second = await answer(visitor, {**ANSWERS, "location": "At home"})  # a correction
    assert second.status == 201

    step = await (await visitor.http.get("/api/v1/visit/safety")).json()
    assert step["previous"] == {**ANSWERS, "location": "At home"}
    async with client.app[DB].read() as conn:
        assert (
            await conn.execute(sa.select(sa.func.count()).select_from(safety_checks))
        ).scalar() == 1
    # The same link opened in a second browser: it may answer, but sees nothing of before.
    link = f"/join/{visitor.join_token}"
    second_device = await aiohttp_client(client.server)
    await second_device.get(link)
    other_step = await (await second_device.get("/api/v1/visit/safety")).json()
    assert other_step == {"enabled": True, "previous": None}


async def test_a_clinic_that_collects_this_elsewhere_switches_the_step_off(
    aiohttp_client: Any, settings: Settings, clock: FakeClock
) -> None:
    app = create_app(replace(settings, safety_check=False), clock=clock)
    client = await aiohttp_client(app)
    _, visitor, _ = await _setup(client, aiohttp_client)

    page = await (await visitor.http.get("/visit")).text()
    assert 'data-safety-check="off"' in page
    assert await (await visitor.http.get("/api/v1/visit/safety")).json() == {
        "enabled": False,
        "previous": None,
    }
    refused = await answer(visitor)
    assert refused.status == 404
    assert (await refused.json())["error"]["code"] == "safety-check-off"
    room = await (await client.get(f"/host/{visitor.session_id}")).text()
    assert 'data-safety-check="off"' in room


async def test_the_answers_are_purged_after_their_retention_and_the_session_stays(
    client: TestClient, aiohttp_client: Any, clock: FakeClock
) -> None:
    _, visitor, _ = await _setup(client, aiohttp_client)
    await answer(visitor)
    app = client.app
    retention = Retention(app[DB], app[AUDIT], app[VAULT])

    clock.advance(days=89)
    early = await retention.purge(clock.now, trigger="test", actor="system:test")
    clock.advance(days=2)
    due = await retention.purge(clock.now, trigger="test", actor="system:test")

    assert early.count(Category.SAFETY, Action.DELETE) == 0
    assert due.count(Category.SAFETY, Action.DELETE) == 1
    async with app[DB].read() as conn:
        assert (
            await conn.execute(sa.select(sa.func.count()).select_from(safety_checks))
        ).scalar() == 0
    await sign_in(client, "t@example.org")  # the sign-in of 91 days ago has long ended
    summary = await client.get(f"/host/{visitor.session_id}/summary")
    assert summary.status == 200
    assert "Not answered for this session." in await summary.text()


async def test_erasing_the_client_shreds_its_key_and_deletes_the_answers(
    client: TestClient, aiohttp_client: Any, data_dir: Path
) -> None:
    _, visitor, csrf = await _setup(client, aiohttp_client)
    await answer(visitor)
    app = client.app
    async with app[DB].read() as conn:
        client_id = (await conn.execute(sa.select(safety_checks.c.client_id))).scalar_one()

    erased = await client.delete(f"/api/v1/clients/{client_id}", headers={"X-CSRF-Token": csrf})

    assert erased.status in {200, 204}
    async with app[DB].read() as conn:
        left = await conn.execute(sa.select(sa.func.count()).select_from(safety_checks))
        keys = await conn.execute(
            sa.select(sa.func.count())
            .select_from(data_keys)
            .where(data_keys.c.client_id == client_id)
        )
        assert (left.scalar(), keys.scalar()) == (0, 0)

"""A client's rights from their own link: export everything (and nothing of anyone else), and
erase what exists only by their optional consent, told plainly what the clinic keeps."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient

from privacy.consent import ConsentState, Purpose
from server.core.models import Account
from server.db.tables import (
    audit_log,
    checkin_responses,
    client_notes,
    consent_records,
    cue_prompts,
    signal_events,
    therapy_sessions,
)
from server.keys import CONSENTS
from server.services import scheduling
from server.services.accounts import account_by_email
from tests.conftest import FakeClock, add_account, sign_in
from tests.integration.retention_world import MARKER, World

THERAPIST = "therapist@example.org"
OTHER_MARKER = "OTHER-CLIENT-MARKER-19ab"


@pytest.fixture
async def world(client: TestClient[Any, Any], clock: FakeClock) -> World:
    return World(client.app, clock.now)


async def _therapist_client(client: TestClient[Any, Any], alias: str, text: str) -> str:
    """A client of the therapist with a session now and a note holding `text`."""
    headers = {"X-CSRF-Token": await sign_in(client, THERAPIST)}
    created = await client.post("/api/v1/clients", json={"alias": alias}, headers=headers)
    client_id: str = (await created.json())["id"]
    await client.post(f"/api/v1/clients/{client_id}/notes", json={"text": text}, headers=headers)
    return client_id


async def _inside(client: TestClient[Any, Any], world: World, client_id: str) -> None:
    """The client opens their link: from here on the test client holds only the link cookie."""
    therapist = await account_by_email(world.db, THERAPIST)
    _session, invite = await scheduling.create_session(
        world.db,
        world.audit,
        therapist,
        client_id=client_id,
        starts_at=world.now,
        minutes=50,
        now=world.now - timedelta(minutes=5),
    )
    client.session.cookie_jar.clear()
    assert (await client.get(f"/join/{invite.token}")).status == 200


async def _client_csrf(client: TestClient[Any, Any]) -> str:
    match = re.search(
        r'name="csrf_token" value="([^"]+)"', await (await client.get("/visit/data")).text()
    )
    assert match
    return match.group(1)


async def _grant(client: TestClient[Any, Any], *purposes: str) -> None:
    csrf = await _client_csrf(client)
    for purpose in purposes:
        version = client.app[CONSENTS].catalog.current(Purpose(purpose)).version
        response = await client.post(
            "/api/v1/visit/consents",
            json={"purpose": purpose, "decision": "granted", "notice_version": version},
            headers={"X-CSRF-Token": csrf},
        )
        assert response.status == 201


async def _session_of(world: World, client_id: str) -> Any:
    async with world.db.read() as conn:
        session_id = await conn.scalar(
            sa.select(therapy_sessions.c.id).where(therapy_sessions.c.client_id == client_id)
        )
    assert session_id is not None
    therapist: Account = await account_by_email(world.db, THERAPIST)
    return await scheduling.get_session(world.db, therapist, session_id)


@pytest.fixture
async def two_clients(client: TestClient[Any, Any], world: World) -> tuple[str, str]:
    """(mine, someone else's), each with stored clinical data; the test client is 'mine'."""
    await add_account(client.app, THERAPIST)
    other = await _therapist_client(client, "O.T.", OTHER_MARKER)
    mine = await _therapist_client(client, "J.M.", f"note {MARKER}")
    for client_id, text in ((other, OTHER_MARKER), (mine, MARKER)):
        await _inside(client, world, client_id)
        await _grant(client, "checkin_storage", "cue_analysis")
        session = await _session_of(world, client_id)
        await world.checkin(session, world.now, text)
        await world.clinical_row(signal_events, session, world.now, text)
    return mine, other


async def test_the_export_holds_everything_about_the_client_and_nothing_of_anyone_else(
    client: TestClient[Any, Any], world: World, two_clients: tuple[str, str]
) -> None:
    mine, other = two_clients

    response = await client.get("/api/v1/visit/export")

    assert response.status == 200
    text = await response.text()
    export = json.loads(text)
    assert export["client"]["id"] == mine and export["format"] == "attune-client-export-v1"
    assert [
        r["payload"]["answers"]["free_text"] for r in export["records"]["checkin_responses"]
    ] == [MARKER]
    assert [r["payload"]["note"] for r in export["records"]["signal_events"]] == [MARKER]
    assert {c["purpose"] for c in export["consents"]} == {"checkin_storage", "cue_analysis"}
    assert len(export["sessions"]) == 1
    assert {a["action"] for a in export["activity"]} >= {"client.create", "consent.grant"}
    assert "notes" not in export
    assert "therapist notes" in [n["what"] for n in export["not_included"]]
    therapist = await account_by_email(world.db, THERAPIST)
    for foreign in (other, OTHER_MARKER, therapist.id, THERAPIST, f"note {MARKER}"):
        assert foreign not in text, foreign
    async with world.db.read() as conn:
        exported = (
            await conn.execute(
                sa.select(audit_log.c.actor, audit_log.c.details).where(
                    audit_log.c.action == "export.client"
                )
            )
        ).all()
    assert [(a, json.loads(d)) for a, d in exported] == [
        (f"client:{mine}", {"by": "client", "notes": False})
    ]


async def test_the_data_page_offers_a_download_file(
    client: TestClient[Any, Any], two_clients: tuple[str, str]
) -> None:
    mine, _ = two_clients

    response = await client.get("/visit/data/export.json")

    assert response.headers["Content-Disposition"] == 'attachment; filename="attune-my-data.json"'
    assert json.loads(await response.text())["client"]["id"] == mine


@pytest.mark.parametrize(
    ("query", "has_notes"),
    [
        pytest.param("", False, id="without-notes"),
        pytest.param("?include_notes=true", True, id="with-notes"),
    ],
)
async def test_a_therapist_exports_on_request_with_or_without_their_notes(
    client: TestClient[Any, Any], two_clients: tuple[str, str], query: str, has_notes: bool
) -> None:
    mine, _ = two_clients
    await sign_in(client, THERAPIST)

    export = await (await client.get(f"/api/v1/clients/{mine}/export{query}")).json()

    assert ([n["text"] for n in export.get("notes", [])] == [f"note {MARKER}"]) is has_notes
    assert OTHER_MARKER not in json.dumps(export)


async def test_another_therapist_cannot_export_someone_elses_client(
    client: TestClient[Any, Any], two_clients: tuple[str, str]
) -> None:
    mine, _ = two_clients
    await add_account(client.app, "other@example.org")
    await sign_in(client, "other@example.org")

    assert (await client.get(f"/api/v1/clients/{mine}/export")).status == 404


async def test_erasure_withdraws_optional_consents_and_deletes_their_data_only(
    client: TestClient[Any, Any], world: World, two_clients: tuple[str, str]
) -> None:
    mine, other = two_clients
    await world.clinical_row(cue_prompts, await _session_of(world, mine), world.now)

    response = await client.post(
        "/api/v1/visit/erase",
        json={"confirm": True},
        headers={"X-CSRF-Token": await _client_csrf(client)},
    )

    assert response.status == 200
    outcome = await response.json()
    assert sorted(outcome["withdrawn"]) == ["checkin_storage", "cue_analysis"]
    assert outcome["held"] is False
    # What was deleted is counted before the withdrawals deleted it (issue #11, item 9).
    assert outcome["deleted_total"] > 0, outcome
    for table in (checkin_responses, signal_events, cue_prompts):
        assert await world.ids(table, "client_id") == (
            {other} if table is not cue_prompts else set()
        )
    # The clinical record and the evidence stay.
    assert mine in await world.ids(therapy_sessions, "client_id")
    assert mine in await world.ids(client_notes, "client_id")
    assert mine in await world.ids(consent_records, "client_id")
    states = await client.app[CONSENTS].state(world.db, mine, world.now)
    assert states[Purpose.CHECKIN_STORAGE].state is ConsentState.WITHDRAWN
    assert states[Purpose.TELEHEALTH].state is not ConsentState.WITHDRAWN


async def test_the_erasure_page_says_what_is_kept_and_asks_to_confirm(
    client: TestClient[Any, Any], world: World, two_clients: tuple[str, str]
) -> None:
    mine, _ = two_clients
    page = await (await client.get("/visit/data")).text()
    csrf = await _client_csrf(client)

    unconfirmed = await client.post(
        "/visit/data/erase", data={"csrf_token": csrf}, allow_redirects=False
    )
    done = await client.post("/visit/data/erase", data={"csrf_token": csrf, "confirm": "yes"})

    for kept in ("When your sessions took place", "therapist's notes", "consent choices", "audit"):
        assert kept in page
    assert "about 10 years" in page and "about 6 years" in page
    assert unconfirmed.status == 303
    assert "Deleted" in await done.text() and "Deleted 0 stored" not in await done.text()
    assert mine not in await world.ids(checkin_responses, "client_id")


async def test_reloading_the_erasure_result_shows_it_again_and_erases_nothing_more(
    client: TestClient[Any, Any], world: World, two_clients: tuple[str, str]
) -> None:
    csrf = await _client_csrf(client)
    posted = await client.post(
        "/visit/data/erase", data={"csrf_token": csrf, "confirm": "yes"}, allow_redirects=False
    )
    assert posted.status == 303
    result_url = posted.headers["Location"]
    assert result_url.startswith("/visit/data/erased?r=")

    first = await (await client.get(result_url)).text()
    reloaded = await (await client.get(result_url)).text()
    assert "Deleted" in first and "Deleted 0 stored" not in first
    assert reloaded == first  # the same outcome, not a second erasure's "Deleted 0"
    async with world.db.read() as conn:
        erasures = (
            await conn.execute(
                sa.select(sa.func.count()).where(audit_log.c.action == "client.erase")
            )
        ).scalar_one()
    assert erasures == 1

    # Numbers nobody can forge: another body, or a broken seal, goes back to the data page.
    body, _, mac = result_url.split("r=", 1)[1].partition(".")
    for forged in (f"{body[:-2]}AA.{mac}", f"{body}.{'0' * len(mac)}", "", "x" * 5000):
        answer = await client.get(f"/visit/data/erased?r={forged}", allow_redirects=False)
        assert (answer.status, answer.headers["Location"]) == (303, "/visit/data")


async def test_under_a_legal_hold_erasure_withdraws_but_says_the_data_is_held(
    client: TestClient[Any, Any], world: World, two_clients: tuple[str, str]
) -> None:
    mine, _ = two_clients
    await world.retention().add_hold(mine, "litigation", actor="system:test", now=world.now)

    response = await client.post(
        "/visit/data/erase", data={"csrf_token": await _client_csrf(client), "confirm": "yes"}
    )

    assert "legal hold" in await response.text()
    states = await client.app[CONSENTS].state(world.db, mine, world.now)
    assert states[Purpose.CUE_ANALYSIS].state is ConsentState.WITHDRAWN

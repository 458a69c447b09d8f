"""Refused requests leave an `access.denied` entry (route pattern, reason, actor; no ids), a
flood of them cannot fill the trail, and writing a note leaves an entry without its text."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from aiohttp.test_utils import TestClient

from server.core.models import Account
from server.db.tables import audit_log
from server.keys import DB
from tests.conftest import add_account, sign_in


async def entries(client: TestClient, action: str) -> list[dict[str, Any]]:
    async with client.app[DB].read() as conn:
        rows = (
            await conn.execute(
                sa.select(audit_log.c.actor, audit_log.c.targets, audit_log.c.details)
                .where(audit_log.c.action == action)
                .order_by(audit_log.c.seq)
            )
        ).all()
    return [
        {"actor": r.actor, "targets": json.loads(r.targets), "details": json.loads(r.details)}
        for r in rows
    ]


async def test_reading_another_therapists_client_is_refused_and_audited_without_the_id(
    client: TestClient, therapist: tuple[Account, str]
) -> None:
    _ana, csrf = therapist
    created = await client.post(
        "/api/v1/clients", json={"alias": "J.M."}, headers={"X-CSRF-Token": csrf}
    )
    client_id = (await created.json())["id"]
    ben = await add_account(client.app, "ben@example.org")
    client.session.cookie_jar.clear()
    await sign_in(client, "ben@example.org")
    refused = await client.get(f"/api/v1/clients/{client_id}")
    assert refused.status == 404
    [entry] = await entries(client, "access.denied")
    assert entry["actor"] == f"account:{ben.id}"
    assert entry["details"] == {
        "route": "/api/v1/clients/{client_id}",
        "reason": "not_found",
        "status": 404,
    }
    assert client_id not in json.dumps(entry)


async def test_a_refused_csrf_token_is_audited(
    client: TestClient, therapist: tuple[Account, str]
) -> None:
    ana, _csrf = therapist
    refused = await client.post(
        "/api/v1/clients", json={"alias": "J.M."}, headers={"X-CSRF-Token": "x" * 43}
    )
    assert refused.status == 403
    [entry] = await entries(client, "access.denied")
    assert entry["actor"] == f"account:{ana.id}"
    assert entry["details"]["reason"] == "csrf"


async def test_a_therapist_on_an_admin_endpoint_is_audited_as_forbidden(
    client: TestClient, therapist: tuple[Account, str]
) -> None:
    assert (await client.get("/api/v1/accounts")).status == 403
    [entry] = await entries(client, "access.denied")
    assert entry["details"]["reason"] == "forbidden"


async def test_throttled_sign_ins_are_audited_on_the_api_and_the_page(client: TestClient) -> None:
    for _ in range(6):
        await client.post(
            "/api/v1/auth/login", json={"email": "x@example.org", "password": "guess guess"}
        )
    page = await client.post("/login", data={"email": "x@example.org", "password": "guess guess"})
    assert page.status == 429
    denied = await entries(client, "access.denied")
    assert {(e["actor"], e["details"]["reason"], e["details"]["route"]) for e in denied} == {
        ("anonymous", "rate_limited", "/api/v1/auth/login"),
        ("anonymous", "rate_limited", "/login"),
    }
    # the wrong passwords themselves stay auth.login.failure, not access.denied
    assert len(await entries(client, "auth.login.failure")) == 5


async def test_a_flood_of_refusals_writes_a_bounded_number_of_entries_and_counts_the_rest(
    client: TestClient,
) -> None:
    for n in range(150):
        response = await client.get(f"/api/v1/clients/{n:032x}")
        assert response.status == 401
    denied = await entries(client, "access.denied")
    assert len(denied) == 1
    assert denied[0]["details"]["route"] == "/api/v1/clients/{client_id}"


async def test_writing_a_note_leaves_an_audit_entry_without_its_text(
    client: TestClient, therapist: tuple[Account, str]
) -> None:
    ana, csrf = therapist
    created = await client.post(
        "/api/v1/clients", json={"alias": "J.M."}, headers={"X-CSRF-Token": csrf}
    )
    client_id = (await created.json())["id"]
    note = await client.post(
        f"/api/v1/clients/{client_id}/notes",
        json={"text": "very private words"},
        headers={"X-CSRF-Token": csrf},
    )
    assert note.status == 201, await note.text()
    [entry] = await entries(client, "clinical.write")
    assert entry == {
        "actor": f"account:{ana.id}",
        "targets": [f"client:{client_id}"],
        "details": {"what": "note"},
    }

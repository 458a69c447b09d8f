"""Therapists manage their own clients and sessions; other therapists' ids answer 404."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from server.core.models import Account
from tests.conftest import add_account, sign_in


async def _post(client: TestClient, csrf: str, path: str, body: dict[str, Any]) -> Any:
    response = await client.post(path, json=body, headers={"X-CSRF-Token": csrf})
    return response.status, await response.json()


async def test_therapist_adds_a_client_and_schedules_a_session_with_a_link(
    client: TestClient, therapist: tuple[Account, str]
) -> None:
    _, csrf = therapist
    status, created = await _post(client, csrf, "/api/v1/clients", {"alias": "  J.M.  "})
    assert status == 201 and created["alias"] == "J.M."
    status, body = await _post(
        client,
        csrf,
        "/api/v1/sessions",
        {"client_id": created["id"], "starts_at": "2026-11-23T10:00:00+01:00", "minutes": 50},
    )
    assert status == 201
    session = body["session"]
    assert session["starts_at"] == "2026-11-23T09:00:00+00:00"
    assert session["ends_at"] == "2026-11-23T09:50:00+00:00"
    assert session["status"] == "scheduled" and session["invite_active"] is True
    assert session["host_url"].endswith(f"/host/{session['id']}")
    token = body["join_url"].rsplit("/join/", 1)[1]
    assert len(token) == 43  # 32 random bytes, base64url without padding
    listing = await (await client.get("/api/v1/sessions")).json()
    assert [s["id"] for s in listing["items"]] == [session["id"]]
    assert "join_url" not in str(listing)  # the link is shown once, never listed again


async def test_alias_is_unique_per_therapist_and_validated(
    client: TestClient, therapist: tuple[Account, str]
) -> None:
    _, csrf = therapist
    assert (await _post(client, csrf, "/api/v1/clients", {"alias": "K"}))[0] == 201
    assert (await _post(client, csrf, "/api/v1/clients", {"alias": "K"}))[0] == 409
    assert (await _post(client, csrf, "/api/v1/clients", {"alias": "   "}))[0] == 422
    assert (await _post(client, csrf, "/api/v1/clients", {"alias": "x" * 65}))[0] == 422
    assert (await _post(client, csrf, "/api/v1/clients", {"alias": "a\u0000b"}))[0] == 422


async def test_session_times_are_validated(
    client: TestClient, therapist: tuple[Account, str]
) -> None:
    _, csrf = therapist
    _, created = await _post(client, csrf, "/api/v1/clients", {"alias": "K"})
    cases = [
        {"client_id": created["id"], "starts_at": "2026-11-23T10:00:00"},  # no time zone
        {"client_id": created["id"], "starts_at": "tomorrow"},
        {"client_id": created["id"], "starts_at": "2026-11-23T10:00:00Z", "minutes": 2},
        {"client_id": created["id"], "starts_at": "2020-01-01T10:00:00Z"},  # already over
        {"client_id": created["id"], "starts_at": "2026-02-30T10:00:00Z"},
    ]
    for body in cases:
        status, error = await _post(client, csrf, "/api/v1/sessions", body)
        assert status == 422, body
        assert error["error"]["code"] == "invalid_input"


async def test_another_therapists_ids_answer_404(client: TestClient) -> None:
    await add_account(client.app, "a@example.org")
    await add_account(client.app, "b@example.org")
    csrf_a = await sign_in(client, "a@example.org")
    _, created = await _post(client, csrf_a, "/api/v1/clients", {"alias": "J.M."})
    _, body = await _post(
        client,
        csrf_a,
        "/api/v1/sessions",
        {"client_id": created["id"], "starts_at": "2026-11-23T10:00:00Z"},
    )
    session_id = body["session"]["id"]

    csrf_b = await sign_in(client, "b@example.org")
    assert (await client.get(f"/api/v1/clients/{created['id']}")).status == 404
    assert (await client.get(f"/api/v1/sessions/{session_id}")).status == 404
    assert (await client.get("/api/v1/clients")).status == 200
    assert (await (await client.get("/api/v1/clients")).json())["items"] == []
    status, _ = await _post(
        client,
        csrf_b,
        "/api/v1/sessions",
        {"client_id": created["id"], "starts_at": "2026-11-23T10:00:00Z"},
    )
    assert status == 404
    for path in (f"/api/v1/sessions/{session_id}/invite", f"/api/v1/sessions/{session_id}/cancel"):
        response = await client.post(path, headers={"X-CSRF-Token": csrf_b})
        assert response.status == 404
    revoke = await client.delete(
        f"/api/v1/sessions/{session_id}/invite", headers={"X-CSRF-Token": csrf_b}
    )
    assert revoke.status == 404
    assert (await client.get("/host/" + session_id)).status == 404


async def test_malformed_ids_answer_404_not_500(
    client: TestClient, therapist: tuple[Account, str]
) -> None:
    for path in ("/api/v1/clients/nope", "/api/v1/sessions/' OR 1=1 --", "/api/v1/sessions/%00"):
        response = await client.get(path)
        assert response.status == 404
        assert (await response.json())["error"]["code"] == "not_found"


async def test_rescheduling_with_a_new_link_replaces_the_old_one_and_is_audited(
    client: TestClient, therapist: tuple[Account, str]
) -> None:
    """Issue #11 item 8: reschedule from the dashboard, re-issuing the link by choice."""
    import sqlite3

    from server.keys import SETTINGS

    _, csrf = therapist
    headers = {"X-CSRF-Token": csrf}
    created = await (
        await client.post("/api/v1/clients", json={"alias": "R.S."}, headers=headers)
    ).json()
    body = await (
        await client.post(
            "/api/v1/sessions",
            json={"client_id": created["id"], "starts_at": "2026-11-23T10:00:00Z"},
            headers=headers,
        )
    ).json()
    session_id = body["session"]["id"]
    form = {
        "csrf_token": csrf,
        "starts_at": "2026-11-24T11:00",
        "tz_offset_minutes": "0",
        "minutes": "45",
        "link": "new",
    }
    moved = await client.post(
        f"/dashboard/sessions/{session_id}/edit", data=form, allow_redirects=False
    )
    assert moved.status == 303
    assert moved.headers["Location"] == f"/dashboard/sessions/{session_id}/link"
    page = await (await client.get(moved.headers["Location"])).text()
    assert "/join/" in page and body["join_url"] not in page
    session = await (await client.get(f"/api/v1/sessions/{session_id}")).json()
    assert session["starts_at"].startswith("2026-11-24T11:00")
    old_token = body["join_url"].split("/join/")[1]
    old = await client.get(f"/join/{old_token}", allow_redirects=False)
    assert old.status == 404
    bad = await client.post(f"/dashboard/sessions/{session_id}/edit", data={**form, "minutes": "x"})
    assert bad.status == 422 and "whole minutes" in await bad.text()
    with sqlite3.connect(client.app[SETTINGS].data_dir / "attune.db") as conn:
        actions = [a for (a,) in conn.execute("SELECT action FROM audit_log ORDER BY seq")]
    assert actions[-3:] == ["session.reschedule", "invite.revoke", "invite.issue"]

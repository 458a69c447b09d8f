"""Consent is granular, demonstrable, revocable in one step, and asked again for new notices."""

from __future__ import annotations

import hashlib
import re

from aiohttp.test_utils import TestClient
from sqlalchemy.ext.asyncio import AsyncConnection

from privacy.consent import ConsentChanged, Notice, Purpose
from server.keys import AUDIT, CLOCK, CONSENTS, DB
from server.services.consents import Consents
from server.web.notice_blocks import notice_blocks
from tests.conftest import FakeClock, add_account, sign_in


async def _client_inside(client: TestClient) -> str:
    """A therapist schedules a session and the client opens the link; returns the client id."""
    await add_account(client.app, "t@example.org")
    csrf = await sign_in(client, "t@example.org")
    headers = {"X-CSRF-Token": csrf}
    created = await (
        await client.post("/api/v1/clients", json={"alias": "J.M."}, headers=headers)
    ).json()
    body = await (
        await client.post(
            "/api/v1/sessions",
            json={"client_id": created["id"], "starts_at": "2026-11-23T09:00:00Z"},
            headers=headers,
        )
    ).json()
    client.session.cookie_jar.clear(lambda c: c.key == "attune")  # the client has no account
    await client.get("/join/" + body["join_url"].split("/join/")[1])
    return str(created["id"])


async def _client_csrf(client: TestClient) -> str:
    page = await (await client.get("/visit/consent")).text()
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match
    return match.group(1)


async def _decide(client: TestClient, purpose: str, decision: str, version: int = 1) -> int:
    response = await client.post(
        "/api/v1/visit/consents",
        json={"purpose": purpose, "decision": decision, "notice_version": version},
        headers={"X-CSRF-Token": await _client_csrf(client)},
    )
    return response.status


async def test_consent_page_offers_required_and_unticked_optional_purposes(
    client: TestClient,
) -> None:
    await _client_inside(client)
    page = await (await client.get("/visit/consent")).text()
    assert "I agree to the telehealth consent" in page
    for purpose in ("telehealth", "checkin_storage", "cue_analysis"):
        checkbox = re.search(rf'<input type="checkbox" id="consent-{purpose}"[^>]*>', page)
        assert checkbox and "checked" not in checkbox.group(0)
    assert "research" not in page


async def test_the_consent_api_gives_each_notice_as_blocks_rendered_once_on_the_server(
    client: TestClient,
) -> None:
    await _client_inside(client)
    items = (await (await client.get("/api/v1/visit/consents")).json())["items"]
    telehealth = next(item for item in items if item["purpose"] == "telehealth")
    blocks = telehealth["notice"]["blocks"]
    notice = client.app[CONSENTS].catalog.current(Purpose.TELEHEALTH)
    assert blocks == [block.as_json() for block in notice_blocks(notice.body)]
    assert blocks[0]["kind"] == "paragraph"  # the title line is the legend, not a block
    assert {"kind": "heading", "text": "What this covers"} in blocks
    (listed,) = [block for block in blocks if block["kind"] == "list"]
    assert len(listed["items"]) == 5


async def test_saving_the_form_records_exactly_what_was_ticked_with_the_notice_hash(
    client: TestClient,
) -> None:
    client_id = await _client_inside(client)
    csrf = await _client_csrf(client)
    form = {
        "csrf_token": csrf,
        "grant": ["telehealth", "cue_analysis"],
        "version_telehealth": "1",
        "version_checkin_storage": "1",
        "version_cue_analysis": "1",
    }
    saved = await client.post("/visit/consent", data=form, allow_redirects=False)
    assert saved.status == 303
    state = {
        s["purpose"]: s
        for s in (await (await client.get("/api/v1/visit/consents")).json())["items"]
    }
    assert state["telehealth"]["state"] == "granted"
    assert state["cue_analysis"]["state"] == "granted"
    assert state["checkin_storage"]["state"] == "never_asked"

    receipt = await (await client.get("/api/v1/visit/consents/receipt")).json()
    records = receipt["records"]
    assert [(r["purpose"], r["decision"], r["channel"]) for r in records] == [
        ("telehealth", "granted", "page"),
        ("cue_analysis", "granted", "page"),
    ]
    catalog = client.app[CONSENTS].catalog
    for record in records:
        notice = catalog.get(Purpose(record["purpose"]), record["notice_version"])
        assert record["notice_sha256"] == hashlib.sha256(notice.text.encode()).hexdigest()
    async with client.app[DB].read() as conn:
        assert await client.app[CONSENTS].allows(
            conn, client_id, Purpose.CUE_ANALYSIS, client.app[CLOCK]()
        )
        assert not await client.app[CONSENTS].allows(
            conn, client_id, Purpose.CHECKIN_STORAGE, client.app[CLOCK]()
        )


async def test_withdrawing_takes_one_step_like_granting_and_is_broadcast(
    client: TestClient, clock: FakeClock
) -> None:
    client_id = await _client_inside(client)
    seen: list[ConsentChanged] = []
    client.app[CONSENTS].events.subscribe(seen.append)
    assert await _decide(client, "cue_analysis", "granted") == 201
    clock.advance(minutes=5)
    assert await _decide(client, "cue_analysis", "withdrawn") == 201
    assert [(e.purpose, e.decision.value) for e in seen] == [
        (Purpose.CUE_ANALYSIS, "granted"),
        (Purpose.CUE_ANALYSIS, "withdrawn"),
    ]
    async with client.app[DB].read() as conn:
        assert not await client.app[CONSENTS].allows(
            conn, client_id, Purpose.CUE_ANALYSIS, client.app[CLOCK]()
        )


async def test_withdrawal_runs_registered_effects_and_records_what_it_triggered(
    client: TestClient,
) -> None:
    client_id = await _client_inside(client)
    ran: list[str] = []

    async def extra_effect(conn: AsyncConnection, withdrawn_client: str) -> None:
        ran.append(withdrawn_client)

    client.app[CONSENTS].on_withdrawal(Purpose.CUE_ANALYSIS, "extra-effect", extra_effect)
    await _decide(client, "cue_analysis", "granted")
    await _decide(client, "cue_analysis", "withdrawn")
    assert ran == [client_id]
    receipt = await (await client.get("/api/v1/visit/consents/receipt")).json()
    assert receipt["records"][-1]["triggered"] == [
        "delete-cue-data",
        "stop-feature-stream",
        "extra-effect",
    ]
    await _decide(client, "checkin_storage", "granted")
    await _decide(client, "checkin_storage", "withdrawn")
    receipt = await (await client.get("/api/v1/visit/consents/receipt")).json()
    assert receipt["records"][-1]["triggered"] == ["delete-checkins"]


async def test_a_decision_for_an_outdated_notice_version_is_refused(client: TestClient) -> None:
    await _client_inside(client)
    assert await _decide(client, "telehealth", "granted", version=2) == 409


async def test_a_new_notice_version_asks_again(client: TestClient, clock: FakeClock) -> None:
    client_id = await _client_inside(client)
    await _decide(client, "cue_analysis", "granted")
    text = "# Conversation cues, revised\n\nA clearer text.\n"
    notice = Notice(
        purpose=Purpose.CUE_ANALYSIS,
        version=2,
        title="Conversation cues, revised",
        text=text,
        sha256=hashlib.sha256(text.encode()).hexdigest(),
    )
    await client.app[CONSENTS].publish_notice(
        client.app[DB], client.app[AUDIT], notice, published_by="account:admin", now=clock.now
    )
    reloaded = await Consents.load(client.app[DB])  # the next start sees it too
    assert reloaded.catalog.current(Purpose.CUE_ANALYSIS).version == 2
    state = {
        s["purpose"]: s["state"]
        for s in (await (await client.get("/api/v1/visit/consents")).json())["items"]
    }
    assert state["cue_analysis"] == "needs_reconsent"
    async with client.app[DB].read() as conn:
        assert not await client.app[CONSENTS].allows(
            conn, client_id, Purpose.CUE_ANALYSIS, clock.now
        )
    assert await _decide(client, "cue_analysis", "granted", version=2) == 201
    async with client.app[DB].read() as conn:
        assert await client.app[CONSENTS].allows(conn, client_id, Purpose.CUE_ANALYSIS, clock.now)


async def test_consent_changes_are_audited_without_notice_text(client: TestClient) -> None:
    import sqlite3

    from server.keys import SETTINGS

    await _client_inside(client)
    await _decide(client, "telehealth", "granted")
    with sqlite3.connect(client.app[SETTINGS].data_dir / "attune.db") as conn:
        rows = conn.execute(
            "SELECT action, details FROM audit_log WHERE action LIKE 'consent.%'"
        ).fetchall()
    assert rows and rows[0][0] == "consent.grant"
    assert "telehealth" in rows[0][1] and "video" not in rows[0][1]


async def test_receipt_downloads_as_json_and_reads_as_a_page(client: TestClient) -> None:
    await _client_inside(client)
    await _decide(client, "telehealth", "granted")
    download = await client.get("/visit/consent/receipt.json")
    assert download.headers["Content-Disposition"].startswith("attachment")
    assert (await download.json())["records"][0]["purpose"] == "telehealth"
    page = await (await client.get("/visit/consent/receipt")).text()
    assert "granted" in page and "v1" in page


async def test_consent_api_needs_the_clients_link(client: TestClient) -> None:
    await add_account(client.app, "t@example.org")
    await sign_in(client, "t@example.org")
    assert (await client.get("/api/v1/visit/consents")).status == 401
    assert (await client.get("/visit/consent", allow_redirects=False)).status == 303

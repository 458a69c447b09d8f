"""Alliance check-ins: before, pulse and after; durable idempotent acks; alerts; consent; FHIR."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from fhir.resources.R4B.bundle import Bundle

from server.keys import SETTINGS
from tests.conftest import add_account, sign_in
from tests.fhir_r4b import r4b_valid
from tests.integration.test_signaling import Party, _setup

MARKER = "MARKER-7b2e-I-felt-rushed-near-the-end"
KEY = "k" * 20


async def _grant(visitor: Party, purpose: str) -> None:
    import re

    page = await (await visitor.http.get("/visit/consent")).text()
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    response = await visitor.http.post(
        "/api/v1/visit/consents",
        headers={"X-CSRF-Token": token.group(1)},
        json={"purpose": purpose, "decision": "granted", "notice_version": 1},
    )
    assert response.status == 201


async def _in_call(
    client: TestClient, aiohttp_client: Any, *, storage: bool
) -> tuple[Party, Party]:
    therapist, visitor, _ = await _setup(client, aiohttp_client)
    if storage:
        await _grant(visitor, "checkin_storage")
    await therapist.connect()
    welcome = await visitor.connect()
    await therapist.send({"type": "admit", "knock_id": welcome["knock_id"]})
    await visitor.expect("admitted")
    return therapist, visitor


def _raw_bytes(data_dir: Path) -> bytes:
    """Every byte Attune keeps on disk (database, WAL, keys)."""
    return b"".join(p.read_bytes() for p in data_dir.iterdir() if p.is_file())


def _stored_rows(client: TestClient) -> list[tuple[Any, ...]]:
    with sqlite3.connect(client.app[SETTINGS].data_dir / "attune.db") as conn:
        return conn.execute("SELECT kind, idempotency_key FROM checkin_responses").fetchall()


async def test_the_before_checkin_opens_in_the_waiting_room(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, visitor, _ = await _setup(client, aiohttp_client)
    await therapist.connect()
    await visitor.connect()
    opened = await visitor.expect("checkin-open")
    assert opened["kind"] == "before"
    items = opened["questionnaire"]["item"]
    assert len(items) == 4 and all(i["type"] == "integer" for i in items)


async def test_an_answer_is_acked_after_the_encrypted_write_and_stored_once(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, visitor = await _in_call(client, aiohttp_client, storage=True)
    answer = {
        "type": "checkin-answer",
        "instrument_id": "before",
        "idempotency_key": KEY,
        "answers": {
            "me-personally": 4,
            "close-relationships": 5,
            "work-school-social": 6,
            "overall": 5,
        },
    }
    await visitor.send({**answer, "id": "a1"})
    ack = await visitor.expect("checkin-ack")
    assert ack["idempotency_key"] == KEY and ack["ref"] == "a1"
    assert _stored_rows(client) == [("before", KEY)]  # durable before the ack was sent
    result = await therapist.expect("checkin-result")
    assert result["scores"]["wellbeing_total"] == 20

    await visitor.send(answer)  # resent after a reconnect: same key
    assert (await visitor.expect("checkin-ack"))["idempotency_key"] == KEY
    assert _stored_rows(client) == [("before", KEY)]
    await therapist.send({"type": "ping"})
    await therapist.expect("pong")  # no second checkin-result came before this pong


async def test_without_storage_consent_the_therapist_sees_it_live_but_nothing_is_kept(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, visitor = await _in_call(client, aiohttp_client, storage=False)
    await visitor.send(
        {
            "type": "checkin-answer",
            "instrument_id": "before",
            "idempotency_key": KEY,
            "answers": {
                "me-personally": 1,
                "close-relationships": 2,
                "work-school-social": 1,
                "overall": 1,
            },
        }
    )
    await visitor.expect("checkin-ack")
    result = await therapist.expect("checkin-result")
    assert result["scores"]["wellbeing_total"] == 5
    assert _stored_rows(client) == []


async def test_a_pulse_launched_by_the_therapist_raises_a_low_pulse_alert(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, visitor = await _in_call(client, aiohttp_client, storage=True)
    await therapist.send({"type": "checkin-launch", "instrument_id": "pulse"})
    opened = await visitor.expect("checkin-open")
    assert opened["kind"] == "pulse"
    await visitor.send(
        {
            "type": "checkin-answer",
            "instrument_id": "pulse",
            "idempotency_key": KEY,
            "answers": {"pulse": 2},
        }
    )
    result = await therapist.expect("checkin-result")
    assert [a["code"] for a in result["alerts"]] == ["pulse-low"]
    assert result["alerts"][0]["repair"]


async def test_invalid_answers_get_an_error_and_nothing_is_stored(
    client: TestClient, aiohttp_client: Any
) -> None:
    _, visitor = await _in_call(client, aiohttp_client, storage=True)
    await visitor.send(
        {
            "type": "checkin-answer",
            "instrument_id": "before",
            "idempotency_key": KEY,
            "answers": {"me-personally": 11},
        }
    )
    assert (await visitor.expect("error"))["code"] == "invalid"
    assert _stored_rows(client) == []


async def _after_low_bond(client: TestClient, aiohttp_client: Any) -> tuple[Party, Party]:
    therapist, visitor = await _in_call(client, aiohttp_client, storage=True)
    await therapist.send({"type": "end"})
    await visitor.expect("session-ended")
    page = await visitor.http.get("/visit/after")
    assert page.status == 200
    csrf = (await page.text()).split('name="csrf-token" content="')[1].split('"')[0]
    answers = {
        "bond": 3,
        "goals": 8,
        "approach": 8,
        "technology": 9,
        "overall": 8,
        "rupture": "no",
        "note": f"Thanks. {MARKER}",
    }
    response = await visitor.http.post(
        "/api/v1/visit/checkins",
        headers={"X-CSRF-Token": csrf},
        json={"instrument_id": "after", "answers": answers, "idempotency_key": KEY},
    )
    assert response.status == 201
    again = await visitor.http.post(
        "/api/v1/visit/checkins",
        headers={"X-CSRF-Token": csrf},
        json={"instrument_id": "after", "answers": answers, "idempotency_key": KEY},
    )
    assert again.status == 200 and (await again.json())["duplicate"] is True
    return therapist, visitor


async def test_the_after_checkin_alerts_the_therapist_and_its_text_is_encrypted_at_rest(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, _ = await _after_low_bond(client, aiohttp_client)
    summary = await (await client.get(f"/api/v1/sessions/{therapist.session_id}/checkins")).json()
    (after,) = [r for r in summary["items"] if r["kind"] == "after"]
    codes = {a["code"] for a in after["alerts"]}
    assert "alliance-item-low" in codes and "alliance-total-low" in codes
    raw = _raw_bytes(client.app[SETTINGS].data_dir)
    assert MARKER.encode() not in raw
    page = await (await client.get(f"/host/{therapist.session_id}/summary")).text()
    assert MARKER in page and "Try:" in page


async def test_fhir_export_is_a_valid_r4_bundle_and_the_read_is_audited(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, _ = await _after_low_bond(client, aiohttp_client)
    session = await (await client.get(f"/api/v1/sessions/{therapist.session_id}")).json()
    response = await client.get(f"/api/v1/clients/{session['client_id']}/checkins?format=fhir")
    assert response.status == 200
    document = await response.json()
    r4b_valid(Bundle, document)
    kinds = [e["resource"]["resourceType"] for e in document["entry"]]
    assert "QuestionnaireResponse" in kinds and "Questionnaire" in kinds
    assert MARKER in str(document)
    with sqlite3.connect(client.app[SETTINGS].data_dir / "attune.db") as conn:
        reads = conn.execute(
            "SELECT details FROM audit_log WHERE action = 'clinical.read'"
        ).fetchall()
    assert any("checkins:fhir" in d for (d,) in reads)


async def test_another_therapist_gets_404_for_checkins(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, _ = await _after_low_bond(client, aiohttp_client)
    session = await (await client.get(f"/api/v1/sessions/{therapist.session_id}")).json()
    await add_account(client.app, "other@example.org")
    await sign_in(client, "other@example.org")
    for path in (
        f"/api/v1/clients/{session['client_id']}/checkins",
        f"/api/v1/sessions/{therapist.session_id}/checkins",
        f"/host/{therapist.session_id}/summary",
        f"/dashboard/clients/{session['client_id']}",
    ):
        assert (await client.get(path)).status == 404, path


async def test_after_the_end_the_links_cookie_cannot_withdraw_consents_or_delete_checkins(
    client: TestClient, aiohttp_client: Any
) -> None:
    # Consent changes from the link belong to the open session (issue #13); withdrawing
    # during the session deleting stored check-ins is tests/integration/test_consent.py's.
    _, visitor = await _after_low_bond(client, aiohttp_client)
    stored = _stored_rows(client)
    assert stored
    page = await visitor.http.get("/visit/after")
    csrf = (await page.text()).split('name="csrf-token" content="')[1].split('"')[0]
    refused = await visitor.http.post(
        "/api/v1/visit/consents",
        headers={"X-CSRF-Token": csrf},
        json={"purpose": "checkin_storage", "decision": "withdrawn", "notice_version": 1},
    )
    assert refused.status == 403
    assert (await refused.json())["error"]["code"] == "session-ended"
    assert _stored_rows(client) == stored


async def test_the_client_page_shows_the_trend_as_an_accessible_chart(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, _ = await _after_low_bond(client, aiohttp_client)
    session = await (await client.get(f"/api/v1/sessions/{therapist.session_id}")).json()
    page = await (await client.get(f"/dashboard/clients/{session['client_id']}")).text()
    assert '<svg class="trend"' in page and 'role="img"' in page
    assert 'class="cutoff"' in page
    assert "<td>27</td>" in page  # alliance total: bond 3 + goals 8 + approach 8 + overall 8


async def test_a_summary_with_a_reconnect_gap_still_shows_the_after_answers_in_words(
    client: TestClient, aiohttp_client: Any
) -> None:
    """Issue #11 item 1: a minute without RTT (a reconnect) once made the summary a 500."""
    from datetime import UTC, datetime

    from server.keys import CUE_RECORDS, DB

    therapist, visitor = await _in_call(client, aiohttp_client, storage=True)
    await therapist.send({"type": "end"})
    await visitor.expect("session-ended")
    page = await visitor.http.get("/visit/after")
    csrf = (await page.text()).split('name="csrf-token" content="')[1].split('"')[0]
    answers = {"bond": 2, "goals": 3, "rupture": "quite-a-bit", "note": MARKER}
    response = await visitor.http.post(
        "/api/v1/visit/checkins",
        headers={"X-CSRF-Token": csrf},
        json={"instrument_id": "after", "answers": answers, "idempotency_key": KEY},
    )
    assert response.status == 201
    session = await (await client.get(f"/api/v1/sessions/{therapist.session_id}")).json()
    partial = {
        "duration_ms": 240_000,
        "connection": [
            {"start_ms": 0, "one_way_ms": 35.0},
            {"start_ms": 60_000, "one_way_ms": None},
        ],
        "talk_share": [],
    }
    await client.app[CUE_RECORDS].store_summary(
        client.app[DB],
        session_id=therapist.session_id,
        client_id=session["client_id"],
        summary=partial,
        now=datetime.now(UTC),
    )
    summary = await client.get(f"/host/{therapist.session_id}/summary")
    assert summary.status == 200
    text = await summary.text()
    assert "Quite a bit" in text and "quite-a-bit" not in text
    assert MARKER in text and "Try:" in text and "Connection delay" in text
    assert "Skipped: The way we worked (approach)" in text
    assert "rupture-talked-through" not in text


async def test_a_therapist_who_reconnects_gets_the_panel_so_far_and_the_client_does_not(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, visitor = await _in_call(client, aiohttp_client, storage=False)
    first = await therapist.expect("panel-state")
    assert first["checkins"] == [] and first["signals"] == []
    await therapist.send({"type": "checkin-launch", "instrument_id": "pulse"})
    await visitor.expect("checkin-open")
    answer = {"instrument_id": "pulse", "idempotency_key": KEY, "answers": {"pulse": 2}}
    await visitor.send({"type": "checkin-answer", **answer})
    await therapist.expect("checkin-result")
    await visitor.send({"type": "signal", "signal": "need-a-moment"})
    await therapist.expect("client-signal")
    assert therapist.ws is not None
    await therapist.ws.close()  # a reload: a new socket for the same therapist

    await therapist.connect()
    panel = await therapist.expect("panel-state")
    (pulse,) = panel["checkins"]
    assert pulse["kind"] == "pulse" and pulse["scores"]["pulse"] == 2
    assert [a["code"] for a in pulse["alerts"]] == ["pulse-low"]
    assert [s["signal"] for s in panel["signals"]] == ["need-a-moment"]
    with pytest.raises(TimeoutError):
        await visitor.expect("panel-state", within=0.5)


async def test_a_checkin_read_in_spanish_is_exported_with_the_spanish_wording(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, visitor = await _in_call(client, aiohttp_client, storage=True)
    await visitor.send(
        {
            "type": "checkin-answer",
            "instrument_id": "before",
            "idempotency_key": KEY,
            "answers": {"me-personally": 4, "overall": None},
            "language": "es",
        }
    )
    await visitor.expect("checkin-ack")
    session = await (await client.get(f"/api/v1/sessions/{therapist.session_id}")).json()
    response = await client.get(f"/api/v1/clients/{session['client_id']}/checkins?format=fhir")
    document = await response.json()
    r4b_valid(Bundle, document)
    (answered,) = [
        e["resource"]
        for e in document["entry"]
        if e["resource"]["resourceType"] == "QuestionnaireResponse"
    ]
    assert answered["language"] == "es"
    texts = {item["linkId"]: item["text"] for item in answered["item"]}
    assert texts["me-personally"] == "Yo, personalmente: cómo he estado por dentro"
    assert texts["overall"] == "En general: cómo me ha ido la vida esta semana"  # a skip too
    # the Questionnaire beside it carries every language, its own text stays English
    (questionnaire,) = [
        e["resource"] for e in document["entry"] if e["resource"]["resourceType"] == "Questionnaire"
    ]
    assert questionnaire["title"] == "Before the session: your past week"
    assert "Antes de la sesión: su última semana" in str(questionnaire["_title"])


async def test_an_after_checkin_posted_in_german_keeps_the_german_choice_displays(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, visitor = await _in_call(client, aiohttp_client, storage=True)
    await therapist.send({"type": "end"})
    await visitor.expect("session-ended")
    page = await visitor.http.get("/visit/after", headers={"Accept-Language": "de"})
    html = await page.text()
    assert '<html lang="de"' in html and "Danke für heute. Wenn Sie möchten" in html
    csrf = html.split('name="csrf-token" content="')[1].split('"')[0]
    response = await visitor.http.post(
        "/api/v1/visit/checkins",
        headers={"X-CSRF-Token": csrf},
        json={
            "instrument_id": "after",
            "answers": {"bond": 9, "rupture": "a-little", "rupture-talked-through": "partly"},
            "idempotency_key": KEY,
            "language": "de",
        },
    )
    assert response.status == 201
    session = await (await client.get(f"/api/v1/sessions/{therapist.session_id}")).json()
    document = await (
        await client.get(f"/api/v1/clients/{session['client_id']}/checkins?format=fhir")
    ).json()
    (answered,) = [
        e["resource"]
        for e in document["entry"]
        if e["resource"]["resourceType"] == "QuestionnaireResponse"
    ]
    assert answered["language"] == "de"
    answers = {item["linkId"]: item for item in answered["item"]}
    assert answers["rupture-talked-through"]["text"] == "Konnten Sie darüber sprechen?"
    assert answers["rupture"]["answer"] == [
        {
            "valueCoding": {
                "system": "https://attune.example/fhir/CodeSystem/rupture-level",
                "code": "a-little",
                "display": "Ein wenig",
            }
        }
    ]
    # the therapist's own view stays in the therapist's words
    summary = await (await client.get(f"/api/v1/sessions/{therapist.session_id}/checkins")).json()
    (after,) = summary["items"]
    assert after["scores"]["readable"]["rupture"] == "A little"


@pytest.mark.parametrize("language", ["fr", "ES", "e", "es_ES"])
async def test_a_checkin_in_a_language_it_is_not_written_in_is_refused(
    client: TestClient, aiohttp_client: Any, language: str
) -> None:
    _, visitor = await _in_call(client, aiohttp_client, storage=True)
    await visitor.send(
        {
            "type": "checkin-answer",
            "instrument_id": "before",
            "idempotency_key": KEY,
            "answers": {"me-personally": 4},
            "language": language,
        }
    )
    error = await visitor.expect("error")
    assert error["code"] == "invalid" and "language" in error["message"]
    assert _stored_rows(client) == []


async def test_the_after_form_posted_in_a_language_it_is_not_written_in_is_refused(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, visitor = await _in_call(client, aiohttp_client, storage=True)
    await therapist.send({"type": "end"})
    await visitor.expect("session-ended")
    html = await (await visitor.http.get("/visit/after")).text()
    csrf = html.split('name="csrf-token" content="')[1].split('"')[0]
    for language, status in (("fr", 422), ("Deutsch", 422), ("es", 201)):
        response = await visitor.http.post(
            "/api/v1/visit/checkins",
            headers={"X-CSRF-Token": csrf},
            json={
                "instrument_id": "after",
                "answers": {"bond": 9},
                "idempotency_key": f"{language}-{KEY}"[:64],
                "language": language,
            },
        )
        assert response.status == status, (language, await response.text())
        if status == 422:
            assert "language" in (await response.json())["error"]["message"]
    assert [kind for kind, _ in _stored_rows(client)] == ["after"]

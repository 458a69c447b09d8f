"""Outcome measures end to end through the app: the therapist's plan, the client's answers on
the visit page, the safety alert in the room (therapist only), on the dashboard and by email,
and the not-on-track flag on the client page."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestClient
from aiosmtpd.controller import Controller
from fhir.resources.R4B.bundle import Bundle

from privacy.retention import Action, Category, Policy
from server.app import create_app
from server.keys import AUDIT, DB, MEASURES, SETTINGS, VAULT
from server.services.retention import Retention
from tests.conftest import FakeClock, add_account, sign_in
from tests.integration.test_email import Mailbox, _email_settings, _free_port, _round, _text
from tests.integration.test_signaling import Party, _setup

CODES = ("LA6568-5", "LA6569-3", "LA6570-1", "LA6571-9")
# a body that breaks the schema is 400; well-formed answers that do not fit the measure, 422
STATUS_OF_BAD_BODY = (400, 422)


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box, port = Mailbox(), _free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port, ready_timeout=5)
    controller.start()
    yield box, port
    controller.stop()


@pytest.fixture
def app(data_dir: Path, clock: FakeClock, mailbox: tuple[Mailbox, int]) -> web.Application:
    return create_app(_email_settings(data_dir, mailbox[1]), clock=clock)


def phq9(*scores: int) -> dict[str, str]:
    return {f"phq9-{n}": CODES[value] for n, value in enumerate(scores, start=1)}


async def _visit_csrf(visitor: Party) -> str:
    page = await (await visitor.http.get("/visit")).text()
    found = re.search(r'name="csrf-token" content="([^"]+)"', page)
    assert found, page[:500]
    return found.group(1)


async def _client_id(therapist: Party) -> str:
    session = await (await therapist.http.get(f"/api/v1/sessions/{therapist.session_id}")).json()
    return str(session["client_id"])


async def _plan(therapist: Party, csrf: str, client_id: str, **form: str) -> Any:
    return await therapist.http.post(
        f"/dashboard/clients/{client_id}/measures",
        data={"csrf_token": csrf, **form},
        allow_redirects=False,
    )


async def _answer(visitor: Party, answers: dict[str, str | None], key: str) -> Any:
    return await visitor.http.post(
        "/api/v1/visit/measures",
        headers={"X-CSRF-Token": await _visit_csrf(visitor)},
        json={"measure_id": "phq9", "answers": answers, "idempotency_key": key},
    )


def _sql(client: TestClient, query: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(client.app[SETTINGS].data_dir / "attune.db") as conn:
        return conn.execute(query).fetchall()


async def test_the_therapist_chooses_measures_and_how_often_and_they_are_due_on_the_visit_page(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, visitor, csrf = await _setup(client, aiohttp_client)
    client_id = await _client_id(therapist)
    assert (await (await visitor.http.get("/api/v1/visit/measures")).json()) == {"due": []}

    saved = await _plan(
        therapist,
        csrf,
        client_id,
        **{"measure-phq9": "on", "measure-gad7": "on"},
        frequency="every-2nd-session",
    )
    assert saved.status == 303
    page = await (await client.get(f"/dashboard/clients/{client_id}")).text()
    assert 'id="measure-phq9" name="measure-phq9" value="on" checked' in page
    assert 'value="every-2nd-session" checked' in page
    due = await (await visitor.http.get("/api/v1/visit/measures")).json()
    assert [d["measure_id"] for d in due["due"]] == ["gad7", "phq9"]
    assert due["due"][1]["questionnaire"]["code"][0]["code"] == "44249-1"
    assert ("measure.plan",) in _sql(client, "SELECT action FROM audit_log")


@pytest.mark.parametrize(
    "form",
    [
        {"measure-phq9": "on", "frequency": "weekly"},
        {"measure-phq9": "on"},
        {"measure-bdi": "on", "frequency": "monthly", "measure-phq9": "on"},
    ],
    ids=["unknown-frequency", "no-frequency", "unknown-measure-is-ignored"],
)
async def test_a_plan_form_that_does_not_fit_is_refused_with_a_clear_answer(
    client: TestClient, aiohttp_client: Any, form: dict[str, str]
) -> None:
    therapist, _, csrf = await _setup(client, aiohttp_client)
    client_id = await _client_id(therapist)
    response = await _plan(therapist, csrf, client_id, **form)
    if "measure-bdi" in form:  # only the offered checkboxes are read: the rest is noise
        assert response.status == 303
        assert _sql(client, "SELECT measures, frequency FROM measure_plans") == [
            ("phq9", "monthly")
        ]
        return
    assert response.status == 422
    text = await response.text()
    assert "Choose how often" in text and "Traceback" not in text
    assert _sql(client, "SELECT * FROM measure_plans") == []


async def test_another_therapists_client_plan_is_not_found(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, _, _ = await _setup(client, aiohttp_client)
    client_id = await _client_id(therapist)
    other = await aiohttp_client(client.server)
    await add_account(client.app, "other@example.org")
    other_csrf = await sign_in(other, "other@example.org")
    response = await other.post(
        f"/dashboard/clients/{client_id}/measures",
        data={"csrf_token": other_csrf, "measure-phq9": "on", "frequency": "monthly"},
        allow_redirects=False,
    )
    assert response.status == 404
    assert _sql(client, "SELECT * FROM measure_plans") == []


async def test_a_safety_answer_reaches_the_therapist_at_once_and_never_the_clients_socket(
    client: TestClient, aiohttp_client: Any, clock: FakeClock, mailbox: tuple[Mailbox, int]
) -> None:
    box, _ = mailbox
    therapist, visitor, csrf = await _setup(client, aiohttp_client)
    await therapist.connect()
    await visitor.connect()  # waiting room, before the session

    answered = await _answer(visitor, phq9(1, 1, 0, 0, 0, 0, 0, 0, 1), "safety-key-0000000001")
    assert answered.status == 201
    reply = await answered.json()
    assert "emergency" in reply["help"]

    alert = await therapist.expect("measure-alert")
    assert (alert["label"], alert["measure"]) == ("J.M.", "PHQ-9")
    assert "hurting themselves" in alert["reason"]
    # The client's socket: everything up to a pong, and no measure-alert among it.
    await visitor.send({"type": "ping", "id": "after-answer"})
    assert visitor.ws is not None
    seen: list[str] = []
    async with asyncio.timeout(5):
        while "pong" not in seen:
            msg = await visitor.ws.receive()
            assert msg.type == WSMsgType.TEXT
            seen.append(json.loads(msg.data)["type"])
    assert "measure-alert" not in seen

    # A retry of the same answers is the same submission: one alert record, one email; the
    # room hears of the same alert again (it shows each alert id once).
    again = await _answer(visitor, phq9(1, 1, 0, 0, 0, 0, 0, 0, 1), "safety-key-0000000001")
    assert again.status == 200 and (await again.json())["duplicate"] is True
    assert (await therapist.expect("measure-alert"))["alert_id"] == alert["alert_id"]
    assert len(_sql(client, "SELECT id FROM measure_alerts")) == 1
    assert len(_sql(client, "SELECT id FROM email_outbox")) == 1

    # After a reload the room gets it again in panel-state.
    reloaded = Party(therapist.http, therapist.session_id)
    await reloaded.connect()
    state = await reloaded.expect("panel-state")
    assert [a["alert_id"] for a in state["safety_alerts"]] == [alert["alert_id"]]

    dashboard = await (await client.get("/dashboard")).text()
    assert "Safety alerts" in dashboard and "J.M." in dashboard

    assert await _round(client, clock) == 1
    [(recipients, raw)] = box.messages
    [notice] = box.parsed()
    assert recipients == ["t@example.org"]
    assert notice["Subject"] == "A client's questionnaire needs your attention"
    assert "/dashboard" in _text(notice)
    for marker in (b"J.M.", b"PHQ", b"dead", b"hurting", b"LA6569", b"Several days"):
        assert marker not in raw

    seen_response = await client.post(
        f"/dashboard/safety-alerts/{alert['alert_id']}/seen",
        data={"csrf_token": csrf},
        allow_redirects=False,
    )
    assert seen_response.status == 303
    dashboard_after = await (await client.get("/dashboard")).text()
    # the list stays on the page for live updates, hidden while it is empty
    assert 'aria-labelledby="safety-alerts-title" data-live-alerts' in dashboard_after
    assert "data-alert-id" not in dashboard_after
    assert re.search(r'id="safety-alerts"[^>]* hidden>', dashboard_after)
    assert ("measure.alert_seen",) in _sql(client, "SELECT action FROM audit_log")


async def test_without_any_optional_consent_the_alert_is_still_delivered_and_recorded(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, visitor, _ = await _setup(client, aiohttp_client)  # telehealth only
    await therapist.connect()
    response = await _answer(visitor, phq9(0, 0, 0, 0, 0, 0, 0, 0, 3), "no-consent-key-000001")
    assert response.status == 201
    await therapist.expect("measure-alert")
    assert len(_sql(client, "SELECT id FROM measure_alerts")) == 1


async def test_answers_without_a_safety_concern_bring_no_help_text_and_no_alert(
    client: TestClient, aiohttp_client: Any, clock: FakeClock, mailbox: tuple[Mailbox, int]
) -> None:
    _, visitor, _ = await _setup(client, aiohttp_client)
    response = await _answer(visitor, phq9(3, 3, 3, 3, 3, 3, 3, 3, 0), "calm-key-00000000001")
    assert response.status == 201 and (await response.json())["help"] is None
    assert _sql(client, "SELECT id FROM measure_alerts") == []
    assert await _round(client, clock) == 0


@pytest.mark.parametrize(
    "body",
    [
        {"measure_id": "phq9", "answers": {"phq9-1": "3"}, "idempotency_key": "k" * 20},
        {"measure_id": "bdi", "answers": {}, "idempotency_key": "k" * 20},
        {"measure_id": "phq9", "answers": {}, "idempotency_key": "short"},
        {"measure_id": "phq9", "answers": [], "idempotency_key": "k" * 20},
        {"measure_id": "phq9", "answers": {}, "idempotency_key": "k" * 19 + "!"},
    ],
    ids=["not-an-option", "unknown-measure", "short-key", "answers-not-object", "bad-key"],
)
async def test_answers_that_do_not_fit_get_a_400_and_nothing_is_stored(
    client: TestClient, aiohttp_client: Any, body: dict[str, Any]
) -> None:
    _, visitor, _ = await _setup(client, aiohttp_client)
    response = await visitor.http.post(
        "/api/v1/visit/measures",
        headers={"X-CSRF-Token": await _visit_csrf(visitor)},
        json=body,
    )
    assert response.status in STATUS_OF_BAD_BODY, await response.text()
    assert (await response.json())["error"]
    assert _sql(client, "SELECT id FROM measure_responses") == []


async def test_three_sessions_of_worsening_scores_are_not_on_track_on_the_client_page(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, _, csrf = await _setup(client, aiohttp_client)
    client_id = await _client_id(therapist)
    await seed_worsening(client, therapist.http, csrf, client_id)
    page = await (await client.get(f"/dashboard/clients/{client_id}")).text()
    assert "Not on track" in page
    assert "PHQ-9 rose from 5 to 14" in page
    reads = _sql(client, "SELECT details FROM audit_log WHERE action = 'clinical.read'")
    assert any("measure-flags" in str(details) for (details,) in reads)
    flags = await client.app[MEASURES].flags(client_id)
    assert [f.reason for f in flags["phq9"]] == ["reliably-worse"]


async def test_the_dashboards_alert_list_is_the_therapists_own_and_follows_new_answers(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, visitor, csrf = await _setup(client, aiohttp_client)
    client_id = await _client_id(therapist)
    assert await (await therapist.http.get("/api/v1/dashboard/alerts")).json() == {
        "safety": [],
        "not_on_track": [],
    }
    answered = await _answer(visitor, phq9(0, 0, 0, 0, 0, 0, 0, 0, 2), "dash-alert-key-000001")
    assert answered.status == 201
    body = await (await therapist.http.get("/api/v1/dashboard/alerts")).json()
    [alert] = body["safety"]
    assert (alert["alias"], alert["measure"], alert["client_id"]) == ("J.M.", "PHQ-9", client_id)
    assert body["not_on_track"] == []

    await seed_worsening(client, therapist.http, csrf, client_id)
    body = await (await therapist.http.get("/api/v1/dashboard/alerts")).json()
    assert body["not_on_track"] == [
        {"client_id": client_id, "alias": "J.M.", "measures": ["PHQ-9"]}
    ]
    reads_query = "SELECT details FROM audit_log WHERE action = 'clinical.read'"
    reads = _sql(client, reads_query)
    assert any("measure-flags-dashboard" in str(details) for (details,) in reads)
    await therapist.http.get("/api/v1/dashboard/alerts")  # nothing new: history not reopened
    assert len(_sql(client, reads_query)) == len(reads)

    anonymous = await aiohttp_client(client.server)
    assert (await anonymous.get("/api/v1/dashboard/alerts")).status == 401
    await add_account(client.app, "other@example.org")
    await sign_in(anonymous, "other@example.org")
    other = await (await anonymous.get("/api/v1/dashboard/alerts")).json()
    assert other == {"safety": [], "not_on_track": []}


async def test_a_spanish_client_is_asked_in_spanish_and_the_export_keeps_that_wording(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, visitor, csrf = await _setup(client, aiohttp_client)
    client_id = await _client_id(therapist)
    await _plan(therapist, csrf, client_id, **{"measure-phq9": "on"}, frequency="every-session")
    chosen = await visitor.http.post(
        "/language",
        data={"lang": "es", "next": "/visit", "csrf_token": await _visit_csrf(visitor)},
        allow_redirects=False,
    )
    assert chosen.status == 303
    [due] = (await (await visitor.http.get("/api/v1/visit/measures")).json())["due"]
    questionnaire = due["questionnaire"]
    assert questionnaire["language"] == "es"
    assert questionnaire["item"][9]["text"].startswith("Pensamientos de que estaría mejor")
    assert questionnaire["item"][9]["answerOption"][1]["valueCoding"]["display"] == "Varios días"

    answered = await _answer(visitor, phq9(1, 1, 0, 0, 0, 0, 0, 0, 1), "spanish-key-00000001")
    assert answered.status == 201
    assert (await answered.json())["help"].startswith("Si ahora está en peligro")
    exported = await (await visitor.http.get("/api/v1/visit/export")).json()
    [stored] = exported["records"]["measure_responses"]
    assert stored["payload"]["language"] == "es"
    bundle = exported["outcome_measures_fhir"]
    Bundle.model_validate(bundle)
    [response] = [
        e["resource"]
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "QuestionnaireResponse"
    ]
    assert response["language"] == "es"
    assert response["item"][8]["text"].startswith("Pensamientos de que estaría mejor")
    assert response["item"][8]["answer"][0]["valueCoding"]["display"] == "Varios días"


async def seed_worsening(
    client: TestClient, http: TestClient, csrf: str, client_id: str
) -> list[str]:
    """Three sessions a week apart (December) with PHQ-9 totals 5, 9, 14, answered through the
    service."""
    from server.db.scheduling import session_by_id

    session_ids = []
    for week, total in enumerate((5, 9, 14)):
        created = await (
            await http.post(
                "/api/v1/sessions",
                json={"client_id": client_id, "starts_at": f"2026-12-{1 + 7 * week:02d}T09:00:00Z"},
                headers={"X-CSRF-Token": csrf},
            )
        ).json()
        session_id = created["session"]["id"]
        session_ids.append(session_id)
        async with client.app[DB].read() as conn:
            session = await session_by_id(conn, session_id)
        assert session is not None
        scores = [min(3, max(0, total - 3 * n)) for n in range(9)]
        scores[8] = 0
        assert sum(scores) == total
        await client.app[MEASURES].submit(
            session=session,
            measure_id="phq9",
            answers=phq9(*scores),
            idempotency_key=f"seed-worsening-{week:06d}",
            now=session.starts_at,
        )
    return session_ids


async def test_measures_have_their_own_retention_category_and_the_purge_deletes_them(
    client: TestClient, aiohttp_client: Any, clock: FakeClock
) -> None:
    _, visitor, _ = await _setup(client, aiohttp_client)
    await _answer(visitor, phq9(0, 0, 0, 0, 0, 0, 0, 0, 2), "purge-key-0000000001")
    app = client.app
    retention = Retention(app[DB], app[AUDIT], app[VAULT])
    await retention.set_policy(
        Policy(Category.MEASURE, 1, Action.DELETE), actor="system:test", now=clock()
    )
    early = await retention.purge(clock(), trigger="test", actor="system:test")
    assert early.count(Category.MEASURE, Action.DELETE) == 0

    report = await retention.purge(clock() + timedelta(days=2), trigger="test", actor="system:test")
    assert report.count(Category.MEASURE, Action.DELETE) == 2  # the answers and the alert
    assert _sql(client, "SELECT id FROM measure_responses") == []
    assert _sql(client, "SELECT id FROM measure_alerts") == []
    assert _sql(client, "SELECT count(*) FROM checkin_responses") == [(0,)]


async def test_the_clients_export_holds_their_measures_as_fhir_and_erasure_removes_them(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, visitor, csrf = await _setup(client, aiohttp_client)
    client_id = await _client_id(therapist)
    await _plan(therapist, csrf, client_id, **{"measure-phq9": "on"}, frequency="monthly")
    assert len(_sql(client, "SELECT client_id FROM measure_plans")) == 1
    await _answer(visitor, phq9(1, 2, 3, 0, 1, 2, 3, 0, 0), "export-key-000000001")
    exported = await (await visitor.http.get("/api/v1/visit/export")).json()
    bundle = exported["outcome_measures_fhir"]
    Bundle.model_validate(bundle)
    [response] = [
        e["resource"]
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "QuestionnaireResponse"
    ]
    assert response["questionnaire"].split("|")[0].endswith("/Questionnaire/phq9")
    assert response["item"][-1]["answer"] == [{"valueInteger": 12}]
    assert response["item"][1]["answer"][0]["valueCoding"]["code"] == "LA6570-1"
    assert [row["measure_id"] for row in exported["records"]["measure_responses"]] == ["phq9"]

    erased = await client.delete(
        f"/api/v1/clients/{client_id}",
        headers={"X-CSRF-Token": csrf},
        json={"confirm_alias": "J.M."},
    )
    assert erased.status in (200, 204), await erased.text()
    assert _sql(client, "SELECT id FROM measure_responses") == []
    assert _sql(client, "SELECT client_id FROM measure_plans") == []

"""Shared goals: both people in the call add, reword and mark the client's goals, and both
screens see the same list at once; the words are kept only encrypted, the history and the
audit trail name who changed what and when but never the words."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.goal import Goal as FhirGoal

from privacy.consent import Channel, ConsentDecision, Purpose
from privacy.retention import Action, Category, Policy
from server.keys import AUDIT, CLOCK, CONSENTS, DB, SETTINGS, VAULT
from server.services.retention import Retention
from tests.conftest import add_account, sign_in
from tests.fhir_r4b import r4b_valid
from tests.integration.test_checkins import _grant
from tests.integration.test_measures_flow import seed_worsening
from tests.integration.test_signaling import Party, _admitted, _setup


def _db(client: TestClient) -> sqlite3.Connection:
    return sqlite3.connect(client.app[SETTINGS].data_dir / "attune.db")


def _raw_bytes(data_dir: Path) -> bytes:
    return b"".join(p.read_bytes() for p in data_dir.iterdir() if p.is_file())


async def _in_call(client: TestClient, aiohttp_client: Any) -> tuple[Party, Party]:
    therapist, visitor, _ = await _setup(client, aiohttp_client)
    await _admitted(therapist, visitor)
    return therapist, visitor


async def test_a_goal_the_client_adds_reaches_both_screens_and_the_therapist_can_mark_it(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, visitor = await _in_call(client, aiohttp_client)

    await visitor.send({"type": "goal-add", "text": "  Go back to the   choir "})
    seen_by_therapist = (await therapist.expect("goals"))["goals"]
    seen_by_client = (await visitor.expect("goals"))["goals"]
    while not seen_by_client:  # the client's own list from joining came first
        seen_by_client = (await visitor.expect("goals"))["goals"]

    assert seen_by_therapist == seen_by_client
    (goal,) = seen_by_client
    assert (goal["text"], goal["status"], goal["updated_by"]) == (
        "Go back to the choir",
        "active",
        "client",
    )

    await therapist.send({"type": "goal-edit", "goal_id": goal["id"], "text": "Sing again"})
    assert (await visitor.expect("goals"))["goals"][0]["text"] == "Sing again"
    await therapist.send({"type": "goal-status", "goal_id": goal["id"], "status": "reached"})
    reached = (await visitor.expect("goals"))["goals"][0]
    assert (reached["status"], reached["updated_by"]) == ("reached", "therapist")

    with _db(client) as db:
        history = db.execute("SELECT by, change FROM goal_changes ORDER BY at, rowid").fetchall()
        audit = db.execute(
            "SELECT actor, details FROM audit_log WHERE action = 'goal.change' ORDER BY seq"
        ).fetchall()
    assert history == [("client", "added"), ("therapist", "edited"), ("therapist", "reached")]
    assert [actor.split(":")[0] for actor, _ in audit] == ["client", "account", "account"]
    # The words are nowhere in clear: not in the database, its journal, nor the audit trail.
    data_dir = client.app[SETTINGS].data_dir
    assert b"choir" not in _raw_bytes(data_dir) and b"Sing again" not in _raw_bytes(data_dir)


async def test_a_sixth_active_goal_and_bad_changes_are_refused_and_the_socket_stays_up(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, visitor = await _in_call(client, aiohttp_client)
    for n in range(5):
        await visitor.send({"type": "goal-add", "text": f"Goal {n}"})
        await therapist.expect("goals")

    await visitor.send({"type": "goal-add", "text": "One more", "id": "g6"})
    error = await visitor.expect("error")
    assert error["code"] == "invalid" and error["ref"] == "g6"
    assert "reached or dropped first" in error["message"]

    await therapist.send({"type": "goal-status", "goal_id": "0" * 32, "status": "dropped"})
    assert (await therapist.expect("error"))["code"] == "invalid"
    await visitor.send({"type": "goal-add", "text": "\u0007"})
    assert (await visitor.expect("error"))["code"] == "invalid"
    await visitor.send({"type": "ping", "id": "still-here"})
    assert (await visitor.expect("pong"))["type"] == "pong"


async def test_a_waiting_client_cannot_change_goals_and_gets_them_fresh_when_admitted(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, visitor, _ = await _setup(client, aiohttp_client)
    await therapist.connect()
    welcome = await visitor.connect()

    await visitor.send({"type": "goal-add", "text": "Sleep better", "id": "w1"})
    error = await visitor.expect("error")
    assert error["code"] == "not-admitted" and error["ref"] == "w1"
    with _db(client) as db:
        assert db.execute("SELECT count(*) FROM client_goals").fetchone() == (0,)

    await therapist.send({"type": "goal-add", "text": "Walk every morning"})
    await therapist.expect("goals")
    await therapist.send({"type": "admit", "knock_id": welcome["knock_id"]})
    await visitor.expect("admitted")
    goals = (await visitor.expect("goals"))["goals"]
    while not goals:  # the (empty) list from joining came first
        goals = (await visitor.expect("goals"))["goals"]
    assert [(g["text"], g["updated_by"]) for g in goals] == [("Walk every morning", "therapist")]


# --- after the session: progress on each goal -------------------------------------------------

KEY = "after-goals-key-0001"


async def _goal_in_call(client: TestClient, aiohttp_client: Any) -> tuple[Party, Party, str]:
    therapist, visitor, _ = await _setup(client, aiohttp_client)
    await _grant(visitor, "checkin_storage")
    await _admitted(therapist, visitor)
    await visitor.send({"type": "goal-add", "text": "Sleep through the night"})
    goal_id = str((await therapist.expect("goals"))["goals"][0]["id"])
    return therapist, visitor, goal_id


async def _after(visitor: Party) -> tuple[str, str]:
    page = await visitor.http.get("/visit/after")
    assert page.status == 200
    html = await page.text()
    return html, html.split('name="csrf-token" content="')[1].split('"')[0]


async def test_the_after_form_asks_about_each_active_goal_and_keeps_the_answer_once_encrypted(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, visitor, goal_id = await _goal_in_call(client, aiohttp_client)
    await therapist.send({"type": "end"})
    await visitor.expect("session-ended")

    html, csrf = await _after(visitor)
    assert f"goal-{goal_id}" in html and "Sleep through the night" in html
    answers = {"bond": 9, "goals": 9, "approach": 9, "overall": 9, f"goal-{goal_id}": 7}
    body = {"instrument_id": "after", "answers": answers, "idempotency_key": KEY}
    first = await visitor.http.post(
        "/api/v1/visit/checkins", headers={"X-CSRF-Token": csrf}, json=body
    )
    again = await visitor.http.post(
        "/api/v1/visit/checkins", headers={"X-CSRF-Token": csrf}, json=body
    )
    assert (first.status, again.status) == (201, 200)

    with _db(client) as db:
        rows = db.execute("SELECT goal_id, idempotency_key FROM goal_progress").fetchall()
    assert rows == [(goal_id, KEY)]
    listed = await (await client.get(f"/api/v1/clients/{_client_id(client)}/goals")).json()
    assert [p["score"] for p in listed["goals"][0]["progress"]] == [7]
    assert b'"score": 7' not in _raw_bytes(client.app[SETTINGS].data_dir)


async def test_progress_out_of_range_or_for_someone_elses_goal_is_refused_with_422(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, visitor, goal_id = await _goal_in_call(client, aiohttp_client)
    await therapist.send({"type": "end"})
    await visitor.expect("session-ended")
    _html, csrf = await _after(visitor)

    for link_id, value in ((f"goal-{goal_id}", 11), (f"goal-{'a' * 32}", 5)):
        response = await visitor.http.post(
            "/api/v1/visit/checkins",
            headers={"X-CSRF-Token": csrf},
            json={
                "instrument_id": "after",
                "answers": {link_id: value},
                "idempotency_key": f"bad-progress-{value:04d}-x",
            },
        )
        assert response.status == 422
    with _db(client) as db:
        assert db.execute("SELECT count(*) FROM goal_progress").fetchone() == (0,)


def _client_id(client: TestClient) -> str:
    with _db(client) as db:
        return str(db.execute("SELECT id FROM clients").fetchone()[0])


# --- the therapist's reads, the export, retention ---------------------------------------------


async def test_another_therapist_cannot_read_the_goals(
    client: TestClient, aiohttp_client: Any
) -> None:
    await _goal_in_call(client, aiohttp_client)
    client_id = _client_id(client)
    await add_account(client.app, "other@example.org")
    other = await aiohttp_client(client.server)
    await sign_in(other, "other@example.org")

    assert (await client.get(f"/api/v1/clients/{client_id}/goals")).status == 200
    assert (await other.get(f"/api/v1/clients/{client_id}/goals")).status == 404
    assert (await other.get(f"/dashboard/clients/{client_id}")).status == 404
    forged = await other.post(
        f"/dashboard/clients/{client_id}/progress-view",
        data={"shown": "no", "reason": "x"},
        allow_redirects=False,
    )
    assert forged.status in (403, 404)


async def test_goals_export_as_fhir_goals_beside_the_questionnaire_responses(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, visitor, goal_id = await _goal_in_call(client, aiohttp_client)
    await therapist.send({"type": "end"})
    await visitor.expect("session-ended")
    _html, csrf = await _after(visitor)
    await visitor.http.post(
        "/api/v1/visit/checkins",
        headers={"X-CSRF-Token": csrf},
        json={
            "instrument_id": "after",
            "answers": {"bond": 8, f"goal-{goal_id}": 4},
            "idempotency_key": KEY,
        },
    )
    client_id = _client_id(client)

    bundle = await (await client.get(f"/api/v1/clients/{client_id}/checkins?format=fhir")).json()
    r4b_valid(Bundle, bundle)
    kinds = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert "QuestionnaireResponse" in kinds and "Goal" in kinds
    (goal,) = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Goal"]
    assert goal["description"]["text"] == "Sleep through the night"
    assert goal["extension"][0]["extension"][1]["valueInteger"] == 4

    export = await (await client.get(f"/api/v1/clients/{client_id}/export")).json()
    (own,) = export["fhir_goals"]
    FhirGoal.model_validate(own)
    assert own["id"] == goal_id
    assert export["records"]["client_goals"][0]["text"] == "Sleep through the night"


async def test_the_goal_retention_policy_purges_goals_history_and_progress_but_not_checkins(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, visitor, goal_id = await _goal_in_call(client, aiohttp_client)
    await therapist.send({"type": "end"})
    await visitor.expect("session-ended")
    _html, csrf = await _after(visitor)
    await visitor.http.post(
        "/api/v1/visit/checkins",
        headers={"X-CSRF-Token": csrf},
        json={"instrument_id": "after", "answers": {f"goal-{goal_id}": 6}, "idempotency_key": KEY},
    )
    app = client.app
    retention = Retention(app[DB], app[AUDIT], app[VAULT])
    now = app[CLOCK]()
    await retention.set_policy(Policy(Category.GOAL, 0, Action.DELETE), actor="t", now=now)

    report = await retention.purge(now, trigger="test", actor="system:test")

    assert report.count(Category.GOAL, Action.DELETE) == 3  # progress, history entry, goal
    with _db(client) as db:
        for table in ("client_goals", "goal_changes", "goal_progress"):
            assert db.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,)
        assert db.execute("SELECT count(*) FROM checkin_responses").fetchone() == (1,)


async def test_withdrawing_checkin_storage_deletes_the_progress_answers_but_keeps_the_goals(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, visitor, goal_id = await _goal_in_call(client, aiohttp_client)
    await therapist.send({"type": "end"})
    await visitor.expect("session-ended")
    _html, csrf = await _after(visitor)
    await visitor.http.post(
        "/api/v1/visit/checkins",
        headers={"X-CSRF-Token": csrf},
        json={"instrument_id": "after", "answers": {f"goal-{goal_id}": 6}, "idempotency_key": KEY},
    )
    app = client.app
    await app[CONSENTS].decide(
        app[DB],
        app[AUDIT],
        client_id=_client_id(client),
        purpose=Purpose.CHECKIN_STORAGE,
        decision=ConsentDecision.WITHDRAWN,
        notice_version=1,
        channel=Channel.PAGE,
        now=app[CLOCK](),
    )
    with _db(client) as db:
        assert db.execute("SELECT count(*) FROM goal_progress").fetchone() == (0,)
        assert db.execute("SELECT count(*) FROM client_goals").fetchone() == (1,)


# --- the client's own progress page -----------------------------------------------------------


async def test_the_therapist_can_turn_the_clients_progress_page_off_with_a_reason(
    client: TestClient, aiohttp_client: Any
) -> None:
    _therapist, visitor, _goal_id = await _goal_in_call(client, aiohttp_client)
    client_id = _client_id(client)
    shown = await (await visitor.http.get("/visit/progress")).text()
    assert "Sleep through the night" in shown and "Your goals" in shown

    page = await (await client.get(f"/dashboard/clients/{client_id}")).text()
    csrf = page.split('name="csrf_token" value="')[1].split('"')[0]
    no_reason = await client.post(
        f"/dashboard/clients/{client_id}/progress-view",
        data={"csrf_token": csrf, "shown": "no", "reason": "  "},
        allow_redirects=False,
    )
    assert no_reason.status == 303 and "error=" in no_reason.headers["Location"]
    turned_off = await client.post(
        f"/dashboard/clients/{client_id}/progress-view",
        data={"csrf_token": csrf, "shown": "no", "reason": "Discuss scores together first"},
        allow_redirects=False,
    )
    assert turned_off.status == 303

    hidden = await (await visitor.http.get("/visit/progress")).text()
    assert "Sleep through the night" not in hidden
    assert "go over your progress with you in your sessions" in hidden
    page = await (await client.get(f"/dashboard/clients/{client_id}")).text()
    assert "Discuss scores together first" in page
    with _db(client) as db:
        audited = db.execute(
            "SELECT details FROM audit_log WHERE action = 'progress.visibility'"
        ).fetchall()
    assert len(audited) == 1 and "Discuss" not in audited[0][0]
    assert b"Discuss scores" not in _raw_bytes(client.app[SETTINGS].data_dir)


# --- outcome measures on the charts -----------------------------------------------------------


async def test_worsening_phq9_scores_chart_with_bands_a_table_and_a_not_on_track_flag(
    client: TestClient, aiohttp_client: Any
) -> None:
    _therapist, visitor, csrf = await _setup(client, aiohttp_client)
    await seed_worsening(client, client, csrf, _client_id(client))  # three sessions: 5, 9, 14

    page = await (await client.get(f"/dashboard/clients/{_client_id(client)}")).text()

    assert page.count('class="band band-') == 5  # minimal … severe behind the line
    assert 'class="change-band"' in page
    assert "PHQ-9 rose from 5 to 14" in page  # the flag, with its reason
    for total, band in (("5", "mild"), ("9", "mild"), ("14", "moderate")):
        assert f"<td>{total}</td><td>{band}</td>" in page
    own = await (await visitor.http.get("/visit/progress")).text()
    assert "Mood over the past two weeks" in own and "higher than the first time" in own
    assert "moderate" not in own and "severe" not in own


async def test_progress_sent_over_the_socket_with_an_after_checkin_is_stored_once(
    client: TestClient, aiohttp_client: Any
) -> None:
    _therapist, visitor, goal_id = await _goal_in_call(client, aiohttp_client)
    answer = {
        "type": "checkin-answer",
        "instrument_id": "after",
        "answers": {"overall": 8, f"goal-{goal_id}": 3},
        "idempotency_key": "socket-after-key-01",
    }
    for _ in range(2):  # a resend after a lost ack
        await visitor.send(answer)
        assert (await visitor.expect("checkin-ack"))["idempotency_key"] == "socket-after-key-01"

    with _db(client) as db:
        assert db.execute("SELECT goal_id FROM goal_progress").fetchall() == [(goal_id,)]


async def test_a_german_clients_progress_page_has_no_english_left(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, visitor, goal_id = await _goal_in_call(client, aiohttp_client)
    await therapist.send({"type": "end"})
    await visitor.expect("session-ended")
    _html, csrf = await _after(visitor)
    answers = {"bond": 9, "goals": 8, "approach": 9, "overall": 9, f"goal-{goal_id}": 7}
    body = {"instrument_id": "after", "answers": answers, "idempotency_key": KEY}
    stored = await visitor.http.post(
        "/api/v1/visit/checkins", headers={"X-CSRF-Token": csrf}, json=body
    )
    assert stored.status == 201
    page = await (await client.get(f"/dashboard/clients/{_client_id(client)}")).text()
    csrf_therapist = page.split('name="csrf_token" value="')[1].split('"')[0]
    await seed_worsening(client, client, csrf_therapist, _client_id(client))
    chosen = await visitor.http.post(
        "/language",
        data={"lang": "de", "next": "/visit/progress", "csrf_token": csrf},
        allow_redirects=False,
    )
    assert chosen.status == 303

    response = await visitor.http.get("/visit/progress")
    html = await response.text()
    assert response.status == 200 and '<html lang="de"' in html
    for german in (
        "Ihr Fortschritt",
        "Ihre Ziele",
        "in Arbeit",
        "Stimmung in den letzten zwei Wochen",
        "Ihre Antworten liegen jetzt höher als beim ersten Mal",
        "Wie sich die Sitzungen für Sie angefühlt haben",
        "Fortschritt bei Ihren Zielen",
        "Dez",  # dates in German
    ):
        assert german in html, german
    visible = re.sub(r"<[^>]+>", " ", html.split("<main", 1)[1].split("</main>", 1)[0])
    visible = visible.replace("Sleep through the night", "")  # the client's own words
    for english in (
        "Your",
        "Goal",
        "Date",
        "Added up",
        "not asked",
        "working on it",
        "Mood",
        "Questionnaire",
        "Lower numbers",
        "Back to",
        "total",
        "session",
        " Dec ",
        "answered",
        "change",
    ):
        at = visible.find(english)
        assert at < 0, (english, visible[max(0, at - 200) : at + 200])


async def test_the_shared_goals_panel_on_a_german_clients_call_page_is_german(
    client: TestClient, aiohttp_client: Any
) -> None:
    _therapist, visitor, _ = await _setup(client, aiohttp_client)
    page = await (await visitor.http.get("/visit")).text()
    csrf = page.split('name="csrf-token" content="')[1].split('"')[0]
    chosen = await visitor.http.post(
        "/language", data={"lang": "de", "next": "/visit", "csrf_token": csrf}
    )
    html = await chosen.text()
    section = html.split('<section id="goals"', 1)[1].split("</section>", 1)[0]
    for german in ("Gemeinsame Ziele", "Noch keine Ziele.", "Neues Ziel", "Ziel hinzufügen"):
        assert german in section, german
    for english in ("Shared goals", "No goals yet", "New goal", "Add goal", "Up to 5"):
        assert english not in section, english
    # the panel's live messages (goals.js) come in the page's catalogue
    messages = json.loads(html.split('id="i18n-messages">', 1)[1].split("</script>", 1)[0])
    assert messages["Your therapist added a goal: {text}"] == (
        "Ihre Therapeutin oder Ihr Therapeut hat ein Ziel hinzugefügt: {text}"
    )
    assert messages["Mark reached: {text}"] == "Als erreicht markieren: {text}"


async def test_a_spanish_clients_after_form_asks_about_each_goal_in_spanish(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, visitor, _goal_id = await _goal_in_call(client, aiohttp_client)
    page = await (await visitor.http.get("/visit")).text()
    csrf = page.split('name="csrf-token" content="')[1].split('"')[0]
    await visitor.http.post("/language", data={"lang": "es", "next": "/visit", "csrf_token": csrf})
    await therapist.send({"type": "end"})
    await visitor.expect("session-ended")

    html, _csrf = await _after(visitor)
    assert '<html lang="es"' in html
    # The form carries its Spanish wording as FHIR translations, like every check-in item;
    # checkins.js shows the page's language (tests/browser/test_call_languages_browser.py).
    assert "Avance en su objetivo: «Sleep through the night»" in html
    assert "sin avances todavía" in html and "plenamente conseguido" in html

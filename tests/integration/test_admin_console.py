"""The admin console: account actions, retention with a preview before saving, holds, notices,
purge reports; and an admin never sees clinical content, on any page or API answer."""

from __future__ import annotations

import json
import re
from collections import deque
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient

from privacy.consent import ConsentDecision, Purpose
from privacy.retention import Action, Category, Policy
from server.core.models import Account, Role
from server.db.tables import audit_log, cue_prompts, cue_summaries, signal_events
from server.keys import API_OPERATIONS, CONSENTS
from server.services import scheduling
from server.services.accounts import account_by_email
from server.web.admin.common import preview_message
from tests.conftest import PASSWORD, FakeClock, add_account, sign_in
from tests.integration.retention_world import DAY, MARKER, World

ADMIN, THERAPIST = "admin@example.org", "therapist@example.org"
ALIAS_MARKER = "ALIAS-MARKER-55c0"


@pytest.fixture
async def world(client: TestClient[Any, Any], clock: FakeClock) -> World:
    return World(client.app, clock.now)


async def _admin(client: TestClient[Any, Any]) -> tuple[Account, dict[str, str]]:
    admin = await add_account(client.app, ADMIN, Role.ADMIN)
    return admin, {"X-CSRF-Token": await sign_in(client, ADMIN)}


async def _form_csrf(client: TestClient[Any, Any], path: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', await (await client.get(path)).text())
    assert match, path
    return match.group(1)


async def _actions(world: World, action_prefix: str) -> list[tuple[str, str, list[str]]]:
    async with world.db.read() as conn:
        rows = await conn.execute(
            sa.select(audit_log.c.action, audit_log.c.actor, audit_log.c.targets)
            .where(audit_log.c.action.startswith(action_prefix))
            .order_by(audit_log.c.seq)
        )
        return [(a, actor, json.loads(t)) for a, actor, t in rows]


# --- accounts -------------------------------------------------------------------------------


async def test_disable_enable_and_reset_are_audited_and_take_effect(
    client: TestClient[Any, Any], world: World, aiohttp_client: Any
) -> None:
    admin, headers = await _admin(client)
    therapist = await add_account(client.app, THERAPIST)
    other = await aiohttp_client(client.server)
    await sign_in(other, THERAPIST)
    base = f"/api/v1/accounts/{therapist.id}"

    disabled = await client.post(f"{base}/disable", headers=headers)
    assert (disabled.status, (await disabled.json())["disabled"]) == (200, True)
    assert (await other.get("/api/v1/auth/me")).status == 401  # its sign-in ended
    refused = await other.post(
        "/api/v1/auth/login", json={"email": THERAPIST, "password": PASSWORD}
    )
    assert refused.status == 401

    assert (await client.post(f"{base}/enable", headers=headers)).status == 200
    assert (
        await other.post("/api/v1/auth/login", json={"email": THERAPIST, "password": PASSWORD})
    ).status == 200
    reset = await client.post(f"{base}/reset", headers=headers)
    assert reset.status == 200
    assert reset.headers["Cache-Control"] == "no-store"
    assert (await other.get("/api/v1/auth/me")).status == 401  # the reset ended its sign-in
    link = (await reset.json())["reset_url"]
    token = link.rsplit("/reset/", 1)[1]
    new_password = "another long passphrase"
    holder = await aiohttp_client(client.server)
    page = await holder.get(f"/reset/{token}")
    assert page.status == 200
    chosen = await holder.post(
        f"/reset/{token}",
        data={"password": new_password, "password_again": new_password},
        allow_redirects=False,
    )
    assert chosen.status == 303
    assert (
        await other.post("/api/v1/auth/login", json={"email": THERAPIST, "password": PASSWORD})
    ).status == 401
    assert (
        await other.post("/api/v1/auth/login", json={"email": THERAPIST, "password": new_password})
    ).status == 200

    assert await _actions(world, "account.") == [
        ("account.create", "system:test", [f"account:{admin.id}"]),
        ("account.create", "system:test", [f"account:{therapist.id}"]),
        ("account.disable", f"account:{admin.id}", [f"account:{therapist.id}"]),
        ("account.enable", f"account:{admin.id}", [f"account:{therapist.id}"]),
        ("account.reset_link.issue", f"account:{admin.id}", [f"account:{therapist.id}"]),
        ("account.password_reset", f"account:{therapist.id}", [f"account:{therapist.id}"]),
    ]


@pytest.mark.parametrize(
    ("who", "action", "status"),
    [
        pytest.param("self", "disable", 409, id="an admin cannot disable themself"),
        pytest.param("therapist", "disable", 403, id="a therapist cannot disable anyone"),
        pytest.param("nobody", "enable", 404, id="unknown account"),
    ],
)
async def test_account_actions_that_are_refused(
    client: TestClient[Any, Any], who: str, action: str, status: int
) -> None:
    admin, headers = await _admin(client)
    target = admin.id
    if who == "therapist":
        await add_account(client.app, THERAPIST)
        headers = {"X-CSRF-Token": await sign_in(client, THERAPIST)}
    elif who == "nobody":
        target = "f" * 32

    response = await client.post(f"/api/v1/accounts/{target}/{action}", headers=headers)

    assert response.status == status


async def test_the_account_page_disables_with_one_button(client: TestClient[Any, Any]) -> None:
    await _admin(client)
    therapist = await add_account(client.app, THERAPIST)
    page = f"/admin/accounts/{therapist.id}"
    assert f'href="{page}"' in await (await client.get("/admin")).text()

    response = await client.post(
        f"{page}/disable", data={"csrf_token": await _form_csrf(client, page)}
    )

    text = await response.text()
    assert response.status == 200 and "Disabled: its sign-ins have ended." in text
    assert "Enable this account" in text
    # Post/redirect/get: the page after the action has its own address, so a reload repeats
    # nothing (issue #11, item 6); the disable form and "Run the purge now" ask first.
    assert str(response.url).endswith(f"{page}?done=disable")
    await client.post(f"{page}/enable", data={"csrf_token": await _form_csrf(client, page)})
    assert 'data-confirm="Disable therapist@example.org?' in await (await client.get(page)).text()
    retention = await (await client.get("/admin/retention")).text()
    assert 'value="run" class="danger" data-confirm="Run the purge now?' in retention


# --- retention policies: preview first, then confirm ------------------------------------------


async def _old_cue_rows(world: World, n: int) -> None:
    therapist = await world.account("old-t@example.org", world.now - 60 * DAY)
    client = await world.client(therapist, "O.L.", world.now - 60 * DAY)
    session = await world.session(therapist, client, world.now - 40 * DAY)
    for _ in range(n):
        await world.clinical_row(cue_prompts, session, world.now - 40 * DAY)


async def test_saving_a_policy_shows_what_it_would_do_and_needs_a_confirmation(
    client: TestClient[Any, Any], world: World
) -> None:
    await _admin(client)
    await _old_cue_rows(world, 3)
    csrf = await _form_csrf(client, "/admin/retention")
    proposal = {"csrf_token": csrf, "category": "cue", "keep_days": "14", "action": "delete"}

    preview = await client.post("/admin/retention/preview", data=proposal)
    unconfirmed = await client.post("/admin/retention/save", data=proposal)
    policies = await (await client.get("/api/v1/retention/policies")).json()

    assert "This would delete 3 cue records now." in await preview.text()
    assert 'name="confirm" value="yes"' in await preview.text()
    assert unconfirmed.status == 422
    assert {p["category"]: p["keep_days"] for p in policies["items"]}["cue"] == 30

    saved = await client.post(
        "/admin/retention/save", data={**proposal, "confirm": "yes"}, allow_redirects=False
    )
    policies = await (await client.get("/api/v1/retention/policies")).json()

    assert (saved.status, saved.headers["Location"]) == (303, "/admin/retention?saved=cue")
    assert {p["category"]: p["keep_days"] for p in policies["items"]}["cue"] == 14
    assert len(await world.ids(cue_prompts)) == 3  # saving never purges by itself


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        pytest.param(
            {"category": "consent", "keep_days": 30},
            422,
            "at least 2192 days (6 years, HIPAA",
            id="below-floor",
        ),
        pytest.param(
            {"category": "audit", "keep_days": 30, "floor_override_reason": "court order"},
            200,
            "below the floor of 2192 days",
            id="below-floor-overridden",
        ),
        pytest.param(
            {"category": "signal", "keep_days": 30, "action": "anonymize"},
            422,
            "allowed: delete",
            id="anonymize-not-allowed",
        ),
    ],
)
async def test_policy_api_guards_floors_and_actions(
    client: TestClient[Any, Any], body: dict[str, Any], status: int, says: str
) -> None:
    _, headers = await _admin(client)

    preview = await client.post("/api/v1/retention/preview", json=body, headers=headers)
    saved = await client.put("/api/v1/retention/policies", json=body, headers=headers)

    assert (preview.status, saved.status) == (status, status)
    assert says in await saved.text()


@pytest.mark.parametrize(
    ("stored", "counts", "says"),
    [
        pytest.param(True, {"delete": 1204}, "This would delete 1,204 cue records now.", id="n"),
        pytest.param(True, {}, "This would delete no cue records now.", id="none"),
        pytest.param(False, {}, "no data kind stored yet", id="no-table-yet"),
    ],
)
def test_preview_message(stored: bool, counts: dict[str, int], says: str) -> None:
    policy = Policy(Category.CUE, 30, Action.DELETE)

    assert says in preview_message(policy, {Action(k): v for k, v in counts.items()}, stored)


# --- holds, notices, reports -------------------------------------------------------------------


async def test_holds_are_placed_and_lifted_through_the_api(
    client: TestClient[Any, Any], world: World
) -> None:
    admin, headers = await _admin(client)
    therapist = await world.account(THERAPIST, world.now)
    patient = await world.client(therapist, "J.M.", world.now)

    placed = await client.post(
        "/api/v1/retention/holds",
        json={"client_id": patient.id, "reason": "litigation 17"},
        headers=headers,
    )
    again = await client.post(
        "/api/v1/retention/holds", json={"client_id": patient.id, "reason": "x"}, headers=headers
    )
    lifted = await client.post(
        f"/api/v1/retention/holds/{patient.id}/release", json={"reason": "closed"}, headers=headers
    )
    [hold] = (await (await client.get("/api/v1/retention/holds")).json())["items"]

    assert (placed.status, again.status, lifted.status) == (201, 409, 200)
    assert (hold["placed_by"], hold["reason"], hold["active"]) == (
        f"account:{admin.id}",
        "litigation 17",
        False,
    )
    assert [a for a, _, _ in await _actions(world, "retention.hold")] == [
        "retention.hold_add",
        "retention.hold_remove",
    ]


async def test_a_new_notice_version_is_in_force_at_once(client: TestClient[Any, Any]) -> None:
    _, headers = await _admin(client)
    before = client.app[CONSENTS].catalog.current(Purpose.CUE_ANALYSIS).version

    published = await client.post(
        "/api/v1/notices",
        json={"purpose": "cue_analysis", "title": "Cue analysis", "text": "Clearer words."},
        headers=headers,
    )
    notices = {
        n["purpose"]: n for n in (await (await client.get("/api/v1/notices")).json())["items"]
    }

    assert published.status == 201
    assert notices["cue_analysis"]["current_version"] == before + 1
    assert client.app[CONSENTS].catalog.current(Purpose.CUE_ANALYSIS).body == "Clearer words."
    page = await (await client.get("/admin/notices")).text()
    assert f"v{before + 1}" in page


async def test_a_purge_from_the_console_leaves_a_report_admins_can_read(
    client: TestClient[Any, Any], world: World
) -> None:
    await _admin(client)
    await _old_cue_rows(world, 2)
    csrf = await _form_csrf(client, "/admin/retention")

    dry = await client.post("/admin/retention/purge", data={"csrf_token": csrf, "mode": "dry_run"})
    run = await client.post(
        "/admin/retention/purge", data={"csrf_token": csrf, "mode": "run"}, allow_redirects=False
    )
    reports = (await (await client.get("/api/v1/retention/reports")).json())["items"]
    page = await (await client.get("/admin/purge-reports")).text()

    assert "delete 2 cue records" in await dry.text()
    assert run.headers["Location"] == "/admin/purge-reports"
    assert [r["counts"]["cue"]["delete"] for r in reports] == [2]
    assert "deleted 2 cue records" in page


# --- admins see metadata only ------------------------------------------------------------------


async def _clinical_history(client: TestClient[Any, Any], world: World) -> str:
    """A therapist's client with MARKER in every clinical field there is; returns its id."""
    await add_account(client.app, THERAPIST)
    headers = {"X-CSRF-Token": await sign_in(client, THERAPIST)}
    created = await client.post(
        "/api/v1/clients", json={"alias": f"J.M. {ALIAS_MARKER}"}, headers=headers
    )
    client_id: str = (await created.json())["id"]
    note = await client.post(
        f"/api/v1/clients/{client_id}/notes", json={"text": f"note {MARKER}"}, headers=headers
    )
    assert note.status == 201
    therapist = await account_by_email(world.db, THERAPIST)
    client_row = await scheduling.get_client(world.db, therapist, client_id)
    old = await world.session(therapist, client_row, world.now - 40 * DAY)
    live = await world.session(therapist, client_row, world.now + DAY)
    for session in (old, live):
        await world.checkin(session, session.starts_at)
        await world.safety_check(session, session.starts_at)
        for table in (cue_prompts, cue_summaries, signal_events):
            await world.clinical_row(table, session, session.starts_at)
    await world.consent(client_id, Purpose.CUE_ANALYSIS, ConsentDecision.GRANTED, world.now)
    # The marker is really there, for the one who may read it.
    notes = await (await client.get(f"/api/v1/clients/{client_id}/notes")).text()
    assert MARKER in notes
    await client.post("/api/v1/auth/logout", headers=headers)
    return client_id


def _admin_links(html: str) -> set[str]:
    return {
        link.replace("&amp;", "&")
        for link in re.findall(r'href="(/admin[^"#]*)"', html)
        if "before_seq" not in link  # audit paging: one page of each filter is enough
    }


async def test_no_admin_page_or_admin_api_answer_holds_clinical_content(
    client: TestClient[Any, Any], world: World
) -> None:
    client_id = await _clinical_history(client, world)
    _, headers = await _admin(client)
    therapist_id = (await (await client.get("/api/v1/accounts")).json())["items"]
    known = {"account_id": therapist_id[-1]["id"], "client_id": client_id}
    await client.post(
        "/api/v1/retention/holds", json={"client_id": client_id, "reason": "x"}, headers=headers
    )
    await client.post("/api/v1/retention/purge", json={}, headers=headers)

    answers: dict[str, str] = {}
    queue = deque(["/admin", f"/admin/accounts/{known['account_id']}"])
    seen: set[str] = set()
    while queue and len(seen) < 120:
        path = queue.popleft()
        if path in seen:
            continue
        seen.add(path)
        response = await client.get(path)
        assert response.status == 200, path
        answers[path] = await response.text()
        queue.extend(_admin_links(answers[path]) - seen)
    csrf = headers["X-CSRF-Token"]
    for path, form in [
        ("/admin/retention/preview", {"category": "cue", "keep_days": "0", "action": "delete"}),
        ("/admin/retention/purge", {"mode": "dry_run"}),
        ("/admin/audit/verify", {}),
    ]:
        response = await client.post(path, data={"csrf_token": csrf, **form})
        answers[f"POST {path}"] = await response.text()
    admin_operations = [
        op for op in client.app[API_OPERATIONS] if op.auth == "admin" and op.method == "GET"
    ]
    for op in admin_operations:
        path = re.sub(r"\{(\w+)\}", lambda m: known[m.group(1)], op.path)
        response = await client.get(path)
        assert response.status == 200, path
        answers[f"GET {path}"] = await response.text()
    for path, body in [
        ("/api/v1/retention/preview", {"category": "signal", "keep_days": 0}),
        ("/api/v1/retention/purge", {"dry_run": True}),
        ("/api/v1/audit/verify", None),
    ]:
        response = await client.post(path, json=body, headers=headers)
        answers[f"POST {path}"] = await response.text()

    assert {
        "/admin/retention",
        "/admin/holds",
        "/admin/notices",
        "/admin/purge-reports",
        "/admin/audit",
    } <= seen
    assert len(admin_operations) >= 6
    leaks = {where for where, text in answers.items() if MARKER in text or ALIAS_MARKER in text}
    assert not leaks
    assert client_id in answers["/admin/holds"]  # metadata is there: ids, reasons, counts
    # A hold is placed by choosing the client by therapist and date, not by typing an id.
    assert f'<option value="{client_id}">client of ' in answers["/admin/holds"]
    # And the clinical endpoints refuse an admin outright.
    for path in (f"/api/v1/clients/{client_id}/notes", f"/api/v1/clients/{client_id}/export"):
        assert (await client.get(path)).status == 403, path


async def test_admin_pages_show_times_for_the_viewers_zone_not_as_raw_utc(
    client: TestClient[Any, Any],
) -> None:
    await _admin(client)
    for path in ("/admin", "/admin/audit"):
        page = await (await client.get(path)).text()
        assert re.search(r'<time datetime="[^"]+Z" data-local="(date|datetime)">', page), path
        assert "(UTC)" not in page and not re.search(r"\d{2}:\d{2}:\d{2}\.\d", page), path

"""The admin's audit-trail browser: GET /api/v1/audit, chain verification, /admin/audit."""

from __future__ import annotations

import asyncio
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from html import unescape as html_unescape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
import sqlalchemy as sa
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from multidict import MultiDict

from privacy.audit import AUDIT_ACTIONS
from server.app import create_app
from server.core.models import Role
from server.db.audit_queries import AuditFilter
from server.db.tables import audit_log
from server.errors import InvalidInput
from server.keys import DB
from server.settings import Settings
from server.web.audit_views import (
    AUDIT_OPERATIONS,
    action_families,
    add_audit_pages,
    parse_audit_filter,
)
from tests.conftest import PASSWORD, FakeClock, add_account, sign_in

AppClient = TestClient[web.Request, web.Application]
ADMIN = "admin@example.org"
THERAPIST = "therapist@example.org"
ALIAS = "J.M."


def wire_audit_views(app: web.Application) -> None:
    """Register the audit routes unless create_app already does (the lead wires them there)."""
    names = app.router.named_resources()
    for op in AUDIT_OPERATIONS:
        if op.operation_id not in names:
            app.router.add_route(op.method, op.path, op.handler, name=op.operation_id)
    if "adminAudit" not in names:
        add_audit_pages(app)


START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Activity:
    """What the therapist did before the admin looks (seeded once, copied for each test)."""

    therapist_id: str
    admin_id: str
    client_id: str
    session_id: str
    join_url: str


@dataclass(frozen=True)
class Seed:
    """A data directory holding the activity, to copy into each test's data directory."""

    data_dir: Path
    activity: Activity


async def _record_activity(data_dir: Path) -> Activity:
    """A failed and a good sign-in, a client, a session, a new link, a revoke."""
    app = create_app(Settings(data_dir=data_dir), clock=FakeClock(START))
    async with TestClient(TestServer(app)) as client:
        therapist = await add_account(client.app, THERAPIST)
        admin = await add_account(client.app, ADMIN, Role.ADMIN)
        wrong = await client.post(
            "/api/v1/auth/login", json={"email": THERAPIST, "password": "not the password"}
        )
        assert wrong.status == 401
        headers = {"X-CSRF-Token": await sign_in(client, THERAPIST)}
        created = await client.post("/api/v1/clients", json={"alias": ALIAS}, headers=headers)
        client_id = (await created.json())["id"]
        scheduled = await client.post(
            "/api/v1/sessions",
            json={"client_id": client_id, "starts_at": "2026-11-23T10:00:00Z", "minutes": 50},
            headers=headers,
        )
        session_id = (await scheduled.json())["session"]["id"]
        reissued = await client.post(f"/api/v1/sessions/{session_id}/invite", headers=headers)
        join_url = (await reissued.json())["join_url"]
        revoked = await client.delete(f"/api/v1/sessions/{session_id}/invite", headers=headers)
        assert revoked.status == 204
    return Activity(therapist.id, admin.id, client_id, session_id, join_url)


@pytest.fixture(scope="module")
def seed(tmp_path_factory: pytest.TempPathFactory) -> Seed:
    """Record the activity once per module (Argon2 and migrations are the slow part)."""
    data_dir = tmp_path_factory.mktemp("audit-seed") / "data"
    return Seed(data_dir, asyncio.run(_record_activity(data_dir)))


@pytest.fixture
def app(seed: Seed, settings: Settings, clock: FakeClock) -> web.Application:
    shutil.copytree(seed.data_dir, settings.data_dir, dirs_exist_ok=True)  # the seed's database
    app = create_app(settings, clock=clock)
    wire_audit_views(app)
    return app


@pytest.fixture
def activity(seed: Seed) -> Activity:
    return seed.activity


@pytest.fixture
async def admin_csrf(client: AppClient) -> str:
    """The admin signs in (the trail's newest entry); returns the CSRF token."""
    return await sign_in(client, ADMIN)


async def all_entries(client: AppClient) -> list[dict[str, Any]]:
    """Every entry, newest first (the fixtures write far fewer than one page of 200)."""
    response = await client.get("/api/v1/audit", params={"limit": "200"})
    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["next_before_seq"] is None
    items: list[dict[str, Any]] = body["items"]
    return items


def status_region(html: str) -> str:
    """The text of the page's role=status region (the verify result)."""
    found = re.search(r'<div id="verify-result" role="status">(.*?)</div>', html, re.S)
    assert found, "the page has no verify status region"
    return " ".join(re.sub(r"<[^>]+>", " ", found.group(1)).split())


# --- the filter, from query parameters (pure) ---------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param("", AuditFilter(), id="nothing-means-everything"),
        pytest.param("action=&actor=&target=", AuditFilter(), id="empty-form-fields"),
        pytest.param("action=auth.logout", AuditFilter(action="auth.logout"), id="exact-action"),
        pytest.param("action=auth.", AuditFilter(action="auth."), id="family"),
        pytest.param("action=auth.login.", AuditFilter(action="auth.login."), id="nested-family"),
        pytest.param("actor=system:cli", AuditFilter(actor="system:cli"), id="actor"),
        pytest.param(
            "target=session:0a1b&before_seq=12&limit=200",
            AuditFilter(target="session:0a1b", before_seq=12, limit=200),
            id="target-cursor-limit",
        ),
        pytest.param("limit=1", AuditFilter(limit=1), id="smallest-limit"),
    ],
)
def test_good_query_parameters_make_the_filter(query: str, expected: AuditFilter) -> None:
    assert parse_audit_filter(MultiDict(parse_qsl(query, keep_blank_values=True))) == expected


@pytest.mark.parametrize(
    ("query", "names"),
    [
        pytest.param("action=auth.login", "action", id="unregistered-action"),
        pytest.param("action=auth", "action", id="family-without-dot"),
        pytest.param("action=nothing.", "action", id="unknown-family"),
        pytest.param("action=AUTH.", "action", id="family-in-capitals"),
        pytest.param("action=auth..", "action", id="empty-family-part"),
        pytest.param("actor=account:1%", "actor", id="actor-with-percent"),
        pytest.param("actor=a b", "actor", id="actor-with-space"),
        pytest.param("target=" + "x" * 81, "target", id="target-too-long"),
        pytest.param("before_seq=0", "before_seq", id="cursor-zero"),
        pytest.param("before_seq=-3", "before_seq", id="cursor-negative"),
        pytest.param("before_seq=ten", "before_seq", id="cursor-not-a-number"),
        pytest.param("before_seq=" + "9" * 20, "before_seq", id="cursor-too-large"),
        pytest.param("before_seq=" + "1" * 5000, "before_seq", id="cursor-beyond-int-parsing"),
        pytest.param("actor=ana@example.org", "actor", id="actor-as-an-email"),
        pytest.param("limit=0", "limit", id="limit-zero"),
        pytest.param("limit=201", "limit", id="limit-too-large"),
        pytest.param("limit=2.5", "limit", id="limit-fraction"),
        pytest.param("limit=\uff15", "limit", id="limit-fullwidth-digit"),
        pytest.param("limit=5&limit=6", "limit", id="repeated-parameter"),
        pytest.param("seq=4", "seq", id="unknown-parameter"),
    ],
)
def test_bad_query_parameters_are_named_in_the_error(query: str, names: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        parse_audit_filter(MultiDict(parse_qsl(query, keep_blank_values=True)))
    assert names in raised.value.message


@hypothesis_settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["action", "actor", "target", "before_seq", "limit", "x"]),
            st.text(max_size=30),
        ),
        max_size=4,
    )
)
def test_any_query_gives_a_filter_or_invalid_input(pairs: list[tuple[str, str]]) -> None:
    try:
        parsed = parse_audit_filter(MultiDict(pairs))
    except InvalidInput:
        return
    assert 1 <= parsed.limit <= 200
    action = parsed.action
    assert action is None or any(known.startswith(action) for known in AUDIT_ACTIONS)


# --- API: listing ------------------------------------------------------------------------------


async def test_admin_sees_every_entry_newest_first_with_metadata_only(
    client: AppClient, activity: Activity, admin_csrf: str
) -> None:
    items = await all_entries(client)
    seqs = [item["seq"] for item in items]
    assert seqs == list(range(len(items), 0, -1))
    assert [item["action"] for item in reversed(items)] == [
        "account.create",
        "account.create",
        "auth.login.failure",
        "auth.login.success",
        "client.create",
        "session.create",
        "invite.issue",
        "invite.revoke",
        "invite.issue",
        "invite.revoke",
        "auth.login.success",
    ]
    assert items[0]["actor"] == f"account:{activity.admin_id}"
    token = activity.join_url.rsplit("/", 1)[1]
    for item in items:
        assert set(item) == {"seq", "at", "actor", "action", "targets", "details"}
        assert item["action"] in AUDIT_ACTIONS
        for value in item["details"].values():  # metadata: short scalars, never free text
            assert value is None or isinstance(value, bool | int) or len(value) <= 64
        shown = str(item)
        for secret in (ALIAS, token, PASSWORD, "not the password", THERAPIST):
            assert secret not in shown


@pytest.mark.parametrize(
    ("query", "matches"),
    [
        pytest.param(
            lambda a: {"action": "invite.issue"},
            lambda e, a: e["action"] == "invite.issue",
            id="exact-action",
        ),
        pytest.param(
            lambda a: {"action": "auth."},
            lambda e, a: e["action"].startswith("auth."),
            id="action-family",
        ),
        pytest.param(
            lambda a: {"action": "auth.login."},
            lambda e, a: e["action"] in ("auth.login.success", "auth.login.failure"),
            id="nested-action-family",
        ),
        pytest.param(
            lambda a: {"actor": f"account:{a.therapist_id}"},
            lambda e, a: e["actor"] == f"account:{a.therapist_id}",
            id="actor",
        ),
        pytest.param(
            lambda a: {"actor": "anonymous"},
            lambda e, a: e["action"] == "auth.login.failure",
            id="anonymous-actor",
        ),
        pytest.param(
            lambda a: {"target": f"session:{a.session_id}"},
            lambda e, a: f"session:{a.session_id}" in e["targets"],
            id="target",
        ),
        pytest.param(
            lambda a: {"target": f"client:{a.client_id}", "action": "session."},
            lambda e, a: e["action"] == "session.create",
            id="target-and-action-family",
        ),
    ],
)
async def test_filters_select_exactly_the_matching_entries(
    client: AppClient,
    activity: Activity,
    admin_csrf: str,
    query: Callable[[Activity], dict[str, str]],
    matches: Callable[[dict[str, Any], Activity], bool],
) -> None:
    expected = [e for e in await all_entries(client) if matches(e, activity)]
    response = await client.get("/api/v1/audit", params=query(activity))
    assert response.status == 200
    body = await response.json()
    assert expected and body["items"] == expected


async def test_filter_values_are_matched_literally_not_as_patterns(
    client: AppClient, activity: Activity, admin_csrf: str
) -> None:
    # '_' is a LIKE wildcard: a literal match must not treat it as one, nor match a part.
    for target in (f"session:{activity.session_id[:-1]}_", "session:", activity.session_id):
        response = await client.get("/api/v1/audit", params={"target": target})
        assert (await response.json())["items"] == [], target


async def test_pages_follow_the_cursor_back_to_the_first_entry(
    client: AppClient, admin_csrf: str
) -> None:
    everything = await all_entries(client)
    seen: list[dict[str, Any]] = []
    params: dict[str, str] = {"limit": "3"}
    pages = 0
    while True:
        body = await (await client.get("/api/v1/audit", params=params)).json()
        assert len(body["items"]) <= 3
        seen.extend(body["items"])
        pages += 1
        if body["next_before_seq"] is None:
            break
        assert body["next_before_seq"] == body["items"][-1]["seq"]
        params["before_seq"] = str(body["next_before_seq"])
    assert seen == everything
    assert pages == -(-len(everything) // 3)


async def test_a_page_that_ends_at_the_first_entry_has_no_cursor(
    client: AppClient, admin_csrf: str
) -> None:
    total = len(await all_entries(client))
    exact = await (await client.get("/api/v1/audit", params={"limit": str(total)})).json()
    one = await (await client.get("/api/v1/audit", params={"limit": "1"})).json()
    assert len(exact["items"]) == total and exact["next_before_seq"] is None
    assert len(one["items"]) == 1 and one["next_before_seq"] == total


@pytest.mark.parametrize(
    "query",
    [
        pytest.param("action=auth", id="bad-action"),
        pytest.param("limit=201", id="bad-limit"),
    ],
)
async def test_the_api_refuses_bad_query_parameters_with_422(
    client: AppClient, admin_csrf: str, query: str
) -> None:
    response = await client.get(f"/api/v1/audit?{query}")
    assert response.status == 422
    assert (await response.json())["error"]["code"] == "invalid_input"


# --- API and page: who may look ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "form"),
    [
        pytest.param("GET", "/api/v1/audit", False, id="api-list"),
        pytest.param("POST", "/api/v1/audit/verify", False, id="api-verify"),
        pytest.param("GET", "/admin/audit", False, id="page"),
        pytest.param("POST", "/admin/audit/verify", True, id="page-verify"),
    ],
)
async def test_therapists_cannot_read_or_verify_the_trail(
    client: AppClient, method: str, path: str, form: bool
) -> None:
    csrf = await sign_in(client, THERAPIST)
    if form:
        response = await client.request(method, path, data={"csrf_token": csrf})
    else:
        response = await client.request(method, path, headers={"X-CSRF-Token": csrf})
    assert response.status == 403
    assert "auth.login.success" not in await response.text()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        pytest.param("GET", "/api/v1/audit", id="api-list"),
        pytest.param("POST", "/api/v1/audit/verify", id="api-verify"),
    ],
)
async def test_the_api_asks_strangers_to_sign_in(client: AppClient, method: str, path: str) -> None:
    response = await client.request(method, path)
    assert response.status == 401


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_the_page_sends_strangers_to_sign_in(client: AppClient, method: str) -> None:
    path = "/admin/audit" if method == "GET" else "/admin/audit/verify"
    response = await client.request(method, path, allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"] == f"/login?next={path}"


# --- API: verification ------------------------------------------------------------------------


async def test_verify_reports_an_intact_chain_then_names_the_edited_entry(
    client: AppClient, admin_csrf: str
) -> None:
    headers = {"X-CSRF-Token": admin_csrf}
    intact = await (await client.post("/api/v1/audit/verify", headers=headers)).json()
    total = len(await all_entries(client))
    assert (intact["ok"], intact["count"], intact["first_bad_seq"]) == (True, total, None)
    assert set(intact) == {"ok", "count", "first_bad_seq", "reason"}
    async with client.app[DB].write() as conn:
        await conn.execute(
            sa.update(audit_log).where(audit_log.c.seq == 5).values(actor="account:someone-else")
        )
    broken = await (await client.post("/api/v1/audit/verify", headers=headers)).json()
    assert (broken["ok"], broken["count"], broken["first_bad_seq"]) == (False, 4, 5)
    assert "edited" in broken["reason"]


async def test_verify_needs_the_csrf_token(client: AppClient, admin_csrf: str) -> None:
    response = await client.post("/api/v1/audit/verify")
    assert response.status == 403
    assert (await response.json())["error"]["code"] == "csrf"


# --- page ------------------------------------------------------------------------------------


async def test_page_lists_entries_with_their_meaning_and_no_client_alias(
    client: AppClient, activity: Activity, admin_csrf: str
) -> None:
    response = await client.get("/admin/audit")
    html = await response.text()
    assert response.status == 200
    rows = html.split("<tbody>")[1]
    assert f"session:{activity.session_id}" in rows
    assert AUDIT_ACTIONS["invite.revoke"] in rows
    assert rows.index("auth.login.failure") > rows.index("invite.revoke")  # newest first
    assert ALIAS not in html and THERAPIST not in html
    assert "Older entries" not in html


async def test_page_filters_by_the_form_fields(client: AppClient, admin_csrf: str) -> None:
    response = await client.get(
        "/admin/audit", params={"action": "auth.", "actor": "", "target": ""}
    )
    html = await response.text()
    assert response.status == 200
    assert '<option value="auth." selected>' in html
    rows = html.split("<tbody>")[1]
    assert "auth.login.failure" in rows and "session.create" not in rows


async def test_page_links_to_older_entries_keeping_the_filter(
    client: AppClient, admin_csrf: str
) -> None:
    first = await (await client.get("/admin/audit", params={"limit": "4"})).text()
    older = re.search(r'<a href="([^"]+)" rel="next">Older entries</a>', first)
    assert older
    total = len(await all_entries(client))
    assert older.group(1) == f"/admin/audit?before_seq={total - 3}&amp;limit=4"
    second = await (await client.get(html_unescape(older.group(1)))).text()
    rows = re.findall(r'<tr>\s*<td class="mono">(\d+)</td>', second)
    assert [int(seq) for seq in rows] == list(range(total - 4, total - 8, -1))


async def test_page_shows_bad_filters_as_an_error(client: AppClient, admin_csrf: str) -> None:
    response = await client.get("/admin/audit", params={"before_seq": "zero"})
    assert response.status == 422
    html = await response.text()
    assert re.search(r'role="alert">[^<]*before_seq', html)


async def test_verify_button_shows_the_result_in_a_status_region(
    client: AppClient, admin_csrf: str
) -> None:
    page = await (await client.get("/admin/audit")).text()
    assert re.search(
        r'<form method="post" action="/admin/audit/verify"[^>]*>\s*'
        rf'<input type="hidden" name="csrf_token" value="{admin_csrf}">',
        page,
    )
    assert status_region(page) == ""
    total = len(await all_entries(client))
    response = await client.post("/admin/audit/verify", data={"csrf_token": admin_csrf})
    assert response.status == 200
    assert status_region(await response.text()).startswith(
        f"Chain intact: {total} entries verified"
    )

    async with client.app[DB].write() as conn:
        await conn.execute(sa.delete(audit_log).where(audit_log.c.seq == 3))
    response = await client.post("/admin/audit/verify", data={"csrf_token": admin_csrf})
    assert status_region(await response.text()).startswith("Chain broken at entry 3:")


async def test_verify_button_keeps_the_current_filter(client: AppClient, admin_csrf: str) -> None:
    page = await (await client.get("/admin/audit", params={"action": "invite."})).text()
    assert 'action="/admin/audit/verify?action=invite."' in page
    response = await client.post(
        "/admin/audit/verify?action=invite.", data={"csrf_token": admin_csrf}
    )
    html = await response.text()
    assert "Chain intact" in status_region(html)
    rows = html.split("<tbody>")[1]
    assert "invite.issue" in rows and "client.create" not in rows


async def test_verify_button_without_the_csrf_token_is_refused(
    client: AppClient, admin_csrf: str
) -> None:
    response = await client.post("/admin/audit/verify", data={})
    assert response.status == 403


def test_every_registered_action_can_be_chosen_in_the_filter() -> None:
    families = action_families()
    offered = [action for _, actions in families for action, _ in actions]
    assert offered == list(AUDIT_ACTIONS)
    assert all(action.startswith(family) for family, acts in families for action, _ in acts)

"""The route wrapper owns auth: each operation's declared `auth` is checked before its handler."""

from __future__ import annotations

from typing import Any, cast

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from server.core.models import Role
from server.keys import API_OPERATIONS
from server.web.guard import SIGNED_IN, add_operation_route, guarded
from server.web.openapi import AUTH_LEVELS, Auth, Operation
from tests.conftest import add_account, sign_in

PROBE = "/api/v1/probe/therapist-only"


@pytest.fixture
async def probed(aiohttp_client: Any, app: web.Application) -> tuple[TestClient, list[str]]:
    """The app with one extra operation declared `therapist` whose handler notes each call."""
    calls: list[str] = []

    async def probe(request: web.Request) -> web.StreamResponse:
        calls.append(request[SIGNED_IN].account.email)
        return web.json_response({"ok": True})

    add_operation_route(app, Operation("GET", PROBE, probe, "Probe", "probe", auth="therapist"))
    return await aiohttp_client(app), calls


async def test_a_therapist_operation_refuses_an_anonymous_request_before_the_handler_runs(
    probed: tuple[TestClient, list[str]],
) -> None:
    client, calls = probed
    response = await client.get(PROBE)
    assert response.status == 401
    assert (await response.json())["error"]["message"] == "Sign in first."
    assert calls == []


async def test_a_therapist_operation_refuses_an_admin_before_the_handler_runs(
    probed: tuple[TestClient, list[str]],
) -> None:
    client, calls = probed
    await add_account(client.app, "admin@example.org", Role.ADMIN)
    await sign_in(client, "admin@example.org")
    response = await client.get(PROBE)
    assert response.status == 403
    assert (await response.json())["error"]["message"] == "Your account cannot do this."
    assert calls == []


async def test_a_therapist_operation_hands_the_signed_in_therapist_to_its_handler(
    probed: tuple[TestClient, list[str]],
) -> None:
    client, calls = probed
    await add_account(client.app, "therapist@example.org")
    await sign_in(client, "therapist@example.org")
    response = await client.get(PROBE)
    assert response.status == 200
    assert calls == ["therapist@example.org"]


async def test_every_registered_operation_declares_an_auth_value_the_wrapper_knows(
    client: TestClient,
) -> None:
    operations = client.app[API_OPERATIONS]
    assert operations
    for op in operations:
        assert op.auth in AUTH_LEVELS, (op.operation_id, op.auth)


async def test_every_api_route_runs_its_handler_behind_the_wrapper(client: TestClient) -> None:
    routes = {route.name: route for route in client.app.router.routes() if route.name}
    for op in client.app[API_OPERATIONS]:
        handler = routes[op.operation_id].handler
        assert handler is not op.handler, op.operation_id
        assert getattr(handler, "__wrapped__", None) is op.handler, op.operation_id


async def test_an_unknown_auth_value_is_refused_when_the_route_is_registered() -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response()

    with pytest.raises(ValueError, match="unknown auth 'staff'"):
        guarded(handler, cast(Auth, "staff"))


@pytest.mark.parametrize(
    "path",
    ["/admin", "/admin/retention", "/admin/holds", "/admin/notices", "/admin/audit"],
)
async def test_admin_pages_send_a_visitor_to_sign_in_and_refuse_a_therapist(
    client: TestClient, path: str
) -> None:
    anonymous = await client.get(path, allow_redirects=False)
    assert anonymous.status == 303
    assert anonymous.headers["Location"] == f"/login?next={path}"
    await add_account(client.app, "therapist@example.org")
    await sign_in(client, "therapist@example.org")
    assert (await client.get(path, allow_redirects=False)).status == 403


async def test_therapist_pages_refuse_an_admin(client: TestClient) -> None:
    await add_account(client.app, "admin@example.org", Role.ADMIN)
    await sign_in(client, "admin@example.org")
    assert (await client.get("/dashboard", allow_redirects=False)).status == 403

"""Bad input gets a clear JSON error, never a stack trace; security headers everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from server.app import create_app
from server.core.models import Account
from server.settings import Settings
from tests.conftest import FakeClock, add_account


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"{not json", "application/json", 422),
        (b'"a string"', "application/json", 422),
        (b'{"email": 5, "password": "x"}', "application/json", 422),
        (b'{"email": "a@b.c", "password": "x", "extra": 1}', "application/json", 422),
        (b'{"email": "a@b.c"}', "application/json", 422),
        (b"email=a@b.c&password=x", "application/x-www-form-urlencoded", 422),
        (b"\xff\xfe\x00", "application/json", 422),
        (b'{"email": "' + b"a" * 70_000 + b'", "password": "x"}', "application/json", 413),
    ],
    ids=[
        "broken",
        "not-object",
        "wrong-type",
        "unknown-field",
        "missing-field",
        "form",
        "binary",
        "too-large",
    ],
)
async def test_bad_login_bodies_get_clear_json_errors(
    client: TestClient, body: bytes, content_type: str, status: int
) -> None:
    response = await client.post(
        "/api/v1/auth/login", data=body, headers={"Content-Type": content_type}
    )
    assert response.status == status
    error = (await response.json())["error"]
    assert error["message"] and error["code"]
    assert "Traceback" not in error["message"]


async def test_unknown_api_route_and_wrong_method_answer_json(client: TestClient) -> None:
    missing = await client.get("/api/v1/nothing-here")
    assert missing.status == 404
    assert (await missing.json())["error"]["code"] == "not_found"
    wrong = await client.put("/api/v1/auth/login", json={})
    assert wrong.status == 405
    assert (await wrong.json())["error"]["code"] == "method_not_allowed"


async def test_unknown_page_answers_a_friendly_html_page(client: TestClient) -> None:
    response = await client.get("/no/such/page")
    assert response.status == 404
    assert response.content_type == "text/html"
    assert "Not found" in await response.text()


@pytest.mark.parametrize(
    "path",
    [
        "/login",
        "/api/v1/openapi.json",
        "/healthz",
        "/nope",
        "/api/v1/clients",
        "/static/css/attune.css",
    ],
)
async def test_security_headers_on_every_response(client: TestClient, path: str) -> None:
    response = await client.get(path)
    csp = response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "Strict-Transport-Security" not in response.headers  # plain HTTP here


@pytest.mark.parametrize(
    ("path", "location"),
    [
        ("/visit", "geolocation=(self)"),
        ("/login", "geolocation=()"),
        ("/weather", "geolocation=()"),
    ],
)
async def test_only_the_visit_page_may_ask_for_the_devices_location(
    client: TestClient, path: str, location: str
) -> None:
    policy = (await client.get(path)).headers["Permissions-Policy"]
    assert location in policy
    assert "camera=(self)" in policy


async def test_each_page_gets_a_fresh_csp_nonce(client: TestClient) -> None:
    first = (await client.get("/login")).headers["Content-Security-Policy"]
    second = (await client.get("/login")).headers["Content-Security-Policy"]
    assert "'nonce-" in first and first != second


async def test_under_tls_cookies_use_the_host_prefix_and_hsts_is_sent(
    aiohttp_client: Any, data_dir: Path, clock: FakeClock
) -> None:
    settings = Settings(data_dir=data_dir, public_base_url="https://attune.example")
    client = await aiohttp_client(create_app(settings, clock=clock))
    await add_account(client.app, "ana@example.org")
    response = await client.post(
        "/api/v1/auth/login",
        json={"email": "ana@example.org", "password": "a calm and long passphrase"},
    )
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("__Host-attune=")
    assert "Secure" in cookie and "Path=/" in cookie and "Domain" not in cookie
    assert "max-age=" in response.headers["Strict-Transport-Security"]


async def test_internal_errors_are_hidden_behind_a_request_id(
    client: TestClient, therapist: tuple[Account, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from server.services import scheduling

    async def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(scheduling, "list_clients", broken)
    response = await client.get("/api/v1/clients")
    assert response.status == 500
    body = await response.json()
    assert body["error"]["code"] == "internal"
    assert "secret internal detail" not in await response.text()
    assert body["error"]["request_id"] == response.headers["X-Request-Id"]


async def test_openapi_documents_every_api_route(client: TestClient) -> None:
    document = await (await client.get("/api/v1/openapi.json")).json()
    assert document["openapi"].startswith("3.1")
    documented = {
        (method.upper(), path) for path, item in document["paths"].items() for method in item
    }
    routed = {
        (route.method, route.resource.canonical)
        for route in client.app.router.routes()
        if route.resource is not None
        and route.resource.canonical.startswith(("/api/", "/healthz", "/readyz"))
        and route.method != "HEAD"
    }
    assert routed == documented
    operation_ids = [
        op["operationId"] for item in document["paths"].values() for op in item.values()
    ]
    assert len(operation_ids) == len(set(operation_ids))


async def test_every_feature_module_registers_its_api(client: TestClient) -> None:
    """A guard against wiring lost in app.py: each module's operations are routed."""
    names = {route.name for route in client.app.router.routes()}
    for operation_id in (
        "login",
        "clientConsentState",
        "listAudit",
        "clientCheckins",
        "startConnectionCheck",
    ):
        assert operation_id in names, operation_id

"""Signing in and out: passwords, sessions, timeouts, throttling, CSRF."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from server.core.models import Role
from tests.conftest import PASSWORD, FakeClock, add_account, sign_in


async def test_right_password_signs_in_and_returns_a_csrf_token(client: TestClient) -> None:
    await add_account(client.app, "ana@example.org")
    response = await client.post(
        "/api/v1/auth/login", json={"email": "Ana@Example.org ", "password": PASSWORD}
    )
    assert response.status == 200
    body = await response.json()
    assert body["account"]["email"] == "ana@example.org"
    assert body["account"]["role"] == "therapist"
    assert "password" not in str(body)
    assert len(body["csrf_token"]) >= 32
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    me = await client.get("/api/v1/auth/me")
    assert (await me.json())["account"]["email"] == "ana@example.org"


async def test_wrong_password_and_unknown_email_get_the_same_401(client: TestClient) -> None:
    await add_account(client.app, "ana@example.org")
    wrong = await client.post(
        "/api/v1/auth/login", json={"email": "ana@example.org", "password": "not it at all"}
    )
    unknown = await client.post(
        "/api/v1/auth/login", json={"email": "nobody@example.org", "password": PASSWORD}
    )
    assert wrong.status == unknown.status == 401
    assert (await wrong.json())["error"] == {
        **(await unknown.json())["error"],
        "request_id": (await wrong.json())["error"]["request_id"],
    }
    assert (await wrong.json())["error"]["code"] == "bad_credentials"


async def test_repeated_failures_are_throttled_with_retry_after(client: TestClient) -> None:
    await add_account(client.app, "ana@example.org")
    for _ in range(5):
        response = await client.post(
            "/api/v1/auth/login", json={"email": "ana@example.org", "password": "guess guess"}
        )
        assert response.status == 401
    blocked = await client.post(
        "/api/v1/auth/login", json={"email": "ana@example.org", "password": PASSWORD}
    )
    assert blocked.status == 429
    assert int(blocked.headers["Retry-After"]) > 0
    assert (await blocked.json())["error"]["code"] == "rate_limited"


async def test_logout_ends_the_session(client: TestClient) -> None:
    await add_account(client.app, "ana@example.org")
    csrf = await sign_in(client, "ana@example.org")
    response = await client.post("/api/v1/auth/logout", headers={"X-CSRF-Token": csrf})
    assert response.status == 204
    assert (await client.get("/api/v1/auth/me")).status == 401


async def test_idle_timeout_signs_out(client: TestClient, clock: FakeClock) -> None:
    await add_account(client.app, "ana@example.org")
    await sign_in(client, "ana@example.org")
    clock.advance(minutes=29)
    assert (await client.get("/api/v1/auth/me")).status == 200
    clock.advance(minutes=29)  # activity moved the idle deadline: still within 30 min
    assert (await client.get("/api/v1/auth/me")).status == 200
    clock.advance(minutes=31)
    assert (await client.get("/api/v1/auth/me")).status == 401


async def test_absolute_timeout_signs_out_even_when_active(
    client: TestClient, clock: FakeClock
) -> None:
    await add_account(client.app, "ana@example.org")
    await sign_in(client, "ana@example.org")
    for _ in range(12 * 3 - 1):  # active every 20 minutes for just under 12 hours
        clock.advance(minutes=20)
        assert (await client.get("/api/v1/auth/me")).status == 200
    clock.advance(minutes=20)
    assert (await client.get("/api/v1/auth/me")).status == 401


async def test_state_changing_request_without_csrf_token_is_refused(client: TestClient) -> None:
    await add_account(client.app, "ana@example.org")
    csrf = await sign_in(client, "ana@example.org")
    missing = await client.post("/api/v1/clients", json={"alias": "J.M."})
    assert missing.status == 403
    assert (await missing.json())["error"]["code"] == "csrf"
    wrong = await client.post(
        "/api/v1/clients", json={"alias": "J.M."}, headers={"X-CSRF-Token": "x" * 43}
    )
    assert wrong.status == 403
    right = await client.post(
        "/api/v1/clients", json={"alias": "J.M."}, headers={"X-CSRF-Token": csrf}
    )
    assert right.status == 201


async def test_cross_site_origin_is_refused_even_with_the_token(client: TestClient) -> None:
    await add_account(client.app, "ana@example.org")
    csrf = await sign_in(client, "ana@example.org")
    response = await client.post(
        "/api/v1/clients",
        json={"alias": "J.M."},
        headers={"X-CSRF-Token": csrf, "Origin": "https://evil.example"},
    )
    assert response.status == 403


async def test_disabled_account_cannot_sign_in(client: TestClient) -> None:
    from server.db.accounts import set_disabled
    from server.keys import DB

    account = await add_account(client.app, "ana@example.org")
    async with client.app[DB].write() as conn:
        await set_disabled(conn, account.id, True)
    response = await client.post(
        "/api/v1/auth/login", json={"email": "ana@example.org", "password": PASSWORD}
    )
    assert response.status == 401


async def test_therapist_cannot_use_admin_endpoints(client: TestClient) -> None:
    await add_account(client.app, "ana@example.org")
    await sign_in(client, "ana@example.org")
    assert (await client.get("/api/v1/accounts")).status == 403


async def test_admin_lists_and_adds_accounts(client: TestClient) -> None:
    await add_account(client.app, "boss@example.org", Role.ADMIN)
    csrf = await sign_in(client, "boss@example.org")
    created = await client.post(
        "/api/v1/accounts",
        json={
            "email": "new@example.org",
            "password": "another long passphrase",
            "role": "therapist",
        },
        headers={"X-CSRF-Token": csrf},
    )
    assert created.status == 201
    listing = await (await client.get("/api/v1/accounts")).json()
    assert {a["email"] for a in listing["items"]} == {"boss@example.org", "new@example.org"}
    assert all("password" not in str(a) for a in listing["items"])
    short = await client.post(
        "/api/v1/accounts",
        json={"email": "x@example.org", "password": "short", "role": "therapist"},
        headers={"X-CSRF-Token": csrf},
    )
    assert short.status == 422
    dup = await client.post(
        "/api/v1/accounts",
        json={"email": "NEW@example.org", "password": "another long passphrase", "role": "admin"},
        headers={"X-CSRF-Token": csrf},
    )
    assert dup.status == 409


async def test_same_origin_forms_under_no_referrer_send_origin_null_and_are_accepted(
    client: TestClient,
) -> None:
    await add_account(client.app, "ana@example.org")
    headers = {"Origin": "null", "Sec-Fetch-Site": "same-origin"}
    form = {"email": "ana@example.org", "password": PASSWORD, "next": "/"}
    response = await client.post("/login", data=form, headers=headers, allow_redirects=False)
    assert response.status == 303


async def test_origin_null_from_another_site_is_refused(client: TestClient) -> None:
    await add_account(client.app, "ana@example.org")
    form = {"email": "ana@example.org", "password": PASSWORD}
    for fetch_site in ("cross-site", "same-site", None):
        headers = {"Origin": "null"}
        if fetch_site:
            headers["Sec-Fetch-Site"] = fetch_site
        response = await client.post("/login", data=form, headers=headers)
        assert response.status == 403, fetch_site

"""Two-factor sign-in: enrolment with a confirming code, the second step on the page and the
API, replayed and wrong codes, recovery codes, the admin's requirement, and the owner's way
past an attacker's back-off."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from aiohttp.test_utils import TestClient

from server.app import create_app
from server.cli import main
from server.core.models import Role
from server.db.tables import accounts
from server.keys import AUDIT, DB, VAULT
from server.security.account_secrets import SealedSecretError, open_sealed
from server.services import two_factor
from server.settings import Settings
from tests.conftest import PASSWORD, FakeClock, add_account, sign_in
from tests.integration.account_helpers import code_at, enrol, form_csrf

LOGIN = "/api/v1/auth/login"
SECOND = "/api/v1/auth/second-factor"
EMAIL = "ana@example.org"


async def test_enrolment_counts_only_after_a_matching_code_and_then_sign_in_asks_for_one(
    client: TestClient[Any, Any], aiohttp_client: Any, clock: FakeClock
) -> None:
    await add_account(client.app, EMAIL)
    await sign_in(client, EMAIL)
    page = await (await client.get("/account/two-factor")).text()
    assert "<svg" in page and "QR code of your two-factor key" in page
    found = re.search(r'<code class="mono secret"[^>]*>([A-Z2-7 ]+)</code>', page)
    assert found
    secret = found.group(1).replace(" ", "")
    csrf = await form_csrf(client, "/account/two-factor")

    wrong = await client.post(
        "/account/two-factor", data={"csrf_token": csrf, "code": "000000", "next": "/"}
    )
    assert wrong.status == 422
    assert "Off." in await (await client.get("/account")).text()  # not on yet

    done = await client.post(
        "/account/two-factor",
        data={"csrf_token": csrf, "code": code_at(secret, clock.now), "next": "/"},
    )
    assert done.status == 200
    assert done.headers["Cache-Control"] == "no-store"
    codes = re.findall(
        r"<li>([a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4})</li>", await done.text()
    )
    assert len(set(codes)) == 10

    clock.advance(seconds=30)
    other = await aiohttp_client(client.server)
    step = await other.post(
        "/login",
        data={"email": EMAIL, "password": PASSWORD, "next": "/dashboard"},
        allow_redirects=False,
    )
    assert step.status == 303 and step.headers["Location"] == "/login/two-factor?next=/dashboard"
    # Password alone is not a sign-in: every other page still sends it to sign in.
    assert (await other.get("/dashboard", allow_redirects=False)).status == 303
    assert (await other.get("/api/v1/auth/me")).status == 401
    csrf2 = await form_csrf(other, "/login/two-factor")
    finished = await other.post(
        "/login/two-factor",
        data={"csrf_token": csrf2, "code": code_at(secret, clock.now), "next": "/dashboard"},
        allow_redirects=False,
    )
    # Signing in again lists the account's other sign-in, which can be ended from there.
    assert finished.headers["Location"] == "/account/notices?next=/dashboard"
    listed = await (await other.get("/account/notices?next=/dashboard")).text()
    assert "You are also signed in here" in listed
    ended = await other.post(
        "/account/notices/end-others",
        data={"csrf_token": csrf2, "next": "/dashboard"},
        allow_redirects=False,
    )
    assert ended.headers["Location"] == "/dashboard"
    assert (await other.get("/dashboard")).status == 200
    assert (await client.get("/api/v1/auth/me")).status == 401


async def test_the_api_second_step_signs_in_and_a_replayed_code_is_refused(
    client: TestClient[Any, Any], aiohttp_client: Any, clock: FakeClock
) -> None:
    account = await add_account(client.app, EMAIL)
    secret, _codes = await enrol(client.app, account, clock.now)
    clock.advance(seconds=30)
    first = await client.post(LOGIN, json={"email": EMAIL, "password": PASSWORD})
    body = await first.json()
    assert body["stage"] == "second_factor" and "account" not in body
    assert (await client.get("/api/v1/auth/me")).status == 401
    headers = {"X-CSRF-Token": body["csrf_token"]}
    code = code_at(secret, clock.now)
    signed = await client.post(SECOND, json={"code": code}, headers=headers)
    assert signed.status == 200
    assert (await signed.json())["account"]["email"] == EMAIL
    assert (await client.get("/api/v1/auth/me")).status == 200

    # Someone who watched that code cannot use it again within its 30 s window.
    thief = await aiohttp_client(client.server)
    pending = await (await thief.post(LOGIN, json={"email": EMAIL, "password": PASSWORD})).json()
    replay = await thief.post(
        SECOND, json={"code": code}, headers={"X-CSRF-Token": pending["csrf_token"]}
    )
    assert replay.status == 401
    assert (await replay.json())["error"]["code"] == "bad_code"
    in_one_go = await thief.post(LOGIN, json={"email": EMAIL, "password": PASSWORD, "code": code})
    assert in_one_go.status == 401


async def test_a_recovery_code_signs_in_once(
    client: TestClient[Any, Any], aiohttp_client: Any, clock: FakeClock
) -> None:
    account = await add_account(client.app, EMAIL)
    _secret, codes = await enrol(client.app, account, clock.now)
    used = await client.post(LOGIN, json={"email": EMAIL, "password": PASSWORD, "code": codes[0]})
    assert used.status == 200 and (await used.json())["stage"] == "full"
    again = await aiohttp_client(client.server)
    twice = await again.post(LOGIN, json={"email": EMAIL, "password": PASSWORD, "code": codes[0]})
    assert twice.status == 401
    page = await (await client.get("/account")).text()
    assert "9 recovery codes left" in page


async def test_wrong_codes_back_off_after_the_password(
    client: TestClient[Any, Any], clock: FakeClock
) -> None:
    account = await add_account(client.app, EMAIL)
    await enrol(client.app, account, clock.now)
    pending = await (await client.post(LOGIN, json={"email": EMAIL, "password": PASSWORD})).json()
    headers = {"X-CSRF-Token": pending["csrf_token"]}
    statuses = [
        (await client.post(SECOND, json={"code": f"{n:06d}"}, headers=headers)).status
        for n in range(7)
    ]
    assert statuses[:5] == [401] * 5
    assert statuses[5:] == [429, 429]


async def test_a_pending_sign_in_expires_after_ten_minutes(
    client: TestClient[Any, Any], clock: FakeClock
) -> None:
    account = await add_account(client.app, EMAIL)
    secret, _ = await enrol(client.app, account, clock.now)
    pending = await (await client.post(LOGIN, json={"email": EMAIL, "password": PASSWORD})).json()
    clock.advance(minutes=11)
    late = await client.post(
        SECOND,
        json={"code": code_at(secret, clock.now)},
        headers={"X-CSRF-Token": pending["csrf_token"]},
    )
    assert late.status == 401


async def test_required_two_factor_sends_accounts_to_enrolment_and_allows_nothing_else(
    client: TestClient[Any, Any], aiohttp_client: Any, clock: FakeClock
) -> None:
    await add_account(client.app, "admin@example.org", Role.ADMIN)
    await sign_in(client, "admin@example.org")
    csrf = await form_csrf(client, "/admin")
    switched = await client.post("/admin/two-factor", data={"csrf_token": csrf, "required": "on"})
    assert switched.status == 200
    assert "checked" in await (await client.get("/admin")).text()

    await add_account(client.app, EMAIL)
    therapist = await aiohttp_client(client.server)
    step = await therapist.post(
        "/login", data={"email": EMAIL, "password": PASSWORD}, allow_redirects=False
    )
    assert step.headers["Location"] == "/account/two-factor"
    assert (await therapist.get("/dashboard", allow_redirects=False)).status == 303
    assert (await therapist.get("/api/v1/clients")).status == 401
    assert (await therapist.get("/account", allow_redirects=False)).status == 303
    api = await therapist.post(LOGIN, json={"email": EMAIL, "password": PASSWORD})
    assert (await api.json())["stage"] == "enrol"

    page = await (await therapist.get("/account/two-factor")).text()
    assert "Your clinic requires two-factor sign-in" in page
    found = re.search(r'<code class="mono secret"[^>]*>([A-Z2-7 ]+)</code>', page)
    assert found
    csrf2 = await form_csrf(therapist, "/account/two-factor")
    done = await therapist.post(
        "/account/two-factor",
        data={
            "csrf_token": csrf2,
            "code": code_at(found.group(1).replace(" ", ""), clock.now),
            "next": "/dashboard",
        },
    )
    assert done.status == 200
    assert (await therapist.get("/dashboard")).status == 200


async def test_the_totp_key_is_sealed_at_rest_and_bound_to_its_account(
    client: TestClient[Any, Any], clock: FakeClock
) -> None:
    account = await add_account(client.app, EMAIL)
    secret, _ = await enrol(client.app, account, clock.now)
    async with client.app[DB].read() as conn:
        sealed = await conn.scalar(
            sa.select(accounts.c.totp_secret_ciphertext).where(accounts.c.id == account.id)
        )
    assert secret.encode() not in sealed
    ring = client.app[VAULT].ring
    assert open_sealed(ring, account.id, "totp_secret_ciphertext", sealed) == secret.encode()
    try:
        open_sealed(ring, "0" * 32, "totp_secret_ciphertext", sealed)
    except SealedSecretError:
        pass
    else:
        raise AssertionError("a sealed key opened for another account")


async def test_password_and_code_sign_in_while_an_attacker_keeps_the_account_under_backoff(
    aiohttp_client: Any, data_dir: Path, clock: FakeClock
) -> None:
    app = create_app(Settings(data_dir=data_dir, trusted_proxies=("127.0.0.1",)), clock=clock)
    client = await aiohttp_client(app)
    account = await add_account(app, EMAIL)
    secret, _ = await enrol(app, account, clock.now)

    async def attempt(via: str, **body: str) -> Any:
        client.session.cookie_jar.clear()
        return await client.post(
            LOGIN, json={"email": EMAIL, **body}, headers={"X-Forwarded-For": via}
        )

    for n in range(12):  # many addresses, wrong passwords (and wrong codes)
        await attempt(f"203.0.113.{n}", password="wrong guess")
        await attempt(f"203.0.113.{n}", password="wrong guess", code="123456")
    owner_address = "198.51.100.7"
    assert (await attempt(owner_address, password=PASSWORD)).status == 429  # back-off holds
    # A guessed password with a wrong code is refused the same way: nothing learned.
    assert (await attempt(owner_address, password=PASSWORD, code="000000")).status == 429
    clock.advance(seconds=30)
    owner = await attempt(owner_address, password=PASSWORD, code=code_at(secret, clock.now))
    assert owner.status == 200
    assert (await owner.json())["stage"] == "full"
    # Without the password, a right code does not help either.
    clock.advance(seconds=30)
    guess = await attempt("203.0.113.99", password="wrong guess", code=code_at(secret, clock.now))
    assert guess.status == 429


async def test_two_factor_keys_follow_a_master_key_rotation_and_retirement(
    aiohttp_client: Any, data_dir: Path, clock: FakeClock
) -> None:
    first = await aiohttp_client(create_app(Settings(data_dir=data_dir), clock=clock))
    account = await add_account(first.app, EMAIL)
    secret, _ = await enrol(first.app, account, clock.now)
    await first.close()
    args = ["--data-dir", str(data_dir)]
    assert await asyncio.to_thread(main, ["keys", "rotate", *args]) == 0
    assert await asyncio.to_thread(main, ["keys", "retire", "1", *args]) == 0

    clock.advance(seconds=30)
    later = await aiohttp_client(create_app(Settings(data_dir=data_dir), clock=clock))
    signed = await later.post(
        LOGIN, json={"email": EMAIL, "password": PASSWORD, "code": code_at(secret, clock.now)}
    )
    assert signed.status == 200 and (await signed.json())["stage"] == "full"


async def test_cancelling_the_second_step_ends_the_pending_sign_in(
    client: TestClient[Any, Any], clock: FakeClock
) -> None:
    account = await add_account(client.app, EMAIL)
    secret, _ = await enrol(client.app, account, clock.now)
    await client.post("/login", data={"email": EMAIL, "password": PASSWORD})
    csrf = await form_csrf(client, "/login/two-factor")
    cookie = client.session.cookie_jar.filter_cookies(client.make_url("/"))["attune"].value
    cancelled = await client.post("/logout", data={"csrf_token": csrf}, allow_redirects=False)
    assert cancelled.headers["Location"] == "/login"
    client.session.cookie_jar.update_cookies({"attune": cookie})
    clock.advance(seconds=30)
    late = await client.post(
        SECOND, json={"code": code_at(secret, clock.now)}, headers={"X-CSRF-Token": csrf}
    )
    assert late.status == 401


async def test_new_recovery_codes_and_turning_off_need_the_password_and_a_code(
    client: TestClient[Any, Any], clock: FakeClock
) -> None:
    account = await add_account(client.app, EMAIL)
    secret, old_codes = await enrol(client.app, account, clock.now)
    clock.advance(seconds=30)
    await client.post(
        LOGIN, json={"email": EMAIL, "password": PASSWORD, "code": code_at(secret, clock.now)}
    )
    csrf = await form_csrf(client, "/account")
    clock.advance(seconds=30)
    stolen_session = await client.post(
        "/account/recovery-codes",
        data={
            "csrf_token": csrf,
            "password": "not the password",
            "code": code_at(secret, clock.now),
        },
    )
    assert stolen_session.status == 422
    fresh = await client.post(
        "/account/recovery-codes",
        data={"csrf_token": csrf, "password": PASSWORD, "code": code_at(secret, clock.now)},
    )
    assert fresh.status == 200 and "Your recovery codes" in await fresh.text()
    # The old codes stopped working.
    refused = await client.post(
        "/account/two-factor-off",
        data={"csrf_token": csrf, "password": PASSWORD, "code": old_codes[1]},
    )
    assert refused.status == 422
    clock.advance(seconds=30)
    off = await client.post(
        "/account/two-factor-off",
        data={"csrf_token": csrf, "password": PASSWORD, "code": code_at(secret, clock.now)},
    )
    assert off.status == 200
    assert "Off." in await off.text()


async def test_two_factor_cannot_be_turned_off_while_the_clinic_requires_it(
    client: TestClient[Any, Any], clock: FakeClock
) -> None:
    admin = await add_account(client.app, "admin@example.org", Role.ADMIN)
    account = await add_account(client.app, EMAIL)
    secret, codes = await enrol(client.app, account, clock.now)
    await two_factor.set_required(client.app[DB], client.app[AUDIT], admin, True, clock.now)
    await client.post(LOGIN, json={"email": EMAIL, "password": PASSWORD, "code": codes[0]})
    csrf = await form_csrf(client, "/account")
    assert "Your clinic requires two-factor sign-in." in await (await client.get("/account")).text()
    clock.advance(seconds=30)
    refused = await client.post(
        "/account/two-factor-off",
        data={"csrf_token": csrf, "password": PASSWORD, "code": code_at(secret, clock.now)},
    )
    assert refused.status == 409

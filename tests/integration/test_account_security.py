"""An account's own security: changing the password needs the current one, the list of its
sign-ins and ending them, and the admin's reset, which never hands an admin a password and
never hands an admin the therapist's pages."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from server.core.models import Role
from server.keys import DB
from server.services import two_factor
from tests.conftest import PASSWORD, FakeClock, add_account, sign_in
from tests.integration.account_helpers import enrol, form_csrf

LOGIN = "/api/v1/auth/login"
EMAIL, ADMIN = "ana@example.org", "admin@example.org"
NEW_PASSWORD = "a brand new long passphrase"
FIREFOX = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0"


async def test_changing_the_password_needs_the_current_one_and_ends_other_sign_ins(
    client: TestClient[Any, Any], aiohttp_client: Any
) -> None:
    await add_account(client.app, EMAIL)
    csrf = await sign_in(client, EMAIL)
    elsewhere = await aiohttp_client(client.server)
    await sign_in(elsewhere, EMAIL)
    headers = {"X-CSRF-Token": csrf}

    stolen_cookie = await client.post(
        "/api/v1/auth/password",
        json={"current_password": "not the password", "new_password": NEW_PASSWORD},
        headers=headers,
    )
    assert stolen_cookie.status == 422
    assert (await elsewhere.get("/api/v1/auth/me")).status == 200

    changed = await client.post(
        "/api/v1/auth/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=headers,
    )
    assert changed.status == 204
    assert (await client.get("/api/v1/auth/me")).status == 200  # this browser stays
    assert (await elsewhere.get("/api/v1/auth/me")).status == 401
    retry = await elsewhere.post(LOGIN, json={"email": EMAIL, "password": PASSWORD})
    assert retry.status == 401


async def test_the_page_form_refuses_a_wrong_current_password(client: TestClient[Any, Any]) -> None:
    await add_account(client.app, EMAIL)
    await sign_in(client, EMAIL)
    csrf = await form_csrf(client, "/account")
    refused = await client.post(
        "/account/password",
        data={
            "csrf_token": csrf,
            "current_password": "a wrong current one",
            "new_password": NEW_PASSWORD,
            "new_password_again": NEW_PASSWORD,
        },
    )
    assert refused.status == 422
    assert "The current password is wrong." in await refused.text()


async def test_ending_another_session_makes_its_cookie_invalid(
    client: TestClient[Any, Any], aiohttp_client: Any
) -> None:
    await add_account(client.app, EMAIL)
    csrf = await sign_in(client, EMAIL)
    laptop = await aiohttp_client(client.server)
    await laptop.post(
        LOGIN, json={"email": EMAIL, "password": PASSWORD}, headers={"User-Agent": FIREFOX}
    )
    listed = (await (await client.get("/api/v1/auth/sessions")).json())["items"]
    assert len(listed) == 2
    other = next(item for item in listed if not item["current"])
    assert other["device"] == "Firefox on Windows"
    assert "127.0.0.1" not in str(listed)

    page = await (await client.get("/account")).text()
    assert "Firefox on Windows" in page and "End this session" in page
    form = await form_csrf(client, "/account")
    ended = await client.post(f"/account/sign-ins/{other['id']}/end", data={"csrf_token": form})
    assert ended.status == 200
    # post/redirect/get (issue #11): the page after the action has its own address
    assert [r.status for r in ended.history] == [303]
    assert str(ended.url).endswith("/account?done=sign-in-ended")
    assert "That sign-in has ended." in await ended.text()
    assert (await laptop.get("/api/v1/auth/me")).status == 401
    assert (await client.get("/api/v1/auth/me")).status == 200

    await sign_in(laptop, EMAIL)
    phone = await aiohttp_client(client.server)
    await sign_in(phone, EMAIL)
    all_others = await client.post(
        "/api/v1/auth/sessions/end-others", headers={"X-CSRF-Token": csrf}
    )
    assert all_others.status == 204
    assert (await laptop.get("/api/v1/auth/me")).status == 401
    assert (await phone.get("/api/v1/auth/me")).status == 401
    assert (await client.get("/api/v1/auth/me")).status == 200

    await sign_in(laptop, EMAIL)
    await sign_in(phone, EMAIL)
    by_page = await client.post("/account/end-others", data={"csrf_token": form})
    assert str(by_page.url).endswith("/account?done=end-others&ended=2")
    assert "Ended 2 other sign-ins." in await by_page.text()
    odd = await client.get("/account?done=end-others&ended=-1")
    assert odd.status == 200 and "Ended 0 other sign-ins." in await odd.text()


async def test_a_sign_in_of_another_account_cannot_be_ended(
    client: TestClient[Any, Any], aiohttp_client: Any
) -> None:
    await add_account(client.app, EMAIL)
    await add_account(client.app, "bo@example.org")
    victim = await aiohttp_client(client.server)
    await sign_in(victim, "bo@example.org")
    victim_id = (await (await victim.get("/api/v1/auth/sessions")).json())["items"][0]["id"]
    csrf = await sign_in(client, EMAIL)
    refused = await client.post(
        f"/api/v1/auth/sessions/{victim_id}/end", headers={"X-CSRF-Token": csrf}
    )
    assert refused.status == 404
    assert (await victim.get("/api/v1/auth/me")).status == 200


# --- the admin's reset ------------------------------------------------------------------------


async def _reset(client: TestClient[Any, Any], therapist_id: str) -> str:
    """The admin (signed in on `client`) resets the therapist; returns the link's path."""
    csrf = await form_csrf(client, f"/admin/accounts/{therapist_id}")
    page = await client.post(f"/admin/accounts/{therapist_id}/reset", data={"csrf_token": csrf})
    assert page.status == 200
    assert page.headers["Cache-Control"] == "no-store"
    text = await page.text()
    assert "<svg" in text
    start = text.index("/reset/")
    return text[start : text.index('"', start)]


async def _set_password(holder: TestClient[Any, Any], link: str, password: str) -> int:
    page = await (await holder.get(link)).text()
    csrf = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    response = await holder.post(
        link,
        data={"csrf_token": csrf, "password": password, "password_again": password},
        allow_redirects=False,
    )
    return response.status


async def test_an_admin_reset_ends_sign_ins_and_two_factor_and_its_link_works_once(
    client: TestClient[Any, Any], aiohttp_client: Any, clock: FakeClock
) -> None:
    await add_account(client.app, ADMIN, Role.ADMIN)
    therapist = await add_account(client.app, EMAIL)
    await enrol(client.app, therapist, clock.now)
    await sign_in(client, ADMIN)
    signed_in_therapist = await aiohttp_client(client.server)
    pending = await (
        await signed_in_therapist.post(LOGIN, json={"email": EMAIL, "password": PASSWORD})
    ).json()
    assert pending["stage"] == "second_factor"

    link = await _reset(client, therapist.id)
    assert (await signed_in_therapist.get("/login/two-factor", allow_redirects=False)).status == 303
    assert not (await two_factor.status(client.app[DB], therapist.id)).enabled
    old = await signed_in_therapist.post(LOGIN, json={"email": EMAIL, "password": PASSWORD})
    assert old.status == 401  # the old password no longer works

    holder = await aiohttp_client(client.server)
    assert await _set_password(holder, link, NEW_PASSWORD) == 303
    assert (await holder.get(link)).status == 404
    assert (
        await holder.post(link, data={"password": "x" * 20, "password_again": "x" * 20})
    ).status == 404

    first = await holder.post(LOGIN, json={"email": EMAIL, "password": NEW_PASSWORD})
    body = await first.json()
    assert body["stage"] == "full"  # two-factor was removed: enrol again
    assert len(body["notices"]) == 1
    assert "An administrator reset your password on" in body["notices"][0]
    assert "tell your clinic" in body["notices"][0]


async def test_the_reset_notice_greets_the_next_page_sign_in_and_stays_on_the_account_page(
    client: TestClient[Any, Any], aiohttp_client: Any
) -> None:
    await add_account(client.app, ADMIN, Role.ADMIN)
    therapist = await add_account(client.app, EMAIL)
    await sign_in(client, ADMIN)
    link = await _reset(client, therapist.id)
    holder = await aiohttp_client(client.server)
    await _set_password(holder, link, NEW_PASSWORD)
    signed = await holder.post(
        "/login",
        data={"email": EMAIL, "password": NEW_PASSWORD, "next": "/dashboard"},
        allow_redirects=False,
    )
    assert signed.headers["Location"] == "/account/notices?next=/dashboard"
    notice = await (await holder.get("/account/notices?next=/dashboard")).text()
    assert "An administrator reset your password on" in notice
    csrf = await form_csrf(holder, "/account/notices")
    read = await holder.post(
        "/account/notices", data={"csrf_token": csrf, "next": "/dashboard"}, allow_redirects=False
    )
    assert read.headers["Location"] == "/dashboard"
    again = await aiohttp_client(client.server)
    later = await again.post(
        "/login", data={"email": EMAIL, "password": NEW_PASSWORD}, allow_redirects=False
    )
    # The notice was read; only the holder's other sign-in is listed now.
    assert later.headers["Location"] == "/account/notices"
    listed = await (await again.get("/account/notices")).text()
    assert "Your other sign-ins" in listed and "An administrator reset" not in listed
    assert "An administrator reset your password on" in await (await again.get("/account")).text()


async def test_a_reset_link_expires_after_a_day(
    client: TestClient[Any, Any], aiohttp_client: Any, clock: FakeClock
) -> None:
    await add_account(client.app, ADMIN, Role.ADMIN)
    therapist = await add_account(client.app, EMAIL)
    await sign_in(client, ADMIN)
    link = await _reset(client, therapist.id)
    clock.advance(hours=24, seconds=1)
    holder = await aiohttp_client(client.server)
    assert (await holder.get(link)).status == 404


@pytest.mark.parametrize(
    "path",
    ["/dashboard", "/host/" + "0" * 32, "/api/v1/clients", "/api/v1/sessions"],
)
async def test_an_admin_who_used_a_reset_link_still_cannot_open_clinical_routes(
    client: TestClient[Any, Any], path: str
) -> None:
    await add_account(client.app, ADMIN, Role.ADMIN)
    therapist = await add_account(client.app, EMAIL)
    await sign_in(client, ADMIN)
    link = await _reset(client, therapist.id)
    # The admin opens the link in their own signed-in browser and sets a password there:
    assert await _set_password(client, link, NEW_PASSWORD) == 303
    # ...their own sign-in is still the admin's, and the admin role has no therapist routes.
    me = await (await client.get("/api/v1/auth/me")).json()
    assert me["account"]["role"] == "admin"
    assert (await client.get(path, allow_redirects=False)).status == 403


async def test_an_admin_who_signs_in_as_the_therapist_after_a_reset_leaves_the_notice_behind(
    client: TestClient[Any, Any], aiohttp_client: Any
) -> None:
    await add_account(client.app, ADMIN, Role.ADMIN)
    therapist = await add_account(client.app, EMAIL)
    await sign_in(client, ADMIN)
    link = await _reset(client, therapist.id)
    impostor = await aiohttp_client(client.server)
    await _set_password(impostor, link, NEW_PASSWORD)
    await sign_in(impostor, EMAIL, NEW_PASSWORD)
    # The therapist's own password stopped working, and their account page tells them why:
    mine = await aiohttp_client(client.server)
    assert (await mine.post(LOGIN, json={"email": EMAIL, "password": PASSWORD})).status == 401
    page = await (await impostor.get("/account")).text()
    assert "An administrator reset your password on" in page


async def test_an_admin_cannot_reset_their_own_account_by_link(
    client: TestClient[Any, Any],
) -> None:
    admin = await add_account(client.app, ADMIN, Role.ADMIN)
    csrf = await sign_in(client, ADMIN)
    refused = await client.post(
        f"/api/v1/accounts/{admin.id}/reset", headers={"X-CSRF-Token": csrf}
    )
    assert refused.status == 409


async def test_a_new_account_gets_a_set_up_link_so_the_admin_never_knows_its_password(
    client: TestClient[Any, Any], aiohttp_client: Any
) -> None:
    await add_account(client.app, ADMIN, Role.ADMIN)
    await sign_in(client, ADMIN)
    csrf = await form_csrf(client, "/admin")
    page = await client.post(
        "/admin/accounts", data={"csrf_token": csrf, "email": EMAIL, "role": "therapist"}
    )
    assert page.status == 200 and page.headers["Cache-Control"] == "no-store"
    text = await page.text()
    assert "Set-up link for" in text
    admin_page = await (await client.get("/admin")).text()
    assert 'type="password"' not in admin_page  # the console no longer asks for one
    start = text.index("/reset/")
    link = text[start : text.index('"', start)]
    holder = await aiohttp_client(client.server)
    assert (await holder.post(LOGIN, json={"email": EMAIL, "password": "!reset"})).status == 401
    assert await _set_password(holder, link, NEW_PASSWORD) == 303
    first = await (await holder.post(LOGIN, json={"email": EMAIL, "password": NEW_PASSWORD})).json()
    assert first["stage"] == "full" and first["notices"] == []  # no reset happened


async def test_the_api_adds_an_account_with_a_one_time_set_up_link(
    client: TestClient[Any, Any],
) -> None:
    await add_account(client.app, ADMIN, Role.ADMIN)
    csrf = await sign_in(client, ADMIN)
    created = await client.post(
        "/api/v1/accounts",
        json={"email": EMAIL, "role": "therapist"},
        headers={"X-CSRF-Token": csrf},
    )
    assert created.status == 201
    body = await created.json()
    assert "/reset/" in body["setup_url"] and body["email"] == EMAIL

"""On an empty database a one-time link creates the first admin."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from server.keys import CLOCK, DB
from server.services.accounts import issue_setup_link_if_needed
from tests.conftest import FakeClock


async def test_setup_link_creates_the_first_admin_once(client: TestClient) -> None:
    token = await issue_setup_link_if_needed(client.app[DB], client.app[CLOCK]())
    assert token is not None
    page = await client.get(f"/setup/{token}")
    assert page.status == 200
    form = {
        "email": "admin@example.org",
        "password": "the first admin pass",
        "password_again": "the first admin pass",
    }
    created = await client.post(f"/setup/{token}", data=form, allow_redirects=False)
    assert created.status == 303 and created.headers["Location"] == "/login"
    login = await client.post(
        "/api/v1/auth/login",
        json={"email": "admin@example.org", "password": "the first admin pass"},
    )
    assert (await login.json())["account"]["role"] == "admin"
    assert (await client.get(f"/setup/{token}")).status == 404
    assert await issue_setup_link_if_needed(client.app[DB], client.app[CLOCK]()) is None


async def test_setup_link_expires_after_a_day(client: TestClient, clock: FakeClock) -> None:
    token = await issue_setup_link_if_needed(client.app[DB], client.app[CLOCK]())
    clock.advance(hours=24, seconds=1)
    assert (await client.get(f"/setup/{token}")).status == 404


async def test_setup_rejects_mismatched_and_short_passwords(client: TestClient) -> None:
    token = await issue_setup_link_if_needed(client.app[DB], client.app[CLOCK]())
    mismatch = await client.post(
        f"/setup/{token}",
        data={
            "email": "admin@example.org",
            "password": "the first admin pass",
            "password_again": "something else entirely",
        },
    )
    assert mismatch.status == 422
    short = await client.post(
        f"/setup/{token}",
        data={"email": "admin@example.org", "password": "short", "password_again": "short"},
    )
    assert short.status == 422
    assert (await client.get(f"/setup/{token}")).status == 200  # still usable

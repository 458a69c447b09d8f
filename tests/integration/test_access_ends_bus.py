"""Access that ends, across processes (issue #13): the request that ends someone's access lands
on one process, the socket opened with that access lives on another; it closes within a
second with its final code and reason, through the real Redis bus.

Two `create_app`s in this process share one PostgreSQL database and one Redis (the fixtures of
`test_bus_redis.py`). In every test the socket whose access ends is on one process and the
request (or the admission) that ends it runs on the other.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from server.core.models import Role
from tests.conftest import PASSWORD, add_account, sign_in
from tests.integration.test_access_ends import PULSE, closed
from tests.integration.test_bus_redis import (  # noqa: F401 - its fixtures, by name
    _admitted,
    _on,
    database_url,
    redis_prefix,
    two_apps,
)
from tests.integration.test_signaling import Party, _setup


@pytest.fixture
def apps(request: pytest.FixtureRequest) -> tuple[TestClient, TestClient]:
    """Process A and process B (`test_bus_redis.two_apps`)."""
    both: tuple[TestClient, TestClient] = request.getfixturevalue("two_apps")
    return both


WITHIN_S = 1.0
"""How soon the socket on the other process must close (the issue's bar)."""


async def _closed_soon(party: Party) -> tuple[tuple[int, str], float]:
    """The close the server sent, and how long after the call it came."""
    started = time.monotonic()
    got = await closed(party, within=5)
    return got, time.monotonic() - started


async def _admin_on(second: TestClient, aiohttp_client: Any) -> tuple[TestClient, str]:
    """An admin signed in through process B."""
    await add_account(second.app, "admin@example.org", Role.ADMIN)
    admin: TestClient = await aiohttp_client(second.server)
    return admin, await sign_in(admin, "admin@example.org")


async def _account_id(therapist: Party) -> str:
    me = await (await therapist.http.get("/api/v1/auth/me")).json()
    return str(me["account"]["id"])


async def test_signing_out_through_another_process_closes_the_room_socket_with_4401(
    apps: tuple[TestClient, TestClient], aiohttp_client: Any
) -> None:
    first, second = apps
    therapist, visitor, csrf = await _setup(first, aiohttp_client)
    await _admitted(therapist, visitor)
    on_b = await _on(second, aiohttp_client, therapist)

    out = await on_b.http.post("/api/v1/auth/logout", headers={"X-CSRF-Token": csrf})
    assert out.status == 204
    got, after = await _closed_soon(therapist)
    assert got == (4401, "signed-out")
    assert after < WITHIN_S
    await visitor.expect("peer-left")


async def test_a_therapist_disabled_through_another_process_receives_nothing_more(
    apps: tuple[TestClient, TestClient], aiohttp_client: Any
) -> None:
    first, second = apps
    therapist, visitor, _ = await _setup(first, aiohttp_client)
    await _admitted(therapist, visitor)
    admin, admin_csrf = await _admin_on(second, aiohttp_client)

    disabled = await admin.post(
        f"/api/v1/accounts/{await _account_id(therapist)}/disable",
        headers={"X-CSRF-Token": admin_csrf},
    )
    assert disabled.status == 200
    got, after = await _closed_soon(therapist)
    assert got == (4401, "account-disabled")
    assert after < WITHIN_S
    # The client's check-in goes on being stored, but no longer reaches the disabled account.
    await visitor.send({**PULSE, "idempotency_key": "d" * 16})
    await visitor.expect("checkin-ack")
    assert therapist.ws is not None and therapist.ws.closed


async def test_an_admin_reset_through_another_process_closes_the_accounts_sockets(
    apps: tuple[TestClient, TestClient], aiohttp_client: Any
) -> None:
    first, second = apps
    therapist, visitor, _ = await _setup(first, aiohttp_client)
    await _admitted(therapist, visitor)
    admin, admin_csrf = await _admin_on(second, aiohttp_client)

    reset = await admin.post(
        f"/api/v1/accounts/{await _account_id(therapist)}/reset",
        headers={"X-CSRF-Token": admin_csrf},
    )
    assert reset.status == 200
    got, after = await _closed_soon(therapist)
    assert got == (4401, "password-changed")
    assert after < WITHIN_S


async def test_changing_the_password_on_one_process_closes_the_other_sign_ins_socket_elsewhere(
    apps: tuple[TestClient, TestClient], aiohttp_client: Any
) -> None:
    first, second = apps
    therapist, visitor, _ = await _setup(first, aiohttp_client)
    await _admitted(therapist, visitor)
    laptop: TestClient = await aiohttp_client(second.server)  # another sign-in, on B
    laptop_csrf = await sign_in(laptop, "t@example.org")

    changed = await laptop.post(
        "/api/v1/auth/password",
        json={"current_password": PASSWORD, "new_password": "a brand new long passphrase"},
        headers={"X-CSRF-Token": laptop_csrf},
    )
    assert changed.status == 204
    got, after = await _closed_soon(therapist)
    assert got == (4401, "password-changed")
    assert after < WITHIN_S


async def test_a_link_revoked_through_another_process_closes_the_client_socket_at_once(
    apps: tuple[TestClient, TestClient], aiohttp_client: Any
) -> None:
    first, second = apps
    therapist, visitor, csrf = await _setup(first, aiohttp_client)
    await _admitted(therapist, visitor)
    on_b = await _on(second, aiohttp_client, therapist)

    revoked = await on_b.http.delete(
        f"/api/v1/sessions/{visitor.session_id}/invite", headers={"X-CSRF-Token": csrf}
    )
    assert revoked.status == 204
    got, after = await _closed_soon(visitor)
    assert got == (4401, "link-revoked")
    assert after < WITHIN_S
    assert (await therapist.expect("peer-left"))["role"] == "client"
    assert (await visitor.http.get("/api/v1/visit/export")).status == 401


async def test_a_link_reissued_through_another_process_closes_the_old_client_socket(
    apps: tuple[TestClient, TestClient], aiohttp_client: Any
) -> None:
    first, second = apps
    therapist, visitor, csrf = await _setup(first, aiohttp_client)
    await _admitted(therapist, visitor)
    on_b = await _on(second, aiohttp_client, therapist)

    new = await on_b.http.post(
        f"/api/v1/sessions/{visitor.session_id}/invite", headers={"X-CSRF-Token": csrf}
    )
    assert new.status == 201
    got, after = await _closed_soon(visitor)
    assert got == (4401, "link-replaced")
    assert after < WITHIN_S


async def test_admitting_another_device_on_the_rooms_process_closes_the_older_cookie_on_another(
    apps: tuple[TestClient, TestClient], aiohttp_client: Any
) -> None:
    first, second = apps
    therapist, phone_on_a, _ = await _setup(first, aiohttp_client)
    await therapist.connect()  # A holds the room: admissions run there
    phone = await _on(second, aiohttp_client, phone_on_a)
    await phone.connect()  # the phone's socket is on B
    lobby = await therapist.expect("lobby")
    while not lobby["waiting"]:
        lobby = await therapist.expect("lobby")
    laptop_http: TestClient = await aiohttp_client(first.server)  # another browser, on A
    opened = await laptop_http.get(f"/join/{phone.join_token}", allow_redirects=False)
    assert opened.status == 303
    laptop = Party(laptop_http, phone.session_id)
    welcome = await laptop.connect()
    while not any(k["knock_id"] == welcome["knock_id"] for k in lobby["waiting"]):
        lobby = await therapist.expect("lobby")

    await therapist.send({"type": "admit", "knock_id": welcome["knock_id"]})
    await laptop.expect("admitted")
    got, after = await _closed_soon(phone)
    assert got == (4401, "another-device")
    assert after < WITHIN_S
    assert (await phone.http.get("/api/v1/visit/export")).status == 401

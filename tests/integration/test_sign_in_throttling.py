"""Sign-in throttling against a running app: behind a proxy, across addresses, with and
without the owner's device cookie."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from server.app import create_app
from server.settings import Settings
from tests.conftest import PASSWORD, FakeClock, add_account

LOGIN = "/api/v1/auth/login"


async def _client(aiohttp_client: Any, data_dir: Path, clock: FakeClock, **values: Any) -> Any:
    return await aiohttp_client(create_app(Settings(data_dir=data_dir, **values), clock=clock))


async def _try(
    client: TestClient, email: str, password: str, *, via: str | None = None, cookie: str = ""
) -> Any:
    headers = {"X-Forwarded-For": via} if via else {}
    if cookie:
        headers["Cookie"] = cookie
    client.session.cookie_jar.clear()
    return await client.post(LOGIN, json={"email": email, "password": password}, headers=headers)


async def test_behind_a_trusted_proxy_twenty_wrong_passwords_do_not_lock_out_other_therapists(
    aiohttp_client: Any, data_dir: Path, clock: FakeClock
) -> None:
    client = await _client(aiohttp_client, data_dir, clock, trusted_proxies=("127.0.0.1",))
    await add_account(client.app, "ana@example.org")
    for n in range(25):
        await _try(client, f"victim{n}@example.org", "wrong guess", via="203.0.113.66")
    refused = await _try(client, "someone@example.org", "wrong guess", via="203.0.113.66")
    assert refused.status == 429
    colleague = await _try(client, "ana@example.org", PASSWORD, via="198.51.100.20")
    assert colleague.status == 200


async def test_an_untrusted_peer_cannot_escape_throttling_by_writing_x_forwarded_for(
    client: TestClient,
) -> None:
    for n in range(25):
        await _try(client, f"victim{n}@example.org", "wrong guess", via=f"198.51.100.{n}")
    refused = await _try(client, "other@example.org", "wrong guess", via="192.0.2.1")
    assert refused.status == 429


async def test_thirty_wrong_passwords_over_six_addresses_are_not_all_checked(
    aiohttp_client: Any, data_dir: Path, clock: FakeClock
) -> None:
    client = await _client(aiohttp_client, data_dir, clock, trusted_proxies=("127.0.0.1",))
    await add_account(client.app, "ana@example.org")
    statuses = []
    for address in range(6):
        for _ in range(5):
            response = await _try(
                client, "ana@example.org", "wrong guess", via=f"203.0.113.{address + 1}"
            )
            statuses.append(response.status)
    assert statuses.count(401) == 5
    assert statuses.count(429) == 25
    last = await _try(client, "ana@example.org", PASSWORD, via="203.0.113.99")
    assert last.status == 429
    assert int(last.headers["Retry-After"]) >= 1


async def test_an_attack_on_an_email_that_does_not_exist_gets_the_same_answers(
    aiohttp_client: Any, data_dir: Path, clock: FakeClock
) -> None:
    client = await _client(aiohttp_client, data_dir, clock, trusted_proxies=("127.0.0.1",))
    await add_account(client.app, "ana@example.org")
    answers: dict[str, list[tuple[int, str | None]]] = {}
    for email in ("ana@example.org", "ghost@example.org"):
        answers[email] = []
        for address in range(8):
            response = await _try(client, email, "wrong guess", via=f"203.0.113.{address + 1}")
            code = (await response.json())["error"]["code"]
            answers[email].append((response.status, code))
    assert answers["ana@example.org"] == answers["ghost@example.org"]
    assert answers["ana@example.org"][-1] == (429, "rate_limited")


async def test_the_owner_with_a_device_cookie_signs_in_while_the_account_is_under_attack(
    aiohttp_client: Any, data_dir: Path, clock: FakeClock
) -> None:
    client = await _client(aiohttp_client, data_dir, clock, trusted_proxies=("127.0.0.1",))
    await add_account(client.app, "ana@example.org")
    first = await _try(client, "ana@example.org", PASSWORD, via="198.51.100.20")
    assert first.status == 200
    device = first.cookies["attune-device"]
    assert device["httponly"] and device["samesite"] == "Strict" and device["path"] == "/"
    assert int(device["max-age"]) > 86_400 * 30
    for address in range(40):
        await _try(client, "ana@example.org", "wrong guess", via=f"203.0.113.{address + 1}")
    stranger = await _try(client, "ana@example.org", PASSWORD, via="198.51.100.21")
    assert stranger.status == 429
    owner = await _try(
        client,
        "ana@example.org",
        PASSWORD,
        via="198.51.100.20",
        cookie=f"attune-device={device.value}",
    )
    assert owner.status == 200


async def test_a_device_cookie_from_another_account_does_not_bypass_the_account_throttle(
    aiohttp_client: Any, data_dir: Path, clock: FakeClock
) -> None:
    client = await _client(aiohttp_client, data_dir, clock, trusted_proxies=("127.0.0.1",))
    await add_account(client.app, "ana@example.org")
    await add_account(client.app, "mallory@example.org")
    own = await _try(client, "mallory@example.org", PASSWORD, via="203.0.113.5")
    mallorys_device = f"attune-device={own.cookies['attune-device'].value}"
    for address in range(10):
        await _try(
            client,
            "ana@example.org",
            "wrong guess",
            via=f"203.0.113.{address + 10}",
            cookie=mallorys_device,
        )
    guess = await _try(
        client, "ana@example.org", "wrong guess", via="203.0.113.99", cookie=mallorys_device
    )
    assert guess.status == 429


async def test_a_failed_sign_in_mints_no_device_cookie(client: TestClient) -> None:
    await add_account(client.app, "ana@example.org")
    response = await _try(client, "ana@example.org", "wrong guess")
    assert response.status == 401
    assert "attune-device" not in response.cookies

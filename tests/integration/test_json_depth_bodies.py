"""Deeply nested JSON bodies get a plain 400, never a 500 from a blown recursion limit."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from tests.conftest import add_account, sign_in


async def test_thirty_thousand_brackets_sent_to_sign_in_unauthenticated_answer_400(
    client: TestClient,
) -> None:
    response = await client.post(
        "/api/v1/auth/login", data="[" * 30_000, headers={"Content-Type": "application/json"}
    )
    assert response.status == 400
    assert (await response.json())["error"]["code"] == "invalid"


async def test_a_deep_body_from_a_signed_in_therapist_answers_400_not_500(
    client: TestClient,
) -> None:
    await add_account(client.app, "ana@example.org")
    csrf = await sign_in(client, "ana@example.org")
    body = '{"alias": ' + "[" * 5_000 + "]" * 5_000 + "}"
    response = await client.post(
        "/api/v1/clients",
        data=body,
        headers={"Content-Type": "application/json", "X-CSRF-Token": csrf},
    )
    assert response.status == 400
    assert (await response.json())["error"]["code"] == "invalid"


async def test_brackets_inside_a_string_do_not_count_as_nesting(client: TestClient) -> None:
    await add_account(client.app, "ana@example.org")
    csrf = await sign_in(client, "ana@example.org")
    response = await client.post(
        "/api/v1/clients", json={"alias": "[" * 60}, headers={"X-CSRF-Token": csrf}
    )
    assert response.status == 201

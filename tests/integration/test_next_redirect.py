"""After signing in, the browser goes only to a page of this site."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import PASSWORD, add_account


async def _sign_in_with_next(client: TestClient, next_value: str) -> str:
    response = await client.post(
        "/login",
        data={"email": "ana@example.org", "password": PASSWORD, "next": next_value},
        allow_redirects=False,
    )
    assert response.status == 303
    return response.headers["Location"]


@pytest.mark.parametrize(
    "attack", ["/\t/evil.example", "/%09/evil.example", "//evil.example", "/\\evil.example"]
)
async def test_a_next_parameter_with_a_tab_or_slashes_cannot_redirect_off_site(
    client: TestClient, attack: str
) -> None:
    await add_account(client.app, "ana@example.org")
    assert await _sign_in_with_next(client, attack) == "/"


async def test_the_login_page_does_not_carry_an_off_site_next_into_its_form(
    client: TestClient,
) -> None:
    page = await client.get("/login", params={"next": "/\t/evil.example"})
    text = await page.text()
    assert 'name="next" value="/"' in text
    assert "evil.example" not in text


async def test_a_same_site_next_still_opens_that_page_after_sign_in(client: TestClient) -> None:
    await add_account(client.app, "ana@example.org")
    assert await _sign_in_with_next(client, "/dashboard") == "/dashboard"


async def test_a_signed_out_visit_sends_the_page_as_an_encoded_next(client: TestClient) -> None:
    response = await client.get("/host/a%09b", allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"] == "/login?next=/host/a%09b"

"""With SMTP configured, an admin's reset (and a new account's set-up) sends the one-time link to
the holder's own address and never shows it to the admin (issue #13: "an admin never sets or
learns a password"). A real SMTP server (aiosmtpd on loopback) receives the messages."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from aiosmtpd.controller import Controller

from server.app import create_app
from server.core.models import Role
from server.smtp import REFUSED_ADDRESS
from tests.conftest import PASSWORD, FakeClock, add_account, sign_in
from tests.integration.account_helpers import form_csrf
from tests.integration.test_email import Mailbox, _email_settings, _free_port

ADMIN, EMAIL = "admin@example.org", "ana@example.org"
NEW_PASSWORD = "a brand new long passphrase"
LINK = re.compile(r"http://attune\.test:8080(/reset/[A-Za-z0-9_-]+)")


@pytest.fixture
def smtp_port() -> int:
    return _free_port()


@pytest.fixture
def smtp_box(smtp_port: int) -> Iterator[Mailbox]:
    """A real SMTP server on loopback (`test_email.Mailbox` records what it accepts)."""
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=smtp_port, ready_timeout=5)
    controller.start()
    yield box
    controller.stop()


@pytest.fixture
def app(data_dir: Path, clock: FakeClock, smtp_port: int, smtp_box: Mailbox) -> web.Application:
    return create_app(_email_settings(data_dir, smtp_port), clock=clock)


def _only_message_to(box: Mailbox, address: str) -> EmailMessage:
    (message,) = [m for m in box.parsed() if m["To"] == address]
    return message


def _link_in(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    found = LINK.search(body.get_content())
    assert found, "no link in the email"
    return found.group(1)


async def _audit_details(client: TestClient, action: str) -> list[dict[str, Any]]:
    page = await client.get("/api/v1/audit", params={"action": action})
    assert page.status == 200, await page.text()
    return [item["details"] for item in (await page.json())["items"]]


async def test_a_reset_emails_the_link_to_the_holder_and_the_admin_never_sees_it(
    client: TestClient, aiohttp_client: Any, smtp_box: Mailbox
) -> None:
    await add_account(client.app, ADMIN, Role.ADMIN)
    therapist = await add_account(client.app, EMAIL)
    await sign_in(client, ADMIN)
    csrf = await form_csrf(client, f"/admin/accounts/{therapist.id}")
    page = await client.post(f"/admin/accounts/{therapist.id}/reset", data={"csrf_token": csrf})
    assert page.status == 200
    shown = await page.text()
    assert "/reset/" not in shown and "<svg" not in shown
    assert f"emailed to {EMAIL}" in shown

    message = _only_message_to(smtp_box, EMAIL)
    assert message["Subject"] == "Your Attune password was reset"
    link = _link_in(message)
    holder: TestClient = await aiohttp_client(client.server)
    form = await (await holder.get(link)).text()
    token = form.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    chosen = await holder.post(
        link,
        data={"csrf_token": token, "password": NEW_PASSWORD, "password_again": NEW_PASSWORD},
        allow_redirects=False,
    )
    assert chosen.status == 303
    old = await holder.post("/api/v1/auth/login", json={"email": EMAIL, "password": PASSWORD})
    assert old.status == 401
    new = await holder.post("/api/v1/auth/login", json={"email": EMAIL, "password": NEW_PASSWORD})
    assert new.status == 200
    assert (await new.json())["notices"]  # the reset is still told to the holder
    assert await _audit_details(client, "account.reset_link.issue") == [{"by_email": True}]


async def test_the_api_reset_says_emailed_and_carries_no_link(
    client: TestClient, smtp_box: Mailbox
) -> None:
    await add_account(client.app, ADMIN, Role.ADMIN)
    therapist = await add_account(client.app, EMAIL)
    csrf = await sign_in(client, ADMIN)
    reset = await client.post(
        f"/api/v1/accounts/{therapist.id}/reset", headers={"X-CSRF-Token": csrf}
    )
    assert reset.status == 200
    body = await reset.json()
    assert body["delivery"] == "emailed" and "reset_url" not in body
    assert "/reset/" not in await reset.text()
    assert _link_in(_only_message_to(smtp_box, EMAIL)).startswith("/reset/")


async def test_a_new_accounts_set_up_link_goes_to_its_holder_not_to_the_admin(
    client: TestClient, smtp_box: Mailbox
) -> None:
    await add_account(client.app, ADMIN, Role.ADMIN)
    csrf = await sign_in(client, ADMIN)
    created = await client.post(
        "/api/v1/accounts",
        json={"email": "new@example.org", "role": "therapist"},
        headers={"X-CSRF-Token": csrf},
    )
    assert created.status == 201
    body = await created.json()
    assert body["delivery"] == "emailed" and "setup_url" not in body
    message = _only_message_to(smtp_box, "new@example.org")
    assert message["Subject"] == "Choose your Attune password"
    assert _link_in(message).startswith("/reset/")

    form = await form_csrf(client, "/admin")
    page = await client.post(
        "/admin/accounts", data={"csrf_token": form, "email": "two@example.org", "role": "admin"}
    )
    assert page.status == 200
    assert "/reset/" not in await page.text()
    assert _link_in(_only_message_to(smtp_box, "two@example.org")).startswith("/reset/")


async def test_when_the_email_is_refused_the_reset_stands_and_the_link_is_shown_to_nobody(
    client: TestClient, smtp_box: Mailbox
) -> None:
    await add_account(client.app, ADMIN, Role.ADMIN)
    therapist = await add_account(client.app, "nobody@refused.example")
    csrf = await sign_in(client, ADMIN)
    form = await form_csrf(client, f"/admin/accounts/{therapist.id}")
    page = await client.post(f"/admin/accounts/{therapist.id}/reset", data={"csrf_token": form})
    assert page.status == 200
    shown = html.unescape(await page.text())
    assert "/reset/" not in shown
    assert f"could not be sent: {REFUSED_ADDRESS}" in shown
    assert smtp_box.messages == []
    old = await client.post(
        "/api/v1/auth/login", json={"email": "nobody@refused.example", "password": PASSWORD}
    )
    assert old.status == 401  # the reset itself took effect
    reset = await client.post(
        f"/api/v1/accounts/{therapist.id}/reset", headers={"X-CSRF-Token": csrf}
    )
    body = await reset.json()
    assert (body["delivery"], body["delivery_error"]) == ("failed", REFUSED_ADDRESS)
    assert "reset_url" not in body

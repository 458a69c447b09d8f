"""Shared fixtures: a controllable clock, settings in a temp dir, the app under test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from server.app import create_app
from server.core.models import Account, Role
from server.keys import AUDIT, DB
from server.services.accounts import create_account
from server.settings import Settings

PASSWORD = "a calm and long passphrase"


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)

    @classmethod
    def now_(cls) -> FakeClock:
        """A fake clock starting at the real current time."""
        return cls(datetime.now(UTC))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 11, 23, 9, 0, tzinfo=UTC))


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def settings(data_dir: Path) -> Settings:
    return Settings(data_dir=data_dir)


@pytest.fixture
def app(settings: Settings, clock: FakeClock) -> web.Application:
    return create_app(settings, clock=clock)


@pytest.fixture
async def client(aiohttp_client: Any, app: web.Application) -> AsyncIterator[TestClient]:
    yield await aiohttp_client(app)


async def add_account(
    app: web.Application, email: str, role: Role = Role.THERAPIST, password: str = PASSWORD
) -> Account:
    """Create an account directly through the service layer (the app must be started)."""
    return await create_account(
        app[DB],
        app[AUDIT],
        email=email,
        password=password,
        role=role,
        actor="system:test",
        now=datetime.now(UTC),
    )


async def sign_in(client: TestClient, email: str, password: str = PASSWORD) -> str:
    """Sign in through the API; returns the CSRF token to send on writes."""
    response = await client.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert response.status == 200, await response.text()
    body = await response.json()
    token: str = body["csrf_token"]
    return token


@pytest.fixture
async def therapist(client: TestClient) -> tuple[Account, str]:
    """A signed-in therapist and the CSRF token of that sign-in."""
    account = await add_account(client.app, "therapist@example.org")
    return account, await sign_in(client, "therapist@example.org")

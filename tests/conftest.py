"""Shared fixtures: a controllable clock, settings in a temp dir, the app under test.

Two costs are cut for every test, neither changing what a test can observe: each data
directory starts from a copy of a database migrated once per run (`data_dir`), and Argon2id
hashes passwords at a test cost (`password_hashing_at_test_cost`) unless a test is marked
`production_password_cost`.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from argon2 import PasswordHasher

from server.app import create_app
from server.core.models import Account, Role
from server.db.engine import Database
from server.db.migrate import upgrade_to_head
from server.keys import AUDIT, DB
from server.security import passwords
from server.services.accounts import create_account
from server.settings import Settings

PASSWORD = "a calm and long passphrase"
# Argon2id as in production but at its smallest cost: ~0.1 ms instead of 50-100 ms a hash or
# a verification on these machines, which the thousands of sign-ins in the suite add up.
TEST_COST_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


@pytest.fixture(autouse=True)
def password_hashing_at_test_cost(request: pytest.FixtureRequest) -> Iterator[None]:
    """In-process servers hash and verify with TEST_COST_HASHER (same algorithm and code
    path, hashes still verified for real); `attune` subprocesses and tests marked
    `production_password_cost` (tests/unit/test_passwords.py) keep the production cost."""
    if request.node.get_closest_marker("production_password_cost"):
        yield
        return
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(passwords, "_hasher", TEST_COST_HASHER)
        patch.setattr(passwords, "_DUMMY_HASH", TEST_COST_HASHER.hash("attune-dummy-password"))
        yield


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


async def _migrate(database: Path) -> None:
    await _migrate_url(f"sqlite+aiosqlite:///{database}")


async def _migrate_url(url: str) -> None:
    db = Database.connect(url)
    try:
        await upgrade_to_head(db)
    finally:
        await db.dispose()


def _in_own_loop(coroutine: Coroutine[Any, Any, None]) -> None:
    """Run `coroutine` to its end in a thread and event loop of its own (not the tests')."""
    with ThreadPoolExecutor(max_workers=1) as thread:
        thread.submit(asyncio.run, coroutine).result()


@functools.cache
def migrated_sqlite() -> Path:
    """An SQLite database at the newest revision, migrated once per run the way the server
    does it, in a thread of its own (its own event loop, apart from the tests' loops).
    Migrating an empty database at start stays covered by tests/storage/test_backends.py,
    tests/multiproc and the tests that build their own `Settings(data_dir=...)`."""
    directory = Path(tempfile.mkdtemp(prefix="attune-migrated-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    database = directory / "attune.db"
    _in_own_loop(_migrate(database))
    # Closing the last connection checkpointed the WAL: the one file is the whole database.
    assert [path.name for path in directory.iterdir()] == ["attune.db"]
    return database


def with_migrated_database(data_dir: Path) -> Path:
    """`data_dir`, created owner-only as the server creates it, holding a copy of the migrated
    database: the app's start finds the schema at head instead of running every migration
    (0.2-1 s a start on these machines). Returns `data_dir`."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    shutil.copyfile(migrated_sqlite(), data_dir / "attune.db")
    return data_dir


async def _on_postgres(server: str, sql: str) -> None:
    import asyncpg  # only the PostgreSQL tests need it

    admin = await asyncpg.connect(f"postgresql://{server}/postgres", timeout=5)
    try:
        await admin.execute(sql)
    finally:
        await admin.close()


async def _create_migrated_postgres(server: str, name: str) -> None:
    await _on_postgres(server, f'CREATE DATABASE "{name}"')
    await _migrate_url(f"postgresql+asyncpg://{server}/{name}")


@functools.cache
def migrated_postgres_template(server: str) -> str:
    """The name of a database on the PostgreSQL `server` ("user@host:port") at the newest
    revision, migrated once per run and dropped at its end, for `CREATE DATABASE ... TEMPLATE`
    to copy in a fraction of the migrations' time. Nothing stays connected to it. It blocks:
    from a running loop, call it through `asyncio.to_thread`."""
    name = f"attune_template_{secrets.token_hex(6)}"
    _in_own_loop(_create_migrated_postgres(server, name))
    _postgres_templates.append((server, name))
    return name


_postgres_templates: list[tuple[str, str]] = []


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Drop the PostgreSQL templates this run made."""
    while _postgres_templates:
        server, name = _postgres_templates.pop()
        _in_own_loop(_on_postgres(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """The app's data directory, its SQLite database already migrated and empty (the keyring
    and the audit signing key are still created at start)."""
    return with_migrated_database(tmp_path / "data")


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

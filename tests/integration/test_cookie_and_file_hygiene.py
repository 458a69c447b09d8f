"""A signed-out cookie really goes away over HTTPS, and the database is readable by its owner
only."""

from __future__ import annotations

import os
import stat
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import pytest

from server.app import create_app
from server.db.engine import Database
from server.settings import Settings
from tests.conftest import PASSWORD, FakeClock, add_account


def _deletion(set_cookie_headers: list[str], name: str) -> Any:
    for header in set_cookie_headers:
        parsed: SimpleCookie = SimpleCookie()
        parsed.load(header)
        if name in parsed:
            return parsed[name]
    raise AssertionError(f"no Set-Cookie for {name}")


@pytest.mark.parametrize("via", ["api", "page"])
async def test_over_https_logout_deletes_the_host_cookie_with_secure_and_path(
    aiohttp_client: Any, data_dir: Path, clock: FakeClock, via: str
) -> None:
    settings = Settings(data_dir=data_dir, public_base_url="https://attune.example")
    client = await aiohttp_client(create_app(settings, clock=clock))
    await add_account(client.app, "ana@example.org")
    login = await client.post(
        "/api/v1/auth/login", json={"email": "ana@example.org", "password": PASSWORD}
    )
    token = login.cookies["__Host-attune"].value
    csrf = (await login.json())["csrf_token"]
    headers = {"Cookie": f"__Host-attune={token}"}
    if via == "api":
        response = await client.post(
            "/api/v1/auth/logout", headers={**headers, "X-CSRF-Token": csrf}
        )
        assert response.status == 204
    else:
        response = await client.post(
            "/logout", data={"csrf_token": csrf}, headers=headers, allow_redirects=False
        )
        assert response.status == 303
    deletion = _deletion(response.headers.getall("Set-Cookie"), "__Host-attune")
    assert deletion.value == ""
    assert deletion["max-age"] == "0"
    assert deletion["secure"] is True
    assert deletion["path"] == "/"
    assert deletion["httponly"] is True
    assert not deletion["domain"]
    assert deletion["samesite"] == "Strict"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_a_fresh_data_dir_gets_an_owner_only_database_and_wal(tmp_path: Path) -> None:
    old_umask = os.umask(0o022)  # the usual umask, under which SQLite would create 0644 files
    try:
        settings = Settings(data_dir=tmp_path / "fresh")
        db = Database.connect(settings.effective_database_url)
        try:
            async with db.write() as conn:
                await conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
                await conn.exec_driver_sql("INSERT INTO t VALUES (1)")
            files = sorted((tmp_path / "fresh").iterdir())
            assert {f.name for f in files} >= {"attune.db", "attune.db-wal", "attune.db-shm"}
            assert {f.name: _mode(f) for f in files} == {f.name: 0o600 for f in files}
        finally:
            await db.dispose()
    finally:
        os.umask(old_umask)


async def test_world_readable_database_files_left_by_an_older_version_are_closed_at_start(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "old"
    directory.mkdir()
    for name in ("attune.db", "attune.db-wal", "attune.db-shm"):
        (directory / name).touch()
        (directory / name).chmod(0o644)
    db = Database.connect(Settings(data_dir=directory).effective_database_url)
    await db.dispose()
    assert {_mode(directory / n) for n in ("attune.db", "attune.db-wal", "attune.db-shm")} == {
        0o600
    }

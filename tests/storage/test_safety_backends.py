"""The safety check on SQLite and PostgreSQL (migration 0009): answered twice in one session
(the newest replaces the first), read back, and gone with the client's erasure."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from aiohttp.test_utils import TestClient

from server.app import create_app
from server.db.tables import safety_checks
from server.keys import DB
from server.settings import Settings
from tests.conftest import FakeClock
from tests.integration.test_safety_check import ANSWERS, answer
from tests.integration.test_signaling import _setup


async def _rows(client: TestClient) -> int:
    async with client.app[DB].read() as conn:
        count = await conn.execute(sa.select(sa.func.count()).select_from(safety_checks))
        return int(count.scalar_one())


async def test_a_safety_check_is_stored_replaced_and_erased_on_each_backend(
    database_url: str, aiohttp_client: Any, tmp_path: Path, clock: FakeClock
) -> None:
    settings = replace(Settings(data_dir=tmp_path / "data"), database_url=database_url)
    client: TestClient = await aiohttp_client(create_app(settings, clock=clock))
    _, visitor, csrf = await _setup(client, aiohttp_client)

    assert (await answer(visitor)).status == 201
    assert (await answer(visitor, {**ANSWERS, "location": "At home"})).status == 201

    assert await _rows(client) == 1
    step = await (await visitor.http.get("/api/v1/visit/safety")).json()
    assert step["previous"]["location"] == "At home"
    summary = await (await client.get(f"/host/{visitor.session_id}/summary")).text()
    assert "At home" in summary
    async with client.app[DB].read() as conn:
        client_id = (await conn.execute(sa.select(safety_checks.c.client_id))).scalar_one()
    erased = await client.delete(f"/api/v1/clients/{client_id}", headers={"X-CSRF-Token": csrf})
    assert erased.status in {200, 204}
    assert await _rows(client) == 0

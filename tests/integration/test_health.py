"""Liveness and readiness probes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from server.app import create_app
from server.settings import Settings
from tests.multiproc.processes import free_port


async def test_readyz_answers_ready_when_the_database_answers(client: TestClient) -> None:
    response = await client.get("/readyz")
    assert response.status == 200
    assert await response.json() == {"status": "ready"}


async def test_readyz_says_redis_is_unreachable_when_redis_url_points_nowhere(
    aiohttp_client: Any, data_dir: Path
) -> None:
    settings = Settings(data_dir=data_dir, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    client = await aiohttp_client(create_app(settings))
    response = await client.get("/readyz")
    assert response.status == 503
    assert await response.json() == {"status": "unavailable", "reason": "redis unreachable"}
    assert (await client.get("/healthz")).status == 200  # alive, just not ready

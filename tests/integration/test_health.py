"""Liveness and readiness probes."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from server.health import Readiness, readiness
from server.keys import DB
from tests.multiproc.processes import free_port


async def test_readyz_answers_ready_when_the_database_answers(client: TestClient) -> None:
    response = await client.get("/readyz")
    assert response.status == 200
    assert await response.json() == {"status": "ready"}


async def test_readiness_says_redis_is_unreachable_when_redis_stops_answering(
    client: TestClient,
) -> None:
    # With the bus, a process does not start without Redis; this is Redis going away later.
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    assert await readiness(client.app[DB], nowhere) == Readiness(False, "redis unreachable")
    assert await readiness(client.app[DB], "") == Readiness(True)
    assert (await client.get("/healthz")).status == 200

"""Fixtures for tests with several `attune serve` processes behind nginx (tests/multiproc)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from redis.asyncio import Redis

from tests.multiproc.harness import NGINX, PG_ADMIN, REDIS_URL, Cluster


def unavailable(what: str, why: object) -> None:
    """Missing in CI is a failure (`make services` and `make system-deps` provide it)."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is needed for tests/multiproc in CI: {why}")
    pytest.skip(f"{what} unavailable: {why}")


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    """Two `attune serve` processes, PostgreSQL, Redis and nginx; not yet started (the test
    prepares the database first, then calls `start`)."""
    if not os.access(NGINX, os.X_OK):
        unavailable("nginx", f"{NGINX} is missing; `make system-deps` installs it")
    try:
        await (await asyncpg.connect(timeout=5, **PG_ADMIN)).close()  # type: ignore[arg-type]
    except (OSError, asyncpg.PostgresError) as exc:
        unavailable("PostgreSQL", exc)
    redis = Redis.from_url(REDIS_URL)
    try:
        await redis.ping()
    except OSError as exc:
        unavailable("Redis", exc)
    finally:
        await redis.aclose()
    made = Cluster(workdir=tmp_path)
    await made.create_database()
    try:
        yield made
    finally:
        await made.stop()

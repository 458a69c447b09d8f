"""Fixtures for tests that run real `attune serve` processes (see processes.py).

`pg_database_url` — a fresh PostgreSQL database for the test, dropped after.
`redis_url` — a Redis database number of the test's own, flushed after.
`make_cluster` — `await make_cluster(processes=2, nginx=True, backend="postgresql",
redis=False, settings={...})` starts migrated processes (and nginx); all stopped after.
Outside CI a missing PostgreSQL, Redis or nginx skips; with CI=true it fails.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest

from tests.multiproc.processes import (
    Cluster,
    HarnessError,
    cluster,
    find_nginx,
    fresh_postgres_database,
    fresh_redis_database,
)

MakeCluster = Callable[..., Awaitable[Cluster]]


def unavailable(what: str, why: object) -> None:
    """Missing in CI is a failure (`make services` and `make system-deps` provide it)."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is needed for tests/multiproc in CI: {why}")
    pytest.skip(f"{what} unavailable: {why}")


@pytest.fixture
def pg_database_url() -> Iterator[str]:
    try:
        with fresh_postgres_database() as url:
            yield url
    except HarnessError as exc:
        unavailable("a service", exc)


@pytest.fixture
def redis_url() -> Iterator[str]:
    try:
        with fresh_redis_database() as url:
            yield url
    except HarnessError as exc:
        unavailable("a service", exc)


@pytest.fixture
async def make_cluster(tmp_path: Path) -> AsyncIterator[MakeCluster]:
    async with AsyncExitStack() as stack:

        async def make(
            *,
            processes: int = 1,
            nginx: bool = False,
            backend: str = "postgresql",
            redis: bool = False,
            settings: Mapping[str, str] | None = None,
        ) -> Cluster:
            if nginx:
                try:
                    find_nginx()
                except HarnessError as exc:
                    unavailable("a service", exc)
            try:
                if backend == "postgresql":
                    url = stack.enter_context(fresh_postgres_database())
                else:
                    url = f"sqlite+aiosqlite:///{tmp_path / 'data' / 'attune.db'}"
                redis_at = stack.enter_context(fresh_redis_database()) if redis else ""
            except HarnessError as exc:
                unavailable("a service", exc)
            started: Any = await stack.enter_async_context(
                cluster(
                    tmp_path,
                    url,
                    redis_url=redis_at,
                    processes=processes,
                    nginx=nginx,
                    settings=settings,
                )
            )
            return started  # type: ignore[no-any-return]

        yield make

"""The lease keeper against the real Redis: it renews while the event loop is slow, and stops
when the loop is wedged or renewal is switched off, so such a process's leases lapse."""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import Iterator

import pytest
from redis import Redis
from redis.exceptions import RedisError

from server.realtime.bus import _RENEW_MANY, STATE_TTL_MS
from server.realtime.lease_keeper import LeaseKeeper

REDIS_URL = "redis://127.0.0.1:6379/0"
LEASE_MS = 600
PROCESS = "p-keeper"


@pytest.fixture
def redis() -> Iterator[tuple[Redis, str]]:
    """A blocking client and a key prefix of this test's own (its keys removed afterwards)."""
    client = Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        client.ping()
    except (OSError, RedisError) as exc:
        client.close()
        if os.environ.get("CI") == "true":
            pytest.fail(f"Redis must be reachable in CI: {exc}")
        pytest.skip(f"Redis not reachable: {exc}")
    prefix = f"attune-keeper-{secrets.token_hex(4)}:"
    try:
        yield client, prefix
    finally:
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)
        client.close()


async def _keep(
    redis: Redis, prefix: str, *, stuck_s: float = 10.0, enabled: bool = True
) -> tuple[LeaseKeeper, str, list[list[str]]]:
    """A keeper renewing one room's lease (taken now), and the renewals it reported."""
    owner_key = f"{prefix}room:s1:owner"
    redis.set(owner_key, PROCESS, px=LEASE_MS)
    keeper = LeaseKeeper(
        Redis.from_url(REDIS_URL, decode_responses=True),
        _RENEW_MANY,
        lease_ms=LEASE_MS,
        state_ttl_ms=STATE_TTL_MS,
        stuck_s=stuck_s,
    )
    reported: list[list[str]] = []
    keeper.start(
        asyncio.get_running_loop(),
        process_id=PROCESS,
        alive_key=f"{prefix}proc:{PROCESS}:alive",
        keys=lambda s: (f"{prefix}room:{s}:owner", f"{prefix}room:{s}:state"),
        rooms=lambda: ["s1"],
        enabled=lambda: enabled,
        renewed=lambda _sent, rooms: reported.append(rooms),
    )
    return keeper, owner_key, reported


async def test_a_blocked_loop_keeps_its_lease_and_hears_of_the_renewals_afterwards(
    redis: tuple[Redis, str],
) -> None:
    client, prefix = redis
    keeper, owner_key, reported = await _keep(client, prefix)
    try:
        time.sleep(4 * LEASE_MS / 1000)  # noqa: ASYNC251 - the loop does nothing else meanwhile
        assert client.get(owner_key) == PROCESS
        assert client.exists(f"{prefix}proc:{PROCESS}:alive")
        await asyncio.sleep(0.05)  # the loop turns: the renewals made meanwhile reach it
        assert ["s1"] in reported
        assert keeper.loop_lag_max_s >= 3 * LEASE_MS / 1000 - 0.3  # and it measured the wait
    finally:
        await keeper.stop()


async def test_a_loop_wedged_past_the_stuck_bound_lets_its_lease_lapse(
    redis: tuple[Redis, str],
) -> None:
    client, prefix = redis
    keeper, owner_key, _ = await _keep(client, prefix, stuck_s=0.5)
    try:
        time.sleep(0.5 + 4 * LEASE_MS / 1000)  # noqa: ASYNC251 - wedged: no turn at all
        assert client.get(owner_key) is None
    finally:
        await keeper.stop()


async def test_no_renewal_while_switched_off(redis: tuple[Redis, str]) -> None:
    client, prefix = redis
    keeper, owner_key, reported = await _keep(client, prefix, enabled=False)
    try:
        await asyncio.sleep(3 * LEASE_MS / 1000)
        assert client.get(owner_key) is None
        assert reported == []
    finally:
        await keeper.stop()


async def test_a_lease_held_by_another_process_is_not_extended(redis: tuple[Redis, str]) -> None:
    client, prefix = redis
    keeper, owner_key, reported = await _keep(client, prefix)
    try:
        client.set(owner_key, "p-other", px=LEASE_MS)
        await asyncio.sleep(2 * LEASE_MS / 1000)
        assert client.get(owner_key) is None  # lapsed: the keeper only extends its own
        assert reported and reported[-1] == []
    finally:
        await keeper.stop()

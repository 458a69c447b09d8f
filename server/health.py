"""Readiness: can this process serve requests now? (Liveness is just "the loop answers".)

A process is ready when its database answers a trivial query and, when `redis_url` is set,
Redis answers PING, each within a short deadline. The reason is a short fixed phrase: never a
driver message, which may carry host names or credentials.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Final

from server.db.engine import Database

log = logging.getLogger("attune.health")
CHECK_TIMEOUT_S: Final = 2.0


@dataclass(frozen=True)
class Readiness:
    """Ready, or not and why (a short phrase fit for a probe's log)."""

    ready: bool
    reason: str = ""


async def database_reachable(db: Database) -> bool:
    """Whether `SELECT 1` comes back within CHECK_TIMEOUT_S."""
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            await db.ping()
    except Exception as exc:  # any failure of the driver or the pool means "not reachable"
        log.warning("readiness: database unreachable (%s)", type(exc).__name__)
        return False
    return True


async def redis_reachable(url: str) -> bool:
    """Whether Redis at `url` answers PING within CHECK_TIMEOUT_S."""
    timeout = CHECK_TIMEOUT_S
    import redis.asyncio as aioredis
    from redis.exceptions import RedisError

    client = aioredis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        async with asyncio.timeout(timeout):
            await client.ping()
    except (RedisError, OSError, TimeoutError) as exc:
        log.warning("readiness: redis unreachable (%s)", type(exc).__name__)
        return False
    finally:
        await client.aclose()
    return True


async def readiness(db: Database, redis_url: str) -> Readiness:
    """Check the database, then Redis when configured."""
    if not await database_reachable(db):
        return Readiness(False, "database unreachable")
    if redis_url and not await redis_reachable(redis_url):
        return Readiness(False, "redis unreachable")
    return Readiness(True)

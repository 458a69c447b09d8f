"""Redis goes down while the clinic runs, and comes back (empty): nothing is a 500, new
sessions are refused with a plain page, sockets are told to retry, calls go on, and when
Redis is back the rooms are re-owned by the process that kept them, with no restart.

The test runs its own `redis-server` on a free port (never the machine's), kills it with
SIGKILL and starts it again on the same port, with nothing saved to disk: it comes back empty.
Two apps share it and one PostgreSQL database, as in test_bus_redis.py.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import signal
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from server.app import create_app
from server.errors import LIVE_UNAVAILABLE_MESSAGE
from server.realtime.bus import RedisBus, is_redis_outage, open_bus
from server.settings import Settings
from tests.conftest import FakeClock
from tests.integration.test_bus_redis import (
    _admitted,
    _bus,
    _on,
    _pulse_goes_through,
    _unavailable,
    database_url,  # noqa: F401 - a fixture
)
from tests.integration.test_signaling import OFFER, Party, _setup

PREFIX = "attune-outage:"
LEASE_MS = 900
DEADLINE_S = 15.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class OwnRedis:
    """A `redis-server` of this test's own on 127.0.0.1, stopped and started by its pid."""

    def __init__(self, workdir: Path) -> None:
        self.port = _free_port()
        self.workdir = workdir
        self.process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        """Start it (on the same port every time) and wait until it answers PING."""
        binary = shutil.which("redis-server")
        if binary is None:
            _unavailable("redis-server", FileNotFoundError("redis-server"))
        assert binary is not None
        self.process = await asyncio.create_subprocess_exec(
            *(binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""),
            *("--appendonly", "no", "--dir", str(self.workdir)),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        client = Redis.from_url(self.url, socket_connect_timeout=1)
        try:
            async with asyncio.timeout(DEADLINE_S):
                while True:
                    try:
                        if await client.ping():
                            return
                    except RedisConnectionError:
                        pass  # not listening yet
                    await asyncio.sleep(0.05)  # a starting server: poll, bounded above
        finally:
            await client.aclose()

    async def kill(self) -> None:
        """SIGKILL: Redis vanishes at once, as in a crash."""
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)
            async with asyncio.timeout(10):
                await self.process.wait()


@pytest.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[OwnRedis]:
    server = OwnRedis(tmp_path)
    await server.start()
    try:
        yield server
    finally:
        await server.kill()


@pytest.fixture
async def two_apps_on_own_redis(
    database_url: str,  # noqa: F811 - the fixture imported above
    own_redis: OwnRedis,
    aiohttp_client: Any,
    tmp_path: Path,
    clock: FakeClock,
) -> tuple[TestClient, TestClient]:
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        redis_url=own_redis.url,
        redis_prefix=PREFIX,
        redis_lease_ms=LEASE_MS,
    )
    first = await aiohttp_client(create_app(settings, clock=clock))
    second = await aiohttp_client(create_app(settings, clock=clock))
    return first, second


async def _eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll `check` until true, failing after DEADLINE_S with `what` in the message."""
    try:
        async with asyncio.timeout(DEADLINE_S):
            while True:
                if await check():
                    return
                await asyncio.sleep(0.1)  # the processes notice Redis within a renewal
    except TimeoutError:
        pytest.fail(f"not within {DEADLINE_S} s: {what}")


def _status_is(http: TestClient, path: str, status: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        async with http.get(path) as response:
            return response.status == status

    return check


async def _refused_with_retry(party: Party) -> int:
    """Open a socket and say hello; the close code the server answers with."""
    party.ws = await party.http.ws_connect(f"/ws/session/{party.session_id}")
    await party.ws.send_json({"type": "hello", "version": 1})
    return await party.closed_with()


async def test_while_redis_is_down_new_sessions_get_a_plain_503_and_everything_resumes_after(
    two_apps_on_own_redis: tuple[TestClient, TestClient],
    own_redis: OwnRedis,
    aiohttp_client: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    first, second = two_apps_on_own_redis
    therapist, visitor_first, _ = await _setup(first, aiohttp_client)
    visitor = await _on(second, aiohttp_client, visitor_first)  # the client's socket is on B
    _therapist_welcome, client_welcome = await _admitted(therapist, visitor)
    session_id = therapist.session_id
    assert _bus(first).owns(session_id)
    host_path = f"/host/{session_id}"
    assert (await visitor.http.get("/visit")).status == 200
    assert (await therapist.http.get(host_path)).status == 200

    await own_redis.kill()

    # Both processes say so to the load balancer's probe, in a short fixed phrase.
    for app in (first, second):
        await _eventually(_status_is(app, "/readyz", 503), "/readyz turns 503")
        ready = await app.get("/readyz")
        assert await ready.json() == {"status": "unavailable", "reason": "redis unreachable"}
    # The client's join page and the therapist's "Open room" say it plainly: a 503 page.
    for http, path in ((visitor.http, "/visit"), (therapist.http, host_path)):
        page = await http.get(path)
        text = await page.text()
        assert page.status == 503, text
        assert page.headers["Retry-After"] == "30"
        assert LIVE_UNAVAILABLE_MESSAGE in text
        assert "Traceback" not in text
    # ... and to a client whose browser speaks Spanish or German, in their language.
    for language, title, words in (
        ("es", "Attune no está disponible por un momento", "Una llamada que ya está en curso"),
        ("de", "Attune ist gerade kurz nicht erreichbar", "Ein Gespräch, das schon läuft"),
    ):
        page = await visitor.http.get("/visit", headers={"Accept-Language": language})
        text = await page.text()
        assert page.status == 503 and page.headers["Retry-After"] == "30"
        assert f'<html lang="{language}"' in text and title in text and words in text
        shown = re.sub(r"<script.*?</script>", "", text, flags=re.S)  # keys are English
        assert "Live sessions" not in shown and "temporarily" not in shown
    # The rest of the product answers as usual: nothing is a 500.
    for path in ("/", "/login", "/dashboard", "/healthz", "/api/v1/clients"):
        response = await therapist.http.get(path)
        assert response.status == 200, (path, response.status)
    presence = await therapist.http.get("/api/v1/sessions/presence")
    assert presence.status < 500

    # A socket whose action cannot reach its room is told "try again later" (1013), which
    # the page's reconnect logic retries with back-off; a new socket is refused the same way.
    await visitor.send({"type": "relay", "payload": OFFER})
    assert await visitor.closed_with() == 1013
    newcomer = await _on(second, aiohttp_client, visitor)
    assert await _refused_with_retry(newcomer) == 1013
    # Nothing tears the call down: the therapist's quiet socket on A stays open (the call's
    # media are peer to peer and never needed the server).
    await _eventually(lambda: _not_owned(first, session_id), "A's lease lapses by its clock")
    assert therapist.ws is not None and not therapist.ws.closed

    await own_redis.start()  # the same port, and empty: it saved nothing

    for app in (first, second):
        await _eventually(_status_is(app, "/readyz", 200), "/readyz is 200 again")
    # A kept the room in memory and re-claims it, since nobody else held it meanwhile.
    probe = Redis.from_url(own_redis.url, decode_responses=True)
    try:
        owner_key = f"{PREFIX}room:{session_id}:owner"
        await _eventually(
            lambda: _holds(probe, owner_key, _bus(first).process_id), "A re-owns the room"
        )
    finally:
        await probe.aclose()
    for http, path in ((visitor.http, "/visit"), (therapist.http, host_path)):
        await _eventually(_status_is(http, path, 200), f"{path} opens again")

    # The client comes back through B with its resume token: no knock, no admission...
    back = await _on(second, aiohttp_client, visitor)
    welcome = await back.connect(resume=client_welcome["resume_token"])
    assert (welcome["state"], welcome["knock_id"], welcome["resumed"]) == (
        "in-call",
        client_welcome["knock_id"],
        True,
    )
    # ...the therapist, whose socket never closed, hears so and signaling flows again...
    joined = await therapist.expect("peer-joined")
    assert (joined["role"], joined["resumed"]) == ("client", True)
    await therapist.send({"type": "relay", "payload": OFFER})
    assert (await back.expect("signal-relay"))["payload"] == OFFER
    # ...and a check-in goes through.
    await _pulse_goes_through(therapist, back, "e" * 32)

    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]
    assert all(r.exc_info is None for r in caplog.records if r.name.startswith("attune"))


async def _not_owned(app: TestClient, session_id: str) -> bool:
    return not _bus(app).owns(session_id)


async def _holds(redis: Redis, key: str, process_id: str) -> bool:
    try:
        return bool(await redis.get(key) == process_id)
    except RedisConnectionError:
        return False


async def _clients_of(probe: Redis) -> int:
    """Connections the Redis server holds now, the probe's own included."""
    info = await probe.info("clients")
    return int(info["connected_clients"])


async def test_a_bus_leaves_no_connection_to_redis_open_when_it_stops_or_vanishes(
    own_redis: OwnRedis, tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path / "data", redis_url=own_redis.url, redis_prefix=PREFIX)
    probe = Redis.from_url(own_redis.url)
    try:
        alone = await _clients_of(probe)
        for ending in ("stop", "vanish"):
            bus = open_bus(settings)
            assert isinstance(bus, RedisBus)
            await bus.start()
            assert await _clients_of(probe) > alone  # its subscription and its pool
            await (bus.stop() if ending == "stop" else bus.vanish())
            await _eventually(
                lambda: _has_clients(probe, alone), f"every connection closed after {ending}"
            )
    finally:
        await probe.aclose()


async def test_a_closed_bus_opens_no_connection_again_not_even_one_it_was_opening(
    own_redis: OwnRedis, tmp_path: Path
) -> None:
    """Late work (a forwarded action spawned while stopping, a command already connecting)
    fails as an outage instead of leaving a connection nobody owns and closes."""
    settings = Settings(data_dir=tmp_path / "data", redis_url=own_redis.url, redis_prefix=PREFIX)
    probe = Redis.from_url(own_redis.url)
    try:
        alone = await _clients_of(probe)
        bus = open_bus(settings)
        assert isinstance(bus, RedisBus)
        await bus.start()
        # A burst of commands still opening their connections while the bus stops.
        late = [asyncio.create_task(bus._redis.ping()) for _ in range(8)]
        await asyncio.sleep(0)
        await bus.stop()
        results = await asyncio.gather(*late, return_exceptions=True)
        for result in results:
            # refused by the closed pool, or timed out connecting on a busy machine: an outage
            assert result is True or is_redis_outage(result), result
        with pytest.raises(RedisConnectionError, match="the bus is closed"):
            await bus._redis.ping()
        await _eventually(lambda: _has_clients(probe, alone), "no connection left open")
    finally:
        await probe.aclose()


async def _has_clients(probe: Redis, expected: int) -> bool:
    return await _clients_of(probe) == expected

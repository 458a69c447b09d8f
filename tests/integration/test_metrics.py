"""Prometheus metrics on their own admin port: sockets, rooms, relay latency, features, purge."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient

from server.app import create_app
from server.keys import METRICS, SETTINGS
from server.settings import Settings
from tests.conftest import FakeClock
from tests.integration.test_signaling import OFFER, _setup
from tests.multiproc.conftest import unavailable
from tests.multiproc.processes import HarnessError, free_port, fresh_redis_database


async def _scrape(port: int) -> str:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http,
        http.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        assert response.status == 200
        assert response.content_type == "text/plain"
        return await response.text()


def _value(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in the metrics")


async def test_metrics_are_off_by_default_and_never_on_the_public_port(
    client: TestClient,
) -> None:
    assert client.app[SETTINGS].metrics_port == 0
    assert (await client.get("/metrics")).status == 404


async def test_the_admin_port_counts_sockets_rooms_relays_and_features_without_ids(
    aiohttp_client: Any, data_dir: Path, clock: FakeClock
) -> None:
    port = free_port()
    settings = Settings(data_dir=data_dir, metrics_port=port)
    client = await aiohttp_client(create_app(settings, clock=clock))
    therapist, visitor, _ = await _setup(client, aiohttp_client)
    await therapist.connect()
    welcome = await visitor.connect()
    await therapist.send({"type": "admit", "knock_id": welcome["knock_id"]})
    await visitor.expect("admitted")
    await visitor.send({"type": "relay", "payload": OFFER})
    await therapist.expect("signal-relay")
    await visitor.send(
        {
            "type": "features",
            "role": "client",
            "t_ms": 1_000,
            "window_ms": 1000,
            "voiced": [],
            "level_dbfs": -40.0,
            "motion": 0.0,
        }
    )
    await visitor.send({"type": "ping"})
    await visitor.expect("pong")  # the features frame was handled before this answer

    text = await _scrape(port)
    assert _value(text, "attune_open_websockets") == 2
    assert _value(text, "attune_live_rooms") == 1
    assert _value(text, "attune_relay_latency_seconds_count") == 1
    assert 0 < _value(text, "attune_relay_latency_seconds_sum") < 1
    assert _value(text, "attune_features_frames_total") == 1
    assert _value(text, 'attune_purge_runs_total{outcome="ok"}') == 0
    assert _value(text, "attune_redis_round_trip_seconds_count") == 0
    client.app[METRICS].purge_run("failed")
    client.app[METRICS].redis_round_trip(0.002)
    text = await _scrape(port)
    assert _value(text, 'attune_purge_runs_total{outcome="failed"}') == 1
    assert _value(text, "attune_redis_round_trip_seconds_count") == 1
    for secret in (therapist.session_id, "J.M.", "t@example.org", welcome["knock_id"]):
        assert secret not in text


async def test_the_bus_reports_its_redis_round_trips(
    aiohttp_client: Any, data_dir: Path, clock: FakeClock
) -> None:
    try:
        with fresh_redis_database() as redis_url:
            port = free_port()
            settings = Settings(data_dir=data_dir, metrics_port=port, redis_url=redis_url)
            client = await aiohttp_client(create_app(settings, clock=clock))
            text = await _scrape(port)
            await client.close()
    except HarnessError as exc:
        unavailable("Redis", exc)
    assert _value(text, "attune_redis_round_trip_seconds_count") > 0  # the lease, at least


async def test_the_event_loops_lag_is_reported_with_redis(
    aiohttp_client: Any, data_dir: Path, clock: FakeClock
) -> None:
    try:
        with fresh_redis_database() as redis_url:
            port = free_port()
            settings = Settings(
                data_dir=data_dir, metrics_port=port, redis_url=redis_url, redis_lease_ms=300
            )
            client = await aiohttp_client(create_app(settings, clock=clock))
            before = _value(await _scrape(port), "attune_event_loop_lag_seconds_count")
            await asyncio.sleep(0.5)  # the lease keeper probes every 100 ms here
            text = await _scrape(port)
            await client.close()
    except HarnessError as exc:
        unavailable("Redis", exc)
    assert _value(text, "attune_event_loop_lag_seconds_count") > before

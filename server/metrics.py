"""Prometheus metrics of one process, served on a separate admin port when `metrics_port` is set.

Nothing here names a session, client, account or alias: the only label is a purge run's
outcome. Each application gets a registry of its own, so tests and several apps in one process
never share counters.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Final

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

log = logging.getLogger("attune.metrics")

# Relay latency is queueing plus one socket write: sub-millisecond when idle, tens of ms loaded.
LATENCY_BUCKETS: Final = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)
PURGE_OUTCOMES: Final = ("ok", "stopped", "failed")


class PlainCounter(Collector):
    """A counter bumped on every frame, read only at scrape time: a plain integer, since
    prometheus_client's Counter takes a lock per `inc` (1.5 µs, about 1 % of a frame's cost)
    and everything that bumps it runs on the event loop's thread."""

    def __init__(self, name: str, documentation: str) -> None:
        self.name, self.documentation = name, documentation
        self.count = 0

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(self.name, self.documentation, value=self.count)


class Metrics:
    """The process's counters, gauges and histograms, and the hooks that feed them."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.open_sockets = Gauge(
            "attune_open_websockets",
            "Session WebSockets open in this process",
            registry=self.registry,
        )
        self.live_rooms = Gauge(
            "attune_live_rooms", "Session rooms live in this process", registry=self.registry
        )
        self.relay_latency = Histogram(
            "attune_relay_latency_seconds",
            "From a relay frame's receipt to its write on the other socket",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.features_frames = PlainCounter(
            "attune_features_frames", "features frames received (rate() gives frames per second)"
        )
        self.registry.register(self.features_frames)
        self.redis_round_trips = Histogram(
            "attune_redis_round_trip_seconds",
            "Round trips to Redis made by the bus (count and duration)",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.loop_lag = Histogram(
            "attune_event_loop_lag_seconds",
            "How long a callback waited on the event loop (probed by the lease keeper, "
            "every redis_lease_ms / 3, with Redis only)",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.purge_runs = Counter(
            "attune_purge_runs",
            "Purge job runs by outcome: ok, stopped (by a shutdown) or failed",
            ["outcome"],
            registry=self.registry,
        )
        for outcome in PURGE_OUTCOMES:
            self.purge_runs.labels(outcome=outcome)  # exported as 0 before the first run

    def watch(self, open_sockets: Callable[[], int], live_rooms: Callable[[], int]) -> None:
        """Read the two gauges from the hub at scrape time."""
        self.open_sockets.set_function(lambda: float(open_sockets()))
        self.live_rooms.set_function(lambda: float(live_rooms()))

    def relay_written(self, seconds: float) -> None:
        """A relayed frame reached the other socket `seconds` after it was received."""
        self.relay_latency.observe(seconds)

    def features_frame(self) -> None:
        self.features_frames.count += 1

    def redis_round_trip(self, seconds: float) -> None:
        """The bus's hook: call it once per Redis command or pipeline, with its duration."""
        self.redis_round_trips.observe(seconds)

    def event_loop_lag(self, seconds: float) -> None:
        """A callback scheduled from another thread ran `seconds` later on the loop."""
        self.loop_lag.observe(seconds)

    def purge_run(self, outcome: str) -> None:
        """The purge job finished a run: "ok", "stopped" or "failed"."""
        self.purge_runs.labels(outcome=outcome if outcome in PURGE_OUTCOMES else "failed").inc()

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)


def metrics_app(metrics: Metrics) -> web.Application:
    """The admin application: GET /metrics and nothing else."""

    async def serve_metrics(_request: web.Request) -> web.Response:
        response = web.Response(body=metrics.render())
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    admin = web.Application()
    admin.router.add_get("/metrics", serve_metrics)
    return admin


async def serve_metrics_ctx(
    metrics: Metrics, host: str, port: int
) -> AsyncIterator[web.AppRunner | None]:
    """Run the admin site on host:port while the main app runs (port 0: nothing is served)."""
    if port == 0:
        yield None
        return
    runner = web.AppRunner(metrics_app(metrics), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    log.info("metrics on http://%s:%d/metrics", host, port)
    try:
        yield runner
    finally:
        await runner.cleanup()

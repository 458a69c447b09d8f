"""A narrow link for tests: a UDP forwarder in front of a real server (coturn) whose upstream
direction behaves like a slow access link — packets leave at most at `rate_bps`, wait in a
bounded queue while the link is busy, and are dropped when the queue is full (drop-tail), as
a mobile uplink does. The rate can change while a call runs, so a test can make the network
poor and let it recover without touching the browsers.

Why not the kernel: `tc` on the shared loopback would throttle every engineer's tests on the
machine, and coturn's own `--max-bps` is fixed per allocation when it is made (a changed
limit reaches only new allocations) and enforced by dropping everything over the limit for
the rest of each second, which no real link does.

Each browser's 5-tuple gets its own upstream socket towards the server, so the server sees
one client per browser exactly as without the forwarder. The downstream direction (server →
browser) is forwarded as it comes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import cast

Address = tuple[str, int]


@dataclass
class LinkStats:
    """What went up the link: packets forwarded and dropped at the full queue."""

    forwarded: int = 0
    dropped: int = 0


@dataclass
class _Uplink:
    """One browser's upstream: its own socket to the server and the time the link is free."""

    transport: asyncio.DatagramTransport
    free_at: float = 0.0


class _Upstream(asyncio.DatagramProtocol):
    """The socket towards the server for one browser: answers go straight back to it."""

    def __init__(self, listener: asyncio.DatagramTransport, browser: Address) -> None:
        self.listener = listener
        self.browser = browser

    def datagram_received(self, data: bytes, addr: Address) -> None:
        if not self.listener.is_closing():
            self.listener.sendto(data, self.browser)


@dataclass
class Bottleneck(asyncio.DatagramProtocol):
    """The forwarder. `rate_bps=None` is an unlimited link; `queue_s` is how long a packet
    may wait for the link before it is dropped (the buffer of a real access link)."""

    target: Address
    rate_bps: int | None = None
    queue_s: float = 0.25
    stats: LinkStats = field(default_factory=LinkStats)
    _listener: asyncio.DatagramTransport | None = None
    _uplinks: dict[Address, asyncio.Future[_Uplink]] = field(default_factory=dict)

    @property
    def port(self) -> int:
        assert self._listener is not None
        port: int = self._listener.get_extra_info("sockname")[1]
        return port

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._listener = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Address) -> None:
        uplink = self._uplinks.get(addr)
        if uplink is None:
            uplink = self._uplinks[addr] = asyncio.ensure_future(self._open(addr))
        if uplink.done():
            self._send_up(uplink.result(), data)
        else:
            uplink.add_done_callback(lambda done: self._send_up(done.result(), data))

    async def _open(self, browser: Address) -> _Uplink:
        assert self._listener is not None
        loop = asyncio.get_running_loop()
        listener = self._listener
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Upstream(listener, browser), remote_addr=self.target
        )
        return _Uplink(transport)

    def _send_up(self, uplink: _Uplink, data: bytes) -> None:
        if self.rate_bps is None:
            self.stats.forwarded += 1
            uplink.transport.sendto(data)
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        start = max(now, uplink.free_at)
        if start - now > self.queue_s:
            self.stats.dropped += 1  # the queue is full: drop-tail
            return
        uplink.free_at = start + len(data) * 8 / self.rate_bps
        self.stats.forwarded += 1
        loop.call_at(uplink.free_at, self._leave, uplink, data)

    @staticmethod
    def _leave(uplink: _Uplink, data: bytes) -> None:
        if not uplink.transport.is_closing():
            uplink.transport.sendto(data)

    def set_rate(self, rate_bps: int | None) -> None:
        """Narrow or widen the link from now on (packets already queued keep their slot)."""
        self.rate_bps = rate_bps

    def close(self) -> None:
        for uplink in self._uplinks.values():
            if uplink.done() and not uplink.cancelled() and uplink.exception() is None:
                uplink.result().transport.close()
            else:
                uplink.cancel()
        if self._listener is not None:
            self._listener.close()


@asynccontextmanager
async def bottleneck(target: Address, *, queue_s: float = 0.25) -> AsyncIterator[Bottleneck]:
    """A forwarder on a free loopback UDP port in front of `target`, closed afterwards."""
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_datagram_endpoint(
        lambda: Bottleneck(target, queue_s=queue_s), local_addr=("127.0.0.1", 0)
    )
    try:
        yield protocol
    finally:
        protocol.close()

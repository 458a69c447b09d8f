"""The narrow link the bitrate test relies on (tests/bottleneck.py) behaves like one: open, it
forwards everything both ways; narrowed, packets leave at its rate, wait in a bounded queue
and are dropped when the queue is full; widened again, everything passes."""

from __future__ import annotations

import asyncio
from typing import cast

from tests.bottleneck import Address, Bottleneck, bottleneck

PACKET = 1_000  # bytes
BURST = 40  # packets sent at once: 320 kbit


class Receiver(asyncio.DatagramProtocol):
    """Records when each datagram arrives, and echoes it (the server's answers)."""

    def __init__(self) -> None:
        self.arrivals: list[float] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.arrivals.append(asyncio.get_running_loop().time())
        assert self.transport is not None
        self.transport.sendto(data, addr)


class Sender(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.echoes = 0

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.echoes += 1


async def burst_through(link: Bottleneck, receiver: Receiver) -> tuple[Sender, float]:
    """Send BURST packets at once through `link`; wait until the link is idle again."""
    loop = asyncio.get_running_loop()
    transport, sender = await loop.create_datagram_endpoint(
        Sender, remote_addr=("127.0.0.1", link.port)
    )
    forwarded_before = link.stats.forwarded
    started = loop.time()
    for _ in range(BURST):
        transport.sendto(b"x" * PACKET)
    seen = link.stats.forwarded + link.stats.dropped + BURST
    expected = len(receiver.arrivals)

    def settled() -> bool:
        """Every packet of the burst is forwarded or dropped, arrived, and answered."""
        handled = link.stats.forwarded + link.stats.dropped == seen
        arrived = len(receiver.arrivals) == expected + link.stats.forwarded - forwarded_before
        return handled and arrived and sender.echoes == len(receiver.arrivals) - expected

    for _ in range(500):  # at most 5 s; the last queued packet leaves within queue_s
        if settled():
            break
        await asyncio.sleep(0.01)
    assert settled(), (link.stats, len(receiver.arrivals), sender.echoes)
    transport.close()
    return sender, started


async def test_a_narrow_link_paces_queues_and_drops_and_recovers() -> None:
    loop = asyncio.get_running_loop()
    server, receiver = await loop.create_datagram_endpoint(Receiver, local_addr=("127.0.0.1", 0))
    target = server.get_extra_info("sockname")
    try:
        async with bottleneck(target, queue_s=0.25) as link:
            sender, _ = await burst_through(link, receiver)
            assert len(receiver.arrivals) == BURST and link.stats.dropped == 0
            assert sender.echoes == BURST  # answers come back through the forwarder

            rate = 400_000
            link.set_rate(rate)
            receiver.arrivals.clear()
            before = link.stats.forwarded
            _, started = await burst_through(link, receiver)
            passed = link.stats.forwarded - before
            # the queue holds 0.25 s at 400 kbit/s, 12.5 kB: about 13 of the 40 packets
            assert 12 <= passed <= 15, link.stats
            assert link.stats.dropped == BURST - passed
            assert len(receiver.arrivals) == passed
            spread = receiver.arrivals[-1] - started
            assert spread >= (passed - 1) * PACKET * 8 / rate  # paced, not let through at once

            link.set_rate(None)
            receiver.arrivals.clear()
            dropped = link.stats.dropped
            await burst_through(link, receiver)
            assert len(receiver.arrivals) == BURST and link.stats.dropped == dropped
    finally:
        server.close()

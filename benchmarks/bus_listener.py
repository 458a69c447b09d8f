"""Bus listener and publisher: the CPU each message crossing processes costs, on the real Redis.

Two sides of `RedisBus` (server/realtime/bus.py), each measured in a child process of its own
with `time.process_time()` (that process's CPU only), per message:

- **receive**: a bus owning 250 rooms reads N messages published on its channel by another
  process (pipelines of 100, about 5,000 a second), as the two-process set-up sends them:
  half `M<meta>\\n<frame>` (a client's frame for a room it owns: 40 % `features` of ~150
  bytes, 10 % `relay` of ~300 bytes), half `S<conn id>\\n<json>` (an effect for a socket of its
  own, the same two sizes). Each M runs the room action through a runner that does nothing
  (so what is measured is the bus: reading, decoding, routing, the lock), each S reaches a hub
  that does nothing. Also counted: asyncio tasks created per message (a task factory).
- **send**: 100 "sockets" (tasks) of a bus each submit a client's frame for a room another
  process owns (`submit` -> `PUBLISH` on the owner's channel, whose receiver count it awaits)
  and forward an effect (`forward_effect`), 10 ms apart, N messages in all; the publish loop
  batches them into pipelines. A subscriber in another process reads the owner's channel.

Each side runs with redis-py's pure-Python parser (hiredis hidden from the child) and with
hiredis, and with the bus's listener and forwarding as they were before branch `h-listener`
(`PubSub.listen()`, one task per forwarded action: `BusAsBefore` below), with only the new
listener ("reader"; for the send side, nothing new), and as they are now.
Configurations alternate within each round so the machine's noise hits all alike; medians of
the rounds are reported, and ratios against the first configuration (the code before, no
hiredis) measured in the same run.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bus_listener.py [--messages 20000] [--rounds 3]

Needs Redis at --redis-url (default redis://127.0.0.1:6379/0); keys and channels use a prefix
of their own.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SESSIONS = 250
BURST = 100  # messages per pipeline of the receive side's publisher
RATE = 5_000  # messages a second the receive side's publisher aims at
SOCKETS = 100  # the send side's concurrent senders
FEATURES = json.dumps(
    {"type": "features", "t": 1733358000123, "speaking": True, "level": 0.4213,
     "pitch_hz": 182.5, "rate": 3.91, "pause_ms": 240, "overlap": False, "gaze": "center"}
)  # fmt: skip
CANDIDATE = (
    "candidate:842163049 1 udp 1677729535 192.0.2.10 46154 typ srflx raddr 0.0.0.0 rport 0 "
    "generation 0 ufrag EsAw network-id 1 network-cost 10"
)
RELAY = json.dumps(
    {"type": "relay", "payload": {"kind": "candidate", "sent_at": 1733358000123.5,
     "candidate": {"candidate": CANDIDATE, "sdpMid": "0", "sdpMLineIndex": 0,
                   "usernameFragment": "EsAw"}}}
)  # fmt: skip


def _block_hiredis() -> None:
    """redis-py then falls back to its pure-Python parser and command packer."""
    sys.modules["hiredis"] = None  # type: ignore[assignment]


def _frame(i: int) -> tuple[str, str]:
    """The i-th message's type and frame: 4 in 5 are `features`, 1 in 5 a `relay`."""
    return ("relay", RELAY) if i % 5 == 4 else ("features", FEATURES)


def _as_before(bus: Any, listener: bool = True) -> Any:
    """The bus with the listener (unless `listener` is false), forwarding and publishing of
    main before branch h-listener: redis-py's `PubSub.listen()`, one task per forwarded action,
    and a pipeline of PUBLISH commands per batch."""
    from server.realtime.bus import (
        _PUBLISH_BATCH,
        RedisBus,
        is_redis_outage,
        log,
    )

    class BusAsBefore(RedisBus):
        async def _read_subscription(self, pubsub: Any) -> None:  # as in db9398d
            async for message in pubsub.listen():
                if message.get("type") != "message":
                    continue
                try:
                    self._on_message(str(message["data"]))
                except Exception:
                    log.exception("a bus message could not be handled")

        async def _publish_loop(self) -> None:  # as in db9398d: a pipeline of PUBLISHes
            while True:
                batch = [await self._outgoing.get()]
                while len(batch) < _PUBLISH_BATCH and not self._outgoing.empty():
                    batch.append(self._outgoing.get_nowait())
                try:
                    async with self._redis.pipeline(transaction=False) as pipe:
                        for channel, message, _done in batch:
                            pipe.publish(channel, message)
                        answers = await pipe.execute(raise_on_error=False)
                    self.published_batches += 1
                except Exception as exc:
                    for _channel, _message, done in batch:
                        if done is not None and not done.done():
                            done.set_exception(exc)
                    continue
                for (_channel, _message, done), answer in zip(batch, answers, strict=True):
                    if done is None or done.done():
                        continue
                    if isinstance(answer, BaseException):
                        done.set_exception(answer)
                    else:
                        done.set_result(int(answer))

        def _enqueue(self, session_id: str, action: Any, *, claim: bool) -> None:
            work = self._route(session_id, action, claim=claim)
            if self._closed:
                work.close()
                return

            async def run() -> None:  # as `_spawn` in db9398d
                try:
                    await work
                except Exception as exc:
                    if is_redis_outage(exc):
                        log.warning("a forwarded action was lost: Redis unreachable")
                    else:
                        log.exception("a forwarded action failed")

            task = asyncio.create_task(run())
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    class SpawnAsBefore(BusAsBefore):
        _read_subscription = RedisBus._read_subscription

    bus.__class__ = BusAsBefore if listener else SpawnAsBefore  # same state, the old methods
    return bus


class _Rooms:
    def get(self, session_id: str) -> None:
        return None


class _Hub:
    """Counts what reaches it; delivers nowhere."""

    def __init__(self, expected: int, done: asyncio.Event) -> None:
        self.rooms = _Rooms()
        self.handled = 0
        self.expected = expected
        self.done = done

    def count(self) -> None:
        self.handled += 1
        if self.handled == self.expected:
            self.done.set()

    def deliver_text(self, conn_id: str, text: str) -> None:
        self.count()


class _Runner:
    def __init__(self, hub: _Hub) -> None:
        self.hub = hub

    async def run(self, op: Any) -> Any:
        from server.realtime.bus import Change

        self.hub.count()
        return Change.NONE

    async def adopt(self, session_id: str, client_id: str, live: Any) -> None:
        return None

    def snapshot(self, session_id: str) -> dict[str, Any]:
        return {}


def _open(url: str, prefix: str, code: str) -> Any:
    from server.realtime.bus import open_bus
    from server.settings import Settings

    bus = open_bus(Settings(redis_url=url, redis_prefix=prefix))
    bus.renewing = False  # no lease renewal: the rooms are ours for the whole run
    if code == "now":
        return bus
    return _as_before(bus, listener=code == "before")


def _refs(process_id: str) -> list[Any]:
    from server.core.protocol import SessionRole
    from server.realtime.bus import ConnRef

    return [
        ConnRef(f"{process_id}.{secrets.token_hex(8)}", SessionRole.CLIENT, f"s{n:04}", "c1")
        for n in range(SESSIONS)
    ]


async def _receive(url: str, code: str, messages: int) -> dict[str, float]:
    from server.realtime.bus import RoomOp, _Action

    prefix = f"attune-bench-{secrets.token_hex(4)}:"
    done = asyncio.Event()
    hub = _Hub(messages, done)
    bus = _open(url, prefix, code)
    bus.bind(hub, _Runner(hub), {})
    await bus.start()
    refs = _refs(secrets.token_hex(6))
    for ref in refs:
        bus._owned[ref.session_id] = math.inf
        bus._loaded.add(ref.session_id)
    wire = []
    for i in range(messages):
        ref = refs[i % SESSIONS]
        kind, frame = _frame(i // 2)
        if i % 2:  # an effect for a socket of ours (its JSON as the owner encoded it)
            wire.append(f"S{bus.process_id}.{secrets.token_hex(8)}\n{frame}")
        else:  # a client's frame for a room of ours, from a socket on another process
            op = RoomOp("message", ref, text=frame, message_type=kind)
            wire.append(bus._encode(_Action(op=op)))
    created = 0
    factory = asyncio.get_running_loop().get_task_factory()

    def counting(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Future[Any]:
        nonlocal created
        created += 1
        if factory is not None:
            return factory(loop, coro, **kwargs)
        return asyncio.Task(coro, loop=loop, **kwargs)

    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as file:
        json.dump(wire, file)
    try:
        asyncio.get_running_loop().set_task_factory(counting)  # type: ignore[arg-type]
        started = time.process_time()
        publisher = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--publisher", file.name, "--redis-url", url,
            "--channel", bus._channel(bus.process_id),
        )  # fmt: skip
        await asyncio.wait_for(done.wait(), timeout=600)
        cpu = time.process_time() - started
        await publisher.wait()
    finally:
        os.unlink(file.name)
        asyncio.get_running_loop().set_task_factory(factory)
        await bus.stop()
    return {"us_per_message": cpu / messages * 1e6, "tasks_per_message": created / messages}


def _publish(url: str, path: str, channel: str) -> None:
    """Publish the messages of a file in pipelines of BURST, paced at RATE a second."""
    from redis import Redis

    wire = json.loads(Path(path).read_text())
    redis = Redis.from_url(url)
    pace = BURST / RATE
    next_at = time.monotonic()
    for at in range(0, len(wire), BURST):
        with redis.pipeline(transaction=False) as pipe:
            for message in wire[at : at + BURST]:
                pipe.publish(channel, message)
            pipe.execute()
        next_at += pace
        time.sleep(max(0.0, next_at - time.monotonic()))
    redis.close()


def _sink(url: str, channel: str) -> None:
    """Read a channel and drop what arrives, until killed (the owner, for PUBLISH to count)."""
    from redis import Redis

    pubsub = Redis.from_url(url).pubsub()
    pubsub.subscribe(channel)
    print("subscribed", flush=True)
    for _message in pubsub.listen():
        pass


async def _send(url: str, code: str, messages: int) -> dict[str, float]:
    from server.core.rooms import Send
    from server.realtime.bus import RoomOp

    prefix = f"attune-bench-{secrets.token_hex(4)}:"
    hub = _Hub(messages, asyncio.Event())
    bus = _open(url, prefix, code)
    bus.bind(hub, _Runner(hub), {})
    await bus.start()
    owner = secrets.token_hex(6)  # the process said to own every room: the sink
    sink = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--sink", bus._channel(owner), "--redis-url", url,
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert sink.stdout is not None
    await sink.stdout.readline()
    refs = _refs(bus.process_id)
    for ref in refs:
        bus._known_owner[ref.session_id] = (owner, math.inf)
    rounds = messages // 2 // SOCKETS

    async def socket(n: int) -> None:
        ref = refs[n % SESSIONS]
        effect_to = f"{owner}.{secrets.token_hex(8)}"
        effects = {kind: Send(effect_to, json.loads(frame)) for kind, frame in map(_frame, (0, 4))}
        for i in range(rounds):
            kind, frame = _frame(i)
            await bus.submit(RoomOp("message", ref, text=frame, message_type=kind))
            bus.forward_effect(effects[kind])
            await asyncio.sleep(0.01)

    try:
        started = time.process_time()
        await asyncio.gather(*(socket(n) for n in range(SOCKETS)))
        await bus._publish(bus._channel(owner), "end")  # after everything queued before it
        cpu = time.process_time() - started
        batches = bus.published_batches
    finally:
        sink.kill()
        await sink.wait()
        await bus.stop()
    sent = rounds * SOCKETS * 2
    return {"us_per_message": cpu / sent * 1e6, "messages_per_pipeline": sent / batches}


def _child(side: str, parser: str, code: str, url: str, messages: int) -> dict[str, float]:
    command = [sys.executable, __file__, "--child", side, parser, code]
    command += ["--redis-url", url, "--messages", str(messages)]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


CONFIGS = [
    ("python", "before"),
    ("hiredis", "before"),
    ("hiredis", "reader"),  # the new listener, but still one task per forwarded action
    ("python", "now"),
    ("hiredis", "now"),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--side", choices=["receive", "send", "both"], default="both")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--publisher", help=argparse.SUPPRESS)
    parser.add_argument("--channel", help=argparse.SUPPRESS)
    parser.add_argument("--sink", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.publisher:
        _publish(args.redis_url, args.publisher, args.channel)
        return 0
    if args.sink:
        _sink(args.redis_url, args.sink)
        return 0
    if args.child:
        side, parser_name, code = args.child
        if parser_name == "python":
            _block_hiredis()
        run = _receive if side == "receive" else _send
        print(json.dumps(asyncio.run(run(args.redis_url, code, args.messages))))
        return 0

    print(f"# {platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load {os.getloadavg()[0]:.1f}")
    sides = ["receive", "send"] if args.side == "both" else [args.side]
    results: dict[tuple[str, str, str], list[dict[str, float]]] = {}
    for round_ in range(args.rounds):
        for side in sides:
            for parser_name, code in CONFIGS:
                result = _child(side, parser_name, code, args.redis_url, args.messages)
                results.setdefault((side, parser_name, code), []).append(result)
                print(json.dumps({"round": round_, "side": side, "parser": parser_name,
                                  "code": code, **result}), flush=True)  # fmt: skip
    print(f"# load {os.getloadavg()[0]:.1f} at the end; medians of {args.rounds} rounds:")
    print("| side | parser | code | µs per message | ratio | other |")
    print("|---|---|---|---|---|---|")
    for side in sides:
        base = statistics.median(r["us_per_message"] for r in results[(side, *CONFIGS[0])])
        for parser_name, code in CONFIGS:
            runs = results[(side, parser_name, code)]
            us = statistics.median(r["us_per_message"] for r in runs)
            other = {
                key: round(statistics.median(r[key] for r in runs), 3)
                for key in runs[0]
                if key != "us_per_message"
            }
            print(f"| {side} | {parser_name} | {code} | {us:.1f} | {us / base:.2f}× | {other} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

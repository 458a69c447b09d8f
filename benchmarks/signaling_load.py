"""Signaling load: N live sessions on one `attune serve` process, both peers sending
`features` at 1 Hz and the client a `relay` every 5 s, against a bare aiohttp WebSocket relay
(pairs of sockets, each JSON frame parsed and written to the peer) under the same load, in the
same run.

Reported per server: relay latency p50/p99 measured end to end by the load generator (send to
receipt on the other peer's socket, so it includes the generator's own scheduling; for Attune
also inside the server, from its `attune_relay_latency_seconds` histogram), frames the
server handled per second, its CPU time (from /proc, user+system) per 1,000 sessions per
second of traffic, and frames per CPU-second — the throughput the server could reach if the
CPU were its alone. The ratio Attune / bare is of frames per CPU-second.

Setup goes through the service layer (accounts, clients, sessions, telehealth consent) into a
SQLite database before the server starts; each client then opens its link (GET /join/…) and
both peers connect, say hello, and the therapist admits the client.

With `--two-processes`, the same sessions also run on two processes sharing one PostgreSQL
database and one Redis (the bus): therapists on one process, clients on the other, so every
message between peers crosses Redis; CPU is both processes' together.

    .venv/bin/python benchmarks/signaling_load.py              # quick: 250 sessions, 10 s
    .venv/bin/python benchmarks/signaling_load.py --full       # 500 to 5,000, both set-ups
    .venv/bin/python benchmarks/signaling_load.py --sessions 500 2000 --seconds 20 [--two-processes]

For two processes it also reports how many rooms each process holds at the end (a room is
claimed by whichever peer's join reaches Redis first, so a few hundred of 1,000 end on B, the
clients' process, without any lease lost; `leases_lost` counts those), the servers' warnings,
and the event loop's lag as each process's lease keeper probed it.

The traffic goes through lean sockets (benchmarks/lean_ws.py) from one generator process; with
two or more cores (`--pin`, the default) the servers run on the last core and the generator on
the others (with two processes, B shares the generator's cores), so neither steals the other's
time slices. Frames go out in 1,000 slots of each second (1 ms apart), both peers of a pair in
the same slot, and each client's relay every 5 s in its own turn.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import contextlib
import functools

from benchmarks.lean_ws import LeanSocket
from tests.multiproc.processes import (
    attune_command,
    child_env,
    free_port,
    fresh_postgres_database,
    fresh_redis_database,
    master_key,
)

PASSWORD = "a calm and long passphrase"
THERAPIST = "load@example.org"
FEATURES_PERIOD_S = 1.0
RELAY_PERIOD_S = 5.0
TICKS = os.sysconf("SC_CLK_TCK")
CANDIDATE = "candidate:842163049 1 udp 1677729535 192.0.2.10 46154 typ srflx raddr 0.0.0.0 rport 0"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


# --- the bare relay baseline ---------------------------------------------------------------


def run_bare_relay(port: int) -> None:
    """A bare aiohttp relay: /pair/{id}/{a|b}; every text frame is parsed and sent to the peer."""
    peers: dict[tuple[str, str], web.WebSocketResponse] = {}

    async def socket(request: web.Request) -> web.WebSocketResponse:
        pair, side = request.match_info["pair"], request.match_info["side"]
        other = (pair, "b" if side == "a" else "a")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        peers[(pair, side)] = ws
        try:
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                data = json.loads(msg.data)
                if data.get("type") == "relay" and (peer := peers.get(other)) is not None:
                    await peer.send_json({"type": "signal-relay", "payload": data["payload"]})
        finally:
            peers.pop((pair, side), None)
        return ws

    app = web.Application()
    app.router.add_get("/pair/{pair}/{side}", socket)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


# --- setup of N Attune sessions --------------------------------------------------------------


async def create_sessions(env: dict[str, str], count: int) -> list[tuple[str, str]]:
    """(session id, join path) for `count` sessions of one therapist, consents granted."""
    from privacy.consent import Channel, ConsentDecision, Purpose
    from server.core.models import Role
    from server.runtime import runtime
    from server.services import scheduling
    from server.services.accounts import create_account
    from server.services.consents import Consents
    from server.settings import load_settings

    settings = load_settings(environ=env)
    now = datetime.now(UTC)
    out = []
    async with runtime(settings) as rt:
        therapist = await create_account(
            rt.db, rt.audit, email=THERAPIST, password=PASSWORD, role=Role.THERAPIST,
            actor="system:bench", now=now,
        )  # fmt: skip
        consents = await Consents.load(rt.db)
        for i in range(count):
            client = await scheduling.create_client(rt.db, rt.audit, therapist, f"C.{i}", now)
            session, invite = await scheduling.create_session(
                rt.db, rt.audit, therapist, client_id=client.id, starts_at=now, minutes=120,
                now=now,
            )  # fmt: skip
            await consents.decide(
                rt.db, rt.audit, client_id=client.id, purpose=Purpose.TELEHEALTH,
                decision=ConsentDecision.GRANTED, notice_version=1, channel=Channel.API, now=now,
            )  # fmt: skip
            out.append((session.id, f"/join/{invite.token}"))
    return out


# --- the load generator ----------------------------------------------------------------------
# Lean sockets (benchmarks/lean_ws.py) carry the traffic: aiohttp's client cost about as much
# CPU per frame as the servers, so the generator fell behind first. aiohttp still does the
# set-up's HTTP (signing in, opening the links).

Pair = tuple[LeanSocket, LeanSocket]
SEND_SLOTS = 1000  # the pairs are spread over this many slots of each second (1 ms apart)


@dataclass
class Load:
    latencies: list[float] = field(default_factory=list)
    frames_sent: int = 0
    relays_received: int = 0
    errors: int = 0
    error_codes: dict[str, int] = field(default_factory=dict)  # `error` frames by code
    dropped: int = 0  # sockets the server closed during the run
    close_codes: dict[str, int] = field(default_factory=dict)  # of those, by close code
    measuring: bool = False

    def read(self, *sockets: LeanSocket) -> None:
        """From now on each text frame is looked at as it arrives, and a socket that ends
        while measuring counts as dropped."""
        for sock in sockets:
            sock.on_text = self.heard
            sock.closed.add_done_callback(functools.partial(self.lost, sock))

    def heard(self, payload: bytes) -> None:
        """A frame from a server: only relays (their latency) and errors are decoded."""
        if b"signal-relay" in payload:
            data = json.loads(payload)
            if data.get("type") == "signal-relay" and self.measuring:
                sent = float(data["payload"]["candidate"]["usernameFragment"])
                self.latencies.append(time.monotonic() - sent)
                self.relays_received += 1
        elif b'"error"' in payload:
            data = json.loads(payload)
            if data.get("type") == "error":
                self.errors += 1
                code = str(data.get("code"))
                self.error_codes[code] = self.error_codes.get(code, 0) + 1

    def lost(self, sock: LeanSocket, _closed: object = None) -> None:
        if self.measuring:
            self.dropped += 1
            code = str(sock.close_code) if sock.close_code is not None else "no close frame"
            self.close_codes[code] = self.close_codes.get(code, 0) + 1


def relay_ping(sent: float) -> dict[str, Any]:
    """A valid ICE candidate payload whose username fragment carries the send time."""
    return {
        "kind": "candidate",
        "candidate": {
            "candidate": CANDIDATE,
            "sdpMid": "0",
            "sdpMLineIndex": 0,
            "usernameFragment": repr(sent),
        },
    }


KEEP_LOGS: Path | None = None  # --keep-logs: where the two processes' logs are copied
SERVER_CPUS: set[int] | None = None  # with --pin: where the servers run (the generator elsewhere)


def pin_generator(cpus: int) -> None:
    """Servers on the last core, this load generator on the others, so neither steals the
    other's time slices (the bare relay and Attune alike; Redis and the rest float)."""
    global SERVER_CPUS
    SERVER_CPUS = {cpus - 1}
    os.sched_setaffinity(0, set(range(cpus - 1)))


def start(
    command: list[str],
    env: dict[str, str] | None = None,
    log: Path | None = None,
    *,
    with_generator: bool = False,
) -> subprocess.Popen[bytes]:
    """A server process (when pinned: on SERVER_CPUS, or `with_generator` on the generator's
    cores); its log (stderr) to `log` when given."""
    if SERVER_CPUS is not None:
        cpus = os.sched_getaffinity(0) if with_generator else SERVER_CPUS
        command = ["taskset", "-c", ",".join(map(str, sorted(cpus))), *command]
    stderr = log.open("ab") if log is not None else None
    try:
        return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
    finally:
        if stderr is not None:
            stderr.close()


def stop_or_kill(server: subprocess.Popen[bytes], within_s: float = 60) -> None:
    """Wait for a terminated server to drain and exit; one that takes longer is killed (and
    said so on stderr), so the figures already measured are still reported."""
    try:
        server.wait(timeout=within_s)
    except subprocess.TimeoutExpired:
        print(f"# a server took over {within_s:.0f} s to stop: killed", file=sys.stderr)
        server.kill()
        server.wait()


def cookie_header(response: aiohttp.ClientResponse) -> str:
    return "; ".join(f"{k}={v.value}" for k, v in response.cookies.items())


def features_frame(role: str, tick: int) -> bytes:
    return (
        f'{{"type":"features","role":"{role}","t_ms":{1000 * tick},"window_ms":1000,'
        f'"voiced":[],"level_dbfs":-40.0,"motion":0.0}}'
    ).encode()


async def _send_loop(pairs: list[Pair], stop: float, load: Load) -> None:
    """Every second, both peers of every pair send `features`, and one client in five (each
    in its turn, so every client every 5 s) a relay ping: the pairs are spread evenly over
    SEND_SLOTS slots of the second, written by this one task rather than a task per socket."""
    slots = [pairs[k::SEND_SLOTS] for k in range(SEND_SLOTS)]
    relay_every = int(RELAY_PERIOD_S / FEATURES_PERIOD_S)
    began = time.monotonic()
    tick = 0
    while True:
        therapist, client = features_frame("therapist", tick), features_frame("client", tick)
        for k, slot in enumerate(slots):
            delay = began + (tick + k / SEND_SLOTS) * FEATURES_PERIOD_S - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if time.monotonic() >= stop:
                return
            for j, (t_ws, c_ws) in enumerate(slot):
                load.frames_sent += t_ws.send_bytes_text(therapist)
                load.frames_sent += c_ws.send_bytes_text(client)
                if (tick + k + j * SEND_SLOTS) % relay_every == 0:
                    ping = {"type": "relay", "payload": relay_ping(time.monotonic())}
                    load.frames_sent += c_ws.send_bytes_text(json.dumps(ping).encode())
        tick += 1


async def _connect_attune(
    http: aiohttp.ClientSession,
    port: int,
    sessions: list[tuple[str, str]],
    load: Load,
    client_port: int | None = None,
) -> list[Pair]:
    """Therapists connect to `port`, clients to `client_port` (another process: every
    message between the two peers then crosses Redis)."""
    client_port = client_port or port
    base, client_base = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{client_port}"
    async with http.post(
        base + "/api/v1/auth/login", json={"email": THERAPIST, "password": PASSWORD}
    ) as response:
        assert response.status == 200, await response.text()
        therapist_cookie = cookie_header(response)
    semaphore = asyncio.Semaphore(20)

    async def one(session_id: str, join: str) -> Pair:
        async with semaphore:
            async with http.get(client_base + join, allow_redirects=False) as response:
                visit_cookie = cookie_header(response)
            path = f"/ws/session/{session_id}"
            t_ws = await LeanSocket.connect("127.0.0.1", port, path, therapist_cookie)
            t_ws.send_json({"type": "hello", "version": 1})
            c_ws = await LeanSocket.connect("127.0.0.1", client_port, path, visit_cookie)
            c_ws.send_json({"type": "hello", "version": 1})
            async with asyncio.timeout(30):
                while True:
                    data = await c_ws.receive_json()
                    if data["type"] == "welcome":
                        knock = data["knock_id"]
                        break
                t_ws.send_json({"type": "admit", "knock_id": knock})
                while (await c_ws.receive_json())["type"] != "admitted":
                    pass
            load.read(t_ws, c_ws)
            return t_ws, c_ws

    return list(await asyncio.gather(*(one(s, j) for s, j in sessions)))


async def _connect_bare(port: int, count: int, load: Load) -> list[Pair]:
    semaphore = asyncio.Semaphore(20)

    async def one(i: int) -> Pair:
        async with semaphore:
            pair = (
                await LeanSocket.connect("127.0.0.1", port, f"/pair/{i}/a"),
                await LeanSocket.connect("127.0.0.1", port, f"/pair/{i}/b"),
            )
            load.read(*pair)
            return pair

    return list(await asyncio.gather(*(one(i) for i in range(count))))


async def drive(
    pairs: list[Pair], server_pids: list[int], seconds: float, load: Load
) -> dict[str, Any]:
    """Run the traffic; measure the middle `seconds` (after a warm-up of one relay period)."""
    warmup = RELAY_PERIOD_S
    stop = time.monotonic() + warmup + seconds + 1
    sender = asyncio.create_task(_send_loop(pairs, stop, load))
    await asyncio.sleep(warmup)
    load.measuring = True
    sent_before, cpu_before, wall_before = (
        load.frames_sent,
        sum(cpu_seconds(pid) for pid in server_pids),
        time.monotonic(),
    )
    await asyncio.sleep(seconds)
    cpu = sum(cpu_seconds(pid) for pid in server_pids) - cpu_before
    wall = time.monotonic() - wall_before
    frames = load.frames_sent - sent_before
    load.measuring = False
    await sender
    for pair in pairs:
        for ws in pair:
            ws.close()
    lat = sorted(load.latencies) or [float("nan")]
    return {
        "sessions": len(pairs),
        "relays_measured": len(load.latencies),
        "p50_ms": round(1000 * statistics.median(lat), 2),
        "p99_ms": round(1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))], 2),
        "frames_per_s": round(frames / wall),
        "server_cpu_per_1000_sessions": round(cpu / wall * 1000 / len(pairs), 3),
        "frames_per_cpu_s": round(frames / cpu) if cpu else float("inf"),
        "errors": load.errors,
        "error_codes": load.error_codes,
        "dropped": load.dropped,
        "close_codes": load.close_codes,
    }  # fmt: skip


async def scrape(http: aiohttp.ClientSession, metrics_port: int) -> str:
    async with http.get(f"http://127.0.0.1:{metrics_port}/metrics") as response:
        return await response.text()


def histogram(text: str, name: str) -> list[tuple[float, float]]:
    """(upper bound, cumulative count) of each bucket of a histogram in the exposition."""
    buckets: list[tuple[float, float]] = []
    for line in text.splitlines():
        if line.startswith(f"{name}_bucket{{"):
            bound = line.split('le="')[1].split('"')[0]
            buckets.append((float(bound), float(line.split()[-1])))
    return buckets


def gauge(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[-1])
    return float("nan")


def loop_lag(text: str) -> dict[str, float]:
    """The event loop's lag as the lease keeper probed it (Redis only): p99 and the largest,
    as bucket upper bounds, in ms."""
    buckets = histogram(text, "attune_event_loop_lag_seconds")
    total = buckets[-1][1] if buckets else 0.0
    worst = next((bound for bound, count in buckets if total and count >= total), float("nan"))
    p99 = next((bound for bound, count in buckets if total and count >= 0.99 * total), float("nan"))
    return {
        "loop_lag_p99_ms_le": round(1000 * p99, 2),
        "loop_lag_max_ms_le": round(1000 * worst, 2),
    }


async def server_side_relay_quantiles(
    http: aiohttp.ClientSession, metrics_port: int
) -> dict[str, float]:
    """p50/p99 of attune_relay_latency_seconds (receipt to write, inside the server), as the
    upper bound of the histogram bucket holding the quantile."""
    buckets = histogram(await scrape(http, metrics_port), "attune_relay_latency_seconds")
    total = buckets[-1][1] if buckets else 0.0

    def quantile(q: float) -> float:
        for bound, count in buckets:
            if total and count >= q * total:
                return round(1000 * bound, 2)
        return float("nan")

    return {
        "server_relays": total,
        "server_p50_ms_le": quantile(0.5),
        "server_p99_ms_le": quantile(0.99),
    }


async def wait_listening(port: int, deadline_s: float = 60) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


async def measure(count: int, seconds: float, workdir: Path) -> dict[str, dict[str, Any]]:
    results = {}
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(
        connector=connector, cookie_jar=aiohttp.DummyCookieJar()
    ) as http:
        # Bare relay first.
        port = free_port()
        bare = start([sys.executable, __file__, "--bare-relay", str(port)])
        try:
            await wait_listening(port)
            load = Load()
            pairs = await _connect_bare(port, count, load)
            results["bare"] = await drive(pairs, [bare.pid], seconds, load)
        finally:
            bare.terminate()
            bare.wait(timeout=20)
        # Attune, one process on SQLite.
        port, metrics_port = free_port(), free_port()
        data = workdir / f"data-{count}"
        env = child_env({
            "ATTUNE_DATA_DIR": str(data), "ATTUNE_MASTER_KEY": master_key(),
            "ATTUNE_PORT": str(port), "ATTUNE_LOG_LEVEL": "WARNING",
            "ATTUNE_METRICS_PORT": str(metrics_port),
        })  # fmt: skip
        sessions = await create_sessions(env, count)
        server = start([*attune_command(), "serve"], env)
        try:
            await wait_listening(port)
            load = Load()
            pairs = await _connect_attune(http, port, sessions, load)
            results["attune"] = await drive(pairs, [server.pid], seconds, load)
            results["attune"] |= await server_side_relay_quantiles(http, metrics_port)
        finally:
            server.terminate()
            stop_or_kill(server)
    attune_rate = results["attune"]["frames_per_cpu_s"]
    bare_rate = results["bare"]["frames_per_cpu_s"]
    measurable = 0 < attune_rate < float("inf") and 0 < bare_rate < float("inf")
    # Below one clock tick of CPU (10 ms) there is nothing to compare.
    results["ratio"] = {
        "frames_per_cpu_s": round(attune_rate / bare_rate, 3) if measurable else float("nan")
    }
    return results


async def measure_two_processes(
    count: int, seconds: float, workdir: Path, lease_ms: int | None = None
) -> dict[str, Any]:
    """Two processes on one PostgreSQL and one Redis: therapists on one, clients on the other
    (with `lease_ms`, their `redis_lease_ms`)."""
    with fresh_postgres_database("attune_load") as url, fresh_redis_database() as redis_url:
        shared = {
            "ATTUNE_DATA_DIR": str(workdir / "data"), "ATTUNE_MASTER_KEY": master_key(),
            "ATTUNE_DATABASE_URL": url, "ATTUNE_REDIS_URL": redis_url,
            "ATTUNE_LOG_LEVEL": "WARNING" if KEEP_LOGS is None else "INFO",
        }  # fmt: skip
        if lease_ms is not None:
            shared["ATTUNE_REDIS_LEASE_MS"] = str(lease_ms)
        sessions = await create_sessions(child_env(shared), count)
        ports = [free_port(), free_port()]
        metrics_ports = [free_port(), free_port()]
        logs = [workdir / "a.log", workdir / "b.log"]
        # Pinned: A (the therapists' process) on the servers' core, B (the clients') on the
        # generator's, so that each process has a core of its own to start with
        servers = [
            start([*attune_command(), "serve"], child_env(
                shared | {"ATTUNE_PORT": str(p), "ATTUNE_METRICS_PORT": str(m)}
            ), log, with_generator=side == "B")
            for p, m, log, side in zip(ports, metrics_ports, logs, "AB", strict=True)
        ]  # fmt: skip
        try:
            for port in ports:
                await wait_listening(port)
            async with aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0), cookie_jar=aiohttp.DummyCookieJar()
            ) as http:
                load = Load()
                pairs = await _connect_attune(http, ports[0], sessions, load, client_port=ports[1])
                result = await drive(pairs, [s.pid for s in servers], seconds, load)
                # Where the rooms are at the end, and the loop's lag as each process's lease
                # keeper probed it (A: the therapists' process, B: the clients').
                for side, metrics_port in zip("AB", metrics_ports, strict=True):
                    text = await scrape(http, metrics_port)
                    result[f"rooms_on_{side}"] = gauge(text, "attune_live_rooms")
                    result |= {f"{k}_{side}": v for k, v in loop_lag(text).items()}
        finally:
            for server in servers:
                server.terminate()
            for server in servers:
                stop_or_kill(server)
        # Leases lost over the whole run (set-up, traffic, shutdown), and every warning and
        # error the two logs hold, counted by message.
        text = "".join(log.read_text(errors="replace") for log in logs if log.exists())
        if KEEP_LOGS is not None:
            for log in logs:
                if log.exists():
                    shutil.copy(log, KEEP_LOGS / f"{count}-{log.name}")
        result["leases_lost"] = text.count("lost a room's lease")
        result["log_warnings"] = log_warnings(text)
        return result


def log_warnings(text: str) -> dict[str, int]:
    """Warnings and errors of the servers' JSON logs, counted by message."""
    counts: dict[str, int] = {}
    for line in text.splitlines():
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if isinstance(entry, dict) and entry.get("level") in ("WARNING", "ERROR"):
                message = str(entry.get("message"))[:80]
                counts[message] = counts.get(message, 0) + 1
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, nargs="+", default=[250])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument(
        "--full",
        action="store_true",
        help="500, 1,000, 2,000 and 5,000 sessions, 20 s each, also on two processes "
        "(the default is a quick 250 sessions on one process, 10 s)",
    )
    parser.add_argument("--bare-relay", type=int, help=argparse.SUPPRESS)
    parser.add_argument(
        "--two-processes", action="store_true", help="also run two processes through Redis"
    )
    parser.add_argument(
        "--only-two-processes", action="store_true", help="skip the bare relay and one process"
    )
    parser.add_argument(
        "--lease-ms", type=int, help="redis_lease_ms of the two processes (default: the setting's)"
    )
    parser.add_argument(
        "--pin",
        action=argparse.BooleanOptionalAction,
        default=(os.cpu_count() or 1) >= 2,
        help="servers on the last core, the generator on the others (default with 2+ cores)",
    )
    parser.add_argument(
        "--keep-logs",
        type=Path,
        help="log INFO too, and copy the two processes' logs (JSON lines) to this folder",
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="bare and Attune measured in turn this many times"
    )
    args = parser.parse_args()
    if args.full:
        args.sessions, args.seconds, args.two_processes = [500, 1000, 2000, 5000], 20, True
    if args.bare_relay:
        run_bare_relay(args.bare_relay)
        return 0
    print(f"# {platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load {os.getloadavg()[0]:.1f}")
    if args.keep_logs is not None:
        global KEEP_LOGS
        KEEP_LOGS = args.keep_logs
        KEEP_LOGS.mkdir(parents=True, exist_ok=True)
    if args.pin:
        pin_generator(os.cpu_count() or 2)
        print(f"# servers pinned to CPU {sorted(SERVER_CPUS or ())}, the generator to the others")
    for count in args.sessions:
        ratios = []
        for _round in range(0 if args.only_two_processes else args.rounds):
            with tempfile.TemporaryDirectory(prefix="attune-load-") as tmp:
                result = asyncio.run(measure(count, args.seconds, Path(tmp)))
            print(json.dumps(result), flush=True)
            ratios.append(result["ratio"]["frames_per_cpu_s"])
        if args.rounds > 1:
            summary = {"sessions": count, "ratios": ratios, "median": statistics.median(ratios)}
            print(json.dumps({"ratio_over_rounds": summary}), flush=True)
        if args.two_processes or args.only_two_processes:
            with tempfile.TemporaryDirectory(prefix="attune-load-") as tmp:
                two = asyncio.run(
                    measure_two_processes(count, args.seconds, Path(tmp), args.lease_ms)
                )
            print(json.dumps({"attune_two_processes_redis": two}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Crash durability soak: `kill -9` a serving process N times while clients submit check-in
answers and change consents; at the end, every answer the server acknowledged must be in the
database exactly once.

One `attune serve` process (SQLite, or PostgreSQL in a database of the run's own) and one
client visit with telehealth and check-in storage consent. Each cycle, three clients run
against the live process for `--traffic` seconds: one submits answers over
`POST /api/v1/visit/checkins`, one over the WebSocket (`checkin-answer`, acknowledged by
`checkin-ack`), one alternates the `cue_analysis` consent. Each answer has its own idempotency
key. Then the process gets SIGKILL in the middle of that traffic and is started again; every
answer that was sent but not acknowledged is sent again with the same key until it is
acknowledged (an answer stored just before the kill is acknowledged as a duplicate then).

Counted at the end, straight from the database: answers acknowledged, rows found for them,
rows per key above one (duplicates), rows whose key was never acknowledged (lost acks that
never got a retry: should be none), and acknowledged consent changes against consent rows.

    .venv/bin/python benchmarks/crash_soak.py --cycles 200 --backend sqlite postgresql
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import secrets
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.multiproc.processes import (
    PG_HOST,
    PG_PORT,
    PG_USER,
    Cluster,
    cluster,
    database_name,
    fresh_postgres_database,
)

PASSWORD = "a calm and long passphrase"
ANSWERS = {"me-personally": 6, "close-relationships": 7, "work-school-social": 5, "overall": 6}
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=5)
RETRY_DEADLINE_S = 30.0


@dataclass
class Tally:
    """What the clients saw."""

    acked: set[str] = field(default_factory=set)
    unacked: set[str] = field(default_factory=set)  # sent, no acknowledgement seen
    sent: int = 0
    retries: int = 0
    consent_acked: int = 0
    consent_sent: int = 0

    def new_key(self, channel: str) -> str:
        key = f"{channel}-{secrets.token_hex(10)}"
        self.unacked.add(key)
        self.sent += 1
        return key

    def ack(self, key: str) -> None:
        self.unacked.discard(key)
        self.acked.add(key)


@dataclass(frozen=True)
class SoakResult:
    backend: str
    cycles: int
    sent: int
    retries: int
    acknowledged: int
    found: int
    duplicates: int
    unacknowledged_rows: int
    missing: int
    consent_acknowledged: int
    consent_rows: int
    seconds: float

    @property
    def ok(self) -> bool:
        return (
            self.missing == 0
            and self.duplicates == 0
            and self.found == self.acknowledged
            and self.consent_rows >= self.consent_acknowledged
        )


class Visitor:
    """The client's browser: a cookie jar with the visit, its CSRF token, its socket."""

    def __init__(self, base_url: str, session_id: str) -> None:
        self.base_url, self.session_id = base_url, session_id
        self.http = aiohttp.ClientSession(
            base_url, cookie_jar=aiohttp.CookieJar(unsafe=True), timeout=REQUEST_TIMEOUT
        )
        self.csrf = ""

    async def join(self, join_path: str) -> None:
        async with self.http.get(join_path) as response:
            assert response.status == 200, response.status
        async with self.http.get("/visit/consent") as response:
            found = re.search(r'name="csrf_token" value="([^"]+)"', await response.text())
        assert found, "no CSRF token on the consent page"
        self.csrf = found.group(1)
        for purpose in ("telehealth", "checkin_storage"):
            assert await self.consent(purpose, "granted") == 201

    async def consent(self, purpose: str, decision: str) -> int:
        async with self.http.post(
            "/api/v1/visit/consents",
            headers={"X-CSRF-Token": self.csrf},
            json={"purpose": purpose, "decision": decision, "notice_version": 1},
        ) as response:
            return response.status

    async def post_answer(self, key: str) -> bool:
        """True once the server acknowledged (201 stored, or 200 already stored)."""
        try:
            async with self.http.post(
                "/api/v1/visit/checkins",
                headers={"X-CSRF-Token": self.csrf},
                json={"instrument_id": "before", "answers": ANSWERS, "idempotency_key": key},
            ) as response:
                return response.status in (200, 201)
        except (aiohttp.ClientError, TimeoutError):
            return False

    async def close(self) -> None:
        await self.http.close()


async def _http_client(visitor: Visitor, tally: Tally, stop: asyncio.Event) -> None:
    while not stop.is_set():
        key = tally.new_key("http")
        if await visitor.post_answer(key):
            tally.ack(key)
        else:
            await asyncio.sleep(0.05)


async def _ws_client(visitor: Visitor, tally: Tally, stop: asyncio.Event) -> None:
    """Answers over the session socket, one in flight at a time, each waiting for its ack."""
    while not stop.is_set():
        try:
            ws = await visitor.http.ws_connect(f"/ws/session/{visitor.session_id}")
        except (aiohttp.ClientError, TimeoutError):
            await asyncio.sleep(0.05)
            continue
        try:
            await ws.send_json({"type": "hello", "version": 1})
            while not stop.is_set():
                key = tally.new_key("ws")
                await ws.send_json(
                    {
                        "type": "checkin-answer",
                        "id": key[-8:],
                        "instrument_id": "before",
                        "answers": ANSWERS,
                        "idempotency_key": key,
                    }
                )
                async with asyncio.timeout(5):
                    while True:
                        message = await ws.receive()
                        if message.type != aiohttp.WSMsgType.TEXT:
                            raise ConnectionResetError("socket closed")
                        data = json.loads(message.data)
                        if data["type"] == "checkin-ack" and data["idempotency_key"] == key:
                            tally.ack(key)
                            break
                        if data["type"] == "error":
                            break  # e.g. the database was unreachable: not acknowledged
        except (aiohttp.ClientError, ConnectionResetError, TimeoutError, RuntimeError):
            pass
        finally:
            await ws.close()


async def _consent_client(visitor: Visitor, tally: Tally, stop: asyncio.Event) -> None:
    decisions = ("granted", "withdrawn")
    index = 0
    while not stop.is_set():
        tally.consent_sent += 1
        try:
            if await visitor.consent("cue_analysis", decisions[index % 2]) == 201:
                tally.consent_acked += 1
                index += 1
        except (aiohttp.ClientError, TimeoutError):
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.02)


async def _retry_unacknowledged(visitor: Visitor, tally: Tally) -> None:
    """After a restart: every answer not acknowledged goes again with its own key."""
    deadline = time.monotonic() + RETRY_DEADLINE_S
    while tally.unacked:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(tally.unacked)} answers never acknowledged after restart")
        for key in sorted(tally.unacked):
            tally.retries += 1
            if await visitor.post_answer(key):
                tally.ack(key)


def _stored_keys(group: Cluster, backend: str, session_id: str) -> tuple[Counter[str], int]:
    """Rows per idempotency key of the session, and cue_analysis consent rows, from the DB."""
    assert re.fullmatch("[0-9a-f]{32}", session_id)  # spliced into SQL below: hex only
    answers = f"SELECT idempotency_key FROM checkin_responses WHERE session_id = '{session_id}'"
    consents = "SELECT count(*) FROM consent_records WHERE purpose = 'cue_analysis'"
    if backend == "sqlite":
        with sqlite3.connect(group.data_dir / "attune.db") as conn:
            keys = [row[0] for row in conn.execute(answers)]
            (consent_rows,) = conn.execute(consents).fetchone()
        return Counter(keys), int(consent_rows)

    def psql(sql: str) -> list[str]:
        done = subprocess.run(
            ["psql", "-h", PG_HOST, "-p", str(PG_PORT), "-U", PG_USER,
             "-d", database_name(group.database_url), "-At", "-c", sql],
            check=True, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        return [line for line in done.stdout.splitlines() if line]

    return Counter(psql(answers)), int(psql(consents)[0])


async def soak(
    backend: str,
    cycles: int,
    workdir: Path,
    *,
    traffic_s: float = 0.4,
    seed: int = 1,
    max_seconds: float | None = None,
    progress: bool = False,
) -> SoakResult:
    """Run the soak on one backend; the result says what the database holds. With
    `max_seconds`, no new cycle starts after that long (the result counts the cycles run)."""
    import random

    rng = random.Random(seed)
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        if backend == "postgresql":
            url = stack.enter_context(fresh_postgres_database("attune_soak"))
        else:
            url = f"sqlite+aiosqlite:///{workdir / 'data' / 'attune.db'}"
        # one client sends far more than a person could: lift the per-link write limits
        lifted = {"ATTUNE_CLIENT_WRITE_LIMIT_SCALE": "1000"}
        async with cluster(workdir, url, processes=1, settings=lifted) as group:
            session_id, join_path = group.add_therapist_session("t@example.org", "J.M.", PASSWORD)
            server = group.processes[0]
            visitor = Visitor(server.url, session_id)
            tally = Tally()
            try:
                await visitor.join(join_path)
                done = 0
                for done in range(1, cycles + 1):
                    stop = asyncio.Event()
                    clients = [
                        asyncio.create_task(_http_client(visitor, tally, stop)),
                        asyncio.create_task(_ws_client(visitor, tally, stop)),
                        asyncio.create_task(_consent_client(visitor, tally, stop)),
                    ]
                    await asyncio.sleep(traffic_s * (0.5 + rng.random()))
                    server.kill()  # mid-traffic: requests in flight lose their answers
                    stop.set()
                    async with asyncio.timeout(10):
                        await asyncio.gather(*clients)
                    server.start()
                    await server.wait_ready()
                    await _retry_unacknowledged(visitor, tally)
                    elapsed = time.monotonic() - started
                    if progress and done % 10 == 0:
                        print(f"# {backend}: {done} cycles, {len(tally.acked)} acknowledged, "
                              f"{elapsed:.0f} s", flush=True)  # fmt: skip
                    if max_seconds is not None and elapsed > max_seconds:
                        break
            finally:
                await visitor.close()
            rows, consent_rows = _stored_keys(group, backend, session_id)
    return SoakResult(
        backend=backend,
        cycles=done,
        sent=tally.sent,
        retries=tally.retries,
        acknowledged=len(tally.acked),
        found=sum(1 for key in tally.acked if rows[key] >= 1),
        duplicates=sum(n - 1 for n in rows.values() if n > 1),
        unacknowledged_rows=sum(1 for key in rows if key not in tally.acked),
        missing=sum(1 for key in tally.acked if rows[key] == 0),
        consent_acknowledged=tally.consent_acked,
        consent_rows=consent_rows,
        seconds=round(time.monotonic() - started, 1),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=200)
    parser.add_argument("--backend", nargs="+", default=["sqlite", "postgresql"])
    parser.add_argument("--traffic", type=float, default=0.4, help="seconds of traffic a cycle")
    parser.add_argument("--max-minutes", type=float, help="start no cycle after this long")
    args = parser.parse_args()
    print(f"# {platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load {os.getloadavg()[0]:.1f}")
    ok = True
    for backend in args.backend:
        with tempfile.TemporaryDirectory(prefix="attune-soak-") as tmp:
            max_seconds = args.max_minutes * 60 if args.max_minutes else None
            result = asyncio.run(
                soak(
                    backend,
                    args.cycles,
                    Path(tmp),
                    traffic_s=args.traffic,
                    max_seconds=max_seconds,
                    progress=True,
                )
            )
        print(json.dumps(result.__dict__ | {"ok": result.ok}))
        ok = ok and result.ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

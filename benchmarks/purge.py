"""Purge throughput: the retention purge job vs one plain DELETE of the same rows, on SQLite.

A representative cue table (id, session_id, client_id, created_at, ~200-byte ciphertext; indexes
on session, client and (created_at, id)) holds N expired rows spread over 10,000 clients, one
session each, written in time order as a live server would. The table is registered as the
`cue` source of the run and the real purge (`Retention.purge`: batches from 500 rows sized to a
0.1 s write budget, one transaction each, the pure decision per row, report progress, the
last-data check for crypto-shredding) deletes them all; the baseline is
`DELETE FROM bench WHERE created_at <= :cutoff` in one transaction on an identical copy.
For each, it also reports how long write transactions hold SQLite's one write path: what a
live session's write would wait for.

A third measurement, `batched`, is the floor of a purge in 500-row batches: the same keyset
pages, one DELETE and one commit each, with no decisions, reports or checks. Each
measurement runs in a fresh process on its own copy of the database; peak memory is the rise of
the process's resident set (VmHWM, reset just before the operation) over its size before it, so
it shows whether memory grows with N.

    .venv/bin/python benchmarks/purge.py [--rows 100000 1000000] [--clients 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import secrets
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.ext.asyncio import AsyncConnection

from privacy.retention import Action, Category
from privacy.vault import MasterKeyring, generate_data_key
from server.audit import AuditTrail
from server.db.engine import Database
from server.db.migrate import upgrade_to_head
from server.db.retention_sources import DEFAULT_SOURCES, SourceRegistry, TableSource
from server.db.tables import UTCDateTime, clients, therapy_sessions
from server.services.retention import Retention
from server.vault_store import ClientVault

BENCH_TABLE = "bench_cue_records"
_meta = sa.MetaData()
bench = sa.Table(
    BENCH_TABLE,
    _meta,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column(
        "session_id",
        sa.String(32),
        sa.ForeignKey(therapy_sessions.c.id, ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column(
        "client_id",
        sa.String(32),
        sa.ForeignKey(clients.c.id, ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("payload_ciphertext", sa.LargeBinary, nullable=False),
    sa.Index("ix_bench_cue_records_retention", "created_at", "id"),
)
PAYLOAD_BYTES = 200
BATCH_SIZE = 500  # as the purge job's
PHASES = ("delete", "batched", "purge")


def _stamp(at: datetime) -> str:
    """How SQLAlchemy stores a DateTime in SQLite (naive UTC)."""
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def registry() -> SourceRegistry:
    """The default sources, with the benchmark table as the one `cue` source."""
    others = tuple(s for s in DEFAULT_SOURCES.sources if s.category is not Category.CUE)
    cue = TableSource(Category.CUE, bench, "created_at", "cue records", session_column="session_id")
    return SourceRegistry((*others, cue), DEFAULT_SOURCES.other_client_tables)


async def _schema(path: Path) -> None:
    db = Database.connect(f"sqlite+aiosqlite:///{path}")
    await upgrade_to_head(db)
    async with db.write() as conn:
        await conn.run_sync(_meta.create_all)
    await db.dispose()


def populate(path: Path, rows: int, n_clients: int, now: datetime) -> None:
    """Schema, one therapist, clients with a future session each, `rows` expired cue rows."""
    asyncio.run(_schema(path))
    con = sqlite3.connect(path)
    con.execute("PRAGMA synchronous=OFF")
    created = _stamp(now - timedelta(days=500))
    therapist = secrets.token_hex(16)
    con.execute(
        "INSERT INTO accounts VALUES (?, 'bench@example.org', 'x', 'therapist', 0, ?, ?)",
        (therapist, created, created),
    )
    client_ids = [secrets.token_hex(16) for _ in range(n_clients)]
    session_ids = [secrets.token_hex(16) for _ in range(n_clients)]
    con.executemany(
        "INSERT INTO clients VALUES (?, ?, ?, ?)",
        [(c, therapist, f"C{i}", created) for i, c in enumerate(client_ids)],
    )
    starts, ends = _stamp(now + timedelta(days=1)), _stamp(now + timedelta(days=1, hours=1))
    con.executemany(
        "INSERT INTO therapy_sessions (id, therapist_id, client_id, starts_at, ends_at, status,"
        " created_at) VALUES (?, ?, ?, ?, ?, 'scheduled', ?)",
        [
            (s, therapist, c, starts, ends, created)
            for s, c in zip(session_ids, client_ids, strict=True)
        ],
    )
    rng = secrets.SystemRandom()
    chunk = 50_000
    # Rows arrive in time order, as a live server writes them: oldest first, over a year.
    span = timedelta(days=365) / rows
    oldest = now - timedelta(days=31) - timedelta(days=365)
    for start in range(0, rows, chunk):
        batch = []
        for n in range(start, min(start + chunk, rows)):
            i = rng.randrange(n_clients)
            batch.append(
                (
                    secrets.token_hex(16),
                    session_ids[i],
                    client_ids[i],
                    _stamp(oldest + n * span),
                    os.urandom(PAYLOAD_BYTES),
                )
            )
        con.executemany(f"INSERT INTO {BENCH_TABLE} VALUES (?, ?, ?, ?, ?)", batch)
    con.commit()
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()


# --- phases, each in its own process -----------------------------------------------------------


class TimedDatabase(Database):
    """Records how long each write transaction holds the write path (what live writes wait)."""

    holds: list[float]

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        started = time.perf_counter()  # one writer here: no wait for the lock, commit included
        try:
            async with super().write() as conn:
                yield conn
        finally:
            self.holds.append(time.perf_counter() - started)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def _rss_kib(field: str) -> int:
    """VmRSS or VmHWM (peak) of this process, in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _reset_peak_rss() -> None:
    """Start VmHWM afresh (Linux >= 4.0), so the peak measured is this phase's own."""
    Path("/proc/self/clear_refs").write_text("5")


async def _batched_delete(db: Database, cutoff: datetime, batch: int) -> int:
    """The floor of any batched purge: keyset pages of `batch` rows, one transaction each."""
    deleted, after = 0, None
    while True:
        query = sa.select(bench.c.id, bench.c.created_at).where(bench.c.created_at <= cutoff)
        if after is not None:
            query = query.where(
                bench.c.created_at >= after[0],
                sa.or_(bench.c.created_at > after[0], bench.c.id > after[1]),
            )
        async with db.write() as conn:
            rows = (
                await conn.execute(query.order_by(bench.c.created_at, bench.c.id).limit(batch))
            ).all()
            if not rows:
                return deleted
            ids = [row.id for row in rows]
            deleted += (await conn.execute(bench.delete().where(bench.c.id.in_(ids)))).rowcount
        after = (rows[-1].created_at, rows[-1].id)
        await asyncio.sleep(0)


async def _phase(name: str, path: Path, now: datetime) -> dict[str, Any]:
    db = TimedDatabase(Database.connect(f"sqlite+aiosqlite:///{path}").engine)
    db.holds = []
    cutoff = now - timedelta(days=30)
    try:
        async with db.read() as conn:  # open the file, warm nothing in particular
            before = await conn.scalar(sa.select(sa.func.count()).select_from(bench))
        rss_before = _rss_kib("VmRSS")
        _reset_peak_rss()
        started = time.perf_counter()
        if name == "delete":
            async with db.write() as conn:
                deleted = (
                    await conn.execute(bench.delete().where(bench.c.created_at <= cutoff))
                ).rowcount
        elif name == "batched":
            deleted = await _batched_delete(db, cutoff, BATCH_SIZE)
        elif name == "purge":
            ring = MasterKeyring.from_single(generate_data_key())
            retention = Retention(
                db, AuditTrail(Ed25519PrivateKey.generate()), ClientVault(ring), registry=registry()
            )
            report = await retention.purge(now, trigger="bench", actor="system:bench")
            deleted = report.count(Category.CUE, Action.DELETE)
        else:
            deleted = 0
        seconds = time.perf_counter() - started
        peak_extra = _rss_kib("VmHWM") - rss_before
        holds = db.holds[:]
        async with db.read() as conn:
            after = await conn.scalar(sa.select(sa.func.count()).select_from(bench))
    finally:
        await db.dispose()
    return {
        "phase": name,
        "rows_before": before,
        "deleted": deleted,
        "rows_after": after,
        "seconds": round(seconds, 3),
        "peak_rss_extra_kib": peak_extra,
        "write_transactions": len(holds),
        "write_hold_ms": {
            "p50": round(_percentile(holds, 0.5) * 1000, 1),
            "p99": round(_percentile(holds, 0.99) * 1000, 1),
            "max": round(max(holds, default=0.0) * 1000, 1),
        },
    }


def run_phase(name: str, path: Path, now: datetime) -> dict[str, Any]:
    """Run one phase in a fresh interpreter and return its measurements."""
    out = subprocess.run(
        [sys.executable, __file__, "--phase", name, "--db", str(path), "--now", now.isoformat()],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def measure(rows: int, n_clients: int, workdir: Path) -> dict[str, Any]:
    now = datetime.now(UTC)
    base = workdir / f"base-{rows}.db"
    started = time.perf_counter()
    populate(base, rows, n_clients, now)
    populate_s = time.perf_counter() - started
    results: dict[str, Any] = {
        "rows": rows,
        "clients": n_clients,
        "populate_s": round(populate_s, 1),
    }
    for name in PHASES:
        copy = workdir / f"{name}-{rows}.db"
        shutil.copyfile(base, copy)
        results[name] = run_phase(name, copy, now)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{copy}{suffix}").unlink(missing_ok=True)
    base.unlink()
    for name in PHASES:
        phase = results[name]
        assert phase["deleted"] == rows and phase["rows_after"] == 0, results
        phase["rows_per_s"] = round(rows / phase["seconds"])
        phase["peak_rss_extra_mib"] = round(phase["peak_rss_extra_kib"] / 1024, 1)
    delete_s = results["delete"]["seconds"]
    results["batched_vs_delete"] = round(delete_s / results["batched"]["seconds"], 2)
    results["purge_vs_delete"] = round(delete_s / results["purge"]["seconds"], 2)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--clients", type=int, default=10_000)
    parser.add_argument("--phase", choices=PHASES, help=argparse.SUPPRESS)
    parser.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--now", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        now = datetime.fromisoformat(args.now)
        print(json.dumps(asyncio.run(_phase(args.phase, args.db, now))))
        return
    print(
        f"# {platform.node()} {platform.machine()} {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
        f"{datetime.now(UTC):%Y-%m-%d}"
    )
    with tempfile.TemporaryDirectory(prefix="attune-purge-bench-") as tmp:
        for rows in args.rows:
            result = measure(rows, args.clients, Path(tmp))
            print(json.dumps(result), flush=True)
            parts = [
                f"{name} {result[name]['seconds']:.1f} s ({result[name]['rows_per_s']:,}/s, "
                f"peak RSS +{result[name]['peak_rss_extra_mib']} MiB, "
                f"write lock held p99 {result[name]['write_hold_ms']['p99']} ms)"
                for name in PHASES
            ]
            print(
                f"{rows:>9,} rows: " + "; ".join(parts) + f"; purge = {result['purge_vs_delete']}x"
                f" plain DELETE, batched floor = {result['batched_vs_delete']}x",
                flush=True,
            )


if __name__ == "__main__":
    main()

"""Vault overhead: encrypt+store and load+decrypt a typical check-in record vs plaintext.

Both paths use the real Database (SQLite, WAL, synchronous=FULL, one transaction per record)
and the same table shape; the encrypted path goes through ClientVault with per-client keys.
Rounds alternate between the two paths so machine noise hits both alike; medians reported.

    .venv/bin/python benchmarks/vault.py [--records 300] [--rounds 6]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from privacy.vault import FieldContext, MasterKeyring
from server.db.engine import Database
from server.vault_store import ClientVault

CHECKIN = {
    "instrument": "after",
    "answers": {
        "bond": 8,
        "goals": 7,
        "approach": 9,
        "technology": 6,
        "overall": 8,
        "rupture": "a-little",
        "repair": "partly",
    },
    "free_text": "It helped to slow down when we talked about my sister; the video froze once. "
    "I would like to come back to the work situation next time.",
}
meta = sa.MetaData()
records = sa.Table(
    "bench_records",
    meta,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("client_id", sa.String(32), nullable=False),
    sa.Column("body", sa.LargeBinary, nullable=False),
)


async def store(db: Database, vault: ClientVault | None, clients: list[str], n: int) -> list[str]:
    ids = []
    for i in range(n):
        row_id, client_id = secrets.token_hex(16), clients[i % len(clients)]
        async with db.write() as conn:
            if vault is None:
                body = json.dumps(CHECKIN).encode()
            else:
                ctx = FieldContext("bench_records", row_id, "body", client_id)
                body = await vault.encrypt_json(conn, ctx, CHECKIN)
            await conn.execute(records.insert().values(id=row_id, client_id=client_id, body=body))
        ids.append(row_id)
    return ids


async def load(db: Database, vault: ClientVault | None, ids: list[str]) -> None:
    for row_id in ids:
        async with db.read() as conn:
            row = (await conn.execute(sa.select(records).where(records.c.id == row_id))).one()
            if vault is None:
                value = json.loads(row.body)
            else:
                ctx = FieldContext("bench_records", row.id, "body", row.client_id)
                value = await vault.decrypt_json(conn, ctx, row.body)
        assert value["answers"]["bond"] == 8


async def main(n: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = Database.connect(f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}")
        async with db.engine.begin() as conn:
            await conn.run_sync(meta.create_all)
            from server.db.tables import data_keys

            await conn.run_sync(lambda c: data_keys.create(c))
        vault = ClientVault(MasterKeyring.from_single(os.urandom(32)))
        clients = [secrets.token_hex(16) for _ in range(50)]
        times: dict[str, list[float]] = {
            k: [] for k in ("plain-store", "vault-store", "plain-load", "vault-load")
        }
        for round_no in range(rounds):
            order = [("plain", None), ("vault", vault)]
            if round_no % 2:  # alternate who goes first: the table grows as rounds go on
                order.reverse()
            for name, v in order:
                start = time.perf_counter()
                ids = await store(db, v, clients, n)
                times[f"{name}-store"].append((time.perf_counter() - start) / n)
                start = time.perf_counter()
                await load(db, v, ids)
                times[f"{name}-load"].append((time.perf_counter() - start) / n)
        await db.dispose()
    med = {k: statistics.median(v) * 1e6 for k, v in times.items()}
    print(
        f"# vault benchmark {datetime.now(UTC):%Y-%m-%d}, {platform.platform()}, "
        f"Python {platform.python_version()}, {os.cpu_count()} cores, "
        f"{n} records x {rounds} rounds, SQLite WAL synchronous=FULL"
    )
    for op in ("store", "load"):
        plain, enc = med[f"plain-{op}"], med[f"vault-{op}"]
        print(
            f"{op}: plaintext {plain:.0f} us/record, vault {enc:.0f} us/record, "
            f"ratio {enc / plain:.3f}x"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    asyncio.run(main(args.records, args.rounds))

"""Account-security queries on SQLite and PostgreSQL: a TOTP step and a reset link are each
claimed once even when two requests race, and sign-ins end through one path."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from server.core.models import Role
from server.db import accounts as q
from server.db.engine import Database
from server.db.migrate import upgrade_to_head
from server.runtime import open_audit_trail
from server.services.accounts import EndReason, end_all_sign_ins
from server.settings import Settings

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
ACCOUNT = "a" * 32


async def _db(url: str) -> Database:
    db = Database.connect(url)
    await upgrade_to_head(db)
    async with db.write() as conn:
        await q.insert_account(
            conn,
            account_id=ACCOUNT,
            email="ana@example.org",
            password_hash="!reset",
            role=Role.THERAPIST,
            now=NOW,
        )
    return db


async def test_two_racing_uses_of_one_code_step_let_exactly_one_through(database_url: str) -> None:
    db = await _db(database_url)
    try:

        async def claim() -> bool:
            async with db.write() as conn:
                return await q.claim_totp_step(conn, ACCOUNT, 1000)

        results = await asyncio.gather(claim(), claim(), claim())
        assert sorted(results) == [False, False, True]
        async with db.write() as conn:
            assert not await q.claim_totp_step(conn, ACCOUNT, 999)  # older: refused
            assert await q.claim_totp_step(conn, ACCOUNT, 1001)
    finally:
        await db.dispose()


async def test_a_reset_link_is_used_once_and_not_after_it_expires(database_url: str) -> None:
    db = await _db(database_url)
    try:
        async with db.write() as conn:
            await q.insert_reset_link(
                conn,
                token_hash="h" * 64,
                account_id=ACCOUNT,
                created_by="b" * 32,
                now=NOW,
                expires_at=NOW + timedelta(hours=24),
            )
        async with db.write() as conn:
            assert not await q.consume_reset_link(conn, "h" * 64, NOW + timedelta(hours=25))
        async with db.write() as conn:
            assert await q.consume_reset_link(conn, "h" * 64, NOW)
        async with db.write() as conn:
            assert not await q.consume_reset_link(conn, "h" * 64, NOW)
            assert await q.usable_reset_link(conn, "h" * 64, NOW) is None
    finally:
        await db.dispose()


async def test_ending_all_other_sign_ins_keeps_only_the_current_one(
    database_url: str, tmp_path: Path
) -> None:
    db = await _db(database_url)
    audit = open_audit_trail(Settings(data_dir=tmp_path / "data"))
    try:
        async with db.write() as conn:
            for n in range(3):
                await q.insert_auth_session(
                    conn,
                    token_hash=f"{n}" * 64,
                    public_id=f"{n}" * 32,
                    account_id=ACCOUNT,
                    csrf_token="c",
                    stage="full",
                    device="Firefox on Linux",
                    now=NOW,
                )
        ended = await end_all_sign_ins(
            db,
            audit,
            ACCOUNT,
            EndReason.ENDED_BY_OWNER,
            NOW,
            except_session="1" * 64,
            live=None,  # storage only: no sockets here
        )
        assert sorted(ended) == ["0" * 64, "2" * 64]
        async with db.read() as conn:
            left = await q.account_auth_sessions(conn, ACCOUNT)
        assert [row[0] for row in left] == ["1" * 64]
    finally:
        await db.dispose()

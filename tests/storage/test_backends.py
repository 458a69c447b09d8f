"""Schema, queries and a whole API flow behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from server.app import create_app
from server.core.links import SessionStatus
from server.core.models import Role
from server.core.participants import PersonKind
from server.db import accounts as account_q
from server.db import participants as participant_q
from server.db import scheduling as q
from server.db.engine import Database
from server.db.migrate import current_revision, head_revision, upgrade_to_head
from server.runtime import open_audit_trail
from server.settings import Settings
from tests.conftest import FakeClock

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
COOKIE = q.FoundCookie(
    session_id="s" * 32, participant_id="p" * 32, csrf_token="t", another_device=False
)


async def _db(url: str) -> Database:
    db = Database.connect(url)
    await upgrade_to_head(db)
    return db


async def test_migrations_apply_and_are_idempotent(database_url: str) -> None:
    db = await _db(database_url)
    try:
        await upgrade_to_head(db)
        assert await current_revision(db) == head_revision() is not None
        async with db.read() as conn:
            tables = await conn.run_sync(lambda c: set(sa.inspect(c).get_table_names()))
        assert {
            "accounts",
            "clients",
            "therapy_sessions",
            "invites",
            "audit_log",
            "consent_records",
            "data_keys",
        } <= tables
    finally:
        await db.dispose()


async def test_times_come_back_as_aware_utc(database_url: str) -> None:
    db = await _db(database_url)
    try:
        local = datetime(2026, 11, 23, 10, 0, tzinfo=UTC).astimezone()
        async with db.write() as conn:
            await account_q.insert_account(
                conn,
                account_id="a" * 32,
                email="t@example.org",
                password_hash="x",
                role=Role.THERAPIST,
                now=local,
            )
        async with db.read() as conn:
            account = await account_q.account_by_id(conn, "a" * 32)
        assert account is not None
        assert account.created_at == local and account.created_at.tzinfo is UTC
    finally:
        await db.dispose()


async def _seed_session(db: Database) -> None:
    """Therapist a…, client c… ("J"), session s… whose participant p… is the client, with
    invite i… (token hash h…)."""
    async with db.write() as conn:
        await account_q.insert_account(
            conn,
            account_id="a" * 32,
            email="t@example.org",
            password_hash="x",
            role=Role.THERAPIST,
            now=NOW,
        )
        await q.insert_client(conn, client_id="c" * 32, therapist_id="a" * 32, alias="J", now=NOW)
        await q.insert_session(
            conn,
            session_id="s" * 32,
            therapist_id="a" * 32,
            client_id="c" * 32,
            starts_at=NOW,
            ends_at=NOW + timedelta(minutes=50),
            now=NOW,
        )
        await participant_q.insert_participant(
            conn,
            participant_id="p" * 32,
            session_id="s" * 32,
            kind=PersonKind.CLIENT,
            client_id="c" * 32,
            position=1,
            now=NOW,
        )
        await q.insert_invite(
            conn,
            invite_id="i" * 32,
            session_id="s" * 32,
            participant_id="p" * 32,
            token_hash="h" * 64,
            now=NOW,
        )


async def test_constraints_hold_alias_unique_and_cascade_on_client_delete(
    database_url: str,
) -> None:
    db = await _db(database_url)
    try:
        await _seed_session(db)
        with pytest.raises(sa.exc.IntegrityError):
            async with db.write() as conn:
                await q.insert_client(
                    conn, client_id="d" * 32, therapist_id="a" * 32, alias="J", now=NOW
                )
        async with db.write() as conn:
            await conn.execute(sa.text("DELETE FROM clients WHERE id = :id"), {"id": "c" * 32})
        async with db.read() as conn:
            assert await q.invite_by_token_hash(conn, "h" * 64) is None
            assert await q.session_by_id(conn, "s" * 32) is None
    finally:
        await db.dispose()


async def test_ending_revokes_the_link_and_cancelling_also_the_client_cookie(
    database_url: str,
) -> None:
    db = await _db(database_url)
    try:
        await _seed_session(db)
        async with db.write() as conn:
            await q.insert_client_session(
                conn,
                token_hash="k" * 64,
                session_id="s" * 32,
                invite_id="i" * 32,
                participant_id="p" * 32,
                csrf_token="t",
                now=NOW,
                expires_at=NOW + timedelta(hours=2),
            )
        async with db.read() as conn:
            assert await q.client_session(conn, "k" * 64, NOW) == COOKIE
        async with db.write() as conn:
            await q.set_session_status(conn, "s" * 32, SessionStatus.ENDED, NOW)
        async with db.read() as conn:
            # The cookie stays for the after-session check-in; the link itself is dead.
            assert await q.client_session(conn, "k" * 64, NOW) == COOKIE
            found = await q.invite_by_token_hash(conn, "h" * 64)
        assert found is not None and found.facts.revoked_at == NOW
        assert found.facts.status is SessionStatus.ENDED
        async with db.write() as conn:
            await q.set_session_status(conn, "s" * 32, SessionStatus.CANCELLED, NOW)
        async with db.read() as conn:
            assert await q.client_session(conn, "k" * 64, NOW) is None
    finally:
        await db.dispose()


async def test_a_cookie_of_a_link_revoked_before_the_end_does_not_come_back_after_the_end(
    database_url: str,
) -> None:
    db = await _db(database_url)
    try:
        await _seed_session(db)
        async with db.write() as conn:
            await q.insert_client_session(
                conn,
                token_hash="k" * 64,
                session_id="s" * 32,
                invite_id="i" * 32,
                participant_id="p" * 32,
                csrf_token="t",
                now=NOW,
                expires_at=NOW + timedelta(hours=2),
            )
            # a row left from before revocation deleted cookies: only the times tell
            await q.revoke_invites(conn, "s" * 32, NOW)
        async with db.write() as conn:
            later = NOW + timedelta(minutes=5)
            await q.set_session_status(conn, "s" * 32, SessionStatus.ENDED, later)
        async with db.read() as conn:
            assert await q.client_session(conn, "k" * 64, NOW) is None
    finally:
        await db.dispose()


async def test_concurrent_audit_appends_keep_one_unbroken_chain(
    database_url: str, tmp_path: Path
) -> None:
    db = await _db(database_url)
    trail = open_audit_trail(Settings(data_dir=tmp_path))
    try:

        async def append(i: int) -> None:
            async with db.write() as conn:
                await trail.record(
                    conn,
                    at=NOW,
                    actor="system:test",
                    action="client.create",
                    targets=(f"client:{i}",),
                )

        await asyncio.gather(*(append(i) for i in range(25)))
        result = await trail.verify(db)
        assert result.ok and result.count == 25, result
    finally:
        await db.dispose()


async def test_the_whole_api_flow_runs_on_this_backend(
    database_url: str, tmp_path: Path, aiohttp_client: Any
) -> None:
    settings = Settings(data_dir=tmp_path / "data", database_url=database_url)
    client = await aiohttp_client(create_app(settings, clock=FakeClock(NOW)))
    from tests.conftest import add_account, sign_in

    await add_account(client.app, "t@example.org")
    csrf = await sign_in(client, "t@example.org")
    headers = {"X-CSRF-Token": csrf}
    created = await (
        await client.post("/api/v1/clients", json={"alias": "J.M."}, headers=headers)
    ).json()
    body = await (
        await client.post(
            "/api/v1/sessions",
            json={"client_id": created["id"], "starts_at": "2026-11-23T09:05:00Z"},
            headers=headers,
        )
    ).json()
    token = body["join_url"].split("/join/", 1)[1]
    joined = await client.get(f"/join/{token}", allow_redirects=False)
    assert joined.status == 303
    assert (await client.get("/visit")).status == 200

"""Session participants on SQLite and PostgreSQL: the 0014 backfill and the per-person links."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import command
from sqlalchemy import Connection

from server.core.participants import PersonKind
from server.db import participants as pq
from server.db import scheduling as q
from server.db.engine import Database
from server.db.migrate import alembic_config, upgrade_to_head

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
A, C, D, S = "a" * 32, "c" * 32, "d" * 32, "s" * 32


def _upgrade_to(revision: str) -> object:
    def run(connection: Connection) -> None:
        command.upgrade(alembic_config(connection), revision)

    return run


async def test_0014_makes_each_existing_session_s_client_its_first_participant(
    database_url: str,
) -> None:
    db = Database.connect(database_url)
    try:
        async with db.write() as conn:
            await conn.run_sync(_upgrade_to("0013"))  # type: ignore[arg-type]
            naive = NOW.replace(tzinfo=None)
            await conn.execute(
                sa.text(
                    "INSERT INTO accounts (id, email, password_hash, role, disabled, created_at,"
                    " password_changed_at) VALUES (:a, 't@x.org', 'x', 'therapist', false, :t, :t)"
                ),
                {"a": A, "t": naive},
            )
            await conn.execute(
                sa.text(
                    "INSERT INTO clients (id, therapist_id, alias, created_at)"
                    " VALUES (:c, :a, 'J', :t)"
                ),
                {"c": C, "a": A, "t": naive},
            )
            await conn.execute(
                sa.text(
                    "INSERT INTO therapy_sessions (id, therapist_id, client_id, starts_at, ends_at,"
                    " status, created_at) VALUES (:s, :a, :c, :t, :e, 'scheduled', :t)"
                ),
                {"s": S, "a": A, "c": C, "t": naive, "e": naive + timedelta(minutes=50)},
            )
            await conn.execute(
                sa.text(
                    "INSERT INTO invites (id, session_id, token_hash, created_at)"
                    " VALUES (:i, :s, :h, :t)"
                ),
                {"i": "i" * 32, "s": S, "h": "h" * 64, "t": naive},
            )
            await conn.execute(
                sa.text(
                    "INSERT INTO client_sessions (token_hash, session_id, invite_id, csrf_token,"
                    " created_at, expires_at, another_device)"
                    " VALUES (:k, :s, :i, 'x', :t, :e, false)"
                ),
                {"k": "k" * 64, "s": S, "i": "i" * 32, "t": naive, "e": naive + timedelta(hours=2)},
            )
        await upgrade_to_head(db)
        async with db.read() as conn:
            people = await pq.present(conn, S)
            found = await q.invite_by_token_hash(conn, "h" * 64)
            cookie = await q.client_session(conn, "k" * 64, NOW)
        assert [(p.kind, p.client_id, p.position, p.client_alias) for p in people] == [
            (PersonKind.CLIENT, C, 1, "J")
        ]
        assert found is not None and found.participant_id == people[0].id
        assert cookie is not None and cookie.participant_id == people[0].id
        assert people[0].link_active and not people[0].link_opened
    finally:
        await db.dispose()


async def _session_with_two_people(db: Database) -> tuple[str, str]:
    """Session S of client C (participant 1) with a guest (participant 2), each with a link
    and a cookie."""
    await upgrade_to_head(db)
    async with db.write() as conn:
        await conn.execute(
            sa.text(
                "INSERT INTO accounts (id, email, password_hash, role, disabled, created_at,"
                " password_changed_at) VALUES (:a, 't@x.org', 'x', 'therapist', false, :t, :t)"
            ),
            {"a": A, "t": NOW.replace(tzinfo=None)},
        )
        await q.insert_client(conn, client_id=C, therapist_id=A, alias="J", now=NOW)
        await q.insert_session(
            conn,
            session_id=S,
            therapist_id=A,
            client_id=C,
            starts_at=NOW,
            ends_at=NOW + timedelta(minutes=50),
            now=NOW,
        )
        ids = []
        for n, (kind, client) in enumerate(((PersonKind.CLIENT, C), (PersonKind.GUEST, None))):
            pid = str(n + 1) * 32
            ids.append(pid)
            await pq.insert_participant(
                conn,
                participant_id=pid,
                session_id=S,
                kind=kind,
                client_id=client,
                position=n + 1,
                now=NOW,
            )
            await q.insert_invite(
                conn,
                invite_id=str(n + 5) * 32,
                session_id=S,
                participant_id=pid,
                token_hash=str(n + 1) * 64,
                now=NOW,
            )
            await q.insert_client_session(
                conn,
                token_hash=str(n + 7) * 64,
                session_id=S,
                invite_id=str(n + 5) * 32,
                participant_id=pid,
                csrf_token="x",
                now=NOW,
                expires_at=NOW + timedelta(hours=2),
            )
    return ids[0], ids[1]


async def test_revoking_one_person_s_link_leaves_the_other_s_link_and_cookie(
    database_url: str,
) -> None:
    db = Database.connect(database_url)
    try:
        client, guest = await _session_with_two_people(db)
        async with db.write() as conn:
            assert await pq.revoke_invites(conn, guest, NOW) == 1
            assert await pq.delete_cookies(conn, guest) == ["8" * 64]
            await pq.mark_removed(conn, guest, NOW)
        async with db.read() as conn:
            assert [p.id for p in await pq.present(conn, S)] == [client]
            assert await pq.participant(conn, S, guest) is None
            assert await q.client_session(conn, "8" * 64, NOW) is None
            mine = await q.client_session(conn, "7" * 64, NOW)
            assert mine is not None and mine.participant_id == client
            assert await q.has_live_client_session(conn, client, NOW)
            assert not await q.has_live_client_session(conn, guest, NOW)
    finally:
        await db.dispose()


async def test_a_second_device_of_one_person_ends_only_that_person_s_other_cookies(
    database_url: str,
) -> None:
    db = Database.connect(database_url)
    try:
        client, _ = await _session_with_two_people(db)
        async with db.write() as conn:
            await q.insert_client_session(
                conn,
                token_hash="9" * 64,
                session_id=S,
                invite_id="5" * 32,
                participant_id=client,
                csrf_token="y",
                now=NOW,
                expires_at=NOW + timedelta(hours=2),
                another_device=True,
            )
            ended = await q.keep_only_client_session(conn, client, "9" * 64)
        assert ended == ["7" * 64]
        async with db.read() as conn:
            assert await q.client_session(conn, "8" * 64, NOW) is not None  # the guest's
            kept = await q.client_session(conn, "9" * 64, NOW)
        assert kept is not None and not kept.another_device
    finally:
        await db.dispose()


async def test_deleting_the_session_takes_its_participants_with_it(database_url: str) -> None:
    db = Database.connect(database_url)
    try:
        await _session_with_two_people(db)
        async with db.write() as conn:
            await conn.execute(sa.text("DELETE FROM therapy_sessions WHERE id = :s"), {"s": S})
            left = await conn.scalar(sa.text("SELECT count(*) FROM session_participants"))
        assert left == 0
    finally:
        await db.dispose()


async def test_0014_goes_down_and_up_again(database_url: str) -> None:
    db = Database.connect(database_url)
    try:
        await _session_with_two_people(db)
        async with db.write() as conn:
            await conn.run_sync(_downgrade_to("0013"))  # type: ignore[arg-type]
            tables = await conn.run_sync(lambda c: set(sa.inspect(c).get_table_names()))
            columns = await conn.run_sync(
                lambda c: {col["name"] for col in sa.inspect(c).get_columns("invites")}
            )
        assert "session_participants" not in tables and "participant_id" not in columns
        await upgrade_to_head(db)
        async with db.read() as conn:
            (person,) = await pq.present(conn, S)
        assert person.client_id == C and person.position == 1
    finally:
        await db.dispose()


def _downgrade_to(revision: str) -> object:
    def run(connection: Connection) -> None:
        command.downgrade(alembic_config(connection), revision)

    return run

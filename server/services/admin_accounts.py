"""What an admin does to an existing account: disable, re-enable, reset its password.

Disabling ends the account's sign-ins at once (`server.db.accounts.set_disabled`) and starts the
`account` retention clock (`account_closures`); re-enabling stops it. An account reduced to a
tombstone by retention cannot come back.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from server.audit import AuditTrail
from server.core.models import Account, Role
from server.core.protocol import AccessEnd
from server.db import accounts as q
from server.db import retention as retention_rows
from server.db.engine import Database
from server.errors import Conflict, InvalidInput, NotFound
from server.security.passwords import hash_password, password_problem
from server.services.access import LiveAccess
from server.services.accounts import end_all_sign_ins


async def _target(conn: AsyncConnection, account_id: str) -> tuple[Account, datetime | None]:
    account = await q.account_by_id(conn, account_id)
    if account is None:
        raise NotFound("No such account.")
    _, anonymized_at = await retention_rows.account_closure(conn, account_id)
    return account, anonymized_at


async def account_detail(db: Database, account_id: str) -> tuple[Account, datetime | None]:
    """An account and, once it is a tombstone, when it was anonymised."""
    async with db.read() as conn:
        return await _target(conn, account_id)


async def closed_at(db: Database, account_id: str) -> datetime | None:
    """When an admin disabled the account (its retention clock), if it is disabled."""
    async with db.read() as conn:
        closed, _ = await retention_rows.account_closure(conn, account_id)
    return closed


async def disable_account(
    db: Database,
    audit: AuditTrail,
    live: LiveAccess,
    admin: Account,
    account_id: str,
    now: datetime,
) -> Account:
    """Disable an account: its sign-ins and open sockets end now, its retention clock starts."""
    if account_id == admin.id:
        raise Conflict("You cannot disable your own account.")
    async with db.write() as conn:
        account, _ = await _target(conn, account_id)
        if account.disabled:
            return account
        if account.role is Role.ADMIN and await q.count_enabled_admins(conn) <= 1:
            raise Conflict("At least one admin account must stay enabled.")
        await q.set_disabled(conn, account_id, True)
        await retention_rows.start_account_clock(conn, account_id, now)
        await audit.record(
            conn,
            at=now,
            actor=f"account:{admin.id}",
            action="account.disable",
            targets=(f"account:{account_id}",),
        )
    await end_all_sign_ins(db, live, account_id, AccessEnd.ACCOUNT_DISABLED)
    return Account(account.id, account.email, account.role, True, account.created_at)


async def enable_account(
    db: Database, audit: AuditTrail, admin: Account, account_id: str, now: datetime
) -> Account:
    """Re-enable a disabled account (not a tombstone); its retention clock stops."""
    async with db.write() as conn:
        account, anonymized_at = await _target(conn, account_id)
        if anonymized_at is not None:
            raise Conflict("This account was anonymised under the retention policy.")
        if not account.disabled:
            return account
        await q.set_disabled(conn, account_id, False)
        await retention_rows.stop_account_clock(conn, account_id)
        await audit.record(
            conn,
            at=now,
            actor=f"account:{admin.id}",
            action="account.enable",
            targets=(f"account:{account_id}",),
        )
    return Account(account.id, account.email, account.role, False, account.created_at)


async def reset_password(
    db: Database,
    audit: AuditTrail,
    live: LiveAccess,
    admin: Account,
    account_id: str,
    password: str,
    now: datetime,
) -> Account:
    """Set a new password chosen by the admin; the account is signed out everywhere, its open
    sockets included."""
    problem = password_problem(password)
    if problem:
        raise InvalidInput(problem)
    password_hash = await hash_password(password)
    async with db.write() as conn:
        account, anonymized_at = await _target(conn, account_id)
        if anonymized_at is not None:
            raise Conflict("This account was anonymised under the retention policy.")
        await q.set_password_hash(conn, account_id, password_hash, now)
        await audit.record(
            conn,
            at=now,
            actor=f"account:{admin.id}",
            action="account.password_reset",
            targets=(f"account:{account_id}",),
        )
    await end_all_sign_ins(db, live, account_id, AccessEnd.PASSWORD_CHANGED)
    return account

"""What an admin does to an existing account: disable, re-enable, reset it (a one-time link).

Disabling ends the account's sign-ins at once (`server.db.accounts.set_disabled`) and starts the
`account` retention clock (`account_closures`); re-enabling stops it. An account reduced to a
tombstone by retention cannot come back.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from server.audit import AuditTrail
from server.core.models import Account, Role
from server.db import accounts as q
from server.db import retention as retention_rows
from server.db.engine import Database
from server.errors import Conflict, NotFound
from server.security.tokens import new_id, new_token, token_hash
from server.services.access import LiveAccess
from server.services.accounts import (
    NOTICE_ADMIN_RESET,
    UNUSABLE_PASSWORD_HASH,
    EndReason,
    create_account,
    end_all_sign_ins,
)

RESET_LINK_LIFETIME = timedelta(hours=24)


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
    await end_all_sign_ins(
        db,
        audit,
        account_id,
        EndReason.ACCOUNT_DISABLED,
        now,
        actor=f"account:{admin.id}",
        live=live,
    )
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


async def issue_reset_link(
    db: Database,
    audit: AuditTrail,
    live: LiveAccess | None,
    admin: Account,
    account_id: str,
    now: datetime,
    *,
    by_email: bool = False,
) -> tuple[Account, str, datetime]:
    """Reset an account: its password stops working, its sign-ins end, its two-factor setup is
    removed, its holder is told at next sign-in, and a one-time link (returned once, only its
    SHA-256 stored) lets the holder choose a new password. The admin never sets one; with
    `by_email` (SMTP configured) the link goes to the holder's address and the admin never
    sees it either (the audit entry says which). Returns the account, the token and when it
    expires."""
    if account_id == admin.id:
        raise Conflict("Change your own password on your account page.")
    token = new_token()
    expires_at = now + RESET_LINK_LIFETIME
    async with db.write() as conn:
        account, anonymized_at = await _target(conn, account_id)
        if anonymized_at is not None:
            raise Conflict("This account was anonymised under the retention policy.")
        await q.set_password_hash(conn, account_id, UNUSABLE_PASSWORD_HASH, now)
        await q.clear_totp(conn, account_id)
        await q.insert_reset_link(
            conn,
            token_hash=token_hash(token),
            account_id=account_id,
            created_by=admin.id,
            now=now,
            expires_at=expires_at,
        )
        await q.add_notice(
            conn, notice_id=new_id(), account_id=account_id, kind=NOTICE_ADMIN_RESET, now=now
        )
        await audit.record(
            conn,
            at=now,
            actor=f"account:{admin.id}",
            action="account.reset_link.issue",
            targets=(f"account:{account_id}",),
            details={"by_email": True} if by_email else None,
        )
    await end_all_sign_ins(
        db,
        audit,
        account_id,
        EndReason.PASSWORD_RESET,
        now,
        actor=f"account:{admin.id}",
        live=live,
    )
    return account, token, expires_at


async def add_account_with_link(
    db: Database,
    audit: AuditTrail,
    admin: Account,
    *,
    email: str,
    role: Role,
    now: datetime,
    by_email: bool = False,
) -> tuple[Account, str, datetime]:
    """Add an account without a password: its holder chooses one through a one-time link
    (returned once, like a reset link; emailed to the holder when `by_email`), so the admin
    never knows it."""
    account = await create_account(
        db, audit, email=email, password=None, role=role, actor=f"account:{admin.id}", now=now
    )
    token = new_token()
    expires_at = now + RESET_LINK_LIFETIME
    async with db.write() as conn:
        await q.insert_reset_link(
            conn,
            token_hash=token_hash(token),
            account_id=account.id,
            created_by=admin.id,
            now=now,
            expires_at=expires_at,
        )
        await audit.record(
            conn,
            at=now,
            actor=f"account:{admin.id}",
            action="account.reset_link.issue",
            targets=(f"account:{account.id}",),
            details={"first_password": True, **({"by_email": True} if by_email else {})},
        )
    return account, token, expires_at

"""Account and sign-in session queries."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from server.core.models import Account, Role
from server.db.tables import AnyRow, accounts, auth_sessions, setup_tokens


def _account(row: AnyRow) -> Account:
    m = row._mapping
    return Account(
        id=m["id"],
        email=m["email"],
        role=Role(m["role"]),
        disabled=bool(m["disabled"]),
        created_at=m["created_at"],
    )


_ACCOUNT_COLUMNS = (
    accounts.c.id,
    accounts.c.email,
    accounts.c.role,
    accounts.c.disabled,
    accounts.c.created_at,
)


async def insert_account(
    conn: AsyncConnection,
    *,
    account_id: str,
    email: str,
    password_hash: str,
    role: Role,
    now: datetime,
) -> None:
    """Add an account (email already normalised)."""
    await conn.execute(
        accounts.insert().values(
            id=account_id,
            email=email,
            password_hash=password_hash,
            role=role.value,
            disabled=False,
            created_at=now,
            password_changed_at=now,
        )
    )


async def email_taken(conn: AsyncConnection, email: str) -> bool:
    """True when an account already uses this email."""
    found = await conn.scalar(sa.select(accounts.c.id).where(accounts.c.email == email))
    return found is not None


async def count_accounts(conn: AsyncConnection) -> int:
    """How many accounts exist (first start shows a setup link when zero)."""
    return int(await conn.scalar(sa.select(sa.func.count()).select_from(accounts)) or 0)


async def count_enabled_admins(conn: AsyncConnection) -> int:
    """How many admin accounts can still sign in (the last one may not be disabled)."""
    n = await conn.scalar(
        sa.select(sa.func.count())
        .select_from(accounts)
        .where(accounts.c.role == Role.ADMIN.value, accounts.c.disabled.is_(False))
    )
    return int(n or 0)


async def account_by_id(conn: AsyncConnection, account_id: str) -> Account | None:
    """The account, or None."""
    row = (
        await conn.execute(sa.select(*_ACCOUNT_COLUMNS).where(accounts.c.id == account_id))
    ).first()
    return _account(row) if row else None


async def account_by_email(conn: AsyncConnection, email: str) -> Account | None:
    """The account with this (normalised) email, or None."""
    row = (
        await conn.execute(sa.select(*_ACCOUNT_COLUMNS).where(accounts.c.email == email))
    ).first()
    return _account(row) if row else None


async def credentials(conn: AsyncConnection, email: str) -> tuple[Account, str] | None:
    """The account and its password hash, for sign-in."""
    row = (
        await conn.execute(
            sa.select(*_ACCOUNT_COLUMNS, accounts.c.password_hash).where(accounts.c.email == email)
        )
    ).first()
    return (_account(row), row._mapping["password_hash"]) if row else None


async def list_accounts(conn: AsyncConnection) -> list[Account]:
    """Every account, admins first, then by email."""
    rows = await conn.execute(
        sa.select(*_ACCOUNT_COLUMNS).order_by(accounts.c.role, accounts.c.email)
    )
    return [_account(row) for row in rows]


async def set_disabled(conn: AsyncConnection, account_id: str, disabled: bool) -> bool:
    """Disable or enable an account; disabling ends its sign-in sessions."""
    result = await conn.execute(
        accounts.update().where(accounts.c.id == account_id).values(disabled=disabled)
    )
    if disabled:
        await conn.execute(auth_sessions.delete().where(auth_sessions.c.account_id == account_id))
    return result.rowcount > 0


async def set_password_hash(
    conn: AsyncConnection, account_id: str, password_hash: str, now: datetime
) -> bool:
    """Replace a password and sign the account out everywhere."""
    result = await conn.execute(
        accounts.update()
        .where(accounts.c.id == account_id)
        .values(password_hash=password_hash, password_changed_at=now)
    )
    await conn.execute(auth_sessions.delete().where(auth_sessions.c.account_id == account_id))
    return result.rowcount > 0


# --- sign-in sessions ----------------------------------------------------------------------


async def insert_auth_session(
    conn: AsyncConnection, *, token_hash: str, account_id: str, csrf_token: str, now: datetime
) -> None:
    """Remember a sign-in by the hash of its cookie token."""
    await conn.execute(
        auth_sessions.insert().values(
            token_hash=token_hash,
            account_id=account_id,
            csrf_token=csrf_token,
            created_at=now,
            last_seen_at=now,
        )
    )


async def auth_session(
    conn: AsyncConnection, token_hash: str
) -> tuple[Account, str, datetime, datetime] | None:
    """(account, csrf token, created_at, last_seen_at) for a cookie token hash."""
    row = (
        await conn.execute(
            sa.select(
                *_ACCOUNT_COLUMNS,
                auth_sessions.c.csrf_token,
                auth_sessions.c.created_at.label("session_created_at"),
                auth_sessions.c.last_seen_at,
            )
            .join(accounts, accounts.c.id == auth_sessions.c.account_id)
            .where(auth_sessions.c.token_hash == token_hash)
        )
    ).first()
    if row is None:
        return None
    m = row._mapping
    return _account(row), m["csrf_token"], m["session_created_at"], m["last_seen_at"]


async def touch_auth_session(conn: AsyncConnection, token_hash: str, now: datetime) -> None:
    """Move the idle timeout forward."""
    await conn.execute(
        auth_sessions.update()
        .where(auth_sessions.c.token_hash == token_hash)
        .values(last_seen_at=now)
    )


async def delete_auth_session(conn: AsyncConnection, token_hash: str) -> None:
    """Sign out."""
    await conn.execute(auth_sessions.delete().where(auth_sessions.c.token_hash == token_hash))


async def delete_auth_sessions_of(
    conn: AsyncConnection, account_id: str, *, keep_token_hash: str | None = None
) -> None:
    """End every sign-in of an account, but the one whose token hash is `keep_token_hash`."""
    condition = auth_sessions.c.account_id == account_id
    if keep_token_hash is not None:
        condition = sa.and_(condition, auth_sessions.c.token_hash != keep_token_hash)
    await conn.execute(auth_sessions.delete().where(condition))


async def delete_stale_auth_sessions(
    conn: AsyncConnection, *, idle_before: datetime, created_before: datetime
) -> int:
    """Drop sign-ins past their idle or absolute timeout."""
    result = await conn.execute(
        auth_sessions.delete().where(
            sa.or_(
                auth_sessions.c.last_seen_at < idle_before,
                auth_sessions.c.created_at < created_before,
            )
        )
    )
    return result.rowcount


# --- one-time admin setup link -------------------------------------------------------------


async def insert_setup_token(
    conn: AsyncConnection, token_hash: str, now: datetime, expires_at: datetime
) -> None:
    """Store a one-time setup token's hash, replacing any earlier unused one."""
    await conn.execute(setup_tokens.delete().where(setup_tokens.c.used_at.is_(None)))
    await conn.execute(
        setup_tokens.insert().values(token_hash=token_hash, created_at=now, expires_at=expires_at)
    )


async def consume_setup_token(conn: AsyncConnection, token_hash: str, now: datetime) -> bool:
    """Mark a valid, unused, unexpired setup token used; False when it is none of those."""
    result = await conn.execute(
        setup_tokens.update()
        .where(
            setup_tokens.c.token_hash == token_hash,
            setup_tokens.c.used_at.is_(None),
            setup_tokens.c.expires_at > now,
        )
        .values(used_at=now)
    )
    return result.rowcount == 1


async def setup_token_usable(conn: AsyncConnection, token_hash: str, now: datetime) -> bool:
    """True when the setup token exists, is unused and unexpired."""
    found = await conn.scalar(
        sa.select(setup_tokens.c.token_hash).where(
            setup_tokens.c.token_hash == token_hash,
            setup_tokens.c.used_at.is_(None),
            setup_tokens.c.expires_at > now,
        )
    )
    return found is not None

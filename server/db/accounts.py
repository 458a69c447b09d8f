"""Account and sign-in session queries."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from server.core.models import Account, Role
from server.db.tables import (
    AnyRow,
    account_notices,
    accounts,
    app_settings,
    auth_sessions,
    password_reset_links,
    recovery_codes,
    setup_tokens,
)


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
    """Disable or enable an account (its sign-ins are ended by the caller, through
    `server.services.accounts.end_all_sign_ins`)."""
    result = await conn.execute(
        accounts.update().where(accounts.c.id == account_id).values(disabled=disabled)
    )
    return result.rowcount > 0


async def set_password_hash(
    conn: AsyncConnection, account_id: str, password_hash: str, now: datetime
) -> bool:
    """Replace a password (the caller ends the sign-ins it should)."""
    result = await conn.execute(
        accounts.update()
        .where(accounts.c.id == account_id)
        .values(password_hash=password_hash, password_changed_at=now)
    )
    return result.rowcount > 0


async def password_hash_of(conn: AsyncConnection, account_id: str) -> str | None:
    """The stored password hash of an account."""
    value: str | None = await conn.scalar(
        sa.select(accounts.c.password_hash).where(accounts.c.id == account_id)
    )
    return value


# --- two-factor ----------------------------------------------------------------------------


async def totp_state(
    conn: AsyncConnection, account_id: str
) -> tuple[bytes | None, bytes | None, datetime | None, int | None]:
    """(sealed secret, sealed pending secret, enabled at, last accepted step)."""
    row = (
        await conn.execute(
            sa.select(
                accounts.c.totp_secret_ciphertext,
                accounts.c.totp_pending_ciphertext,
                accounts.c.totp_enabled_at,
                accounts.c.totp_last_step,
            ).where(accounts.c.id == account_id)
        )
    ).first()
    if row is None:
        return None, None, None, None
    return row[0], row[1], row[2], row[3]


async def set_totp_pending(conn: AsyncConnection, account_id: str, sealed: bytes | None) -> None:
    """Remember (or forget) the secret being enrolled."""
    await conn.execute(
        accounts.update().where(accounts.c.id == account_id).values(totp_pending_ciphertext=sealed)
    )


async def enable_totp(
    conn: AsyncConnection, account_id: str, sealed: bytes, step: int, now: datetime
) -> None:
    """Make the confirmed secret the account's second factor."""
    await conn.execute(
        accounts.update()
        .where(accounts.c.id == account_id)
        .values(
            totp_secret_ciphertext=sealed,
            totp_pending_ciphertext=None,
            totp_enabled_at=now,
            totp_last_step=step,
        )
    )


async def clear_totp(conn: AsyncConnection, account_id: str) -> None:
    """Remove the second factor and its recovery codes."""
    await conn.execute(
        accounts.update()
        .where(accounts.c.id == account_id)
        .values(
            totp_secret_ciphertext=None,
            totp_pending_ciphertext=None,
            totp_enabled_at=None,
            totp_last_step=None,
        )
    )
    await conn.execute(recovery_codes.delete().where(recovery_codes.c.account_id == account_id))


async def sealed_totp_keys(conn: AsyncConnection) -> list[tuple[str, bytes | None, bytes | None]]:
    """(account id, sealed key, sealed pending key) of every account holding one."""
    rows = await conn.execute(
        sa.select(
            accounts.c.id, accounts.c.totp_secret_ciphertext, accounts.c.totp_pending_ciphertext
        ).where(
            sa.or_(
                accounts.c.totp_secret_ciphertext.is_not(None),
                accounts.c.totp_pending_ciphertext.is_not(None),
            )
        )
    )
    return [(r[0], r[1], r[2]) for r in rows]


async def replace_sealed_totp_keys(
    conn: AsyncConnection, account_id: str, values: dict[str, bytes | None]
) -> None:
    """Store re-sealed keys (column name to sealed value)."""
    await conn.execute(accounts.update().where(accounts.c.id == account_id).values(**values))


async def claim_totp_step(conn: AsyncConnection, account_id: str, step: int) -> bool:
    """Record `step` as used unless it (or a later one) was: one winner per code."""
    result = await conn.execute(
        accounts.update()
        .where(
            accounts.c.id == account_id,
            sa.or_(accounts.c.totp_last_step.is_(None), accounts.c.totp_last_step < step),
        )
        .values(totp_last_step=step)
    )
    return result.rowcount == 1


async def replace_recovery_codes(
    conn: AsyncConnection, account_id: str, hashes: list[str], now: datetime
) -> None:
    """Drop the old codes and store the new ones' hashes."""
    await conn.execute(recovery_codes.delete().where(recovery_codes.c.account_id == account_id))
    await conn.execute(
        recovery_codes.insert(),
        [{"code_hash": h, "account_id": account_id, "created_at": now} for h in hashes],
    )


async def use_recovery_code(
    conn: AsyncConnection, account_id: str, code_hash: str, now: datetime
) -> bool:
    """Mark an unused code of this account used; False when there is none."""
    result = await conn.execute(
        recovery_codes.update()
        .where(
            recovery_codes.c.code_hash == code_hash,
            recovery_codes.c.account_id == account_id,
            recovery_codes.c.used_at.is_(None),
        )
        .values(used_at=now)
    )
    return result.rowcount == 1


async def unused_recovery_codes(conn: AsyncConnection, account_id: str) -> int:
    """How many recovery codes are left."""
    return int(
        await conn.scalar(
            sa.select(sa.func.count())
            .select_from(recovery_codes)
            .where(recovery_codes.c.account_id == account_id, recovery_codes.c.used_at.is_(None))
        )
        or 0
    )


# --- password reset links and notices --------------------------------------------------------


async def insert_reset_link(
    conn: AsyncConnection,
    *,
    token_hash: str,
    account_id: str,
    created_by: str,
    now: datetime,
    expires_at: datetime,
) -> None:
    """Store a reset link's hash; earlier unused links of the account stop working."""
    await conn.execute(
        password_reset_links.delete().where(
            password_reset_links.c.account_id == account_id,
            password_reset_links.c.used_at.is_(None),
        )
    )
    await conn.execute(
        password_reset_links.insert().values(
            token_hash=token_hash,
            account_id=account_id,
            created_by=created_by,
            created_at=now,
            expires_at=expires_at,
        )
    )


async def usable_reset_link(conn: AsyncConnection, token_hash: str, now: datetime) -> str | None:
    """The account id of an unused, unexpired reset link."""
    value: str | None = await conn.scalar(
        sa.select(password_reset_links.c.account_id).where(
            password_reset_links.c.token_hash == token_hash,
            password_reset_links.c.used_at.is_(None),
            password_reset_links.c.expires_at > now,
        )
    )
    return value


async def consume_reset_link(conn: AsyncConnection, token_hash: str, now: datetime) -> bool:
    """Mark the link used; False when someone else did first."""
    result = await conn.execute(
        password_reset_links.update()
        .where(
            password_reset_links.c.token_hash == token_hash,
            password_reset_links.c.used_at.is_(None),
            password_reset_links.c.expires_at > now,
        )
        .values(used_at=now)
    )
    return result.rowcount == 1


async def add_notice(
    conn: AsyncConnection, *, notice_id: str, account_id: str, kind: str, now: datetime
) -> None:
    """Tell the account holder about a security event at their next sign-in."""
    await conn.execute(
        account_notices.insert().values(
            id=notice_id, account_id=account_id, kind=kind, created_at=now
        )
    )


async def notices(
    conn: AsyncConnection, account_id: str, *, unseen_only: bool
) -> list[tuple[str, str, datetime, datetime | None]]:
    """(id, kind, created_at, seen_at), newest first."""
    query = sa.select(
        account_notices.c.id,
        account_notices.c.kind,
        account_notices.c.created_at,
        account_notices.c.seen_at,
    ).where(account_notices.c.account_id == account_id)
    if unseen_only:
        query = query.where(account_notices.c.seen_at.is_(None))
    rows = await conn.execute(query.order_by(account_notices.c.created_at.desc()).limit(20))
    return [(r[0], r[1], r[2], r[3]) for r in rows]


async def mark_notices_seen(conn: AsyncConnection, account_id: str, now: datetime) -> None:
    """The holder has read them."""
    await conn.execute(
        account_notices.update()
        .where(account_notices.c.account_id == account_id, account_notices.c.seen_at.is_(None))
        .values(seen_at=now)
    )


# --- deployment switches -----------------------------------------------------------------------


async def app_setting(conn: AsyncConnection, name: str) -> str | None:
    """A switch's stored value."""
    value: str | None = await conn.scalar(
        sa.select(app_settings.c.value).where(app_settings.c.name == name)
    )
    return value


async def set_app_setting(
    conn: AsyncConnection, name: str, value: str, now: datetime, by: str
) -> None:
    """Store a switch (replacing the old value)."""
    await conn.execute(app_settings.delete().where(app_settings.c.name == name))
    await conn.execute(
        app_settings.insert().values(name=name, value=value, changed_at=now, changed_by=by)
    )


# --- sign-in sessions ----------------------------------------------------------------------


async def insert_auth_session(
    conn: AsyncConnection,
    *,
    token_hash: str,
    public_id: str,
    account_id: str,
    csrf_token: str,
    stage: str,
    device: str,
    now: datetime,
) -> None:
    """Remember a sign-in by the hash of its cookie token."""
    await conn.execute(
        auth_sessions.insert().values(
            token_hash=token_hash,
            public_id=public_id,
            account_id=account_id,
            csrf_token=csrf_token,
            stage=stage,
            device=device,
            created_at=now,
            last_seen_at=now,
        )
    )


async def auth_session(
    conn: AsyncConnection, token_hash: str
) -> tuple[Account, str, str, str, datetime, datetime] | None:
    """(account, csrf token, stage, public id, created_at, last_seen_at) for a token hash."""
    row = (
        await conn.execute(
            sa.select(
                *_ACCOUNT_COLUMNS,
                auth_sessions.c.csrf_token,
                auth_sessions.c.stage,
                auth_sessions.c.public_id,
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
    return (
        _account(row),
        m["csrf_token"],
        m["stage"],
        m["public_id"],
        m["session_created_at"],
        m["last_seen_at"],
    )


async def set_auth_session_stage(conn: AsyncConnection, token_hash: str, stage: str) -> None:
    """Move a pending sign-in on (e.g. to "full" after the second factor)."""
    await conn.execute(
        auth_sessions.update().where(auth_sessions.c.token_hash == token_hash).values(stage=stage)
    )


async def account_auth_sessions(
    conn: AsyncConnection, account_id: str
) -> list[tuple[str, str, str, str, datetime, datetime]]:
    """(token hash, public id, stage, device, created_at, last_seen_at), newest first."""
    rows = await conn.execute(
        sa.select(
            auth_sessions.c.token_hash,
            auth_sessions.c.public_id,
            auth_sessions.c.stage,
            auth_sessions.c.device,
            auth_sessions.c.created_at,
            auth_sessions.c.last_seen_at,
        )
        .where(auth_sessions.c.account_id == account_id)
        .order_by(auth_sessions.c.created_at.desc())
    )
    return [(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows]


async def delete_auth_sessions(conn: AsyncConnection, token_hashes: list[str]) -> None:
    """End these sign-ins."""
    if token_hashes:
        await conn.execute(
            auth_sessions.delete().where(auth_sessions.c.token_hash.in_(token_hashes))
        )


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

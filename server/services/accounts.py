"""Accounts and sign-in: creation, authentication, sign-in sessions, first-run setup."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from server.audit import AuditTrail
from server.core.models import Account, Role
from server.core.protocol import AccessEnd
from server.db import accounts as q
from server.db.engine import Database
from server.errors import Conflict, InvalidInput, NotFound
from server.security.passwords import hash_password, password_problem, verify_password
from server.security.tokens import new_id, new_token, token_hash
from server.services.access import LiveAccess, access_ref

_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,189}\.[^@\s]{1,60}$")
SETUP_LINK_LIFETIME = timedelta(hours=24)


def normalize_email(raw: str) -> str:
    """Lower-cased, trimmed email; InvalidInput when it is not an address."""
    email = raw.strip().lower()
    if len(email) > 254 or not _EMAIL.match(email):
        raise InvalidInput("Enter a valid email address.")
    return email


async def create_account(
    db: Database,
    audit: AuditTrail,
    *,
    email: str,
    password: str,
    role: Role,
    actor: str,
    now: datetime,
) -> Account:
    """Add a therapist or admin account with an Argon2id password."""
    email = normalize_email(email)
    problem = password_problem(password)
    if problem:
        raise InvalidInput(problem)
    password_hash = await hash_password(password)
    account_id = new_id()
    async with db.write() as conn:
        if await q.email_taken(conn, email):
            raise Conflict("An account with this email already exists.")
        await q.insert_account(
            conn,
            account_id=account_id,
            email=email,
            password_hash=password_hash,
            role=role,
            now=now,
        )
        await audit.record(
            conn,
            at=now,
            actor=actor,
            action="account.create",
            targets=(f"account:{account_id}",),
            details={"role": role.value},
        )
    return Account(id=account_id, email=email, role=role, disabled=False, created_at=now)


async def authenticate(
    db: Database, audit: AuditTrail, *, email: str, password: str, now: datetime
) -> Account | None:
    """The account when email and password match an enabled account, else None (audited)."""
    try:
        email = normalize_email(email)
    except InvalidInput:
        email = ""
    async with db.read() as conn:
        found = await q.credentials(conn, email) if email else None
    ok = await verify_password(found[1] if found else None, password)
    account = found[0] if found and ok and not found[0].disabled else None
    async with db.write() as conn:
        if account is not None:
            await audit.record(
                conn, at=now, actor=f"account:{account.id}", action="auth.login.success"
            )
        else:
            targets = (f"account:{found[0].id}",) if found else ()
            await audit.record(
                conn, at=now, actor="anonymous", action="auth.login.failure", targets=targets
            )
    return account


@dataclass(frozen=True)
class SignIn:
    """A new sign-in: the cookie token (shown once) and its CSRF token."""

    token: str
    csrf_token: str


@dataclass(frozen=True)
class SignedIn:
    """A resolved sign-in."""

    account: Account
    csrf_token: str
    token_hash: str

    @property
    def sign_in_id(self) -> str:
        """This sign-in's id for live sockets (never the token or its hash)."""
        return access_ref(self.token_hash)


async def start_sign_in(db: Database, account: Account, now: datetime) -> SignIn:
    """Create a server-side sign-in session; only the token's hash is stored."""
    token, csrf = new_token(), secrets.token_urlsafe(32)
    async with db.write() as conn:
        await q.insert_auth_session(
            conn, token_hash=token_hash(token), account_id=account.id, csrf_token=csrf, now=now
        )
    return SignIn(token=token, csrf_token=csrf)


async def resolve_sign_in(
    db: Database, token: str, *, now: datetime, idle: timedelta, absolute: timedelta
) -> SignedIn | None:
    """The signed-in account for a cookie token, enforcing idle and absolute timeouts."""
    hashed = token_hash(token)
    async with db.read() as conn:
        found = await q.auth_session(conn, hashed)
    if found is None:
        return None
    account, csrf, created_at, last_seen_at = found
    expired = now - last_seen_at >= idle or now - created_at >= absolute
    if expired or account.disabled:
        async with db.write() as conn:
            await q.delete_auth_session(conn, hashed)
        return None
    # Only write when a minute has passed: every request touching the row would serialize reads.
    if now - last_seen_at >= timedelta(minutes=1):
        async with db.write() as conn:
            await q.touch_auth_session(conn, hashed, now)
    return SignedIn(account=account, csrf_token=csrf, token_hash=hashed)


async def end_sign_in(
    db: Database, audit: AuditTrail, live: LiveAccess, signed_in: SignedIn, now: datetime
) -> None:
    """Sign out: this sign-in ends, and so do the sockets opened with it (4401)."""
    async with db.write() as conn:
        await q.delete_auth_session(conn, signed_in.token_hash)
        await audit.record(
            conn, at=now, actor=f"account:{signed_in.account.id}", action="auth.logout"
        )
    live.end_account_access(
        signed_in.account.id, AccessEnd.SIGNED_OUT, sign_in_id=signed_in.sign_in_id
    )


async def end_all_sign_ins(
    db: Database,
    live: LiveAccess,
    account_id: str,
    reason: AccessEnd,
    *,
    keep: SignedIn | None = None,
) -> None:
    """Every sign-in of the account ends (but `keep`, the caller's own, if given), and every
    socket opened with them closes now (4401 with `reason`). The one way all sign-ins of an
    account end: disabling, a password reset or change, "sign out my other sessions". Call it
    after committing the change that caused it (it is idempotent)."""
    async with db.write() as conn:
        await q.delete_auth_sessions_of(
            conn, account_id, keep_token_hash=keep.token_hash if keep else None
        )
    live.end_account_access(account_id, reason, except_sign_in_id=keep.sign_in_id if keep else None)


async def issue_setup_link_if_needed(db: Database, now: datetime) -> str | None:
    """On an empty database, mint a one-time admin setup token (returned once), else None."""
    async with db.write() as conn:
        if await q.count_accounts(conn) > 0:
            return None
        token = new_token()
        await q.insert_setup_token(conn, token_hash(token), now, now + SETUP_LINK_LIFETIME)
    return token


async def setup_link_usable(db: Database, token: str, now: datetime) -> bool:
    """True while the setup token can still create the first admin."""
    async with db.read() as conn:
        if await q.count_accounts(conn) > 0:
            return False
        return await q.setup_token_usable(conn, token_hash(token), now)


async def complete_setup(
    db: Database, audit: AuditTrail, *, token: str, email: str, password: str, now: datetime
) -> Account:
    """Create the first admin from a one-time setup token."""
    email = normalize_email(email)
    problem = password_problem(password)
    if problem:
        raise InvalidInput(problem)
    password_hash = await hash_password(password)
    account_id = new_id()
    async with db.write() as conn:
        if await q.count_accounts(conn) > 0 or not await q.consume_setup_token(
            conn, token_hash(token), now
        ):
            raise NotFound("This setup link is no longer valid.")
        await q.insert_account(
            conn,
            account_id=account_id,
            email=email,
            password_hash=password_hash,
            role=Role.ADMIN,
            now=now,
        )
        await audit.record(
            conn,
            at=now,
            actor=f"account:{account_id}",
            action="account.setup",
            targets=(f"account:{account_id}",),
            details={"role": Role.ADMIN.value},
        )
    return Account(id=account_id, email=email, role=Role.ADMIN, disabled=False, created_at=now)


async def list_accounts(db: Database) -> list[Account]:
    """Every account (admin view: metadata only)."""
    async with db.read() as conn:
        return await q.list_accounts(conn)


async def account_by_email(db: Database, email: str) -> Account:
    """The account for an email, or NotFound (CLI lookups)."""
    async with db.read() as conn:
        account = await q.account_by_email(conn, normalize_email(email))
    if account is None:
        raise NotFound(f"No account with email {email}.")
    return account

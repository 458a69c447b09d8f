"""Accounts and sign-in: creation, authentication, sign-in sessions, first-run setup."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from server.audit import AuditTrail
from server.core.models import Account, Role
from server.core.protocol import AccessEnd
from server.db import accounts as q
from server.db.engine import Database
from server.errors import Conflict, InvalidInput, NotFound
from server.security.passwords import hash_password, password_problem, verify_password
from server.security.tokens import looks_like_token, new_id, new_token, token_hash
from server.services.access import LiveAccess, access_ref

_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,189}\.[^@\s]{1,60}$")
SETUP_LINK_LIFETIME = timedelta(hours=24)
# Not an Argon2 hash: no password verifies against it until the holder uses a one-time link.
UNUSABLE_PASSWORD_HASH = "!reset"  # noqa: S105


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
    password: str | None,
    role: Role,
    actor: str,
    now: datetime,
) -> Account:
    """Add a therapist or admin account with an Argon2id password, or with none that works
    (`password=None`) until its holder sets one through a one-time link."""
    email = normalize_email(email)
    if password is None:
        password_hash = UNUSABLE_PASSWORD_HASH
    else:
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
    """The account when email and password match an enabled account, else None. A failure is
    audited here; success is audited when the sign-in completes (`start_sign_in`)."""
    try:
        email = normalize_email(email)
    except InvalidInput:
        email = ""
    async with db.read() as conn:
        found = await q.credentials(conn, email) if email else None
    ok = await verify_password(found[1] if found else None, password)
    account = found[0] if found and ok and not found[0].disabled else None
    if account is None:
        async with db.write() as conn:
            targets = (f"account:{found[0].id}",) if found else ()
            await audit.record(
                conn, at=now, actor="anonymous", action="auth.login.failure", targets=targets
            )
    return account


class Stage(StrEnum):
    """How far a sign-in has come: only FULL is signed in; the others allow one next step."""

    FULL = "full"
    SECOND_FACTOR = "second_factor"  # the password was right; a code is due
    ENROL = "enrol"  # the password was right; two-factor is required and must be set up first


# A pending sign-in (password done, code or enrolment due) lasts this long.
PENDING_LIFETIME = timedelta(minutes=10)


class EndReason(StrEnum):
    """Why sign-ins end (recorded in the audit entry)."""

    SIGN_OUT = "sign_out"
    ENDED_BY_OWNER = "ended_by_owner"
    PASSWORD_CHANGED = "password_changed"  # noqa: S105 (a reason, not a password)
    PASSWORD_RESET = "password_reset"  # noqa: S105
    ACCOUNT_DISABLED = "account_disabled"
    TWO_FACTOR_CHANGED = "two_factor_changed"
    EXPIRED = "expired"


@dataclass(frozen=True)
class SignIn:
    """A new sign-in: the cookie token (shown once) and its CSRF token."""

    token: str
    csrf_token: str
    stage: Stage


@dataclass(frozen=True)
class SignedIn:
    """A resolved sign-in (or a pending one, when `stage` is not FULL)."""

    account: Account
    csrf_token: str
    token_hash: str
    stage: Stage = Stage.FULL
    public_id: str = ""

    @property
    def sign_in_id(self) -> str:
        """This sign-in's id for live sockets (never the token or its hash)."""
        return access_ref(self.token_hash)


@dataclass(frozen=True)
class SignInRecord:
    """One of an account's sign-ins as its owner sees it: no token, no address."""

    public_id: str
    device: str
    created_at: datetime
    last_seen_at: datetime
    current: bool


async def start_sign_in(
    db: Database,
    account: Account,
    now: datetime,
    *,
    audit: AuditTrail | None = None,
    stage: Stage = Stage.FULL,
    device: str = "Unknown browser on unknown system",
    second_factor: str = "none",
) -> SignIn:
    """Create a server-side sign-in session (only the token's hash is stored); a FULL one is
    audited as `auth.login.success`."""
    token, csrf = new_token(), secrets.token_urlsafe(32)
    async with db.write() as conn:
        await q.insert_auth_session(
            conn,
            token_hash=token_hash(token),
            public_id=new_id(),
            account_id=account.id,
            csrf_token=csrf,
            stage=stage.value,
            device=device[:80],
            now=now,
        )
        if stage is Stage.FULL and audit is not None:
            await audit.record(
                conn,
                at=now,
                actor=f"account:{account.id}",
                action="auth.login.success",
                details={"second_factor": second_factor},
            )
    return SignIn(token=token, csrf_token=csrf, stage=stage)


async def complete_sign_in(
    db: Database, audit: AuditTrail, pending: SignedIn, now: datetime, second_factor: str
) -> SignedIn:
    """A pending sign-in becomes a full one (after its code, or after enrolling)."""
    async with db.write() as conn:
        await q.set_auth_session_stage(conn, pending.token_hash, Stage.FULL.value)
        await audit.record(
            conn,
            at=now,
            actor=f"account:{pending.account.id}",
            action="auth.login.success",
            details={"second_factor": second_factor},
        )
    return SignedIn(
        pending.account, pending.csrf_token, pending.token_hash, Stage.FULL, pending.public_id
    )


async def resolve_sign_in(
    db: Database,
    audit: AuditTrail,
    token: str,
    *,
    now: datetime,
    idle: timedelta,
    absolute: timedelta,
) -> SignedIn | None:
    """The sign-in (full or pending) for a cookie token, enforcing idle and absolute timeouts
    and the short life of a pending one."""
    hashed = token_hash(token)
    async with db.read() as conn:
        found = await q.auth_session(conn, hashed)
    if found is None:
        return None
    account, csrf, stage_raw, public_id, created_at, last_seen_at = found
    stage = Stage(stage_raw)
    expired = now - last_seen_at >= idle or now - created_at >= absolute
    if stage is not Stage.FULL and now - created_at >= PENDING_LIFETIME:
        expired = True
    if expired or account.disabled:
        # a socket outlives its sign-in's idle expiry: a 50-minute call is not idleness
        await end_all_sign_ins(
            db, audit, account.id, EndReason.EXPIRED, now, only_session=hashed, live=None
        )
        return None
    # Only write when a minute has passed: every request touching the row would serialize reads.
    if now - last_seen_at >= timedelta(minutes=1):
        async with db.write() as conn:
            await q.touch_auth_session(conn, hashed, now)
    return SignedIn(
        account=account, csrf_token=csrf, token_hash=hashed, stage=stage, public_id=public_id
    )


async def end_all_sign_ins(
    db: Database,
    audit: AuditTrail,
    account_id: str,
    reason: EndReason,
    now: datetime,
    except_session: str | None = None,
    *,
    only_session: str | None = None,
    actor: str | None = None,
    live: LiveAccess | None,
) -> tuple[str, ...]:
    """End an account's sign-ins: all of them, all but `except_session`, or only
    `only_session` (token hashes). THE one path by which sign-ins end (sign-out, "end this
    session", password change or reset, disabling, two-factor changes, expiry), so whatever
    must follow an ended sign-in (closing its live sockets) hooks here. Returns the token
    hashes that ended; audited (`auth.logout` for a sign-out, `auth.sessions.end` otherwise,
    nothing for a plain expiry)."""
    async with db.write() as conn:
        rows = await q.account_auth_sessions(conn, account_id)
        ended = [
            row[0]
            for row in rows
            if (only_session is None or row[0] == only_session) and row[0] != except_session
        ]
        await q.delete_auth_sessions(conn, ended)
        who = actor or f"account:{account_id}"
        if reason is EndReason.SIGN_OUT:
            await audit.record(conn, at=now, actor=who, action="auth.logout")
        elif reason is not EndReason.EXPIRED and ended:
            await audit.record(
                conn,
                at=now,
                actor=who,
                action="auth.sessions.end",
                targets=(f"account:{account_id}",),
                details={"reason": reason.value, "count": len(ended)},
            )
    if live is not None:  # after the commit: the sockets opened with these sign-ins close now
        why = _ACCESS_END[reason]
        for hashed in ended:
            live.end_account_access(account_id, why, sign_in_id=access_ref(hashed))
    return tuple(ended)


_ACCESS_END = {
    EndReason.SIGN_OUT: AccessEnd.SIGNED_OUT,
    EndReason.ENDED_BY_OWNER: AccessEnd.SIGNED_OUT,
    EndReason.PASSWORD_CHANGED: AccessEnd.PASSWORD_CHANGED,
    EndReason.PASSWORD_RESET: AccessEnd.PASSWORD_CHANGED,
    EndReason.ACCOUNT_DISABLED: AccessEnd.ACCOUNT_DISABLED,
    EndReason.TWO_FACTOR_CHANGED: AccessEnd.SIGNED_OUT,
    EndReason.EXPIRED: AccessEnd.SIGNED_OUT,
}
"""What the page of a closed socket is told (close 4401) for each reason sign-ins end."""


async def end_sign_in(
    db: Database, audit: AuditTrail, live: LiveAccess | None, signed_in: SignedIn, now: datetime
) -> None:
    """Sign out: this sign-in ends, and so do the sockets opened with it (4401)."""
    await end_all_sign_ins(
        db,
        audit,
        signed_in.account.id,
        EndReason.SIGN_OUT,
        now,
        only_session=signed_in.token_hash,
        live=live,
    )


async def list_sign_ins(db: Database, current: SignedIn) -> list[SignInRecord]:
    """This account's full sign-ins, newest first, the caller's own marked."""
    async with db.read() as conn:
        rows = await q.account_auth_sessions(conn, current.account.id)
    return [
        SignInRecord(public_id, device, created, seen, token == current.token_hash)
        for token, public_id, stage, device, created, seen in rows
        if stage == Stage.FULL.value
    ]


async def other_sign_in_count(db: Database, account_id: str) -> int:
    """How many full sign-ins the account has besides the newest one (the caller's own, right
    after signing in)."""
    async with db.read() as conn:
        rows = await q.account_auth_sessions(conn, account_id)
    return max(0, sum(1 for row in rows if row[2] == Stage.FULL.value) - 1)


async def end_own_sign_in(
    db: Database,
    audit: AuditTrail,
    current: SignedIn,
    public_id: str,
    now: datetime,
    *,
    live: LiveAccess | None,
) -> bool:
    """End one of the caller's own sign-ins by its public id; False when it is not theirs."""
    async with db.read() as conn:
        rows = await q.account_auth_sessions(conn, current.account.id)
    match = next((row[0] for row in rows if row[1] == public_id), None)
    if match is None:
        return False
    await end_all_sign_ins(
        db, audit, current.account.id, EndReason.ENDED_BY_OWNER, now, only_session=match, live=live
    )
    return True


async def change_password(
    db: Database,
    audit: AuditTrail,
    current: SignedIn,
    *,
    current_password: str,
    new_password: str,
    now: datetime,
    live: LiveAccess | None,
) -> None:
    """Change one's own password: the current one is needed; other sign-ins end."""
    async with db.read() as conn:
        stored = await q.password_hash_of(conn, current.account.id)
    if not await verify_password(stored, current_password):
        raise InvalidInput("The current password is wrong.")
    problem = password_problem(new_password)
    if problem:
        raise InvalidInput(problem)
    new_hash = await hash_password(new_password)
    async with db.write() as conn:
        await q.set_password_hash(conn, current.account.id, new_hash, now)
        await audit.record_own(
            conn, at=now, account_id=current.account.id, action="account.password_change"
        )
    await end_all_sign_ins(
        db,
        audit,
        current.account.id,
        EndReason.PASSWORD_CHANGED,
        now,
        except_session=current.token_hash,
        live=live,
    )


@dataclass(frozen=True)
class AccountNotice:
    """A security event told to the account holder."""

    id: str
    kind: str
    created_at: datetime
    seen: bool

    @property
    def text(self) -> str:
        """What the holder reads."""
        when = self.created_at.strftime("%Y-%m-%d %H:%M UTC")
        if self.kind == NOTICE_ADMIN_RESET:
            return (
                f"An administrator reset your password on {when}; your sign-ins were ended and"
                " your two-factor setup removed. If you did not ask for this, tell your clinic."
            )
        return f"A security event on {when}."


NOTICE_ADMIN_RESET = "admin_reset"


async def account_notices(
    db: Database, account_id: str, *, unseen_only: bool
) -> list[AccountNotice]:
    """The account's security notices, newest first."""
    async with db.read() as conn:
        rows = await q.notices(conn, account_id, unseen_only=unseen_only)
    return [AccountNotice(i, kind, at, seen is not None) for i, kind, at, seen in rows]


async def mark_notices_seen(db: Database, account_id: str, now: datetime) -> None:
    """The holder read the notices shown at sign-in (they stay on the account page)."""
    async with db.write() as conn:
        await q.mark_notices_seen(conn, account_id, now)


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


async def reset_link_account(db: Database, token: str, now: datetime) -> Account | None:
    """The account a reset link is for, while the link is unused and unexpired."""
    if not looks_like_token(token):
        return None
    async with db.read() as conn:
        account_id = await q.usable_reset_link(conn, token_hash(token), now)
        return await q.account_by_id(conn, account_id) if account_id else None


async def complete_reset(
    db: Database,
    audit: AuditTrail,
    *,
    token: str,
    password: str,
    now: datetime,
    live: LiveAccess | None,
) -> Account:
    """Set the new password through a one-time reset link (the link is then used up)."""
    problem = password_problem(password)
    if problem:
        raise InvalidInput(problem)
    password_hash = await hash_password(password)
    async with db.write() as conn:
        account_id = await q.usable_reset_link(conn, token_hash(token), now)
        account = await q.account_by_id(conn, account_id) if account_id else None
        if account is None or not await q.consume_reset_link(conn, token_hash(token), now):
            raise NotFound("This reset link is no longer valid.")
        await q.set_password_hash(conn, account.id, password_hash, now)
        await audit.record_own(conn, at=now, account_id=account.id, action="account.password_reset")
    await end_all_sign_ins(db, audit, account.id, EndReason.PASSWORD_RESET, now, live=live)
    return account


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

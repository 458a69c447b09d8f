"""Two-factor sign-in (TOTP) and its recovery codes, and the admin's "require it" switch.

The seed is sealed under the master keyring (`server/security/account_secrets.py`); recovery
codes are stored as hashes and shown once. A code is accepted once: its time step is claimed
in the same UPDATE that checks it was not used (`claim_totp_step`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from privacy.vault import MasterKeyring
from server.audit import AuditTrail
from server.core.models import Account
from server.db import accounts as q
from server.db.engine import Database
from server.errors import Conflict, InvalidInput
from server.security import totp
from server.security.account_secrets import SealedSecretError, open_sealed, seal, sealed_version
from server.security.passwords import verify_password
from server.services.access import LiveAccess
from server.services.accounts import EndReason, SignedIn, end_all_sign_ins

ISSUER = "Attune"
REQUIRE_TWO_FACTOR = "require_two_factor"
_SECRET_COLUMN = "totp_secret_ciphertext"  # noqa: S105 (a column name)
_PENDING_COLUMN = "totp_pending_ciphertext"


@dataclass(frozen=True)
class TwoFactorStatus:
    """What the account page shows."""

    enabled: bool
    enabled_at: datetime | None
    recovery_codes_left: int


@dataclass(frozen=True)
class Enrolment:
    """A secret being set up: shown as a QR code (the URI) and as text."""

    secret: str
    uri: str


async def required(db: Database) -> bool:
    """True when an admin requires two-factor for every account."""
    async with db.read() as conn:
        return await q.app_setting(conn, REQUIRE_TWO_FACTOR) == "true"


async def set_required(
    db: Database, audit: AuditTrail, admin: Account, value: bool, now: datetime
) -> None:
    """Switch the requirement (audited)."""
    async with db.write() as conn:
        await q.set_app_setting(
            conn, REQUIRE_TWO_FACTOR, "true" if value else "false", now, f"account:{admin.id}"
        )
        await audit.record(
            conn,
            at=now,
            actor=f"account:{admin.id}",
            action="settings.two_factor_required",
            details={"required": value},
        )


async def status(db: Database, account_id: str) -> TwoFactorStatus:
    """Whether the account has a second factor, and how many recovery codes are left."""
    async with db.read() as conn:
        sealed, _pending, enabled_at, _step = await q.totp_state(conn, account_id)
        left = await q.unused_recovery_codes(conn, account_id)
    return TwoFactorStatus(sealed is not None, enabled_at, left)


async def begin_enrolment(db: Database, ring: MasterKeyring, account: Account) -> Enrolment:
    """The secret being enrolled (a new one unless one is pending already)."""
    async with db.write() as conn:
        sealed, pending, _at, _step = await q.totp_state(conn, account.id)
        if sealed is not None:
            raise Conflict("Two-factor sign-in is already on.")
        secret = None
        if pending is not None:
            try:
                secret = open_sealed(ring, account.id, _PENDING_COLUMN, pending).decode()
            except SealedSecretError:
                secret = None
        if secret is None:
            secret = totp.new_secret()
            await q.set_totp_pending(
                conn, account.id, seal(ring, account.id, _PENDING_COLUMN, secret.encode())
            )
    return Enrolment(secret, totp.provisioning_uri(secret, account.email, ISSUER))


async def confirm_enrolment(
    db: Database, audit: AuditTrail, ring: MasterKeyring, account: Account, code: str, now: datetime
) -> list[str]:
    """Turn two-factor on once a code from the new secret matches; returns the ten recovery
    codes (shown once)."""
    async with db.write() as conn:
        sealed, pending, _at, _step = await q.totp_state(conn, account.id)
        if sealed is not None:
            raise Conflict("Two-factor sign-in is already on.")
        if pending is None:
            raise InvalidInput("Start again: open the set-up page.")
        try:
            secret = open_sealed(ring, account.id, _PENDING_COLUMN, pending).decode()
        except SealedSecretError:
            raise InvalidInput("Start again: open the set-up page.") from None
        step = totp.matching_step(secret, code, now, None)
        if step is None:
            raise InvalidInput("That code does not match. Check your phone's clock and try again.")
        await q.enable_totp(
            conn, account.id, seal(ring, account.id, _SECRET_COLUMN, secret.encode()), step, now
        )
        codes = totp.new_recovery_codes()
        await q.replace_recovery_codes(
            conn, account.id, [totp.recovery_code_hash(c) for c in codes], now
        )
        await audit.record_own(
            conn, at=now, account_id=account.id, action="account.two_factor.enable"
        )
    return codes


async def check_code(
    db: Database,
    audit: AuditTrail,
    ring: MasterKeyring,
    account_id: str,
    code: str,
    now: datetime,
    *,
    allow_recovery: bool = True,
) -> str | None:
    """ "totp" or "recovery" when `code` is a valid, unused second factor of the account (and
    it is now used), else None (audited as a failure)."""
    async with db.write() as conn:
        sealed, _pending, _at, last_step = await q.totp_state(conn, account_id)
        kind: str | None = None
        if sealed is not None:
            if allow_recovery and totp.looks_like_recovery_code(code):
                if await q.use_recovery_code(conn, account_id, totp.recovery_code_hash(code), now):
                    kind = "recovery"
            else:
                try:
                    secret = open_sealed(ring, account_id, _SECRET_COLUMN, sealed).decode()
                except SealedSecretError:
                    secret = ""
                step = totp.matching_step(secret, code, now, last_step) if secret else None
                if step is not None and await q.claim_totp_step(conn, account_id, step):
                    kind = "totp"
        if kind is None:
            await audit.record(
                conn,
                at=now,
                actor="anonymous",
                action="auth.second_factor.failure",
                targets=(f"account:{account_id}",),
            )
        elif kind == "recovery":
            await audit.record_own(
                conn, at=now, account_id=account_id, action="auth.recovery_code.use"
            )
    return kind


async def _password_and_code(
    db: Database,
    audit: AuditTrail,
    ring: MasterKeyring,
    current: SignedIn,
    password: str,
    code: str,
    now: datetime,
) -> None:
    async with db.read() as conn:
        stored = await q.password_hash_of(conn, current.account.id)
    if not await verify_password(stored, password):
        raise InvalidInput("The password is wrong.")
    if await check_code(db, audit, ring, current.account.id, code, now) is None:
        raise InvalidInput("That code does not match (or was used already).")


async def disable(
    db: Database,
    audit: AuditTrail,
    ring: MasterKeyring,
    current: SignedIn,
    *,
    password: str,
    code: str,
    now: datetime,
    live: LiveAccess | None,
) -> None:
    """Turn two-factor off: needs the password and a current code (or a recovery code); the
    other sign-ins end, and their open sockets close."""
    if await required(db):
        raise Conflict("Your clinic requires two-factor sign-in; it cannot be turned off.")
    await _password_and_code(db, audit, ring, current, password, code, now)
    async with db.write() as conn:
        await q.clear_totp(conn, current.account.id)
        await audit.record_own(
            conn, at=now, account_id=current.account.id, action="account.two_factor.disable"
        )
    await end_all_sign_ins(
        db,
        audit,
        current.account.id,
        EndReason.TWO_FACTOR_CHANGED,
        now,
        except_session=current.token_hash,
        live=live,
    )


async def regenerate_recovery_codes(
    db: Database,
    audit: AuditTrail,
    ring: MasterKeyring,
    current: SignedIn,
    *,
    password: str,
    code: str,
    now: datetime,
) -> list[str]:
    """Ten new recovery codes (the old ones stop working): needs the password and a code."""
    await _password_and_code(db, audit, ring, current, password, code, now)
    codes = totp.new_recovery_codes()
    async with db.write() as conn:
        await q.replace_recovery_codes(
            conn, current.account.id, [totp.recovery_code_hash(c) for c in codes], now
        )
        await audit.record_own(
            conn, at=now, account_id=current.account.id, action="account.recovery_codes.replace"
        )
    return codes


async def reseal_all(db: Database, old: MasterKeyring, new: MasterKeyring) -> int:
    """Re-seal every account's TOTP keys under `new`'s current master version (rotation);
    returns how many accounts were re-sealed. A key that does not open is left as it is."""
    done = 0
    async with db.write() as conn:
        for account_id, sealed, pending in await q.sealed_totp_keys(conn):
            values: dict[str, bytes | None] = {}
            for column, blob in ((_SECRET_COLUMN, sealed), (_PENDING_COLUMN, pending)):
                if blob is None:
                    continue
                try:
                    plain = open_sealed(old, account_id, column, blob)
                except SealedSecretError:
                    continue
                values[column] = seal(new, account_id, column, plain)
            if values:
                await q.replace_sealed_totp_keys(conn, account_id, values)
                done += 1
    return done


async def master_versions_in_use(db: Database) -> set[int]:
    """Master key versions that still seal at least one account's TOTP key."""
    async with db.read() as conn:
        rows = await q.sealed_totp_keys(conn)
    return {
        sealed_version(blob)
        for _account_id, sealed, pending in rows
        for blob in (sealed, pending)
        if blob is not None
    }

"""Tamper-evident audit log (pure): a SHA-256 hash chain with signed Ed25519 checkpoints.

Entry *i* (seq 1, 2, …) stores ``hash_i = SHA-256(hash_{i-1} || canonical_json(i, event_i))``
with ``hash_0 = GENESIS_HASH``. A checkpoint signs ``(seq, hash_seq)`` under a fixed,
domain-separated message, which pins every entry up to ``seq``: an edit, deletion or
reordering anywhere before it, and cutting entries off the end past it, are detected.
Entries appended after the last checkpoint can be cut off unnoticed, so checkpoints should
be written regularly.

Entries carry actor, action, pseudonymous targets, time and metadata, never clinical content
or tokens, so shredding a client never breaks the chain.

Retention purges audit entries only as a whole prefix, behind an *anchor*: a signature over
``(k, hash_k)`` under its own domain label (never the checkpoint label, so an ordinary
checkpoint cannot be passed off as permission to drop what precedes it). ``verify_chain``
started at an anchor checks its signature, expects entry k+1 with ``prev_hash = hash_k`` and
walks on as before; a prefix removed without an anchor, or past it, still fails.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Final, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

HASH_BYTES: Final = 32
GENESIS_HASH: Final = bytes(HASH_BYTES)
FIRST_SEQ: Final = 1
CHECKPOINT_DOMAIN: Final = b"attune-audit-checkpoint-v1"
ANCHOR_DOMAIN: Final = b"attune-audit-anchor-v1"

DetailValue = str | int | bool | None

AUDIT_ACTIONS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "auth.login.success": "An account signed in.",
        "auth.login.failure": "A sign-in attempt failed (wrong password, unknown or disabled).",
        "auth.logout": "An account signed out.",
        "auth.sessions.end": (
            "Sign-ins of an account were ended (by its owner, a password change or reset,"
            " disabling, a two-factor change); `details` say why and how many."
        ),
        "auth.second_factor.failure": "A wrong or reused two-factor code was entered.",
        "auth.recovery_code.use": "An account signed in (or confirmed) with a recovery code.",
        "account.create": "An admin created a therapist or admin account.",
        "account.disable": "An admin disabled an account; it can no longer sign in.",
        "account.enable": "An admin re-enabled a disabled account.",
        "account.password_reset": "An account's holder set a new password through a reset link.",
        "account.password_change": "An account's holder changed their own password.",
        "account.reset_link.issue": (
            "An admin reset an account: password void, sign-ins ended, two-factor removed,"
            " one-time link issued."
        ),
        "account.two_factor.enable": "An account turned two-factor sign-in on.",
        "account.two_factor.disable": "An account turned two-factor sign-in off.",
        "account.recovery_codes.replace": "An account made new recovery codes (old ones void).",
        "account.setup": "An account was set up through its one-time setup link.",
        "settings.two_factor_required": "An admin required (or stopped requiring) two-factor.",
        "client.create": "A therapist created a client record (pseudonymous alias only).",
        "client.erase": "A client's data was erased: data key destroyed, then rows deleted.",
        "client.language": "A client's preferred language was set or cleared.",
        "session.create": "A therapist scheduled a session.",
        "session.cancel": "A scheduled session was cancelled.",
        "session.reschedule": "A therapist moved a session to a new time.",
        "session.end": "A session ended.",
        "invite.issue": "An invite link was minted for a session.",
        "invite.revoke": "An invite link was revoked before use or expiry.",
        "invite.redeem": "An invite link was exchanged for a client session cookie.",
        "participant.add": (
            "A therapist added a person to a session: a client or a guest (ids, kind and "
            "position only; never a label)."
        ),
        "participant.remove": (
            "A therapist took a person out of a session; their link and cookies ended."
        ),
        "checkin.submit": (
            "A client submitted a check-in; `details` say its kind and whether the answers were"
            " stored (never the answers)."
        ),
        "goal.change": (
            "A shared goal was added, edited, marked reached or dropped, or made active again;"
            " `details` say the change and by whom (never the goal's words)."
        ),
        "progress.visibility": (
            "A therapist turned a client's own progress page off or on; `details.shown` is the"
            " new value (the reason is stored encrypted, never in the trail)."
        ),
        "measure.submit": (
            "A client submitted an outcome measure (PHQ-9, GAD-7); `details` say which and"
            " whether the answers were stored (never the answers)."
        ),
        "measure.plan": (
            "A therapist chose which outcome measures a client is asked and how often."
        ),
        "measure.alert_seen": "A therapist marked a client's safety alert as seen.",
        "measure.link_sent": (
            "A client was emailed a link to answer due outcome measures between sessions;"
            " `details.measures` names them (never a token)."
        ),
        "measure.link_open": (
            "A client opened their emailed measures link (swapped for a page cookie)."
        ),
        "safety.submit": (
            "A client answered the safety check before the waiting room; `details` say whether"
            " it replaced an earlier answer of the session (never the answers)."
        ),
        "clinical.read": (
            "A therapist viewed clinical content (check-ins, cue summaries, a safety check,"
            " outcome measures)."
        ),
        "clinical.write": "A therapist wrote clinical content (a note); never the content.",
        "access.denied": "A request was refused (401, 403, 404 for another's id, 429).",
        "export.client": "A client's data was exported.",
        "consent.grant": "A client (or guardian) granted consent for a purpose.",
        "consent.withdraw": "A client (or guardian) withdrew consent for a purpose.",
        "contact.set": "A client saved an email address for reminders (never the address).",
        "contact.remove": "A client's email address was deleted (never the address).",
        "contact.unsubscribe": "A client stopped email reminders with the link in an email.",
        "email.failed": "An email could not be delivered; `details` hold its kind and reason.",
        "notice.publish": "An admin published a new consent notice version.",
        "retention.policy_change": "An admin changed a retention policy.",
        "retention.hold_add": "A legal hold was placed on a client's data.",
        "retention.hold_remove": "A legal hold was lifted.",
        "retention.purge": "The purge job deleted or anonymised data past its retention.",
        "keys.rotate": "A master key version was added and data keys re-wrapped.",
        "audit.checkpoint": "A signed checkpoint of the audit chain was written.",
        "audit.purged": "Audit entries up to a sequence number were purged behind a signed anchor.",
    }
)
"""Every action Attune records, with its meaning; ``AuditEvent`` refuses any other."""


def _utc_iso(at: datetime) -> str:
    """ISO-8601 UTC with microseconds and 'Z'; a naive time (as SQLite returns) counts as UTC."""
    if at.utcoffset() is not None:
        at = at.astimezone(UTC)
    return at.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


@dataclass(frozen=True)
class AuditEvent:
    """A new audit entry before it is chained: who did what to whom, when."""

    at: datetime
    actor: str
    action: str
    targets: tuple[str, ...] = ()
    details: Mapping[str, DetailValue] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        if self.at.utcoffset() is None:
            raise ValueError("audit time must be timezone-aware")
        if not isinstance(self.actor, str) or not self.actor:
            raise ValueError("audit actor must be a non-empty string")
        if self.action not in AUDIT_ACTIONS:
            raise ValueError(f"unregistered audit action {self.action!r}")
        if isinstance(self.targets, str) or not all(isinstance(t, str) for t in self.targets):
            raise ValueError("audit targets must be a sequence of id strings")
        for key, value in self.details.items():
            if not isinstance(key, str):
                raise ValueError("audit detail keys must be strings")
            if value is not None and not isinstance(value, str | int | bool):
                raise ValueError(f"audit detail {key!r} must be str, int, bool or None")
        object.__setattr__(self, "targets", tuple(self.targets))
        object.__setattr__(self, "details", MappingProxyType(dict(self.details)))


class AuditRow(Protocol):
    """What verification reads from a stored entry (``AuditEntry`` or a database row)."""

    @property
    def seq(self) -> int: ...
    @property
    def at(self) -> datetime: ...
    @property
    def actor(self) -> str: ...
    @property
    def action(self) -> str: ...
    @property
    def targets(self) -> Sequence[str]: ...
    @property
    def details(self) -> Mapping[str, DetailValue]: ...
    @property
    def prev_hash(self) -> bytes: ...
    @property
    def hash(self) -> bytes: ...


class ChainTip(Protocol):
    """The last entry of a chain, as much as appending needs."""

    @property
    def seq(self) -> int: ...
    @property
    def hash(self) -> bytes: ...


@dataclass(frozen=True)
class AuditEntry:
    """A chained audit entry: the event's fields plus seq, prev_hash and hash."""

    seq: int
    at: datetime
    actor: str
    action: str
    targets: tuple[str, ...]
    details: Mapping[str, DetailValue]
    prev_hash: bytes
    hash: bytes


def _canonical(
    seq: int,
    at: datetime,
    actor: str,
    action: str,
    targets: Sequence[str],
    details: Mapping[str, DetailValue],
) -> bytes:
    document = {
        "action": action,
        "actor": actor,
        "at": _utc_iso(at),
        "details": dict(details),
        "seq": seq,
        "targets": list(targets),
    }
    return json.dumps(
        document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def canonical_json(seq: int, event: AuditEvent) -> bytes:
    """The exact bytes hashed for an entry: sorted keys, no whitespace, UTF-8, UTC 'Z' times."""
    return _canonical(seq, event.at, event.actor, event.action, event.targets, event.details)


def chain_hash(prev_hash: bytes, seq: int, event: AuditEvent) -> bytes:
    """SHA-256(prev_hash || canonical_json(seq, event))."""
    return hashlib.sha256(prev_hash + canonical_json(seq, event)).digest()


def _row_hash(prev_hash: bytes, row: AuditRow) -> bytes:
    canonical = _canonical(row.seq, row.at, row.actor, row.action, row.targets, row.details)
    return hashlib.sha256(prev_hash + canonical).digest()


def append(prev: ChainTip | None, event: AuditEvent) -> AuditEntry:
    """Chain a new event after ``prev`` (None starts the chain at seq 1)."""
    seq, prev_hash = (FIRST_SEQ, GENESIS_HASH) if prev is None else (prev.seq + 1, prev.hash)
    return AuditEntry(
        seq=seq,
        at=event.at,
        actor=event.actor,
        action=event.action,
        targets=event.targets,
        details=event.details,
        prev_hash=prev_hash,
        hash=chain_hash(prev_hash, seq, event),
    )


@dataclass(frozen=True)
class Checkpoint:
    """A signature over (seq, hash of entry seq) by the audit signing key."""

    seq: int
    hash: bytes
    signature: bytes


_SEQ = struct.Struct(">Q")


def checkpoint_message(seq: int, entry_hash: bytes) -> bytes:
    """The signed bytes: domain label || seq (8 bytes, big-endian) || entry hash."""
    return CHECKPOINT_DOMAIN + _SEQ.pack(seq) + entry_hash


def sign_checkpoint(private_key: Ed25519PrivateKey, seq: int, entry_hash: bytes) -> Checkpoint:
    """Sign the chain state at ``seq``."""
    if seq < FIRST_SEQ or len(entry_hash) != HASH_BYTES:
        raise ValueError("a checkpoint needs seq >= 1 and a 32-byte entry hash")
    signature = private_key.sign(checkpoint_message(seq, entry_hash))
    return Checkpoint(seq=seq, hash=entry_hash, signature=signature)


def verify_checkpoint(public_key: Ed25519PublicKey, checkpoint: Checkpoint) -> bool:
    """True iff the checkpoint's signature is valid for its seq and hash."""
    try:
        public_key.verify(checkpoint.signature, checkpoint_message(checkpoint.seq, checkpoint.hash))
    except (InvalidSignature, struct.error, TypeError, ValueError):
        return False
    return True


@dataclass(frozen=True)
class Anchor:
    """Signed permission for the chain to start after entry ``seq`` (entries up to it purged)."""

    seq: int
    hash: bytes
    signature: bytes


def anchor_message(seq: int, entry_hash: bytes) -> bytes:
    """The signed bytes: anchor label || seq (8 bytes, big-endian) || hash of entry seq."""
    return ANCHOR_DOMAIN + _SEQ.pack(seq) + entry_hash


def sign_anchor(private_key: Ed25519PrivateKey, seq: int, entry_hash: bytes) -> Anchor:
    """Sign an anchor at ``seq`` before the entries up to it are deleted."""
    if seq < FIRST_SEQ or len(entry_hash) != HASH_BYTES:
        raise ValueError("an anchor needs seq >= 1 and a 32-byte entry hash")
    return Anchor(
        seq=seq, hash=entry_hash, signature=private_key.sign(anchor_message(seq, entry_hash))
    )


def verify_anchor(public_key: Ed25519PublicKey, anchor: Anchor) -> bool:
    """True iff the anchor's signature is valid for its seq and hash under the anchor label."""
    try:
        public_key.verify(anchor.signature, anchor_message(anchor.seq, anchor.hash))
    except (InvalidSignature, struct.error, TypeError, ValueError):
        return False
    return True


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of a chain walk; ``first_bad_seq`` is where verification first failed."""

    ok: bool
    count: int
    first_bad_seq: int | None
    reason: str


def verify_chain(
    entries: Iterable[AuditRow],
    checkpoints: Sequence[Checkpoint],
    public_key: Ed25519PublicKey,
    anchor: Anchor | None = None,
) -> VerifyResult:
    """Re-walk the chain (entries streamed in seq order, O(1) memory) against the checkpoints.

    With an ``anchor`` the walk starts after it: entries up to ``anchor.seq`` were purged, and
    checkpoints up to it pin entries that no longer exist, so they are not checked.
    """
    expected_seq = FIRST_SEQ
    prev_hash = GENESIS_HASH
    count = 0

    def failed(seq: int, reason: str) -> VerifyResult:
        return VerifyResult(ok=False, count=count, first_bad_seq=seq, reason=reason)

    if anchor is not None:
        if not verify_anchor(public_key, anchor):
            return failed(
                FIRST_SEQ,
                f"the anchor at entry {anchor.seq} has a bad signature: entries up to "
                f"{anchor.seq} were removed without a valid anchor",
            )
        expected_seq, prev_hash = anchor.seq + 1, anchor.hash
    kept = checkpoints if anchor is None else [c for c in checkpoints if c.seq > anchor.seq]
    pending = sorted(kept, key=lambda c: c.seq)
    next_checkpoint = 0

    for row in entries:
        if row.seq != expected_seq:
            return failed(
                expected_seq,
                f"expected entry {expected_seq} but found entry {row.seq}: "
                "entries were deleted or reordered",
            )
        if row.prev_hash != prev_hash:
            return failed(
                row.seq, f"entry {row.seq} does not link to the entry before it (prev_hash)"
            )
        try:
            entry_hash = _row_hash(prev_hash, row)
        except (TypeError, ValueError, AttributeError):
            return failed(row.seq, f"entry {row.seq} cannot be serialised canonically")
        if row.hash != entry_hash:
            return failed(row.seq, f"entry {row.seq} does not match its hash: it was edited")
        while next_checkpoint < len(pending) and pending[next_checkpoint].seq <= row.seq:
            checkpoint = pending[next_checkpoint]
            if not verify_checkpoint(public_key, checkpoint):
                return failed(
                    checkpoint.seq, f"checkpoint at entry {checkpoint.seq} has a bad signature"
                )
            if checkpoint.seq != row.seq or checkpoint.hash != entry_hash:
                return failed(
                    row.seq,
                    f"entry {row.seq} differs from its signed checkpoint: "
                    f"entries up to {row.seq} were rewritten",
                )
            next_checkpoint += 1
        prev_hash = entry_hash
        count += 1
        expected_seq += 1

    if next_checkpoint < len(pending):
        checkpoint = pending[next_checkpoint]
        if not verify_checkpoint(public_key, checkpoint):
            return failed(
                checkpoint.seq, f"checkpoint at entry {checkpoint.seq} has a bad signature"
            )
        return failed(
            expected_seq,
            f"a signed checkpoint covers entry {checkpoint.seq} but the log ends at entry "
            f"{expected_seq - 1}: entries were removed from the end",
        )
    start = "" if anchor is None else f" after the anchor at entry {anchor.seq}"
    return VerifyResult(
        ok=True,
        count=count,
        first_bad_seq=None,
        reason=f"chain intact{start}: {count} entries, {len(pending)} checkpoints verified",
    )

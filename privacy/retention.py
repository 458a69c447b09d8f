"""Retention decisions (pure): which records are due for deletion or anonymisation, and why.

DESIGN.md §4. Records, policies and legal holds go in, purge decisions come out; no clock, no
database. The storage adapter lists candidate records (metadata only), calls `due_for_purge`,
applies the decisions, and writes the purge report and an audit entry.

The retention clock
    `Record.created_at` is the moment a record's retention clock starts. For events (session
    metadata, check-ins, cue summaries, signals, audit entries) that is when they were written.
    Records that stay in force start their clock when they stop being in force: the adapter
    reports a consent only once it has been withdrawn or superseded, and an account only once
    it has been closed, with that moment as `created_at`. This follows HIPAA
    §164.316(b)(2)(i), which counts six years "from the date of its creation or the date when
    it last was in effect, whichever is later"; a consent still in force is never purged.

Boundary
    keep_days are whole 24-hour days in UTC (no calendar arithmetic). A record becomes due at
    `created_at + keep_days` and stays due:
    `due <=> created_at + keep_days <= now <=> created_at <= expiry_cutoff(policy, now)`.
    keep_days = 0 makes a record due as soon as it exists; a record stamped in the future is
    not due. Storage selects candidates with `created_at <= :cutoff`, which gives the same set.

Actions (`ALLOWED_ACTIONS`)
    Every category may be deleted. Only two may be anonymised, because only for them does a
    record without its person still mean something:
    - `session_meta`: drop the link to the client, keep times and status, so the clinic's
      statistics (sessions held, no-shows, durations) survive.
    - `account`: keep a tombstone (id and role; name, e-mail and password hash removed) so
      audit entries naming that actor still resolve.
    Check-in answers, cue summaries and signal events of a pseudonymous client in a small
    practice are re-identifiable by time and therapist, so they are deleted, not "anonymised".
    A consent record without its subject proves nothing. Audit entries cannot be altered
    without breaking the hash chain.
    An anonymised record (`Record.anonymized`) is not anonymised again; under a `delete` policy
    it is deleted like any other.

Legal holds
    A hold names a client. While it is active (`placed_at <= now < released_at`), no record of
    that client is purged, whatever its category. Records without a client are never held.

Audit entries: only whole prefixes of the chain
    `attune audit verify` walks `hash_i = SHA-256(hash_{i-1} || entry_i)`, so audit entries are
    purged only as a prefix, never with a gap:
    1. `due_for_purge` returns audit entries in chain order (created_at, then record_id) up to
       the first one that is not due or whose client is on hold: a hold on one entry keeps every
       later entry as well.
    2. The adapter maps the decisions to sequence numbers and deletes `seq <= k`, where k is the
       largest sequence number such that every entry up to k is in the decision set (should the
       server clock ever have stepped back, time order and sequence order differ; it then
       deletes less, never a gap).
    3. In the same transaction, before deleting, it signs an anchor over (k, hash_k) with the
       audit key (Ed25519) under its own domain label (e.g. b"attune-audit-anchor-v1", not the
       checkpoint label, so an ordinary checkpoint can never be passed off as permission to
       drop what precedes it), then deletes, then appends an `audit.purged` entry naming k.
       `verify` starts at the newest anchor instead of genesis: it checks the anchor's
       signature, expects entry k+1 with prev_hash = hash_k, and walks on as before
       (`privacy.audit.verify_chain` needs that optional starting anchor). A prefix removed
       without an anchor, or past it, still fails `verify`, so truncation stays detectable.
       Anchors hold no personal data and are never purged.

Floors
    `consent` and `audit` must be kept at least 2192 days (6 years, HIPAA §164.316(b)(2)(i)).
    A shorter policy needs `floor_override_reason`; `validate_policy` then returns a warning
    naming the rule it departs from, and `due_for_purge` refuses policies that break a floor
    without one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

MAX_KEEP_DAYS = 36_500  # 100 years: anything longer is a typing mistake, not a policy


class Category(StrEnum):
    """A kind of stored data with its own retention policy (DESIGN.md §4)."""

    SESSION_META = "session_meta"
    CHECKIN = "checkin"
    CUE = "cue"
    SIGNAL = "signal"
    CONSENT = "consent"
    AUDIT = "audit"
    ACCOUNT = "account"
    CONTACT = "contact"
    OUTBOX = "outbox"
    SAFETY = "safety"
    MEASURE = "measure"
    GOAL = "goal"


class Action(StrEnum):
    """What happens to a record once its retention period has passed."""

    DELETE = "delete"
    ANONYMIZE = "anonymize"


class PolicyError(ValueError):
    """A retention policy that must not be saved or applied."""


ALLOWED_ACTIONS: Mapping[Category, frozenset[Action]] = {
    Category.SESSION_META: frozenset({Action.DELETE, Action.ANONYMIZE}),
    Category.CHECKIN: frozenset({Action.DELETE}),
    Category.CUE: frozenset({Action.DELETE}),
    Category.SIGNAL: frozenset({Action.DELETE}),
    Category.CONSENT: frozenset({Action.DELETE}),
    Category.AUDIT: frozenset({Action.DELETE}),
    Category.ACCOUNT: frozenset({Action.DELETE, Action.ANONYMIZE}),
    Category.CONTACT: frozenset({Action.DELETE}),
    Category.OUTBOX: frozenset({Action.DELETE}),
    Category.SAFETY: frozenset({Action.DELETE}),
    Category.MEASURE: frozenset({Action.DELETE}),
    Category.GOAL: frozenset({Action.DELETE}),
}


@dataclass(frozen=True, slots=True)
class Floor:
    """A minimum retention period and the rule that imposes it."""

    keep_days: int
    rule: str


_SIX_YEARS_HIPAA = "6 years, HIPAA §164.316(b)(2)(i) documentation rule"

FLOORS: Mapping[Category, Floor] = {
    Category.CONSENT: Floor(keep_days=2192, rule=_SIX_YEARS_HIPAA),
    Category.AUDIT: Floor(keep_days=2192, rule=_SIX_YEARS_HIPAA),
}


def _require_utc(name: str, value: datetime) -> None:
    """Refuse naive or non-UTC datetimes: retention arithmetic is done in UTC only."""
    if value.tzinfo is None or value.utcoffset() != timedelta(0):
        raise ValueError(f"{name} must be a timezone-aware UTC datetime, got {value!r}")


@dataclass(frozen=True, slots=True)
class Policy:
    """How long one category is kept and what happens to it afterwards."""

    category: Category
    keep_days: int
    action: Action
    floor_override_reason: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.category, Category):
            raise PolicyError(f"unknown category {self.category!r}")
        if not isinstance(self.action, Action):
            raise PolicyError(f"unknown action {self.action!r}")
        # bool is an int subclass; True days is a bug, not a policy
        if isinstance(self.keep_days, bool) or not isinstance(self.keep_days, int):
            raise PolicyError(f"keep_days must be an integer, got {self.keep_days!r}")
        if not 0 <= self.keep_days <= MAX_KEEP_DAYS:
            raise PolicyError(
                f"keep_days must be between 0 and {MAX_KEEP_DAYS}, got {self.keep_days}"
            )
        if self.floor_override_reason is not None and not self.floor_override_reason.strip():
            raise PolicyError("a floor override needs a reason; it must not be blank")


DEFAULT_POLICIES: Mapping[Category, Policy] = {
    Category.SESSION_META: Policy(Category.SESSION_META, 3653, Action.ANONYMIZE),
    Category.CHECKIN: Policy(Category.CHECKIN, 3653, Action.DELETE),
    Category.CUE: Policy(Category.CUE, 30, Action.DELETE),
    Category.SIGNAL: Policy(Category.SIGNAL, 90, Action.DELETE),
    Category.CONSENT: Policy(Category.CONSENT, 2192, Action.DELETE),
    Category.AUDIT: Policy(Category.AUDIT, 2192, Action.DELETE),
    Category.ACCOUNT: Policy(Category.ACCOUNT, 2192, Action.ANONYMIZE),
    Category.CONTACT: Policy(Category.CONTACT, 730, Action.DELETE),
    Category.OUTBOX: Policy(Category.OUTBOX, 30, Action.DELETE),
    Category.SAFETY: Policy(Category.SAFETY, 90, Action.DELETE),
    Category.MEASURE: Policy(Category.MEASURE, 3653, Action.DELETE),
    Category.GOAL: Policy(Category.GOAL, 3653, Action.DELETE),
}

DEFAULT_REASONS: Mapping[Category, str] = {
    Category.SESSION_META: (
        "Dates of service are part of the clinical record; 10 years covers the longer common "
        "adult rules (APA guidance: 7 years after last service; several jurisdictions: 10). "
        "Then the link to the client is dropped and the counts stay for the clinic's statistics."
    ),
    Category.CHECKIN: (
        "Stored check-in answers and scores inform treatment like session notes and belong to "
        "the clinical record, so they are kept as long as notes (10 years) and then deleted. "
        "Minors may need longer (until majority plus a period): use a hold or a longer policy."
    ),
    Category.CUE: (
        "Cue feature summaries and prompts are only useful for the session summary and for "
        "tuning a pair's baseline over the next few sessions; 30 days, then deleted."
    ),
    Category.SIGNAL: (
        "Client signal events are shown live and in the session summary; 90 days lets the "
        "therapist look back over a few sessions. What matters clinically goes into the notes."
    ),
    Category.CONSENT: (
        "Consent must stay demonstrable: 6 years after it was withdrawn or superseded, the "
        "HIPAA documentation floor (§164.316(b)(2)(i))."
    ),
    Category.AUDIT: (
        "Audit entries show who did what with whose data: 6 years, the HIPAA documentation "
        "floor (§164.316(b)(2)(i)); purged only as a prefix behind a signed anchor checkpoint."
    ),
    Category.ACCOUNT: (
        "A closed account is kept 6 years to answer questions about what its holder accessed, "
        "then reduced to a tombstone (id and role) so audit entries still resolve."
    ),
    Category.CONTACT: (
        "A client's email address is kept only while they want reminders: withdrawing the "
        "consent or removing it deletes it at once; an address not saved again for 2 years is "
        "likely stale and is deleted (the client can add it again on their visit page)."
    ),
    Category.OUTBOX: (
        "Emails carry an address and a join link but no clinical content; 30 days lets the "
        "therapist see whether a message went out, and whether a reminder was sent, then "
        "they are deleted."
    ),
    Category.SAFETY: (
        "Where a client was, whether they could talk freely and whom to call matter for the "
        "session itself; a trail of a client's whereabouts is a risk of its own. 90 days "
        "covers the next few sessions' prefill and any follow-up on an incident; what matters "
        "for the record (an emergency, a jurisdiction) goes into the therapist's notes."
    ),
    Category.MEASURE: (
        "Outcome measures (PHQ-9, GAD-7) and the record of their safety alerts are clinical "
        "assessments in the clinical record, so they are kept as long as notes (10 years) and "
        "then deleted. Minors may need longer: use a hold or a longer policy."
    ),
    Category.GOAL: (
        "Shared goals, their history and the progress answers are part of the clinical record "
        "(set together in sessions and reviewed over the course of therapy), so they are kept "
        "as long as check-ins and notes (10 years after the last change), then deleted."
    ),
}


def validate_policy(policy: Policy) -> list[str]:
    """Check a policy against its category's rules: raise PolicyError, else return warnings."""
    allowed = ALLOWED_ACTIONS[policy.category]
    if policy.action not in allowed:
        allowed_text = ", ".join(sorted(allowed))
        raise PolicyError(
            f"{policy.category} records cannot be handled with {policy.action!s} "
            f"(allowed: {allowed_text})"
        )
    warnings: list[str] = []
    floor = FLOORS.get(policy.category)
    reason = policy.floor_override_reason
    if floor is not None and policy.keep_days < floor.keep_days:
        if reason is None:
            raise PolicyError(
                f"{policy.category} records must be kept at least {floor.keep_days} days "
                f"({floor.rule}); pass an override with a reason to depart from it"
            )
        warnings.append(
            f"{policy.category} records kept {policy.keep_days} days, below the floor of "
            f"{floor.keep_days} days ({floor.rule}); overridden because: {reason.strip()}"
        )
    elif reason is not None:
        why = "has no floor" if floor is None else "already meets its floor"
        warnings.append(f"floor override reason ignored: {policy.category} policy {why}")
    if policy.category is Category.ACCOUNT and policy.action is Action.DELETE:
        warnings.append(
            "deleting accounts leaves audit entries naming actors that no longer resolve; "
            "anonymize keeps a tombstone"
        )
    return warnings


@dataclass(frozen=True, slots=True)
class Record:
    """Retention metadata of one stored record (never its content)."""

    category: Category
    record_id: str
    client_id: str | None
    created_at: datetime  # when the retention clock starts; see the module docstring
    anonymized: bool = False

    def __post_init__(self) -> None:
        _require_utc("Record.created_at", self.created_at)
        if self.anonymized and Action.ANONYMIZE not in ALLOWED_ACTIONS[self.category]:
            raise ValueError(f"{self.category} records cannot be anonymized")


@dataclass(frozen=True, slots=True)
class Hold:
    """A legal hold: while active, nothing of this client is purged."""

    client_id: str
    placed_by: str
    reason: str
    placed_at: datetime
    released_at: datetime | None = None

    def __post_init__(self) -> None:
        _require_utc("Hold.placed_at", self.placed_at)
        if not self.reason.strip():
            raise ValueError("a legal hold needs a reason")
        if self.released_at is not None:
            _require_utc("Hold.released_at", self.released_at)
            if self.released_at < self.placed_at:
                raise ValueError("a hold cannot be released before it was placed")

    def is_active(self, now: datetime) -> bool:
        """Whether the hold protects its client's records at `now` (placed, not yet released)."""
        return self.placed_at <= now and (self.released_at is None or self.released_at > now)


@dataclass(frozen=True, slots=True)
class PurgeDecision:
    """One record to delete or anonymise now, with the reason for the purge report."""

    record_id: str
    category: Category
    action: Action
    client_id: str | None
    reason: str


def expiry_cutoff(policy: Policy, now: datetime) -> datetime:
    """The newest `created_at` that is due at `now`: storage selects `created_at <= cutoff`."""
    _require_utc("now", now)
    return now - timedelta(days=policy.keep_days)


def _check_policies(policies: Mapping[Category, Policy]) -> None:
    """Refuse to purge under a policy that is filed wrongly or breaks a floor."""
    for category, policy in policies.items():
        if policy.category is not category:
            raise PolicyError(f"policy for {policy.category} is filed under {category}")
        validate_policy(policy)


def _decide(record: Record, policy: Policy) -> PurgeDecision:
    """The decision for a record already known to be due."""
    due_at = record.created_at + timedelta(days=policy.keep_days)
    return PurgeDecision(
        record_id=record.record_id,
        category=record.category,
        action=policy.action,
        client_id=record.client_id,
        reason=(
            f"{record.category} kept {policy.keep_days} days: created "
            f"{record.created_at.isoformat()}, due since {due_at.isoformat()}"
        ),
    )


def _chain_order(record: Record) -> tuple[datetime, str]:
    return (record.created_at, record.record_id)


_CATEGORY_ORDER = {category: index for index, category in enumerate(Category)}


def due_for_purge(
    records: Iterable[Record],
    policies: Mapping[Category, Policy],
    holds: Iterable[Hold],
    now: datetime,
) -> list[PurgeDecision]:
    """Decide what to delete or anonymise at `now`, oldest first; records without a policy stay."""
    _require_utc("now", now)
    _check_policies(policies)
    cutoffs = {category: expiry_cutoff(policy, now) for category, policy in policies.items()}
    held_clients = {hold.client_id for hold in holds if hold.is_active(now)}

    def is_held(record: Record) -> bool:
        return record.client_id is not None and record.client_id in held_clients

    decided: list[tuple[Record, PurgeDecision]] = []
    audit_chain: list[Record] = []
    for record in records:
        policy = policies.get(record.category)
        if policy is None:
            continue
        if record.anonymized and policy.action is Action.ANONYMIZE:
            continue
        if record.category is Category.AUDIT:
            audit_chain.append(record)  # decided below, as a prefix
        elif record.created_at <= cutoffs[record.category] and not is_held(record):
            decided.append((record, _decide(record, policy)))

    if audit_chain:
        audit_policy = policies[Category.AUDIT]
        for record in sorted(audit_chain, key=_chain_order):
            if record.created_at > cutoffs[Category.AUDIT] or is_held(record):
                break  # the first entry that stays keeps every later one: no gaps
            decided.append((record, _decide(record, audit_policy)))

    # category by category, oldest first (for audit entries: chain order)
    decided.sort(key=lambda pair: (_CATEGORY_ORDER[pair[0].category], *_chain_order(pair[0])))
    return [decision for _, decision in decided]


def summarize(decisions: Iterable[PurgeDecision]) -> dict[tuple[Category, Action], int]:
    """Count decisions per (category, action), e.g. for the dry-run preview."""
    counts = Counter((decision.category, decision.action) for decision in decisions)
    return {
        key: counts[key]
        for key in sorted(counts, key=lambda key: (_CATEGORY_ORDER[key[0]], key[1]))
    }

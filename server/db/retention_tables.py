"""Tables of retention: policies, legal holds, purge reports, audit anchors, closed accounts and
anonymised sessions; plus the indexes the purge job's time-ordered scans need.

They live on the shared `metadata` (server/db/tables.py); migration 0004 creates them.
"""

from __future__ import annotations

import sqlalchemy as sa

from server.db.tables import (
    ID,
    UTCDateTime,
    checkin_responses,
    metadata,
    therapy_sessions,
)

SEQ = sa.BigInteger().with_variant(sa.Integer, "sqlite")
REASON = sa.String(500)
PRINCIPAL = sa.String(80)  # "account:<id>", "system:cli", …

retention_policies = sa.Table(
    "retention_policies",
    metadata,
    # A category without a row uses privacy.retention.DEFAULT_POLICIES.
    sa.Column("category", sa.String(32), primary_key=True),
    sa.Column("keep_days", sa.Integer, nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("floor_override_reason", REASON),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("updated_by", PRINCIPAL, nullable=False),
)

legal_holds = sa.Table(
    "legal_holds",
    metadata,
    sa.Column("id", ID, primary_key=True),
    # No foreign key: a hold also protects what outlives the client row (consents, audit).
    sa.Column("client_id", ID, nullable=False, index=True),
    sa.Column("placed_by", PRINCIPAL, nullable=False),
    sa.Column("reason", REASON, nullable=False),
    sa.Column("placed_at", UTCDateTime, nullable=False),
    sa.Column("released_at", UTCDateTime),
    sa.Column("released_by", PRINCIPAL),
    sa.Column("release_reason", REASON),
)

purge_reports = sa.Table(
    "purge_reports",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("started_at", UTCDateTime, nullable=False, index=True),
    sa.Column("finished_at", UTCDateTime),  # NULL: still running, or stopped part way
    sa.Column("duration_ms", sa.Integer),
    sa.Column("trigger", sa.String(16), nullable=False),  # job | cli | api | page
    sa.Column("actor", PRINCIPAL, nullable=False),
    sa.Column("counts", sa.Text, nullable=False),  # JSON {category: {action: n}}, per batch
    sa.Column("keys_destroyed", sa.Integer, nullable=False),
    sa.Column("problems", sa.Text, nullable=False),  # JSON list of strings
)

audit_anchors = sa.Table(
    "audit_anchors",
    metadata,
    # Signed (seq, hash_seq) under the anchor label: entries up to seq were purged. Kept forever.
    sa.Column("seq", SEQ, primary_key=True),
    sa.Column("hash", sa.LargeBinary(32), nullable=False),
    sa.Column("signature", sa.LargeBinary(64), nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
)

account_closures = sa.Table(
    "account_closures",
    metadata,
    # When an admin disabled the account: the `account` retention clock starts here.
    sa.Column("account_id", ID, sa.ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("closed_at", UTCDateTime, nullable=False),
    sa.Column("anonymized_at", UTCDateTime),
)

anonymized_sessions = sa.Table(
    "anonymized_sessions",
    metadata,
    # What stays of a session after `session_meta` anonymisation: no client, a fresh id, the day.
    sa.Column("id", ID, primary_key=True),
    sa.Column("therapist_id", ID, nullable=False),  # no foreign key: statistics outlive accounts
    sa.Column("day", UTCDateTime, nullable=False, index=True),
    sa.Column("planned_minutes", sa.Integer, nullable=False),
    sa.Column("held_minutes", sa.Integer),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("anonymized_at", UTCDateTime, nullable=False),
)

# The purge job walks each table in (time, id) order; these keep every batch an index range.
sa.Index("ix_checkin_responses_retention", checkin_responses.c.submitted_at, checkin_responses.c.id)
sa.Index("ix_therapy_sessions_retention", therapy_sessions.c.ends_at, therapy_sessions.c.id)
# "Has this client any data left?" asks therapy_sessions by client after every batch.
sa.Index("ix_therapy_sessions_client_id", therapy_sessions.c.client_id)

__all__ = [
    "account_closures",
    "anonymized_sessions",
    "audit_anchors",
    "legal_holds",
    "purge_reports",
    "retention_policies",
]

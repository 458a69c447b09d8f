"""SQLAlchemy Core tables. Clinical content lives only in `*_ciphertext` columns (vault)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypeAlias

import sqlalchemy as sa
from sqlalchemy.engine import Dialect


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Stores naive UTC everywhere and always hands back aware UTC datetimes."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; pass an aware UTC datetime")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        parsed: datetime = datetime.fromisoformat(value) if isinstance(value, str) else value
        return parsed.replace(tzinfo=UTC)


AnyRow: TypeAlias = sa.Row[*tuple[Any, ...]]

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

ID = sa.String(32)


def _session_ref() -> sa.Column[str]:
    """The session a row belongs to: required, indexed, deleted with the session."""
    return sa.Column(
        "session_id",
        ID,
        sa.ForeignKey("therapy_sessions.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    )


def _client_ref() -> sa.Column[str]:
    """The client a row belongs to: required, indexed, deleted with the client."""
    return sa.Column(
        "client_id", ID, sa.ForeignKey("clients.id", ondelete="CASCADE"), nullable=False, index=True
    )


accounts = sa.Table(
    "accounts",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("email", sa.String(254), nullable=False, unique=True),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("disabled", sa.Boolean, nullable=False, default=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("password_changed_at", UTCDateTime, nullable=False),
    # Two-factor (TOTP): the secret sealed under the master key (server/security/account_secrets),
    # the one being enrolled until a code confirms it, and the last time step accepted (replay).
    sa.Column("totp_secret_ciphertext", sa.LargeBinary),
    sa.Column("totp_pending_ciphertext", sa.LargeBinary),
    sa.Column("totp_enabled_at", UTCDateTime),
    sa.Column("totp_last_step", sa.BigInteger),
)

auth_sessions = sa.Table(
    "auth_sessions",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    # What the account's own session list names it by (never the token or its hash).
    sa.Column("public_id", ID, nullable=False, unique=True),
    sa.Column("account_id", ID, sa.ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    sa.Column("csrf_token", sa.String(64), nullable=False),
    # "full", or a pending step after the password: "second_factor" or "enrol".
    sa.Column("stage", sa.String(16), nullable=False),
    sa.Column("device", sa.String(80), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("last_seen_at", UTCDateTime, nullable=False),
)

recovery_codes = sa.Table(
    "recovery_codes",
    metadata,
    sa.Column("code_hash", sa.String(64), primary_key=True),
    sa.Column("account_id", ID, sa.ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("used_at", UTCDateTime),
)

password_reset_links = sa.Table(
    "password_reset_links",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("account_id", ID, sa.ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    sa.Column("created_by", ID, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    sa.Column("used_at", UTCDateTime),
)

# Security events an account holder is told about at their next sign-in (and on their
# account page): e.g. "an administrator reset your password".
account_notices = sa.Table(
    "account_notices",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("account_id", ID, sa.ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("seen_at", UTCDateTime),
)

# Deployment-wide switches an admin sets in the console (audited).
app_settings = sa.Table(
    "app_settings",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(255), nullable=False),
    sa.Column("changed_at", UTCDateTime, nullable=False),
    sa.Column("changed_by", sa.String(80), nullable=False),
)

setup_tokens = sa.Table(
    "setup_tokens",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    sa.Column("used_at", UTCDateTime),
)

clients = sa.Table(
    "clients",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column(
        "therapist_id", ID, sa.ForeignKey("accounts.id", ondelete="RESTRICT"), nullable=False
    ),
    sa.Column("alias", sa.String(64), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    # the language the client chose (or their therapist set); None: their browser's
    sa.Column("preferred_language", sa.String(8), nullable=True),
    sa.UniqueConstraint("therapist_id", "alias", name="uq_clients_therapist_alias"),
)

therapy_sessions = sa.Table(
    "therapy_sessions",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column(
        "therapist_id", ID, sa.ForeignKey("accounts.id", ondelete="RESTRICT"), nullable=False
    ),
    sa.Column("client_id", ID, sa.ForeignKey("clients.id", ondelete="CASCADE"), nullable=False),
    sa.Column("starts_at", UTCDateTime, nullable=False),
    sa.Column("ends_at", UTCDateTime, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("ended_at", UTCDateTime),
    sa.Index("ix_therapy_sessions_therapist_starts", "therapist_id", "starts_at"),
)

# The people other than the therapist in a session (issue #15): a client (`client_id`) or a
# guest (interpreter, guardian: a label, vault-encrypted under the session's primary client's
# key, so shredding that client makes it unreadable). `id` is the person's peer id in the room.
session_participants = sa.Table(
    "session_participants",
    metadata,
    sa.Column("id", ID, primary_key=True),
    _session_ref(),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("client_id", ID, sa.ForeignKey("clients.id", ondelete="CASCADE"), index=True),
    sa.Column("label_ciphertext", sa.LargeBinary),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("removed_at", UTCDateTime),
)

invites = sa.Table(
    "invites",
    metadata,
    sa.Column("id", ID, primary_key=True),
    _session_ref(),
    sa.Column(
        "participant_id",
        ID,
        sa.ForeignKey("session_participants.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("revoked_at", UTCDateTime),
    sa.Column("first_redeemed_at", UTCDateTime),
)

client_sessions = sa.Table(
    "client_sessions",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    _session_ref(),
    sa.Column("invite_id", ID, sa.ForeignKey("invites.id", ondelete="CASCADE"), nullable=False),
    sa.Column(
        "participant_id",
        ID,
        sa.ForeignKey("session_participants.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("csrf_token", sa.String(64), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    # Opened while another cookie of the link was live: it waits as "another device" and may
    # not act for the client until the therapist admits it (which ends the other cookies).
    sa.Column("another_device", sa.Boolean, nullable=False, server_default=sa.false()),
)

# --- privacy: vault, consent, audit ---------------------------------------------------------

data_keys = sa.Table(
    "data_keys",
    metadata,
    # No foreign key: shredding deletes the key first, then the client's rows.
    sa.Column("client_id", ID, primary_key=True),
    sa.Column("key_version", sa.Integer, nullable=False),
    sa.Column("master_version", sa.Integer, nullable=False),
    sa.Column("wrapped_key", sa.LargeBinary, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

notices = sa.Table(
    "notices",
    metadata,
    sa.Column("purpose", sa.String(32), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("title", sa.String(200), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("published_at", UTCDateTime, nullable=False),
    sa.Column("published_by", sa.String(64), nullable=False),
)

consent_records = sa.Table(
    "consent_records",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("client_id", ID, nullable=False, index=True),
    sa.Column("purpose", sa.String(32), nullable=False),
    sa.Column("notice_version", sa.Integer, nullable=False),
    sa.Column("notice_sha256", sa.String(64), nullable=False),
    sa.Column("decision", sa.String(16), nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("subject", sa.String(16), nullable=False),
    sa.Column("triggered", sa.Text, nullable=False, default="[]"),
    sa.Column("notice_language", sa.String(8), nullable=False, server_default="en"),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("actor", sa.String(80), nullable=False),
    sa.Column("action", sa.String(64), nullable=False, index=True),
    sa.Column("targets", sa.Text, nullable=False),
    sa.Column("details", sa.Text, nullable=False),
    sa.Column("prev_hash", sa.LargeBinary(32), nullable=False),
    sa.Column("hash", sa.LargeBinary(32), nullable=False),
)

audit_checkpoints = sa.Table(
    "audit_checkpoints",
    metadata,
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("hash", sa.LargeBinary(32), nullable=False),
    sa.Column("signature", sa.LargeBinary(64), nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
)

# --- clinical content (ciphertext only; see server/vault_store.py) ---------------------------

client_notes = sa.Table(
    "client_notes",
    metadata,
    sa.Column("id", ID, primary_key=True),
    _client_ref(),
    sa.Column(
        "therapist_id", ID, sa.ForeignKey("accounts.id", ondelete="RESTRICT"), nullable=False
    ),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("body_ciphertext", sa.LargeBinary, nullable=False),
)

checkin_responses = sa.Table(
    "checkin_responses",
    metadata,
    sa.Column("id", ID, primary_key=True),
    _session_ref(),
    _client_ref(),
    sa.Column("instrument_id", sa.String(64), nullable=False),
    sa.Column("instrument_version", sa.String(32), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("idempotency_key", sa.String(64), nullable=False),
    # Metadata in clear for retention; answers, scores and alerts only as ciphertext.
    sa.Column("submitted_at", UTCDateTime, nullable=False),
    sa.Column("payload_ciphertext", sa.LargeBinary, nullable=False),
    sa.UniqueConstraint("session_id", "idempotency_key", name="uq_checkin_responses_idempotency"),
)


def _clinical_event_table(name: str) -> sa.Table:
    """A per-session clinical record: metadata in clear for retention, content as ciphertext."""
    return sa.Table(
        name,
        metadata,
        sa.Column("id", ID, primary_key=True),
        _session_ref(),
        _client_ref(),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("payload_ciphertext", sa.LargeBinary, nullable=False),
        # The purge job walks these tables oldest first.
        sa.Index(f"ix_{name}_created_at_id", "created_at", "id"),
    )


# Cue prompts with the therapist's feedback, and the after-session cue summary (category `cue`).
cue_prompts = _clinical_event_table("cue_prompts")
cue_summaries = _clinical_event_table("cue_summaries")
# The client's nonverbal signal buttons (category `signal`).
signal_events = _clinical_event_table("signal_events")

# The client's safety check before the waiting room (category `safety`): one per session, the
# newest answers; where they are, whether they can talk freely, an emergency contact and an
# optional code word, only as ciphertext.
safety_checks = sa.Table(
    "safety_checks",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column(
        "session_id",
        ID,
        sa.ForeignKey("therapy_sessions.id", ondelete="CASCADE"),
        nullable=False,
        unique=True,
    ),
    _client_ref(),
    sa.Column("submitted_at", UTCDateTime, nullable=False),
    sa.Column("payload_ciphertext", sa.LargeBinary, nullable=False),
    # The purge job walks the table oldest first.
    sa.Index("ix_safety_checks_submitted_at_id", "submitted_at", "id"),
)

# --- email: contacts, sealed invite tokens, the outbox (docs/privacy.md "Email") -------------

# A client's email address (category `contact`, by the `contact` consent), vault-encrypted.
client_contacts = sa.Table(
    "client_contacts",
    metadata,
    sa.Column("client_id", ID, sa.ForeignKey("clients.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("email_ciphertext", sa.LargeBinary, nullable=False),
    sa.Column("reminders", sa.Boolean, nullable=False, default=True),
    sa.Column("unsubscribe_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

# The invite token sealed under the client's data key while the link stands, so reminders
# can carry a working link although `invites` keeps only the token's hash.
invite_seals = sa.Table(
    "invite_seals",
    metadata,
    sa.Column("invite_id", ID, sa.ForeignKey("invites.id", ondelete="CASCADE"), primary_key=True),
    _session_ref(),
    sa.Column("client_id", ID, nullable=False),
    sa.Column("token_ciphertext", sa.LargeBinary, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

# Messages to send (category `outbox`): queued in the transaction of their cause, sent by the
# email job. The whole message (address, link, calendar file) is vault-encrypted.
email_outbox = sa.Table(
    "email_outbox",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("dedupe_key", sa.String(160), nullable=False, unique=True),
    sa.Column("kind", sa.String(24), nullable=False),
    sa.Column("client_id", ID, sa.ForeignKey("clients.id", ondelete="CASCADE"), nullable=False),
    sa.Column(
        "session_id",
        ID,
        sa.ForeignKey("therapy_sessions.id", ondelete="CASCADE"),
        index=True,
    ),
    sa.Column("therapist_id", ID, nullable=False, index=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("ics_sequence", sa.Integer),
    sa.Column("send_after", UTCDateTime, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("lease_id", sa.String(32)),
    sa.Column("lease_until", UTCDateTime),
    sa.Column("last_error", sa.String(200)),
    sa.Column("message_id", sa.String(200), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("sent_at", UTCDateTime),
    sa.Column("message_ciphertext", sa.LargeBinary, nullable=False),
    sa.Index("ix_email_outbox_status_send_after", "status", "send_after"),
    sa.Index("ix_email_outbox_created_at_id", "created_at", "id"),
)

# A therapist's choice to be told by email about alerts raised while they are not in the room.
therapist_email_prefs = sa.Table(
    "therapist_email_prefs",
    metadata,
    sa.Column("account_id", ID, sa.ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("alerts", sa.Boolean, nullable=False, default=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

# --- outcome measures (category `measure`; docs/checkins.md "Outcome measures") -------------

# A client's answers to a PHQ-9 or GAD-7, with their score and safety alert, vault-encrypted.
# Part of the clinical record: kept whatever the optional consents say (docs/privacy.md).
measure_responses = sa.Table(
    "measure_responses",
    metadata,
    sa.Column("id", ID, primary_key=True),
    _session_ref(),
    _client_ref(),
    sa.Column("measure_id", sa.String(64), nullable=False),
    sa.Column("measure_version", sa.String(32), nullable=False),
    sa.Column("idempotency_key", sa.String(64), nullable=False),
    sa.Column("submitted_at", UTCDateTime, nullable=False),
    sa.Column("payload_ciphertext", sa.LargeBinary, nullable=False),
    # answered from an emailed link between sessions (filed under the latest session)
    sa.Column("by_link", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.UniqueConstraint("session_id", "idempotency_key", name="uq_measure_responses_idempotency"),
    sa.Index("ix_measure_responses_submitted_at_id", "submitted_at", "id"),
)

# The minimal record of a safety alert (which measure, when, whether the therapist has seen
# it): no answers, no text. Listed on the therapist's dashboard until marked seen.
measure_alerts = sa.Table(
    "measure_alerts",
    metadata,
    sa.Column("id", ID, primary_key=True),
    _session_ref(),
    _client_ref(),
    sa.Column("therapist_id", ID, nullable=False, index=True),
    sa.Column("response_id", ID, nullable=False, unique=True),
    sa.Column("measure_id", sa.String(64), nullable=False),
    sa.Column("raised_at", UTCDateTime, nullable=False),
    sa.Column("seen_at", UTCDateTime),
    sa.Index("ix_measure_alerts_raised_at_id", "raised_at", "id"),
)

# Which measures a therapist asks a client, and how often (the therapist's configuration, not
# the client's data: it goes with the client row).
measure_plans = sa.Table(
    "measure_plans",
    metadata,
    sa.Column("client_id", ID, sa.ForeignKey("clients.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("measures", sa.String(200), nullable=False),  # comma-separated measure ids
    sa.Column("frequency", sa.String(24), nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

# An emailed link to answer due measures between sessions (docs/checkins.md "Between
# sessions"): only the hashes of its emailed token and of the cookie it is swapped for.
measure_links = sa.Table(
    "measure_links",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column(
        "client_id", ID, sa.ForeignKey("clients.id", ondelete="CASCADE"), nullable=False, index=True
    ),
    # the session the answers are filed under: the client's latest that had started
    sa.Column(
        "session_id", ID, sa.ForeignKey("therapy_sessions.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("measures", sa.String(200), nullable=False),  # comma-separated measure ids
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("cookie_hash", sa.String(64), unique=True),
    sa.Column("csrf_token", sa.String(64)),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    sa.Column("opened_at", UTCDateTime),
    sa.Column("finished_at", UTCDateTime),
    sa.Column("revoked_at", UTCDateTime),
)

# Shared goals (issue #18): the client's words only as ciphertext; status and times in clear.
client_goals = sa.Table(
    "client_goals",
    metadata,
    sa.Column("id", ID, primary_key=True),
    _client_ref(),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("updated_by", sa.String(16), nullable=False),
    sa.Column("text_ciphertext", sa.LargeBinary, nullable=False),
)

# A goal's history: who changed it, how and when (never its text).
goal_changes = sa.Table(
    "goal_changes",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column(
        "goal_id",
        ID,
        sa.ForeignKey("client_goals.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    _client_ref(),
    sa.Column("session_id", ID, sa.ForeignKey("therapy_sessions.id", ondelete="SET NULL")),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("by", sa.String(16), nullable=False),
    sa.Column("change", sa.String(16), nullable=False),
)

# Progress on a goal (0–10) from the after-session check-in, stored like check-ins.
goal_progress = sa.Table(
    "goal_progress",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column(
        "goal_id",
        ID,
        sa.ForeignKey("client_goals.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    _client_ref(),
    _session_ref(),
    sa.Column("idempotency_key", sa.String(64), nullable=False),
    sa.Column("submitted_at", UTCDateTime, nullable=False),
    sa.Column("payload_ciphertext", sa.LargeBinary, nullable=False),
    sa.UniqueConstraint(
        "session_id", "idempotency_key", "goal_id", name="uq_goal_progress_idempotency"
    ),
)

# Whether a client sees their own progress page; the therapist's reason only as ciphertext.
progress_views = sa.Table(
    "progress_views",
    metadata,
    sa.Column("client_id", ID, sa.ForeignKey("clients.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("shown", sa.Boolean, nullable=False),
    sa.Column("changed_at", UTCDateTime, nullable=False),
    sa.Column("reason_ciphertext", sa.LargeBinary),
)

"""retention: policies, legal holds, purge reports, audit anchors, account closures,
anonymised sessions, and time indexes for the purge job

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_SEQ = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "retention_policies",
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("keep_days", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("floor_override_reason", sa.String(length=500), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("updated_by", sa.String(length=80), nullable=False),
        sa.PrimaryKeyConstraint("category", name=op.f("pk_retention_policies")),
    )
    op.create_table(
        "legal_holds",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("client_id", sa.String(length=32), nullable=False),
        sa.Column("placed_by", sa.String(length=80), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("placed_at", sa.DateTime(), nullable=False),
        sa.Column("released_at", sa.DateTime(), nullable=True),
        sa.Column("released_by", sa.String(length=80), nullable=True),
        sa.Column("release_reason", sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_legal_holds")),
    )
    op.create_index(op.f("ix_legal_holds_client_id"), "legal_holds", ["client_id"])
    op.create_table(
        "purge_reports",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=80), nullable=False),
        sa.Column("counts", sa.Text(), nullable=False),
        sa.Column("keys_destroyed", sa.Integer(), nullable=False),
        sa.Column("problems", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_purge_reports")),
    )
    op.create_index(op.f("ix_purge_reports_started_at"), "purge_reports", ["started_at"])
    op.create_table(
        "audit_anchors",
        sa.Column("seq", _SEQ, nullable=False),
        sa.Column("hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("signature", sa.LargeBinary(length=64), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_anchors")),
    )
    op.create_table(
        "account_closures",
        sa.Column("account_id", sa.String(length=32), nullable=False),
        sa.Column("closed_at", sa.DateTime(), nullable=False),
        sa.Column("anonymized_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_account_closures_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_account_closures")),
    )
    op.create_table(
        "anonymized_sessions",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("therapist_id", sa.String(length=32), nullable=False),
        sa.Column("day", sa.DateTime(), nullable=False),
        sa.Column("planned_minutes", sa.Integer(), nullable=False),
        sa.Column("held_minutes", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("anonymized_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_anonymized_sessions")),
    )
    op.create_index(op.f("ix_anonymized_sessions_day"), "anonymized_sessions", ["day"])
    op.create_index("ix_checkin_responses_retention", "checkin_responses", ["submitted_at", "id"])
    op.create_index("ix_therapy_sessions_retention", "therapy_sessions", ["ends_at", "id"])
    op.create_index("ix_therapy_sessions_client_id", "therapy_sessions", ["client_id"])


def downgrade() -> None:
    op.drop_index("ix_therapy_sessions_client_id", table_name="therapy_sessions")
    op.drop_index("ix_therapy_sessions_retention", table_name="therapy_sessions")
    op.drop_index("ix_checkin_responses_retention", table_name="checkin_responses")
    op.drop_table("anonymized_sessions")
    op.drop_table("account_closures")
    op.drop_table("audit_anchors")
    op.drop_table("purge_reports")
    op.drop_table("legal_holds")
    op.drop_table("retention_policies")

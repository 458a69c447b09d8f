"""outcome measures: their own table (category `measure`), safety-alert records and the
therapist's per-client plan of which measures to ask and how often

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column],
        [f"{target}.id"],
        name=op.f(f"fk_{table}_{column}_{target}"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "measure_responses",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("session_id", sa.String(length=32), nullable=False),
        sa.Column("client_id", sa.String(length=32), nullable=False),
        sa.Column("measure_id", sa.String(length=64), nullable=False),
        sa.Column("measure_version", sa.String(length=32), nullable=False),
        sa.Column("idempotency_key", sa.String(length=64), nullable=False),
        sa.Column("submitted_at", sa.DateTime(), nullable=False),
        sa.Column("payload_ciphertext", sa.LargeBinary(), nullable=False),
        _fk("measure_responses", "session_id", "therapy_sessions"),
        _fk("measure_responses", "client_id", "clients"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_measure_responses")),
        sa.UniqueConstraint(
            "session_id", "idempotency_key", name="uq_measure_responses_idempotency"
        ),
    )
    op.create_index(op.f("ix_measure_responses_session_id"), "measure_responses", ["session_id"])
    op.create_index(op.f("ix_measure_responses_client_id"), "measure_responses", ["client_id"])
    op.create_index(
        "ix_measure_responses_submitted_at_id", "measure_responses", ["submitted_at", "id"]
    )
    op.create_table(
        "measure_alerts",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("session_id", sa.String(length=32), nullable=False),
        sa.Column("client_id", sa.String(length=32), nullable=False),
        sa.Column("therapist_id", sa.String(length=32), nullable=False),
        sa.Column("response_id", sa.String(length=32), nullable=False),
        sa.Column("measure_id", sa.String(length=64), nullable=False),
        sa.Column("raised_at", sa.DateTime(), nullable=False),
        sa.Column("seen_at", sa.DateTime(), nullable=True),
        _fk("measure_alerts", "session_id", "therapy_sessions"),
        _fk("measure_alerts", "client_id", "clients"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_measure_alerts")),
        sa.UniqueConstraint("response_id", name=op.f("uq_measure_alerts_response_id")),
    )
    op.create_index(op.f("ix_measure_alerts_session_id"), "measure_alerts", ["session_id"])
    op.create_index(op.f("ix_measure_alerts_client_id"), "measure_alerts", ["client_id"])
    op.create_index(op.f("ix_measure_alerts_therapist_id"), "measure_alerts", ["therapist_id"])
    op.create_index("ix_measure_alerts_raised_at_id", "measure_alerts", ["raised_at", "id"])
    op.create_table(
        "measure_plans",
        sa.Column("client_id", sa.String(length=32), nullable=False),
        sa.Column("measures", sa.String(length=200), nullable=False),
        sa.Column("frequency", sa.String(length=24), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        _fk("measure_plans", "client_id", "clients"),
        sa.PrimaryKeyConstraint("client_id", name=op.f("pk_measure_plans")),
    )


def downgrade() -> None:
    op.drop_table("measure_plans")
    op.drop_index("ix_measure_alerts_raised_at_id", table_name="measure_alerts")
    op.drop_index(op.f("ix_measure_alerts_therapist_id"), table_name="measure_alerts")
    op.drop_index(op.f("ix_measure_alerts_client_id"), table_name="measure_alerts")
    op.drop_index(op.f("ix_measure_alerts_session_id"), table_name="measure_alerts")
    op.drop_table("measure_alerts")
    op.drop_index("ix_measure_responses_submitted_at_id", table_name="measure_responses")
    op.drop_index(op.f("ix_measure_responses_client_id"), table_name="measure_responses")
    op.drop_index(op.f("ix_measure_responses_session_id"), table_name="measure_responses")
    op.drop_table("measure_responses")

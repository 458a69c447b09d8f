"""safety checks: the client's answers before the waiting room, one per session, encrypted

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "safety_checks",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("session_id", sa.String(length=32), nullable=False),
        sa.Column("client_id", sa.String(length=32), nullable=False),
        sa.Column("submitted_at", sa.DateTime(), nullable=False),
        sa.Column("payload_ciphertext", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["therapy_sessions.id"],
            name=op.f("fk_safety_checks_session_id_therapy_sessions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_safety_checks_client_id_clients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_safety_checks")),
        sa.UniqueConstraint("session_id", name=op.f("uq_safety_checks_session_id")),
    )
    with op.batch_alter_table("safety_checks") as batch:
        batch.create_index(batch.f("ix_safety_checks_client_id"), ["client_id"])
        batch.create_index("ix_safety_checks_submitted_at_id", ["submitted_at", "id"])


def downgrade() -> None:
    op.drop_table("safety_checks")

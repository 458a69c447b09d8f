"""cue prompts, cue summaries and client signal events (ciphertext payloads)

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TABLES = ("cue_prompts", "cue_summaries", "signal_events")


def upgrade() -> None:
    for name in TABLES:
        op.create_table(
            name,
            sa.Column("id", sa.String(length=32), nullable=False),
            sa.Column("session_id", sa.String(length=32), nullable=False),
            sa.Column("client_id", sa.String(length=32), nullable=False),
            sa.Column("created_at", sa.DateTime(), nullable=False),
            sa.Column("payload_ciphertext", sa.LargeBinary(), nullable=False),
            sa.ForeignKeyConstraint(
                ["session_id"],
                ["therapy_sessions.id"],
                name=op.f(f"fk_{name}_session_id_therapy_sessions"),
                ondelete="CASCADE",
            ),
            sa.ForeignKeyConstraint(
                ["client_id"],
                ["clients.id"],
                name=op.f(f"fk_{name}_client_id_clients"),
                ondelete="CASCADE",
            ),
            sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{name}")),
        )
        with op.batch_alter_table(name) as batch:
            batch.create_index(batch.f(f"ix_{name}_session_id"), ["session_id"])
            batch.create_index(batch.f(f"ix_{name}_client_id"), ["client_id"])
            batch.create_index(f"ix_{name}_created_at_id", ["created_at", "id"])


def downgrade() -> None:
    for name in TABLES:
        op.drop_table(name)

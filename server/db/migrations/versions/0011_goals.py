"""shared goals: client_goals, goal_changes, goal_progress, progress_views (issue #18)

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def _fk(table: str, column: str, target: str, ondelete: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column],
        [f"{target}.id"],
        name=op.f(f"fk_{table}_{column}_{target}"),
        ondelete=ondelete,
    )


def upgrade() -> None:
    op.create_table(
        "client_goals",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("client_id", sa.String(length=32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("updated_by", sa.String(length=16), nullable=False),
        sa.Column("text_ciphertext", sa.LargeBinary(), nullable=False),
        _fk("client_goals", "client_id", "clients", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_client_goals")),
    )
    op.create_index(op.f("ix_client_goals_client_id"), "client_goals", ["client_id"])
    op.create_table(
        "goal_changes",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("goal_id", sa.String(length=32), nullable=False),
        sa.Column("client_id", sa.String(length=32), nullable=False),
        sa.Column("session_id", sa.String(length=32), nullable=True),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("by", sa.String(length=16), nullable=False),
        sa.Column("change", sa.String(length=16), nullable=False),
        _fk("goal_changes", "goal_id", "client_goals", "CASCADE"),
        _fk("goal_changes", "client_id", "clients", "CASCADE"),
        _fk("goal_changes", "session_id", "therapy_sessions", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_goal_changes")),
    )
    op.create_index(op.f("ix_goal_changes_goal_id"), "goal_changes", ["goal_id"])
    op.create_index(op.f("ix_goal_changes_client_id"), "goal_changes", ["client_id"])
    op.create_table(
        "goal_progress",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("goal_id", sa.String(length=32), nullable=False),
        sa.Column("client_id", sa.String(length=32), nullable=False),
        sa.Column("session_id", sa.String(length=32), nullable=False),
        sa.Column("idempotency_key", sa.String(length=64), nullable=False),
        sa.Column("submitted_at", sa.DateTime(), nullable=False),
        sa.Column("payload_ciphertext", sa.LargeBinary(), nullable=False),
        _fk("goal_progress", "goal_id", "client_goals", "CASCADE"),
        _fk("goal_progress", "client_id", "clients", "CASCADE"),
        _fk("goal_progress", "session_id", "therapy_sessions", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_goal_progress")),
        sa.UniqueConstraint(
            "session_id", "idempotency_key", "goal_id", name="uq_goal_progress_idempotency"
        ),
    )
    op.create_index(op.f("ix_goal_progress_goal_id"), "goal_progress", ["goal_id"])
    op.create_index(op.f("ix_goal_progress_client_id"), "goal_progress", ["client_id"])
    op.create_index(op.f("ix_goal_progress_session_id"), "goal_progress", ["session_id"])
    op.create_table(
        "progress_views",
        sa.Column("client_id", sa.String(length=32), nullable=False),
        sa.Column("shown", sa.Boolean(), nullable=False),
        sa.Column("changed_at", sa.DateTime(), nullable=False),
        sa.Column("reason_ciphertext", sa.LargeBinary(), nullable=True),
        _fk("progress_views", "client_id", "clients", "CASCADE"),
        sa.PrimaryKeyConstraint("client_id", name=op.f("pk_progress_views")),
    )


def downgrade() -> None:
    op.drop_table("progress_views")
    op.drop_table("goal_progress")
    op.drop_table("goal_changes")
    op.drop_table("client_goals")

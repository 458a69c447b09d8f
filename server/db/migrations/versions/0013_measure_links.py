"""measure links: an emailed link to answer due measures between sessions, and which stored
answers came from one

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
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
        "measure_links",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("client_id", sa.String(length=32), nullable=False),
        sa.Column("session_id", sa.String(length=32), nullable=False),
        sa.Column("measures", sa.String(length=200), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("cookie_hash", sa.String(length=64), nullable=True),
        sa.Column("csrf_token", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("opened_at", sa.DateTime(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        _fk("measure_links", "client_id", "clients"),
        _fk("measure_links", "session_id", "therapy_sessions"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_measure_links")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_measure_links_token_hash")),
        sa.UniqueConstraint("cookie_hash", name=op.f("uq_measure_links_cookie_hash")),
    )
    op.create_index(op.f("ix_measure_links_client_id"), "measure_links", ["client_id"])
    with op.batch_alter_table("measure_responses") as batch:
        batch.add_column(
            sa.Column("by_link", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("measure_responses") as batch:
        batch.drop_column("by_link")
    op.drop_index(op.f("ix_measure_links_client_id"), table_name="measure_links")
    op.drop_table("measure_links")

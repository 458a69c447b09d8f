"""client cookies: a second device of one link waits as "another device" until admitted

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("client_sessions") as batch:
        batch.add_column(
            sa.Column("another_device", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("client_sessions") as batch:
        batch.drop_column("another_device")

"""languages: the language of the notice text a consent record was given on

Every record made before is English (the only language notices were shown in).

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
    with op.batch_alter_table("consent_records") as batch:
        batch.add_column(
            sa.Column("notice_language", sa.String(length=8), nullable=False, server_default="en")
        )


def downgrade() -> None:
    with op.batch_alter_table("consent_records") as batch:
        batch.drop_column("notice_language")

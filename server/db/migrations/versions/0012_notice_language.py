"""languages: the language of the notice text a consent record was given on, and a client's
preferred language

Every record made before is English (the only language notices were shown in); clients start
with no preference (their browser's language, then the clinic's).

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("consent_records") as batch:
        batch.add_column(
            sa.Column("notice_language", sa.String(length=8), nullable=False, server_default="en")
        )
    with op.batch_alter_table("clients") as batch:
        batch.add_column(sa.Column("preferred_language", sa.String(length=8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("clients") as batch:
        batch.drop_column("preferred_language")
    with op.batch_alter_table("consent_records") as batch:
        batch.drop_column("notice_language")

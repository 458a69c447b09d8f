"""email: client contacts (encrypted), sealed invite tokens, the email outbox, therapists'
alert-email choice

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "client_contacts",
        sa.Column("client_id", sa.String(length=32), nullable=False),
        sa.Column("email_ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("reminders", sa.Boolean(), nullable=False),
        sa.Column("unsubscribe_hash", sa.String(length=64), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_client_contacts_client_id_clients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("client_id", name=op.f("pk_client_contacts")),
        sa.UniqueConstraint("unsubscribe_hash", name=op.f("uq_client_contacts_unsubscribe_hash")),
    )
    op.create_table(
        "invite_seals",
        sa.Column("invite_id", sa.String(length=32), nullable=False),
        sa.Column("session_id", sa.String(length=32), nullable=False),
        sa.Column("client_id", sa.String(length=32), nullable=False),
        sa.Column("token_ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["invite_id"],
            ["invites.id"],
            name=op.f("fk_invite_seals_invite_id_invites"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["therapy_sessions.id"],
            name=op.f("fk_invite_seals_session_id_therapy_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("invite_id", name=op.f("pk_invite_seals")),
    )
    with op.batch_alter_table("invite_seals") as batch:
        batch.create_index(batch.f("ix_invite_seals_session_id"), ["session_id"])
    op.create_table(
        "email_outbox",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("dedupe_key", sa.String(length=160), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("client_id", sa.String(length=32), nullable=False),
        sa.Column("session_id", sa.String(length=32), nullable=True),
        sa.Column("therapist_id", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("ics_sequence", sa.Integer(), nullable=True),
        sa.Column("send_after", sa.DateTime(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("lease_id", sa.String(length=32), nullable=True),
        sa.Column("lease_until", sa.DateTime(), nullable=True),
        sa.Column("last_error", sa.String(length=200), nullable=True),
        sa.Column("message_id", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.Column("message_ciphertext", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_email_outbox_client_id_clients"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["therapy_sessions.id"],
            name=op.f("fk_email_outbox_session_id_therapy_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_outbox")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_email_outbox_dedupe_key")),
    )
    with op.batch_alter_table("email_outbox") as batch:
        batch.create_index(batch.f("ix_email_outbox_session_id"), ["session_id"])
        batch.create_index(batch.f("ix_email_outbox_therapist_id"), ["therapist_id"])
        batch.create_index("ix_email_outbox_status_send_after", ["status", "send_after"])
        batch.create_index("ix_email_outbox_created_at_id", ["created_at", "id"])
    op.create_table(
        "therapist_email_prefs",
        sa.Column("account_id", sa.String(length=32), nullable=False),
        sa.Column("alerts", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_therapist_email_prefs_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_therapist_email_prefs")),
    )


def downgrade() -> None:
    op.drop_table("therapist_email_prefs")
    op.drop_table("email_outbox")
    op.drop_table("invite_seals")
    op.drop_table("client_contacts")

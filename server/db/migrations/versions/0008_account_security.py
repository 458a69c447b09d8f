"""account security: TOTP columns, recovery codes, password reset links, account notices,
admin switches, and sign-in sessions with a public id, a stage and a coarse device name

Sign-in sessions are recreated (everyone signs in again once): they are short-lived and the
new columns have no meaningful value for rows made before.

Revision ID: 0008
Revises: 0007
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def _account_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["account_id"],
        ["accounts.id"],
        name=op.f(f"fk_{table}_account_id_accounts"),
        ondelete="CASCADE",
    )


def _auth_sessions(extra: list[sa.Column[Any]]) -> None:
    op.create_table(
        "auth_sessions",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        *extra,
        sa.Column("account_id", sa.String(length=32), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(), nullable=False),
        _account_fk("auth_sessions"),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_auth_sessions")),
    )


def upgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("totp_secret_ciphertext", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("totp_pending_ciphertext", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("totp_enabled_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("totp_last_step", sa.BigInteger(), nullable=True))
    op.drop_table("auth_sessions")
    _auth_sessions(
        [
            sa.Column("public_id", sa.String(length=32), nullable=False),
            sa.Column("stage", sa.String(length=16), nullable=False),
            sa.Column("device", sa.String(length=80), nullable=False),
        ]
    )
    with op.batch_alter_table("auth_sessions") as batch:
        batch.create_unique_constraint(batch.f("uq_auth_sessions_public_id"), ["public_id"])
    op.create_table(
        "recovery_codes",
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("used_at", sa.DateTime(), nullable=True),
        _account_fk("recovery_codes"),
        sa.PrimaryKeyConstraint("code_hash", name=op.f("pk_recovery_codes")),
    )
    op.create_table(
        "password_reset_links",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.String(length=32), nullable=False),
        sa.Column("created_by", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("used_at", sa.DateTime(), nullable=True),
        _account_fk("password_reset_links"),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_password_reset_links")),
    )
    op.create_table(
        "account_notices",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("seen_at", sa.DateTime(), nullable=True),
        _account_fk("account_notices"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account_notices")),
    )
    op.create_table(
        "app_settings",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=255), nullable=False),
        sa.Column("changed_at", sa.DateTime(), nullable=False),
        sa.Column("changed_by", sa.String(length=80), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_app_settings")),
    )


def downgrade() -> None:
    op.drop_table("app_settings")
    op.drop_table("account_notices")
    op.drop_table("password_reset_links")
    op.drop_table("recovery_codes")
    op.drop_table("auth_sessions")
    _auth_sessions([])
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("totp_last_step")
        batch.drop_column("totp_enabled_at")
        batch.drop_column("totp_pending_ciphertext")
        batch.drop_column("totp_secret_ciphertext")

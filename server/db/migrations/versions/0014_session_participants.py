"""session participants: up to three people besides the therapist, each with their own link

Revision ID: 0014
Revises: 0013
"""

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

_BATCH = 500


def _backfill() -> None:
    """Every existing session's client becomes its participant in position 1; its invites and
    client cookies belong to that participant."""
    conn = op.get_bind()
    sessions = sa.table(
        "therapy_sessions",
        sa.column("id", sa.String),
        sa.column("client_id", sa.String),
        sa.column("created_at", sa.DateTime),
    )
    participants = sa.table(
        "session_participants",
        sa.column("id", sa.String),
        sa.column("session_id", sa.String),
        sa.column("kind", sa.String),
        sa.column("client_id", sa.String),
        sa.column("position", sa.Integer),
        sa.column("created_at", sa.DateTime),
    )
    rows = conn.execute(sa.select(sessions.c.id, sessions.c.client_id, sessions.c.created_at)).all()
    for start in range(0, len(rows), _BATCH):
        batch = rows[start : start + _BATCH]
        conn.execute(
            participants.insert(),
            [
                {
                    "id": secrets.token_hex(16),
                    "session_id": row.id,
                    "kind": "client",
                    "client_id": row.client_id,
                    "position": 1,
                    "created_at": row.created_at,
                }
                for row in batch
            ],
        )
    for name in ("invites", "client_sessions"):
        table = sa.table(
            name,
            sa.column("session_id", sa.String),
            sa.column("participant_id", sa.String),
        )
        first = (
            sa.select(participants.c.id)
            .where(
                participants.c.session_id == table.c.session_id,
                participants.c.position == 1,
            )
            .scalar_subquery()
        )
        conn.execute(table.update().values(participant_id=first))


def upgrade() -> None:
    op.create_table(
        "session_participants",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("session_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("client_id", sa.String(length=32), nullable=True),
        sa.Column("label_ciphertext", sa.LargeBinary(), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("removed_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["therapy_sessions.id"],
            name=op.f("fk_session_participants_session_id_therapy_sessions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_session_participants_client_id_clients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_session_participants")),
    )
    op.create_index(
        op.f("ix_session_participants_session_id"), "session_participants", ["session_id"]
    )
    op.create_index(
        op.f("ix_session_participants_client_id"), "session_participants", ["client_id"]
    )
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        # Rebuilding `invites` in batch mode drops the old table, and with foreign keys on
        # that cascades to every client cookie and sealed token: add the column in place
        # (SQLite cannot add it NOT NULL; the application always sets it).
        op.execute(
            "ALTER TABLE invites ADD COLUMN participant_id VARCHAR(32) "
            "CONSTRAINT fk_invites_participant_id_session_participants "
            "REFERENCES session_participants (id) ON DELETE CASCADE"
        )
    else:
        op.add_column("invites", sa.Column("participant_id", sa.String(length=32)))
    with op.batch_alter_table("client_sessions") as batch:
        batch.add_column(sa.Column("participant_id", sa.String(length=32), nullable=True))
    _backfill()
    for table in ("invites", "client_sessions"):
        if table == "invites" and sqlite:
            op.create_index(op.f("ix_invites_participant_id"), "invites", ["participant_id"])
            continue
        with op.batch_alter_table(table) as batch:
            batch.alter_column("participant_id", existing_type=sa.String(length=32), nullable=False)
            batch.create_foreign_key(
                op.f(f"fk_{table}_participant_id_session_participants"),
                "session_participants",
                ["participant_id"],
                ["id"],
                ondelete="CASCADE",
            )
            batch.create_index(op.f(f"ix_{table}_participant_id"), ["participant_id"])


def downgrade() -> None:
    # On SQLite, dropping the column rebuilds `invites`, which (foreign keys on) ends every
    # client cookie: people open their links again after a downgrade.
    sqlite = op.get_bind().dialect.name == "sqlite"
    for table in ("client_sessions", "invites"):
        with op.batch_alter_table(table) as batch:
            batch.drop_index(op.f(f"ix_{table}_participant_id"))
            # SQLite's in-place column kept its constraint inline, where batch mode does not
            # see its name; the rebuild without the column drops it all the same.
            if not (sqlite and table == "invites"):
                batch.drop_constraint(
                    op.f(f"fk_{table}_participant_id_session_participants"), type_="foreignkey"
                )
            batch.drop_column("participant_id")
    op.drop_index(op.f("ix_session_participants_client_id"), table_name="session_participants")
    op.drop_index(op.f("ix_session_participants_session_id"), table_name="session_participants")
    op.drop_table("session_participants")

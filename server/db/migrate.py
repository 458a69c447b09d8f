"""Apply Alembic migrations programmatically (on server start and by `attune db upgrade`)."""

from __future__ import annotations

from importlib import resources

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection

from server.db.engine import Database


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config pointing at the packaged migrations."""
    config = Config()
    config.set_main_option("script_location", str(resources.files("server.db") / "migrations"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _upgrade(connection: Connection) -> None:
    command.upgrade(alembic_config(connection), "head")


def _current(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


async def upgrade_to_head(database: Database) -> None:
    """Bring the schema up to the newest revision; a no-op when already there."""
    async with database.write() as conn:
        await conn.run_sync(_upgrade)


async def current_revision(database: Database) -> str | None:
    """The revision the database is at, or None when empty."""
    async with database.read() as conn:
        return await conn.run_sync(_current)


def head_revision() -> str | None:
    """The newest revision shipped in the package."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()

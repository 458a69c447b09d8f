"""The database handle: SQLite (embedded default) or PostgreSQL, one serialized write path."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from server.security.file_modes import owner_only_sqlite_files


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """Durable, consistent SQLite: WAL, fsync on commit, foreign keys enforced."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


class Database:
    """Async engine plus a write lock: SQLite allows one writer, so we queue writers ourselves."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.is_sqlite = engine.dialect.name == "sqlite"
        self._write_lock = asyncio.Lock()

    @classmethod
    def connect(cls, url: str) -> Database:
        """Create the engine for `url`; SQLite files get their directory and pragmas."""
        sa_url = sa.make_url(url)
        kwargs: dict[str, Any] = {}
        if sa_url.get_backend_name() == "sqlite":
            if sa_url.database and sa_url.database != ":memory:":
                # Owner-only: the directory holds the database and the key files.
                Path(sa_url.database).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                owner_only_sqlite_files(Path(sa_url.database))
        else:
            kwargs["pool_pre_ping"] = True
        engine = create_async_engine(sa_url, **kwargs)
        if engine.dialect.name == "sqlite":
            sa.event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return cls(engine)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reads; runs alongside other reads and the writer."""
        async with self.engine.connect() as conn:
            yield conn

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """One transaction, committed on exit; writers are serialized on SQLite."""
        if self.is_sqlite:
            async with self._write_lock, self.engine.begin() as conn:
                yield conn
        else:
            async with self.engine.begin() as conn:
                yield conn

    async def ping(self) -> None:
        """A trivial query (`SELECT 1`): returns when the database answers, else raises."""
        async with self.read() as conn:
            await conn.execute(sa.text("SELECT 1"))

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()

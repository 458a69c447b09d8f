"""Telling "the database cannot be reached" apart from every other failure.

The error middleware answers these with a 503 and a plain sentence instead of a 500; the
WebSocket loop answers them with an `error` and keeps the socket. Bugs stay 500s.
"""

from __future__ import annotations

import errno
import socket
from types import TracebackType
from typing import Final

import sqlalchemy as sa

from server.core.languages import N_

DATABASE_UNAVAILABLE_MESSAGE: Final = N_(
    "Attune cannot reach its database right now — try again in a minute."
)
RETRY_AFTER_SECONDS: Final = 60
# PostgreSQL SQLSTATEs that mean "cannot use the database now", not "this query is wrong":
# classes 08 (connection), 53 (insufficient resources: too many connections, disk full),
# 57 (operator intervention: shutting down, cannot connect now), plus 3D000 (the database does
# not exist) and 55000 (it is not accepting connections, ALTER DATABASE ... ALLOW_CONNECTIONS).
_OUTAGE_SQLSTATE_CLASSES: Final = frozenset({"08", "53", "57"})
_UNREACHABLE_ERRNOS: Final = frozenset({errno.EHOSTUNREACH, errno.ENETUNREACH})
_OUTAGE_SQLSTATES: Final = frozenset({"3D000", "55000"})
# Modules that talk to a database: a bare socket error counts as an outage only when raised
# inside one of them. The same `ConnectionResetError` raised by aiohttp means the *client*
# went away (a closed tab mid-upload), which is no database's fault.
_DATABASE_MODULES: Final = ("sqlalchemy", "asyncpg", "aiosqlite", "sqlite3", "psycopg")


def _sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of the driver error behind `exc`, if any (asyncpg carries `sqlstate`)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        state = getattr(current, "sqlstate", None)
        if isinstance(state, str) and len(state) == 5:
            return state
        current = getattr(current, "orig", None) or current.__cause__
    return None


def is_database_outage(exc: BaseException) -> bool:
    """Whether `exc` means the database is unreachable, refusing connections or gone away.

    SQLAlchemy wraps the drivers' errors: OperationalError (refused, terminated, locked,
    "database does not exist", "not accepting connections"), InterfaceError (a closed
    connection), pool TimeoutError, and any DBAPIError that invalidated its connection.
    Connecting can also fail below the driver with OSError (refused, unreachable) or time out;
    such a bare socket error counts only when a database driver raised it, never when aiohttp
    did because the client closed its connection (`raised_by_database`).
    """
    if isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError | sa.exc.TimeoutError):
        return True
    if isinstance(exc, sa.exc.DBAPIError):
        if exc.connection_invalidated:
            return True
        state = _sqlstate(exc)
        return state is not None and (
            state[:2] in _OUTAGE_SQLSTATE_CLASSES or state in _OUTAGE_SQLSTATES
        )
    socket_error = (
        isinstance(exc, ConnectionError | TimeoutError | socket.gaierror)  # gaierror: no such host
        or (isinstance(exc, OSError) and exc.errno in _UNREACHABLE_ERRNOS)
    )
    return socket_error and raised_by_database(exc)


def raised_by_database(exc: BaseException) -> bool:
    """Whether `exc` (or an exception it was raised from or during) came out of a database
    driver or SQLAlchemy: some frame of its traceback belongs to one of their modules."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if _in_database_module(current.__traceback__):
            return True
        current = current.__cause__ or current.__context__
    return False


def _in_database_module(tb: TracebackType | None) -> bool:
    while tb is not None:
        module = str(tb.tb_frame.f_globals.get("__name__", ""))
        if module.split(".", 1)[0] in _DATABASE_MODULES:
            return True
        tb = tb.tb_next
    return False

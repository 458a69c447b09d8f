"""Telling "the database cannot be reached" apart from every other failure.

The error middleware answers these with a 503 and a plain sentence instead of a 500; the
WebSocket loop answers them with an `error` and keeps the socket. Bugs stay 500s.
"""

from __future__ import annotations

import errno
import socket
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
    Connecting can also fail below the driver with OSError (refused, unreachable) or time out.
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
    if isinstance(exc, ConnectionError | TimeoutError):
        return True
    if isinstance(exc, socket.gaierror):
        return True  # the database host name does not resolve
    return isinstance(exc, OSError) and exc.errno in _UNREACHABLE_ERRNOS

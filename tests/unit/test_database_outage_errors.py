"""Which driver errors count as a database outage (a 503), and which stay bugs (a 500)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from server.db.outage import is_database_outage


class _DriverError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__("driver message naming a host")
        self.sqlstate = sqlstate


def _wrapped(sqlstate: str) -> sa.exc.DBAPIError:
    return sa.exc.DBAPIError("SELECT 1", None, _DriverError(sqlstate))


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionRefusedError(111, "refused"),
        TimeoutError(),
        OSError(113, "no route to host"),
        sa.exc.OperationalError("SELECT 1", None, Exception("database is locked")),
        sa.exc.InterfaceError("SELECT 1", None, Exception("connection closed")),
        sa.exc.TimeoutError("pool exhausted"),
        _wrapped("08006"),  # connection failure
        _wrapped("53300"),  # too many connections
        _wrapped("57P01"),  # admin shutdown
        _wrapped("3D000"),  # the database does not exist
        _wrapped("55000"),  # not accepting connections
    ],
)
def test_connection_failures_count_as_an_outage(exc: BaseException) -> None:
    assert is_database_outage(exc)


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("a bug"),
        KeyError("a bug"),
        FileNotFoundError(2, "a missing template"),
        sa.exc.IntegrityError("INSERT", None, Exception("duplicate key")),
        _wrapped("42P01"),  # undefined table: a bug or a missing migration, not an outage
        _wrapped("23505"),  # unique violation
        sa.exc.DBAPIError("SELECT 1", None, Exception("no sqlstate")),
    ],
)
def test_query_errors_and_bugs_do_not_count_as_an_outage(exc: BaseException) -> None:
    assert not is_database_outage(exc)

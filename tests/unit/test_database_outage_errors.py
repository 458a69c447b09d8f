"""Which driver errors count as a database outage (a 503), and which stay bugs (a 500)."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
import sqlalchemy as sa
from aiohttp import streams
from aiohttp.base_protocol import BaseProtocol
from aiohttp.client_exceptions import ClientConnectionResetError

from server.db.outage import is_database_outage
from server.middlewares import client_went_away
from tests.multiproc.processes import free_port


class _DriverError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__("driver message naming a host")
        self.sqlstate = sqlstate


def _wrapped(sqlstate: str) -> sa.exc.DBAPIError:
    return sa.exc.DBAPIError("SELECT 1", None, _DriverError(sqlstate))


def _raised_in(module: str, exc: BaseException) -> BaseException:
    """`exc` as it arrives after being raised by code of `module` (its traceback's frame)."""
    namespace: dict[str, object] = {"__name__": module, "exc": exc}
    try:
        exec("raise exc", namespace)  # a frame that belongs to `module`
    except BaseException as raised:
        return raised
    raise AssertionError("not raised")


@pytest.mark.parametrize(
    "exc",
    [
        _raised_in("asyncpg.connect_utils", ConnectionRefusedError(111, "refused")),
        _raised_in("asyncpg.connect_utils", TimeoutError()),
        _raised_in("asyncpg.connect_utils", OSError(113, "no route to host")),
        _raised_in("aiosqlite.core", ConnectionResetError(104, "reset")),
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
        # the same socket errors raised by anything but a database driver
        ConnectionResetError(104, "reset"),
        _raised_in("aiohttp.streams", ConnectionResetError("Connection lost")),
        _raised_in("aiohttp.http_writer", ClientConnectionResetError("closing transport")),
        _raised_in("server.web.pages", TimeoutError()),
    ],
)
def test_query_errors_and_bugs_do_not_count_as_an_outage(exc: BaseException) -> None:
    assert not is_database_outage(exc)


async def test_a_refused_connection_from_the_real_driver_counts_as_an_outage() -> None:
    with pytest.raises(OSError) as raised:
        await asyncpg.connect(host="127.0.0.1", port=free_port(), user="postgres", timeout=5)
    assert is_database_outage(raised.value)
    assert not client_went_away(raised.value)


async def test_a_body_whose_client_went_away_is_the_client_not_the_database() -> None:
    """aiohttp puts a bare ConnectionResetError into the body of a request whose client
    closed its connection; reading the body raises it from aiohttp's own stream."""
    loop = asyncio.get_running_loop()
    body = streams.StreamReader(BaseProtocol(loop), 2**16, loop=loop)
    body.set_exception(ConnectionResetError("Connection lost"))
    with pytest.raises(ConnectionResetError) as raised:
        await body.read()
    assert client_went_away(raised.value)
    assert not is_database_outage(raised.value)

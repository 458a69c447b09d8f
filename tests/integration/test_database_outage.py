"""With the database unreachable, pages and APIs answer a clear 503, never a 500 or a trace."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy.ext.asyncio import create_async_engine

from server.db.outage import DATABASE_UNAVAILABLE_MESSAGE
from server.keys import DB
from tests.conftest import add_account, sign_in
from tests.integration.test_checkins import _in_call
from tests.integration.test_languages import _join
from tests.multiproc.processes import free_port


@pytest.fixture
async def outage(client: TestClient) -> AsyncIterator[Callable[[], None]]:
    """lose(): point the running app's engine at a closed port, as if the database host went
    away; the real engine comes back at teardown so shutdown can write its checkpoint."""
    db = client.app[DB]
    real_engine, real_is_sqlite = db.engine, db.is_sqlite

    def lose() -> None:
        db.engine = create_async_engine(
            f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/gone"
        )
        db.is_sqlite = False

    yield lose
    lost = db.engine
    db.engine, db.is_sqlite = real_engine, real_is_sqlite
    if lost is not real_engine:
        await lost.dispose()


async def test_apis_pages_and_readyz_answer_503_while_the_database_is_unreachable(
    client: TestClient, outage: Callable[[], None], caplog: pytest.LogCaptureFixture
) -> None:
    await add_account(client.app, "t@example.org")
    csrf = await sign_in(client, "t@example.org")
    outage()
    caplog.set_level(logging.INFO)

    api = await client.get("/api/v1/clients")
    assert api.status == 503
    assert api.headers["Retry-After"] == "60"
    body = await api.json()
    assert body["error"]["code"] == "database_unavailable"
    assert body["error"]["message"] == DATABASE_UNAVAILABLE_MESSAGE

    write = await client.post(
        "/api/v1/clients", json={"alias": "A.B."}, headers={"X-CSRF-Token": csrf}
    )
    assert write.status == 503

    page = await client.get("/dashboard")
    assert page.status == 503
    assert page.content_type == "text/html"
    assert DATABASE_UNAVAILABLE_MESSAGE in await page.text()

    login = await client.post(
        "/api/v1/auth/login", json={"email": "t@example.org", "password": "whatever it is"}
    )
    assert login.status == 503

    ready = await client.get("/readyz")
    assert ready.status == 503
    assert await ready.json() == {"status": "unavailable", "reason": "database unreachable"}

    assert not [r for r in caplog.records if r.exc_info], "no traceback is logged"
    assert "127.0.0.1" not in caplog.text  # driver messages (hosts, ports) stay out of logs


async def test_a_checkin_answer_during_an_outage_gets_an_error_and_the_socket_stays_open(
    client: TestClient, aiohttp_client: Any, outage: Callable[[], None]
) -> None:
    _therapist, visitor = await _in_call(client, aiohttp_client, storage=True)
    outage()
    await visitor.send(
        {
            "type": "checkin-answer",
            "id": "a1",
            "instrument_id": "before",
            "idempotency_key": "k" * 20,
            "answers": {
                "me-personally": 4,
                "close-relationships": 5,
                "work-school-social": 6,
                "overall": 5,
            },
        }
    )
    error = await visitor.expect("error")
    assert error["ref"] == "a1" and error["message"] == DATABASE_UNAVAILABLE_MESSAGE
    await visitor.send({"type": "ping"})
    await visitor.expect("pong")


@pytest.mark.parametrize(
    ("language", "words"),
    [
        ("de", "Attune erreicht seine Datenbank gerade nicht."),
        ("es", "Attune no puede acceder a su base de datos en este momento."),
    ],
)
async def test_a_clients_page_says_so_in_the_clients_language(
    client: TestClient, outage: Callable[[], None], language: str, words: str
) -> None:
    """The client's cookie cannot be read then, so the browser's language decides."""
    await _join(client)
    outage()
    for path in ("/visit", "/visit/data"):
        page = await client.get(path, headers={"Accept-Language": language})
        text = await page.text()
        assert page.status == 503 and f'<html lang="{language}"' in text, path
        assert words in text and DATABASE_UNAVAILABLE_MESSAGE not in text, path


async def test_a_client_that_goes_away_mid_request_is_not_a_database_outage(
    app: web.Application, caplog: pytest.LogCaptureFixture
) -> None:
    """A tab closed while its request body was still arriving: aiohttp raises a bare
    ConnectionResetError into the handler's body read. That is the client, not the database:
    no "database unreachable" warning, no 503, no traceback. Served as `attune serve` serves
    (the test client's server cancels such handlers instead)."""
    caplog.set_level(logging.INFO)
    answered = asyncio.Event()  # the error middleware has said what it was

    class Heard(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            answered.set()

    logging.getLogger("attune.http").addHandler(heard := Heard())
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST /api/v1/auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 4000\r\n\r\n"
            b'{"email": "t@example.org", "pass'
        )
        await writer.drain()
        await asyncio.sleep(0.2)  # the handler is reading the body now
        writer.close()
        await writer.wait_closed()
        async with asyncio.timeout(10):
            await answered.wait()
        assert "the client went away" in caplog.text
        assert "database unreachable" not in caplog.text
        assert "redis unreachable" not in caplog.text
        assert not [r for r in caplog.records if r.exc_info], "no traceback is logged"
    finally:
        logging.getLogger("attune.http").removeHandler(heard)
        await runner.cleanup()

"""Revocation in the hub is synchronous: once `close_connections` returns, a matching socket
gets nothing more but its close, and the read loop sees it revoked before the next message."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

import pytest
from aiohttp import web

from server.core.closing import Closing
from server.core.models import Account, Role
from server.core.protocol import CloseCode, PongMessage, SessionRole
from server.realtime.hub import Connection, Hub


def _connection(
    conn_id: str,
    *,
    role: SessionRole = SessionRole.CLIENT,
    account_id: str | None = None,
    sign_in_id: str | None = None,
    client_access_id: str | None = None,
    session_id: str = "s1",
) -> Connection:
    account = (
        Account(account_id, "t@example.org", Role.THERAPIST, False, datetime.now(UTC))
        if account_id
        else None
    )
    return Connection(
        conn_id=conn_id,
        ws=cast(web.WebSocketResponse, object()),  # never written to: no writer is started
        role=role,
        session_id=session_id,
        client_id="c1",
        account=account,
        sign_in_id=sign_in_id,
        client_access_id=client_access_id,
    )


def _hub(*connections: Connection) -> Hub:
    hub = Hub()
    for connection in connections:
        hub._connections[connection.conn_id] = connection  # tracked without a writer task
    return hub


def _queued(connection: Connection) -> list[Any]:
    items = []
    while not connection.outbox.empty():
        items.append(connection.outbox.get_nowait())
    return items


async def test_a_revoked_connection_gets_only_its_close_even_with_messages_already_queued() -> None:
    therapist = _connection("a", role=SessionRole.THERAPIST, account_id="acc", sign_in_id="si")
    therapist.queue(PongMessage())
    hub = _hub(therapist)
    hub.close_connections(
        Closing(account_id="acc", code=CloseCode.UNAUTHORIZED, reason="signed-out")
    )
    therapist.queue(PongMessage())  # e.g. a check-in result delivered a moment later
    assert therapist.revoked
    assert _queued(therapist) == [(4401, "signed-out")]


async def test_closing_one_sign_in_spares_the_accounts_other_sign_in_and_other_accounts() -> None:
    tab = _connection("a", role=SessionRole.THERAPIST, account_id="acc", sign_in_id="one")
    laptop = _connection("b", role=SessionRole.THERAPIST, account_id="acc", sign_in_id="two")
    other = _connection("c", role=SessionRole.THERAPIST, account_id="zzz", sign_in_id="one")
    hub = _hub(tab, laptop, other)
    hub.close_connections(
        Closing(
            account_id="acc", sign_in_id="one", code=CloseCode.UNAUTHORIZED, reason="signed-out"
        )
    )
    assert (tab.revoked, laptop.revoked, other.revoked) == (True, False, False)
    hub.close_connections(
        Closing(account_id="acc", except_sign_in_id="two", code=CloseCode.UNAUTHORIZED, reason="x")
    )
    assert not laptop.revoked


async def test_ending_a_links_access_closes_the_sessions_clients_but_not_its_therapist() -> None:
    therapist = _connection("t", role=SessionRole.THERAPIST, account_id="acc")
    phone = _connection("p", client_access_id="cookie-1")
    laptop = _connection("l", client_access_id="cookie-2")
    elsewhere = _connection("e", client_access_id="cookie-3", session_id="s2")
    hub = _hub(therapist, phone, laptop, elsewhere)
    hub.close_connections(
        Closing(session_id="s1", role=SessionRole.CLIENT, code=CloseCode.UNAUTHORIZED, reason="r")
    )
    assert [c.revoked for c in (therapist, phone, laptop, elsewhere)] == [
        False,
        True,
        True,
        False,
    ]


async def test_close_connections_refuses_to_close_everything_for_want_of_a_filter() -> None:
    hub = _hub(_connection("a"))
    with pytest.raises(ValueError):
        hub.close_connections(Closing(code=CloseCode.UNAUTHORIZED, reason="oops"))


async def test_another_process_closes_the_same_sockets_from_the_broadcast_payload() -> None:
    closing = Closing(
        session_id="s1",
        role=SessionRole.CLIENT,
        except_sign_in_id="keep",
        code=CloseCode.UNAUTHORIZED,
        reason="link-revoked",
    )
    assert Closing.from_json(closing.to_json()) == closing
    phone = _connection("p", client_access_id="cookie-1")
    therapist = _connection("t", role=SessionRole.THERAPIST, account_id="acc")
    elsewhere = _connection("e", client_access_id="cookie-3", session_id="s2")
    hub = _hub(phone, therapist, elsewhere)
    hub.on_close_connections({"origin": "another-process", **closing.to_json()})
    assert [c.revoked for c in (phone, therapist, elsewhere)] == [True, False, False]
    assert _queued(phone) == [(4401, "link-revoked")]

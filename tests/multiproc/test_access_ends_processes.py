"""Access that ends, between real `attune serve` processes (issue #13): two processes on one
PostgreSQL and one Redis. A sign-out sent to one process closes the therapist's room socket
held by the other, and a link revoked through one closes the client's socket on the other —
each within a second, with its final code and reason."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import aiohttp
import pytest

from tests.multiproc.conftest import MakeCluster

pytestmark = pytest.mark.multiproc

EMAIL, PASSWORD = "t@example.org", "a calm and long passphrase"
WITHIN_S = 1.0


async def _hello(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    await ws.send_json({"type": "hello", "version": 1})
    async with asyncio.timeout(10):
        while True:
            msg = await ws.receive()
            assert msg.type == aiohttp.WSMsgType.TEXT, (msg.type, msg.data, msg.extra)
            data: dict[str, Any] = msg.json()
            if data["type"] == "welcome":
                return data


async def _closed(ws: aiohttp.ClientWebSocketResponse) -> tuple[tuple[int, str], float]:
    """The close code and reason the server sent, and how long it took to arrive."""
    started = time.monotonic()
    async with asyncio.timeout(5):
        while True:
            msg = await ws.receive()
            if msg.type == aiohttp.WSMsgType.CLOSE:
                return (int(msg.data), str(msg.extra or "")), time.monotonic() - started
            assert msg.type == aiohttp.WSMsgType.TEXT, (msg.type, msg.data)


async def test_a_sign_out_and_a_revoked_link_close_sockets_held_by_the_other_process(
    make_cluster: MakeCluster,
) -> None:
    group = await make_cluster(processes=2, redis=True)
    session_id, join_path = group.add_therapist_session(EMAIL, "J.M.", PASSWORD)
    one, two = group.processes
    timeout = aiohttp.ClientTimeout(total=30)
    async with (
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True), timeout=timeout) as host,
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True), timeout=timeout) as guest,
    ):
        signed = await host.post(
            f"{one.url}/api/v1/auth/login", json={"email": EMAIL, "password": PASSWORD}
        )
        assert signed.status == 200, await signed.text()
        csrf = (await signed.json())["csrf_token"]
        room = await host.ws_connect(f"{one.url}/ws/session/{session_id}")
        assert (await _hello(room))["role"] == "therapist"

        # The client opens the link and agrees to telehealth through process two.
        assert (await guest.get(f"{two.url}{join_path}")).status == 200
        page = await (await guest.get(f"{two.url}/visit/consent")).text()
        token = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert token
        agreed = await guest.post(
            f"{two.url}/api/v1/visit/consents",
            headers={"X-CSRF-Token": token.group(1)},
            json={"purpose": "telehealth", "decision": "granted", "notice_version": 1},
        )
        assert agreed.status < 300, await agreed.text()
        knock = await guest.ws_connect(f"{two.url}/ws/session/{session_id}")
        assert (await _hello(knock))["role"] == "client"

        # The therapist revokes the link through process one: the knock on two closes.
        revoked = await host.delete(
            f"{one.url}/api/v1/sessions/{session_id}/invite", headers={"X-CSRF-Token": csrf}
        )
        assert revoked.status == 204
        got, after = await _closed(knock)
        assert got == (4401, "link-revoked")
        assert after < WITHIN_S

        # The therapist signs out through process two: the room socket on one closes.
        out = await host.post(f"{two.url}/api/v1/auth/logout", headers={"X-CSRF-Token": csrf})
        assert out.status == 204
        got, after = await _closed(room)
        assert got == (4401, "signed-out")
        assert after < WITHIN_S

"""SIGTERM drains: sockets get 1001 at once, the process exits 0, the audit trail verifies."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from tests.multiproc.conftest import MakeCluster

pytestmark = pytest.mark.multiproc

PASSWORD = "a calm and long passphrase"


async def test_sigterm_closes_sockets_with_1001_exits_0_and_leaves_a_verifiable_audit_trail(
    make_cluster: MakeCluster,
) -> None:
    group = await make_cluster(processes=1)
    session_id, _join = group.add_therapist_session("t@example.org", "J.M.", PASSWORD)
    server = group.processes[0]
    async with aiohttp.ClientSession(server.url, cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        signed = await http.post(
            "/api/v1/auth/login", json={"email": "t@example.org", "password": PASSWORD}
        )
        assert signed.status == 200
        ws = await http.ws_connect(f"/ws/session/{session_id}")
        await ws.send_json({"type": "hello", "version": 1})
        welcome = await ws.receive_json(timeout=10)
        assert welcome["type"] == "welcome"

        started = time.monotonic()
        server.terminate()
        async with asyncio.timeout(10):
            while (msg := await ws.receive()).type not in (
                aiohttp.WSMsgType.CLOSE,
                aiohttp.WSMsgType.CLOSED,
                aiohttp.WSMsgType.CLOSING,
            ):
                pass
        assert (msg.data if msg.type == aiohttp.WSMsgType.CLOSE else ws.close_code) == 1001
        told_in = time.monotonic() - started
        await ws.close()

    assert await server.wait_exit(within=20) == 0
    assert told_in < 5, f"the socket heard 1001 only after {told_in:.1f} s"
    assert "Traceback" not in server.log_tail(400)
    assert "Audit trail intact" in group.cli("audit", "verify")

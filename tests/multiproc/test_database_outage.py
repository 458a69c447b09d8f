"""A real PostgreSQL outage (this run's database refuses connections): 503s, then recovery."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from server.db.outage import DATABASE_UNAVAILABLE_MESSAGE
from tests.multiproc.conftest import MakeCluster
from tests.multiproc.processes import cut_off_database, restore_database

pytestmark = pytest.mark.multiproc

PASSWORD = "a calm and long passphrase"


async def test_a_server_answers_503_while_its_database_is_cut_off_and_recovers_after(
    make_cluster: MakeCluster,
) -> None:
    group = await make_cluster(processes=1)
    group.add_therapist_session("t@example.org", "J.M.", PASSWORD)
    url = group.processes[0].url
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(
        url, cookie_jar=jar, timeout=aiohttp.ClientTimeout(total=10)
    ) as http:
        signed = await http.post(
            "/api/v1/auth/login", json={"email": "t@example.org", "password": PASSWORD}
        )
        assert signed.status == 200
        cut_off_database(group.database_url)
        try:
            api = await http.get("/api/v1/clients")
            assert api.status == 503
            assert (await api.json())["error"]["message"] == DATABASE_UNAVAILABLE_MESSAGE
            page = await http.get("/dashboard")
            assert page.status == 503
            assert DATABASE_UNAVAILABLE_MESSAGE in await page.text()
            ready = await http.get("/readyz")
            assert (ready.status, await ready.json()) == (
                503,
                {"status": "unavailable", "reason": "database unreachable"},
            )
        finally:
            restore_database(group.database_url)

        deadline = time.monotonic() + 15
        while (await http.get("/readyz")).status != 200:
            assert time.monotonic() < deadline, "not ready again after the outage"
            await asyncio.sleep(0.1)
        assert (await http.get("/api/v1/clients")).status == 200

    log = group.processes[0].log_tail(400)
    assert "Traceback" not in log and "unhandled error" not in log

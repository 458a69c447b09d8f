"""The harness (processes.py) itself: processes on one database, nginx in front, kill, restart."""

from __future__ import annotations

import aiohttp
import pytest

from tests.multiproc.conftest import MakeCluster
from tests.multiproc.processes import PIN_MARKER

pytestmark = pytest.mark.multiproc


async def _status(url: str, user_agent: str = "test") -> int:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http,
        http.get(url, headers={"User-Agent": user_agent}) as response,
    ):
        return response.status


async def test_two_processes_behind_nginx_answer_and_survive_a_killed_backend(
    make_cluster: MakeCluster,
) -> None:
    group = await make_cluster(processes=2, nginx=True, redis=True)
    assert [await _status(p.url + "/readyz") for p in group.processes] == [200, 200]
    assert [await _status(group.url + "/healthz") for _ in range(4)] == [200] * 4

    group.processes[0].kill()
    assert [await _status(group.url + "/healthz") for _ in range(6)] == [200] * 6

    await group.processes[0].restart()
    assert await _status(group.processes[0].url + "/readyz") == 200
    assert group.processes[0].starts == 2


async def test_a_user_agent_marker_pins_requests_to_one_backend(
    make_cluster: MakeCluster,
) -> None:
    group = await make_cluster(processes=2, nginx=True)
    group.processes[1].kill()
    pinned_to_dead = f"Mozilla/5.0 {PIN_MARKER}1"
    pinned_to_live = f"Mozilla/5.0 {PIN_MARKER}0"
    assert await _status(group.url + "/healthz", pinned_to_live) == 200
    assert await _status(group.url + "/healthz", pinned_to_dead) == 502
    assert await _status(group.url + "/healthz") == 200  # unpinned: fails over


async def test_cli_commands_share_the_cluster_database(make_cluster: MakeCluster) -> None:
    group = await make_cluster(processes=1)
    session_id, join_path = group.add_therapist_session(
        "t@example.org", "J.M.", "a calm and long passphrase"
    )
    assert len(session_id) == 32 and join_path.startswith("/join/")
    assert "Audit trail intact" in group.cli("audit", "verify")

"""Shared goals: both people in the call add, reword and mark the client's goals, and both
screens see the same list at once; the words are kept only encrypted, the history and the
audit trail name who changed what and when but never the words."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from server.keys import SETTINGS
from tests.integration.test_signaling import Party, _admitted, _setup


def _db(client: TestClient) -> sqlite3.Connection:
    return sqlite3.connect(client.app[SETTINGS].data_dir / "attune.db")


def _raw_bytes(data_dir: Path) -> bytes:
    return b"".join(p.read_bytes() for p in data_dir.iterdir() if p.is_file())


async def _in_call(client: TestClient, aiohttp_client: Any) -> tuple[Party, Party]:
    therapist, visitor, _ = await _setup(client, aiohttp_client)
    await _admitted(therapist, visitor)
    return therapist, visitor


async def test_a_goal_the_client_adds_reaches_both_screens_and_the_therapist_can_mark_it(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, visitor = await _in_call(client, aiohttp_client)

    await visitor.send({"type": "goal-add", "text": "  Go back to the   choir "})
    seen_by_therapist = (await therapist.expect("goals"))["goals"]
    seen_by_client = (await visitor.expect("goals"))["goals"]
    while not seen_by_client:  # the client's own list from joining came first
        seen_by_client = (await visitor.expect("goals"))["goals"]

    assert seen_by_therapist == seen_by_client
    (goal,) = seen_by_client
    assert (goal["text"], goal["status"], goal["updated_by"]) == (
        "Go back to the choir",
        "active",
        "client",
    )

    await therapist.send({"type": "goal-edit", "goal_id": goal["id"], "text": "Sing again"})
    assert (await visitor.expect("goals"))["goals"][0]["text"] == "Sing again"
    await therapist.send({"type": "goal-status", "goal_id": goal["id"], "status": "reached"})
    reached = (await visitor.expect("goals"))["goals"][0]
    assert (reached["status"], reached["updated_by"]) == ("reached", "therapist")

    with _db(client) as db:
        history = db.execute("SELECT by, change FROM goal_changes ORDER BY at, rowid").fetchall()
        audit = db.execute(
            "SELECT actor, details FROM audit_log WHERE action = 'goal.change' ORDER BY seq"
        ).fetchall()
    assert history == [("client", "added"), ("therapist", "edited"), ("therapist", "reached")]
    assert [actor.split(":")[0] for actor, _ in audit] == ["client", "account", "account"]
    # The words are nowhere in clear: not in the database, its journal, nor the audit trail.
    data_dir = client.app[SETTINGS].data_dir
    assert b"choir" not in _raw_bytes(data_dir) and b"Sing again" not in _raw_bytes(data_dir)


async def test_a_sixth_active_goal_and_bad_changes_are_refused_and_the_socket_stays_up(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, visitor = await _in_call(client, aiohttp_client)
    for n in range(5):
        await visitor.send({"type": "goal-add", "text": f"Goal {n}"})
        await therapist.expect("goals")

    await visitor.send({"type": "goal-add", "text": "One more", "id": "g6"})
    error = await visitor.expect("error")
    assert error["code"] == "invalid" and error["ref"] == "g6"
    assert "reached or dropped first" in error["message"]

    await therapist.send({"type": "goal-status", "goal_id": "0" * 32, "status": "dropped"})
    assert (await therapist.expect("error"))["code"] == "invalid"
    await visitor.send({"type": "goal-add", "text": "\u0007"})
    assert (await visitor.expect("error"))["code"] == "invalid"
    await visitor.send({"type": "ping", "id": "still-here"})
    assert (await visitor.expect("pong"))["type"] == "pong"


async def test_a_waiting_client_can_neither_see_nor_change_goals(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, visitor, _ = await _setup(client, aiohttp_client)
    await therapist.connect()
    await visitor.connect()

    await visitor.send({"type": "goal-add", "text": "Sleep better", "id": "w1"})
    error = await visitor.expect("error")
    assert error["code"] == "not-admitted" and error["ref"] == "w1"
    with _db(client) as db:
        assert db.execute("SELECT count(*) FROM client_goals").fetchone() == (0,)

"""A call of several people across processes (issue #15): the room of three, its people on
two processes, survives the death of the process holding it; everyone resumes on the other
in their place and order, and addressed relays go on. Uses the real Redis bus
(`test_bus_redis.py`'s fixtures: two `create_app`s, one PostgreSQL, one Redis)."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.integration.test_bus_redis import (  # noqa: F401 - its fixtures, by name
    _bus,
    _on,
    database_url,
    redis_prefix,
    two_apps,
)
from tests.integration.test_group_call import roster_of
from tests.integration.test_participants import _decide, _practice, _token, _visitor
from tests.integration.test_signaling import OFFER, Party


@pytest.fixture
def apps(request: pytest.FixtureRequest) -> tuple[TestClient, TestClient]:
    """Process A and process B (`test_bus_redis.two_apps`)."""
    both: tuple[TestClient, TestClient] = request.getfixturevalue("two_apps")
    return both


async def test_a_room_of_three_resumes_on_another_process_in_place_and_order(
    apps: tuple[TestClient, TestClient], aiohttp_client: Any
) -> None:
    first, second = apps
    practice = await _practice(first)
    guest_link = await practice.add({"kind": "guest", "label": "Interpreter"})
    therapist = Party(first, practice.session_id)
    therapist_welcome = await therapist.connect()
    welcomes: dict[str, dict[str, Any]] = {}
    people: dict[str, Party] = {}
    for label, token, app in (
        ("J.M.", practice.primary_token, first),
        ("Interpreter", _token(guest_link["join_url"]), second),  # on the other process
    ):
        http, csrf = await _visitor(aiohttp_client, app, token)
        assert (await _decide(http, csrf, "telehealth")).status == 201
        people[label] = Party(http, practice.session_id)
        welcomes[label] = await people[label].connect()
    lobby: list[dict[str, Any]] = []
    while len(lobby) < 2:
        lobby = (await therapist.expect("lobby"))["waiting"]
    for label in ("J.M.", "Interpreter"):
        knock = next(k["knock_id"] for k in lobby if k["label"] == label)
        await therapist.send({"type": "admit", "knock_id": knock})
        await people[label].expect("admitted")
    before = await roster_of(therapist, 3)
    assert _bus(first).owns(practice.session_id)
    await therapist.send({"type": "ping"})  # behind the admissions: their state is written
    await therapist.expect("pong")

    await _bus(first).vanish()  # A dies: no renewal, no goodbye, its sockets cut
    for party in (therapist, people["J.M."]):
        assert party.ws is not None
        transport = party.ws._response.connection.transport  # type: ignore[union-attr]
        assert transport is not None
        transport.abort()

    jm = await _on(second, aiohttp_client, people["J.M."])
    back = await jm.connect(resume=welcomes["J.M."]["resume_token"])
    assert (back["state"], back["resumed"], back["peer_id"]) == (
        "in-call",
        True,
        welcomes["J.M."]["peer_id"],
    )
    therapist_b = await _on(second, aiohttp_client, therapist)
    again = await therapist_b.connect(resume=therapist_welcome["resume_token"])
    assert again["resumed"] is True
    assert await roster_of(therapist_b, 3) == before  # same people, same order, all present
    guest_id = welcomes["Interpreter"]["peer_id"]
    await therapist_b.send({"type": "relay", "to": guest_id, "payload": OFFER})
    relayed = await people["Interpreter"].expect("signal-relay")
    assert (relayed["from"], relayed["payload"]) == ("therapist", OFFER)
    await people["Interpreter"].send(
        {"type": "relay", "to": welcomes["J.M."]["peer_id"], "payload": OFFER}
    )
    assert (await jm.expect("signal-relay"))["from"] == guest_id

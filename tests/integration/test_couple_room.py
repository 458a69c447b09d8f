"""A couple and an interpreter in one room, over real sockets: each partner's check-in is kept
with their own record and named in the therapist's panel; a guest's features and check-ins
never reach analysis or storage."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from aiohttp.test_utils import TestClient

from server.core.cues.synthetic import scenario_frames
from server.db.tables import checkin_responses
from server.keys import DB, LIVE
from tests.integration.test_participants import _decide, _practice, _token, _visitor
from tests.integration.test_signaling import Party

BEFORE = {"me-personally": 6, "close-relationships": 3, "work-school-social": 5, "overall": 4}


async def _in_call(
    client: TestClient, aiohttp_client: Any, join_url: str, consents: tuple[str, ...]
) -> Party:
    """A person who opened their own link, agreed to `consents`, knocked and was admitted."""
    http, csrf = await _visitor(aiohttp_client, client, _token(join_url))
    for purpose in consents:
        assert (await _decide(http, csrf, purpose)).status == 201
    return Party(http, "")


async def test_a_partner_answers_over_their_socket_and_it_is_kept_as_theirs(
    client: TestClient, aiohttp_client: Any
) -> None:
    practice = await _practice(client)
    partner = await practice.add({"kind": "client", "client_id": practice.second_id})
    guest = await practice.add({"kind": "guest", "label": "Interpreter"})
    therapist = Party(client, practice.session_id)
    await therapist.connect()
    people = {}
    for name, join_url, consents in (
        ("partner", partner["join_url"], ("telehealth", "checkin_storage", "cue_analysis")),
        ("guest", guest["join_url"], ("telehealth",)),
    ):
        person = await _in_call(client, aiohttp_client, join_url, consents)
        person.session_id = practice.session_id
        welcome = await person.connect()
        await therapist.send({"type": "admit", "knock_id": welcome["knock_id"]})
        await person.expect("admitted")
        people[name] = person

    await people["partner"].send(
        {
            "type": "checkin-answer",
            "instrument_id": "before",
            "idempotency_key": "p" * 20,
            "answers": BEFORE,
        }
    )
    await people["partner"].expect("checkin-ack")
    result = await therapist.expect("checkin-result")
    assert (result["label"], result["client_id"]) == ("K.L.", practice.second_id)
    async with client.app[DB].read() as conn:
        owners = list(await conn.scalars(sa.select(checkin_responses.c.client_id)))
    assert owners == [practice.second_id]  # the partner's own record, not the session's client

    # a guest neither answers check-ins nor has features analysed
    await people["guest"].send(
        {
            "type": "checkin-answer",
            "instrument_id": "before",
            "idempotency_key": "g" * 20,
            "answers": BEFORE,
            "id": "g1",
        }
    )
    refused = await people["guest"].expect("error")
    assert refused["ref"] == "g1"
    for frame in list(scenario_frames("high_lag", minutes=0.2, seed=1)):
        if frame.role.value == "client":
            await people["guest"].send(frame.to_message())
    await people["guest"].send({"type": "ping"})
    await people["guest"].expect("pong")
    assert not client.app[LIVE].cues.active(practice.session_id)
    async with client.app[DB].read() as conn:
        assert list(await conn.scalars(sa.select(checkin_responses.c.client_id))) == owners

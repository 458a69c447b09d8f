"""A call of three and four people over real sockets (issue #15): each person knocks under
their own name and is admitted on their own, relays are addressed and say who sent them,
one person's consent withdrawal ends only their part, and a guest joins the call and nothing
else."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from server.core.protocol import CloseCode
from tests.integration.test_participants import _decide, _practice, _token, _visitor
from tests.integration.test_signaling import OFFER, Party

CANDIDATE = {"kind": "candidate", "candidate": {"candidate": "", "sdpMid": "0"}}


class Call:
    """A session with a therapist, clients J.M. and K.L., and a guest "Interpreter", each on
    their own browser with telehealth consent given."""

    def __init__(self) -> None:
        self.therapist: Party
        self.people: dict[str, Party] = {}  # by label
        self.peer_ids: dict[str, str] = {}  # label -> peer id
        self.csrf: dict[str, str] = {}
        self.lobby: list[dict[str, Any]] = []

    async def setup(self, client: TestClient, aiohttp_client: Any) -> Call:
        practice = await _practice(client)
        couple = await practice.add({"kind": "client", "client_id": practice.second_id})
        guest = await practice.add({"kind": "guest", "label": "Interpreter"})
        links = {
            "J.M.": practice.primary_token,
            "K.L.": _token(couple["join_url"]),
            "Interpreter": _token(guest["join_url"]),
        }
        self.therapist = Party(client, practice.session_id)
        await self.therapist.connect()
        for label, token in links.items():
            http, csrf = await _visitor(aiohttp_client, client, token)
            assert (await _decide(http, csrf, "telehealth")).status == 201
            party = Party(http, practice.session_id)
            welcome = await party.connect()
            self.people[label], self.csrf[label] = party, csrf
            self.peer_ids[label] = welcome["peer_id"]
        while len(self.lobby) < 3:
            self.lobby = (await self.therapist.expect("lobby"))["waiting"]
        return self

    def knock(self, label: str) -> str:
        return next(k["knock_id"] for k in self.lobby if k["label"] == label)

    async def admit(self, label: str) -> None:
        await self.therapist.send({"type": "admit", "knock_id": self.knock(label)})
        await self.people[label].expect("admitted")


async def received_until(party: Party, kind: str) -> list[str]:
    """The types of every message a party gets up to and including the next `kind`."""
    assert party.ws is not None
    seen: list[str] = []
    while not seen or seen[-1] != kind:
        message = await party.ws.receive_json(timeout=5)
        seen.append(message["type"])
    return seen


async def roster_of(party: Party, count: int) -> list[tuple[str, str, int, bool]]:
    """The first roster with `count` people this party gets from now on."""
    while True:
        people = (await party.expect("roster"))["people"]
        if len(people) == count:
            return [(p["peer_id"], p["kind"], p["order"], p["present"]) for p in people]


async def test_each_person_knocks_as_who_they_are_and_is_admitted_on_their_own(
    client: TestClient, aiohttp_client: Any
) -> None:
    call = await Call().setup(client, aiohttp_client)
    assert sorted((k["label"], k["kind"]) for k in call.lobby) == [
        ("Interpreter", "guest"),
        ("J.M.", "client"),
        ("K.L.", "client"),
    ]
    assert {k["participant_id"] for k in call.lobby} == set(call.peer_ids.values())
    assert len(set(call.peer_ids.values()) | {"therapist"}) == 4  # one peer id per person
    await call.admit("J.M.")
    await call.admit("K.L.")
    await call.admit("Interpreter")
    ids = call.peer_ids
    expected = [
        ("therapist", "therapist", 0, True),
        (ids["J.M."], "client", 1, True),
        (ids["K.L."], "client", 2, True),
        (ids["Interpreter"], "guest", 3, True),
    ]
    for party in (call.therapist, *call.people.values()):
        assert await roster_of(party, 4) == expected


async def test_relays_are_addressed_and_say_who_sent_them(
    client: TestClient, aiohttp_client: Any
) -> None:
    call = await Call().setup(client, aiohttp_client)
    for label in ("J.M.", "K.L.", "Interpreter"):
        await call.admit(label)
    jm, kl, guest = (call.people[label] for label in ("J.M.", "K.L.", "Interpreter"))
    await jm.send({"type": "relay", "to": call.peer_ids["K.L."], "payload": OFFER})
    relayed = await kl.expect("signal-relay")
    assert (relayed["from"], relayed["payload"]) == (call.peer_ids["J.M."], OFFER)
    await guest.send({"type": "relay", "to": "therapist", "payload": CANDIDATE})
    assert (await call.therapist.expect("signal-relay"))["from"] == call.peer_ids["Interpreter"]

    await call.therapist.send({"type": "relay", "payload": OFFER, "id": "r1"})
    unaddressed = await call.therapist.expect("error")
    assert (unaddressed["code"], unaddressed["ref"]) == ("invalid", "r1")
    await call.therapist.send({"type": "relay", "to": "p-nobody", "payload": OFFER, "id": "r2"})
    nobody = await call.therapist.expect("error")
    assert (nobody["code"], nobody["ref"]) == ("no-peer", "r2")


async def test_a_relay_to_someone_still_waiting_is_refused(
    client: TestClient, aiohttp_client: Any
) -> None:
    call = await Call().setup(client, aiohttp_client)
    await call.admit("J.M.")
    waiting = call.peer_ids["K.L."]
    await call.people["J.M."].send({"type": "relay", "to": waiting, "payload": OFFER, "id": "w"})
    assert (await call.people["J.M."].expect("error"))["code"] == "no-peer"


async def test_one_persons_consent_withdrawal_removes_only_them(
    client: TestClient, aiohttp_client: Any
) -> None:
    call = await Call().setup(client, aiohttp_client)
    for label in ("J.M.", "K.L.", "Interpreter"):
        await call.admit(label)
    kl = call.people["K.L."]
    await kl.send(
        {"type": "consent", "purpose": "telehealth", "decision": "withdrawn", "notice_version": 1}
    )
    assert (await kl.expect("session-ended"))["reason"] == "consent-withdrawn"
    assert await kl.closed_with() == CloseCode.FORBIDDEN
    left_id = call.peer_ids["K.L."]
    for party in (call.therapist, call.people["J.M."], call.people["Interpreter"]):
        left = await party.expect("peer-left")
        assert (left["peer_id"], left["reconnecting"]) == (left_id, False)
        assert left_id not in [p[0] for p in await roster_of(party, 3)]
    # the others' call goes on: they still relay to each other
    await call.people["J.M."].send({"type": "relay", "to": "therapist", "payload": OFFER})
    assert (await call.therapist.expect("signal-relay"))["from"] == call.peer_ids["J.M."]
    # K.L.'s consent change was K.L.'s: J.M. never heard of it
    await call.people["J.M."].send({"type": "ping", "id": "p1"})
    assert "consent-changed" not in await received_until(call.people["J.M."], "pong")


async def test_a_consent_change_reaches_the_therapist_and_that_person_only(
    client: TestClient, aiohttp_client: Any
) -> None:
    call = await Call().setup(client, aiohttp_client)
    for label in ("J.M.", "K.L."):
        await call.admit(label)
    await call.people["K.L."].send(
        {"type": "consent", "purpose": "cue_analysis", "decision": "granted", "notice_version": 1}
    )
    changed = await call.people["K.L."].expect("consent-changed")
    assert changed["purpose"] == "cue_analysis"
    assert (await call.therapist.expect("consent-changed"))["purpose"] == "cue_analysis"
    await call.people["J.M."].send({"type": "ping", "id": "after"})
    jm = call.people["J.M."]
    seen = await received_until(jm, "pong")  # everything J.M. got up to the pong
    assert "consent-changed" not in seen


async def test_a_guest_joins_the_call_and_may_not_act_for_a_client(
    client: TestClient, aiohttp_client: Any
) -> None:
    call = await Call().setup(client, aiohttp_client)
    await call.admit("J.M.")
    await call.admit("Interpreter")
    guest = call.people["Interpreter"]
    refused = [
        {
            "type": "checkin-answer",
            "instrument_id": "pulse",
            "answers": {"pulse": 4},
            "idempotency_key": "guest-key-0123456789",
        },
        {"type": "features", "role": "client", "t_ms": 1, "speech": True},
        {"type": "signal", "signal": "slow-down"},
        {"type": "consent", "purpose": "cue_analysis", "decision": "granted", "notice_version": 1},
        {"type": "goal-add", "text": "Talk more"},
    ]
    for n, message in enumerate(refused):
        await guest.send({**message, "id": f"g{n}"})
        error = await guest.expect("error")
        assert (error["code"], error["ref"]) == ("forbidden", f"g{n}"), message["type"]
    await guest.send({"type": "ping", "id": "still-here"})
    assert (await guest.expect("pong"))["ref"] == "still-here"

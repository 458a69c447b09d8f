"""Check-ins in a couple session: each partner's answers are their own (consent, key, record),
the therapist's panel names whose they are, and partners far apart raise `alliance-split`."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from server.errors import InvalidInput
from server.keys import CHECKINS, DB, LIVE
from tests.integration.test_checkins import _grant
from tests.integration.test_signaling import Party, _setup


def _after(bond: int, goals: int, approach: int, overall: int) -> dict[str, object]:
    """After-session answers whose alliance total is bond + goals + approach + overall."""
    return {
        "bond": bond,
        "goals": goals,
        "approach": approach,
        "technology": 9,
        "overall": overall,
        "rupture": "no",
    }


async def _couple_in_call(client: TestClient, aiohttp_client: Any) -> tuple[Party, str]:
    """A session in call whose client (J.M.) agreed to check-in storage, and the therapist's
    second client (R.M., the partner), who did not."""
    therapist, visitor, csrf = await _setup(client, aiohttp_client)
    await _grant(visitor, "checkin_storage")
    await therapist.connect()
    welcome = await visitor.connect()
    await therapist.send({"type": "admit", "knock_id": welcome["knock_id"]})
    await visitor.expect("admitted")
    created = await client.post(
        "/api/v1/clients", json={"alias": "R.M."}, headers={"X-CSRF-Token": csrf}
    )
    assert created.status == 201
    return therapist, str((await created.json())["id"])


async def _submit(client: TestClient, session_id: str, key: str, answers: Any, who: str | None):
    return await client.app[LIVE].submit_checkin(
        session_id, instrument_id="after", answers=answers, idempotency_key=key, client_id=who
    )


async def test_each_partners_after_checkin_is_their_own_and_far_apart_totals_split(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, partner = await _couple_in_call(client, aiohttp_client)
    session = therapist.session_id
    first = await _submit(client, session, "a" * 20, _after(10, 10, 9, 10), None)  # 39 of 40
    result = await therapist.expect("checkin-result")
    assert result["label"] == "J.M." and result["client_id"] == first.result.client_id
    second = await _submit(client, session, "b" * 20, _after(7, 7, 8, 7), partner)  # 29 of 40
    result = await therapist.expect("checkin-result")
    assert (result["label"], result["client_id"]) == ("R.M.", partner)
    split = await therapist.expect("alliance-split")
    assert split["alert"]["code"] == "split-alliance"
    assert "10 points apart (29 and 39 of 40)" in split["alert"]["reason"]
    assert split["alert"]["repair"].startswith("Invite feedback from each partner")
    # each partner's consent decides for their own answers: only the first agreed to storage
    assert first.result.stored and not second.result.stored
    assert second.result.client_id == partner
    # and no partner's record holds the split (its reason names both totals)
    stored = await client.app[CHECKINS].stored_for_client(client.app[DB], first.result.client_id)
    assert [r.client_id for r in stored] == [first.result.client_id]
    assert all(a.code != "split-alliance" for r in stored for a in r.alerts)
    assert await client.app[CHECKINS].stored_for_client(client.app[DB], partner) == []


async def test_partners_close_together_raise_no_split_and_a_resubmission_counts(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, partner = await _couple_in_call(client, aiohttp_client)
    session = therapist.session_id
    await _submit(client, session, "a" * 20, _after(9, 9, 9, 9), None)  # 36
    await therapist.expect("checkin-result")
    await _submit(client, session, "b" * 20, _after(8, 8, 8, 9), partner)  # 33: 3 apart
    await therapist.expect("checkin-result")
    await therapist.send({"type": "ping"})
    await therapist.expect("pong")  # no alliance-split came before this pong
    await _submit(client, session, "c" * 20, _after(7, 7, 7, 7), partner)  # the partner: 28
    await therapist.expect("checkin-result")
    assert "8 points apart" in (await therapist.expect("alliance-split"))["alert"]["reason"]


async def test_a_reconnecting_therapist_gets_the_split_and_each_partners_label(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, partner = await _couple_in_call(client, aiohttp_client)
    session = therapist.session_id
    await _submit(client, session, "a" * 20, _after(10, 10, 10, 10), None)
    await _submit(client, session, "b" * 20, _after(6, 6, 6, 6), partner)
    assert therapist.ws is not None
    await therapist.ws.close()
    again = Party(client, session)
    await again.connect()
    panel = await again.expect("panel-state")
    assert [(c["label"], c["kind"]) for c in panel["checkins"]] == [
        ("J.M.", "after"),
        ("R.M.", "after"),
    ]
    assert "16 points apart" in panel["alliance_split"]["reason"]
    page = await (await client.get(f"/host/{session}/summary")).text()  # and after the session
    assert "Split alliance" in page and "16 points apart" in page
    assert "J.M. · " in page and "R.M. · " in page  # each check-in names its client


async def test_a_partner_cannot_take_over_the_others_idempotency_key(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, partner = await _couple_in_call(client, aiohttp_client)
    session = therapist.session_id
    await _submit(client, session, "a" * 20, _after(10, 10, 10, 10), None)
    with pytest.raises(InvalidInput, match="already used"):
        await _submit(client, session, "a" * 20, _after(1, 1, 1, 1), partner)

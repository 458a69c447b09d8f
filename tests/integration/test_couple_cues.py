"""Cue analysis with several people in a live session: each client's own consent decides for
their features, a guest's features are never analysed or stored, and each client gets their
own summary at the end."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from privacy.consent import Channel, ConsentDecision, Purpose
from server.core.cues.group_synthetic import PARTNER_A, PARTNER_B, group_scenario
from server.core.participants import THERAPIST_PEER_ID, PersonKind
from server.keys import CUE_RECORDS, DB, LIVE, SETTINGS
from server.settings import Settings
from tests.integration.test_checkins import _grant
from tests.integration.test_signaling import Party, _setup


@pytest.fixture
def settings(data_dir: Path) -> Settings:
    """Test-scaled cue windows: the couples rule's 10 minutes take 30 s of session time."""
    return Settings(data_dir=data_dir, cue_time_scale=0.05)


def _rows(client: TestClient, table: str) -> list[str]:
    """The client ids of a cue table's rows."""
    with sqlite3.connect(client.app[SETTINGS].data_dir / "attune.db") as conn:
        return [row[0] for row in conn.execute(f"SELECT client_id FROM {table}")]


async def _couple(
    client: TestClient, aiohttp_client: Any, *, partner_consents: bool
) -> tuple[Party, str, str]:
    """A session in call whose client (J.M.) agreed to cue analysis, and a second client of
    the therapist (R.M., the partner) who agreed or not."""
    therapist, visitor, csrf = await _setup(client, aiohttp_client)
    await _grant(visitor, "cue_analysis")
    await therapist.connect()
    welcome = await visitor.connect()
    await therapist.send({"type": "admit", "knock_id": welcome["knock_id"]})
    await visitor.expect("admitted")
    created = await client.post(
        "/api/v1/clients", json={"alias": "R.M."}, headers={"X-CSRF-Token": csrf}
    )
    partner = str((await created.json())["id"])
    if partner_consents:
        await client.app[LIVE].decide_consent(
            partner, Purpose.CUE_ANALYSIS, ConsentDecision.GRANTED, 1, Channel.PAGE
        )
    with sqlite3.connect(client.app[SETTINGS].data_dir / "attune.db") as conn:
        (first,) = conn.execute(
            "SELECT client_id FROM therapy_sessions WHERE id = ?", (therapist.session_id,)
        ).fetchone()
    return therapist, str(first), partner


async def _feed_couple(
    client: TestClient, session_id: str, first: str, partner: str, *, minutes: float
) -> None:
    """The couple_dominant scenario: partner A is the session's client, partner B the
    partner, and the interpreter a guest whose frames come with the session's client id
    (as a guest's connection does)."""
    live = client.app[LIVE]
    owners = {THERAPIST_PEER_ID: first, PARTNER_A: first, PARTNER_B: partner}
    for peer, kind, frame in group_scenario("couple_dominant", minutes=minutes):
        await live.feed_features(
            session_id, owners.get(peer, first), frame.to_message(), peer_id=peer, kind=kind
        )


async def test_the_couples_prompt_names_the_partner_and_is_kept_with_that_clients_record(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, first, partner = await _couple(client, aiohttp_client, partner_consents=True)
    await _feed_couple(client, therapist.session_id, first, partner, minutes=1.2)
    prompt = (await therapist.expect("prompt"))["prompt"]
    while prompt["category"] != "couple_balance":
        prompt = (await therapist.expect("prompt"))["prompt"]
    assert prompt["peers"] == [PARTNER_A] and "Consider" in prompt["text"]
    assert first in _rows(client, "cue_prompts")
    await therapist.send({"type": "end"})
    await therapist.expect("session-ended")
    assert sorted(_rows(client, "cue_summaries")) == sorted([first, partner])  # one each
    page = await (await client.get(f"/host/{therapist.session_id}/summary")).text()
    for alias in ("J.M.", "R.M."):  # an after-session summary per person
        assert f"<h3>{alias}</h3>" in page and f"Talk share ({alias})" in page
    assert page.count('id="cue0-0-t"') == 1 and page.count('id="cue1-0-t"') == 1
    assert "Talk share per person" in page and '<th scope="row">Therapist</th>' in page


async def test_a_partner_without_consent_is_never_analysed(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, first, partner = await _couple(client, aiohttp_client, partner_consents=False)
    await _feed_couple(client, therapist.session_id, first, partner, minutes=1.2)
    windows = client.app[LIVE].cues.windows(therapist.session_id)
    assert windows is not None and len(windows["pairs"]) == 1  # partner A's engine only
    assert partner not in _rows(client, "cue_prompts")
    await therapist.send({"type": "end"})
    await therapist.expect("session-ended")
    assert _rows(client, "cue_summaries") == [first]


async def test_a_guests_features_never_reach_the_engine_or_storage(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, first, _ = await _couple(client, aiohttp_client, partner_consents=True)
    live = client.app[LIVE]
    for peer, kind, frame in group_scenario("couple_balanced", minutes=1):
        if kind is PersonKind.GUEST:  # the interpreter alone, under the consenting client's id
            await live.feed_features(
                therapist.session_id, first, frame.to_message(), peer_id=peer, kind=kind
            )
    assert not live.cues.active(therapist.session_id)
    assert _rows(client, "cue_prompts") == [] and _rows(client, "signal_events") == []


async def test_one_partner_withdrawing_stops_only_their_analysis(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, first, partner = await _couple(client, aiohttp_client, partner_consents=True)
    await _feed_couple(client, therapist.session_id, first, partner, minutes=0.5)
    live = client.app[LIVE]
    assert len((live.cues.windows(therapist.session_id) or {})["pairs"]) == 2
    await live.decide_consent(
        partner, Purpose.CUE_ANALYSIS, ConsentDecision.WITHDRAWN, 1, Channel.PAGE
    )
    windows = live.cues.windows(therapist.session_id)
    assert windows is not None and len(windows["pairs"]) == 1  # the first client's goes on
    assert partner not in _rows(client, "cue_prompts")


async def test_a_prompt_kept_with_both_partners_is_shown_once_after_a_reload(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, first, partner = await _couple(client, aiohttp_client, partner_consents=True)
    prompt = {
        "id": "pg1",
        "category": "client_talk_over",
        "t_ms": 60_000,
        "severity": "notice",
        "text": "Two clients have spoken over each other 3 times in the last 2 min. Consider …",
        "reasons": [],
        "peers": [PARTNER_A, PARTNER_B],
    }
    for owner in (first, partner):  # as feed_features keeps a prompt about both
        await client.app[CUE_RECORDS].store_prompt(
            client.app[DB],
            session_id=therapist.session_id,
            client_id=owner,
            prompt=prompt,
            now=datetime.now(UTC),
        )
    assert sorted(_rows(client, "cue_prompts")) == sorted([first, partner])
    assert therapist.ws is not None
    await therapist.ws.close()
    again = Party(client, therapist.session_id)
    await again.connect()
    panel = await again.expect("panel-state")
    assert [p["id"] for p in panel["prompts"]] == ["pg1"]

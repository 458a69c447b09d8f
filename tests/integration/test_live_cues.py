"""Cue analysis in a live session: consent-gated, therapist-only prompts, stops at withdrawal."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from server.core.cues.synthetic import scenario_frames
from server.keys import LIVE, SETTINGS
from server.settings import Settings
from tests.integration.test_checkins import _grant
from tests.integration.test_signaling import Party, _setup


@pytest.fixture
def settings(data_dir: Path) -> Settings:
    """Test-scaled cue windows, so rules that watch minutes fire within a few frames."""
    return Settings(data_dir=data_dir, cue_time_scale=0.05)


def _count(client: TestClient, table: str) -> int:
    with sqlite3.connect(client.app[SETTINGS].data_dir / "attune.db") as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


async def _call(
    client: TestClient, aiohttp_client: Any, *, cue_consent: bool
) -> tuple[Party, Party]:
    therapist, visitor, _ = await _setup(client, aiohttp_client)
    if cue_consent:
        await _grant(visitor, "cue_analysis")
    await therapist.connect()
    welcome = await visitor.connect()
    await therapist.send({"type": "admit", "knock_id": welcome["knock_id"]})
    await visitor.expect("admitted")
    return therapist, visitor


async def _send_lagging_frames(therapist: Party, visitor: Party, count: int = 6) -> None:
    """A high-lag conversation: each side sends its own role's frames."""
    for n, frame in enumerate(scenario_frames("high_lag", minutes=1, seed=1)):
        if n >= count:
            return
        message = frame.to_message()
        await (therapist if message["role"] == "therapist" else visitor).send(message)


async def _quiet(party: Party) -> None:
    """Everything sent before now has been handled: a ping round trip."""
    await party.send({"type": "ping"})
    await party.expect("pong")


async def test_with_consent_a_prompt_reaches_only_the_therapist_and_is_stored_encrypted(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, visitor = await _call(client, aiohttp_client, cue_consent=True)
    await _send_lagging_frames(therapist, visitor)
    prompt = (await therapist.expect("prompt"))["prompt"]
    assert prompt["category"] == "lag" and "Consider" in prompt["text"]
    await _quiet(visitor)
    assert _count(client, "cue_prompts") >= 1
    with sqlite3.connect(client.app[SETTINGS].data_dir / "attune.db") as conn:
        (blob,) = conn.execute("SELECT payload_ciphertext FROM cue_prompts").fetchone()
    assert b"Consider" not in blob


async def test_without_consent_features_are_dropped_and_nothing_is_kept(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, visitor = await _call(client, aiohttp_client, cue_consent=False)
    await _send_lagging_frames(therapist, visitor)
    await _quiet(therapist)
    await _quiet(visitor)
    assert _count(client, "cue_prompts") == 0
    assert not client.app[LIVE].cues.active(therapist.session_id)


async def test_withdrawing_consent_stops_analysis_at_once_and_deletes_what_was_kept(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, visitor = await _call(client, aiohttp_client, cue_consent=True)
    await _send_lagging_frames(therapist, visitor)
    await therapist.expect("prompt")
    await visitor.send(
        {"type": "consent", "purpose": "cue_analysis", "decision": "withdrawn", "notice_version": 1}
    )
    changed = await therapist.expect("consent-changed")
    assert changed["purpose"] == "cue_analysis" and changed["decision"] == "withdrawn"
    assert _count(client, "cue_prompts") == 0
    assert not client.app[LIVE].cues.active(therapist.session_id)
    await _send_lagging_frames(therapist, visitor)  # frames still in flight are dropped
    await _quiet(therapist)
    assert not client.app[LIVE].cues.active(therapist.session_id)
    assert _count(client, "cue_prompts") == 0


async def test_a_browser_may_only_send_features_for_its_own_role(
    client: TestClient, aiohttp_client: Any
) -> None:
    _, visitor = await _call(client, aiohttp_client, cue_consent=True)
    frame = next(
        f
        for f in scenario_frames("balanced", minutes=1, seed=1)
        if f.to_message()["role"] == "therapist"
    ).to_message()
    await visitor.send(frame)
    assert (await visitor.expect("error"))["code"] == "invalid"


async def test_muting_a_category_stops_its_prompts(client: TestClient, aiohttp_client: Any) -> None:
    therapist, visitor = await _call(client, aiohttp_client, cue_consent=True)
    await _send_lagging_frames(therapist, visitor)
    prompt = (await therapist.expect("prompt"))["prompt"]
    await therapist.send(
        {"type": "prompt-feedback", "prompt_id": prompt["id"], "feedback": "mute-category"}
    )
    await therapist.send({"type": "prompt-feedback", "prompt_id": "nope", "feedback": "helpful"})
    assert (await therapist.expect("error"))["code"] == "invalid"


async def test_signals_reach_the_therapist_and_are_stored_only_with_consent(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, visitor = await _call(client, aiohttp_client, cue_consent=False)
    await visitor.send({"type": "signal", "signal": "slow-down"})
    assert (await therapist.expect("client-signal"))["signal"] == "slow-down"
    await _quiet(visitor)
    assert _count(client, "signal_events") == 0
    await _grant(visitor, "cue_analysis")
    await visitor.send({"type": "signal", "signal": "need-a-moment"})
    await therapist.expect("client-signal")
    await _quiet(visitor)
    assert _count(client, "signal_events") == 1


async def test_the_session_summary_is_stored_at_the_end(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, visitor = await _call(client, aiohttp_client, cue_consent=True)
    await _send_lagging_frames(therapist, visitor)
    await therapist.expect("prompt")
    await therapist.send({"type": "end"})
    await therapist.expect("session-ended")
    assert _count(client, "cue_summaries") == 1


async def test_the_therapist_summary_page_shows_cue_charts_and_prompts(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, visitor = await _call(client, aiohttp_client, cue_consent=True)
    await _send_lagging_frames(therapist, visitor, count=40)
    prompt = (await therapist.expect("prompt"))["prompt"]
    await visitor.send({"type": "signal", "signal": "slow-down"})
    await therapist.expect("client-signal")
    await therapist.send({"type": "end"})
    await therapist.expect("session-ended")
    page = await (await client.get(f"/host/{therapist.session_id}/summary")).text()
    assert page.count('class="cue-chart"') == 5
    assert "Connection delay" in page and "Movement synchrony (experimental)" in page
    assert prompt["text"] in page and "slow-down" in page


def _client_frame(t_ms: int, *, net: dict[str, Any] | None) -> dict[str, Any]:
    """One second from the client's browser only: speaking, no RTT in its stats."""
    return {
        "type": "features",
        "role": "client",
        "t_ms": t_ms,
        "window_ms": 1000,
        "voiced": [[t_ms - 800, t_ms - 200]],
        "level_dbfs": -30.0,
        "motion": 0.5,
        "net": net,
    }


@pytest.mark.parametrize(
    ("frames", "net"),
    [
        pytest.param(0, None, id="a call ended before any features"),
        pytest.param(2, None, id="two seconds from one side, no stats"),
        pytest.param(3, {"jitter_ms": 4.0, "loss": 0.0}, id="stats without RTT"),
    ],
)
async def test_a_session_cut_short_with_features_from_one_side_and_no_rtt_still_has_a_summary(
    client: TestClient, aiohttp_client: Any, frames: int, net: dict[str, Any] | None
) -> None:
    """Issue #11: the summary and its cue charts with missing and partial data, never a 500."""
    therapist, visitor = await _call(client, aiohttp_client, cue_consent=True)
    for n in range(frames):
        await visitor.send(_client_frame(1000 * (n + 1), net=net))
    await _quiet(visitor)
    await therapist.send({"type": "end"})
    await therapist.expect("session-ended")

    response = await client.get(f"/host/{therapist.session_id}/summary")

    assert response.status == 200
    page = await response.text()
    assert "Conversation cues" in page
    if frames:
        assert _count(client, "cue_summaries") == 1
        assert page.count('class="cue-chart"') == 5
        assert "No delay was measured" in page
    else:  # the engine had nothing to summarise
        assert _count(client, "cue_summaries") == 0
        assert "No cue summary for this session" in page


async def test_the_summary_of_a_session_still_under_way_or_never_joined_is_a_page(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, visitor, _ = await _setup(client, aiohttp_client)
    never_joined = await client.get(f"/host/{therapist.session_id}/summary")
    assert never_joined.status == 200
    assert "No check-ins for this session." in await never_joined.text()

    await therapist.connect()
    welcome = await visitor.connect()
    await therapist.send({"type": "admit", "knock_id": welcome["knock_id"]})
    await visitor.expect("admitted")
    await visitor.send(_client_frame(1000, net=None))
    under_way = await client.get(f"/host/{therapist.session_id}/summary")
    assert under_way.status == 200
    assert "No cue summary for this session" in await under_way.text()

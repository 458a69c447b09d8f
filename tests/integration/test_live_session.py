"""One owner for live operations: ending from any edge does every step; deliveries keep audiences.

The WebSocket `end`, the REST cancel and the dashboard's Cancel button all call
`LiveSessions.end_session`; a check-in from the HTTP after-session page reaches the therapist
live just as one sent over the socket does.
"""

from __future__ import annotations

import secrets
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from server.core.protocol import ClientSignal, ClientSignalMessage, EndReason, SessionRole
from server.core.rooms import Audience
from server.keys import CHECKINS, LIVE, SETTINGS
from server.realtime.hub import Hub
from server.settings import Settings
from tests.integration.test_checkins import _grant
from tests.integration.test_live_cues import _call, _send_lagging_frames


@pytest.fixture
def settings(data_dir: Path) -> Settings:
    """Test-scaled cue windows, so a prompt (and live cue state) appears within a few frames."""
    return Settings(data_dir=data_dir, cue_time_scale=0.05)


def _rows(client: TestClient, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(client.app[SETTINGS].data_dir / "attune.db") as conn:
        return list(conn.execute(sql).fetchall())


async def _pulse_answered(client: TestClient, therapist: Any, visitor: Any) -> None:
    await therapist.send({"type": "checkin-launch", "instrument_id": "pulse"})
    await visitor.expect("checkin-open")
    await visitor.send(
        {
            "type": "checkin-answer",
            "instrument_id": "pulse",
            "answers": {"pulse": 4},
            "idempotency_key": secrets.token_hex(12),
        }
    )
    await visitor.expect("checkin-ack")
    await therapist.expect("checkin-result")
    assert client.app[CHECKINS].live_results(therapist.session_id)


async def _live_state_in_full(client: TestClient, aiohttp_client: Any) -> tuple[Any, Any]:
    """A call with cue analysis running (a prompt raised) and a pulse answered."""
    therapist, visitor = await _call(client, aiohttp_client, cue_consent=True)
    await _send_lagging_frames(therapist, visitor)
    await therapist.expect("prompt")
    await _pulse_answered(client, therapist, visitor)
    assert client.app[LIVE].cues.active(therapist.session_id)
    return therapist, visitor


def _assert_everything_finished(client: TestClient, session_id: str) -> None:
    assert not client.app[LIVE].cues.active(session_id)
    assert client.app[CHECKINS].live_results(session_id) == []
    assert _rows(client, "SELECT count(*) FROM cue_summaries") == [(1,)]


async def test_cancelling_a_session_in_progress_from_the_api_finishes_it_like_ending_it_live(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, visitor = await _live_state_in_full(client, aiohttp_client)
    csrf = await _csrf_of(client)
    response = await client.post(
        f"/api/v1/sessions/{therapist.session_id}/cancel", headers={"X-CSRF-Token": csrf}
    )
    assert response.status == 200
    assert (await visitor.expect("session-ended"))["reason"] == EndReason.THERAPIST_ENDED
    assert await visitor.closed_with() == 4004
    await therapist.expect("session-ended")
    _assert_everything_finished(client, therapist.session_id)


async def test_cancelling_from_the_dashboard_page_finishes_it_like_ending_it_live(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, visitor = await _live_state_in_full(client, aiohttp_client)
    csrf = await _csrf_of(client)
    response = await client.post(
        f"/dashboard/sessions/{therapist.session_id}/cancel",
        data={"csrf_token": csrf},
        allow_redirects=False,
    )
    assert response.status == 303
    await visitor.expect("session-ended")
    assert await visitor.closed_with() == 4004
    _assert_everything_finished(client, therapist.session_id)


async def test_ending_over_the_socket_finishes_the_same_way(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, visitor = await _live_state_in_full(client, aiohttp_client)
    await therapist.send({"type": "end"})
    assert (await visitor.expect("checkin-open"))["kind"] == "after"
    await visitor.expect("session-ended")
    _assert_everything_finished(client, therapist.session_id)
    assert ("session.end",) in _rows(client, "SELECT action FROM audit_log")


async def test_a_checkin_posted_over_http_reaches_the_therapist_live_and_is_audited_once(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, visitor = await _call(client, aiohttp_client, cue_consent=False)
    await _grant(visitor, "checkin_storage")
    csrf = await _client_csrf(visitor)
    body = {
        "instrument_id": "pulse",
        "answers": {"pulse": 2},
        "idempotency_key": secrets.token_hex(12),
    }
    first = await visitor.http.post(
        "/api/v1/visit/checkins", json=body, headers={"X-CSRF-Token": csrf}
    )
    assert first.status == 201
    result = await therapist.expect("checkin-result")
    assert result["kind"] == "pulse" and result["scores"]["pulse"] == 2
    again = await visitor.http.post(
        "/api/v1/visit/checkins", json=body, headers={"X-CSRF-Token": csrf}
    )
    assert again.status == 200 and (await again.json())["duplicate"] is True
    audited = _rows(client, "SELECT details FROM audit_log WHERE action = 'checkin.submit'")
    assert len(audited) == 1 and "pulse" in audited[0][0] and "2" not in audited[0][0]


def test_a_therapist_only_message_cannot_be_delivered_to_clients() -> None:
    hub = Hub()
    hub.rooms.join("s1", "t1", SessionRole.THERAPIST, "Therapist", 0)
    hub.rooms.join("s1", "c1", SessionRole.CLIENT, "J.M.", 0)
    signal: Any = ClientSignalMessage(signal=ClientSignal.NEED_A_MOMENT)  # Any: mypy would refuse
    for audience in (Audience.CLIENTS, Audience.ADMITTED_CLIENT, Audience.EVERYONE):
        with pytest.raises(TypeError, match="therapist"):
            hub.deliver("s1", signal, audience)


def test_a_therapist_only_message_cannot_be_sent_to_a_connection_by_its_id() -> None:
    hub = Hub()
    hub.rooms.join("s1", "t1", SessionRole.THERAPIST, "Therapist", 0)
    hub.rooms.join("s1", "c1", SessionRole.CLIENT, "J.M.", 0)
    signal: Any = ClientSignalMessage(signal=ClientSignal.NEED_A_MOMENT)  # Any: mypy would refuse
    for conn_id in ("c1", "t1"):  # an id does not say whose it is: no therapist-only by id
        with pytest.raises(TypeError, match="deliver_to_therapist"):
            hub.send(conn_id, signal)
    forwarded: list[Any] = []
    hub.bus.forward_effect = forwarded.append  # type: ignore[method-assign]
    hub.deliver_to_therapist("s1", signal)
    assert [(e.conn_id, e.message["type"]) for e in forwarded] == [("t1", "client-signal")]


async def _csrf_of(client: TestClient) -> str:
    """The signed-in therapist's CSRF token, as the dashboard page carries it."""
    import re

    page = await (await client.get("/dashboard")).text()
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found
    return found.group(1)


async def _client_csrf(visitor: Any) -> str:
    import re

    page = await (await visitor.http.get("/visit/consent")).text()
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found
    return found.group(1)

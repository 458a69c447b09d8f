"""A therapist who opted in hears of a rupture alert by email only when they are not in the
room to see it live (docs/privacy.md "Email": therapists' alert emails)."""

from __future__ import annotations

import re
from typing import Any

from aiohttp.test_utils import TestClient

from server.keys import HUB
from tests.conftest import FakeClock
from tests.integration import test_email
from tests.integration.test_checkins import _grant
from tests.integration.test_email import Mailbox, _round, _text
from tests.integration.test_signaling import Party, _admitted, _setup

app, mailbox = test_email.app, test_email.mailbox  # the same fixtures: SMTP on loopback

RUPTURE = {
    "bond": 9,
    "goals": 9,
    "approach": 9,
    "technology": 9,
    "overall": 9,
    "rupture": "quite-a-bit",
}


async def _rupture(visitor: Party, key: str) -> None:
    page = await (await visitor.http.get("/visit")).text()
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', page)
    assert csrf
    response = await visitor.http.post(
        "/api/v1/visit/checkins",
        headers={"X-CSRF-Token": csrf.group(1)},
        json={"instrument_id": "after", "answers": RUPTURE, "idempotency_key": key},
    )
    assert response.status == 201, await response.text()
    assert (await response.json())["stored"] is True


async def test_no_alert_email_while_the_therapist_is_in_the_room_and_one_once_they_left(
    client: TestClient, aiohttp_client: Any, clock: FakeClock, mailbox: tuple[Mailbox, int]
) -> None:
    box, _ = mailbox
    therapist, visitor, csrf = await _setup(client, aiohttp_client)
    opted = await client.post(
        "/dashboard/email-alerts", data={"csrf_token": csrf, "alerts": "on"}, allow_redirects=False
    )
    assert opted.status == 303
    await _grant(visitor, "checkin_storage")
    await _admitted(therapist, visitor)
    hub = client.app[HUB]
    assert await hub.therapist_in_room(therapist.session_id)

    await _rupture(visitor, "in-the-room-0001")
    await therapist.expect("checkin-result")  # seen live
    assert await _round(client, clock) == 0
    assert box.messages == []

    assert therapist.ws is not None
    await therapist.ws.close()  # the therapist's tab closes; the session stays live
    left = await visitor.expect("peer-left")
    assert left["role"] == "therapist"
    assert not await hub.therapist_in_room(therapist.session_id)
    await _rupture(visitor, "left-the-room-01")
    assert await _round(client, clock) == 1
    [(recipients, _)] = box.messages
    assert recipients == ["t@example.org"]
    assert "You have an alert for a client. Sign in to see it" in _text(box.parsed()[0])

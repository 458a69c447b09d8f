"""A therapist who opted in hears of a rupture alert by email only when they are not in the
room to see it live (docs/privacy.md "Email": therapists' alert emails)."""

from __future__ import annotations

import asyncio
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from server.app import create_app
from server.keys import HUB
from tests.conftest import FakeClock
from tests.integration import test_bus_redis, test_email
from tests.integration.test_bus_redis import REDIS_URL, _on
from tests.integration.test_checkins import _grant
from tests.integration.test_email import Mailbox, _email_settings, _round, _text
from tests.integration.test_signaling import Party, _admitted, _setup

app, mailbox = test_email.app, test_email.mailbox  # the same fixtures: SMTP on loopback
database_url, redis_prefix = test_bus_redis.database_url, test_bus_redis.redis_prefix

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


@pytest.fixture
async def two_mailing_apps(
    database_url: str,
    redis_prefix: str,
    aiohttp_client: Any,
    tmp_path: Path,
    clock: FakeClock,
    mailbox: tuple[Mailbox, int],
) -> tuple[TestClient, TestClient]:
    """Two processes of one clinic (PostgreSQL and Redis shared) that send email."""
    settings = replace(
        _email_settings(tmp_path / "data", mailbox[1]),
        database_url=database_url,
        redis_url=REDIS_URL,
        redis_prefix=redis_prefix,
        redis_lease_ms=1500,
    )
    first = await aiohttp_client(create_app(settings, clock=clock))
    second = await aiohttp_client(create_app(settings, clock=clock))
    return first, second


async def _in_room_seen_from(app_client: TestClient, session_id: str, expected: bool) -> bool:
    """Whether `therapist_in_room`, asked on this process, comes to say `expected` (the room's
    owner writes its state to Redis right after each change)."""
    for _ in range(100):
        if await app_client.app[HUB].therapist_in_room(session_id) is expected:
            return True
        await asyncio.sleep(0.05)
    return False


async def test_a_check_in_through_another_process_sees_the_therapist_in_the_room_there(
    two_mailing_apps: tuple[TestClient, TestClient],
    aiohttp_client: Any,
    clock: FakeClock,
    mailbox: tuple[Mailbox, int],
) -> None:
    box, _ = mailbox
    first, second = two_mailing_apps
    therapist, visitor_first, csrf = await _setup(first, aiohttp_client)
    opted = await first.post(
        "/dashboard/email-alerts", data={"csrf_token": csrf, "alerts": "on"}, allow_redirects=False
    )
    assert opted.status == 303
    await _grant(visitor_first, "checkin_storage")
    await therapist.connect()  # the room lives on the first process
    visitor = await _on(second, aiohttp_client, visitor_first)
    assert await _in_room_seen_from(second, therapist.session_id, True)

    await _rupture(visitor, "bus-in-the-room-1")  # answered through the second process
    await therapist.expect("checkin-result")
    assert await _round(second, clock) == 0

    assert therapist.ws is not None
    await therapist.ws.close()
    assert await _in_room_seen_from(second, therapist.session_id, False)
    await _rupture(visitor, "bus-left-the-room")
    assert await _round(second, clock) == 1
    assert [recipients for recipients, _ in box.messages] == [["t@example.org"]]

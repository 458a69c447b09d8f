"""Access that ends when it should (issue #13): every event that ends someone's access closes
their open sockets at once, with a final code and a reason the page can word; a message sent
after that is never processed."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient

from server.core.models import Role
from server.db.tables import checkin_responses
from server.keys import DB, HUB
from tests.conftest import PASSWORD, add_account, sign_in
from tests.integration.test_signaling import Party, _admitted, _setup

PULSE = {"type": "checkin-answer", "instrument_id": "pulse", "answers": {"pulse": 4}}


async def closed(party: Party, within: float = 5) -> tuple[int, str]:
    """The close code and reason the server sent, as a browser sees them."""
    assert party.ws is not None
    async with asyncio.timeout(within):
        while True:
            msg = await party.ws.receive()
            if msg.type == WSMsgType.CLOSE:
                return int(msg.data), str(msg.extra or "")
            if msg.type in (WSMsgType.CLOSED, WSMsgType.CLOSING):
                return int(party.ws.close_code or 0), ""


async def _visit_csrf(party: Party) -> str:
    page = await (await party.http.get("/visit")).text()
    return page.split('name="csrf-token" content="')[1].split('"')[0]


async def _until_pong(party: Party) -> list[str]:
    """The types of every message the party gets until the answer to a fresh ping."""
    await party.send({"type": "ping"})
    seen: list[str] = []
    assert party.ws is not None
    async with asyncio.timeout(5):
        while True:
            data = json.loads((await party.ws.receive()).data)
            if data["type"] == "pong":
                return seen
            seen.append(data["type"])


async def _stored_checkins(client: TestClient) -> int:
    async with client.app[DB].read() as conn:
        rows = (await conn.execute(checkin_responses.select())).all()
    return len(rows)


# --- the therapist's access --------------------------------------------------------------------


async def test_a_therapist_who_signs_out_in_another_tab_has_the_room_socket_closed_with_4401(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, visitor, csrf = await _setup(client, aiohttp_client)
    await _admitted(therapist, visitor)
    out = await client.post("/api/v1/auth/logout", headers={"X-CSRF-Token": csrf})
    assert out.status == 204
    assert await closed(therapist) == (4401, "signed-out")
    await visitor.expect("peer-left")


async def test_signing_out_one_sign_in_leaves_the_same_therapists_other_sign_in_connected(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, visitor, _ = await _setup(client, aiohttp_client)
    await _admitted(therapist, visitor)
    laptop = await aiohttp_client(client.server)
    laptop_csrf = await sign_in(laptop, "t@example.org")
    out = await laptop.post("/api/v1/auth/logout", headers={"X-CSRF-Token": laptop_csrf})
    assert out.status == 204
    await therapist.send({"type": "ping"})
    await therapist.expect("pong")


async def test_a_disabled_therapists_socket_closes_at_once_and_its_next_message_is_not_processed(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, visitor, _ = await _setup(client, aiohttp_client)
    await _admitted(therapist, visitor)
    admin = await aiohttp_client(client.server)
    await add_account(client.app, "admin@example.org", Role.ADMIN)
    admin_csrf = await sign_in(admin, "admin@example.org")
    account_id = (await (await client.get("/api/v1/auth/me")).json())["account"]["id"]

    disabled = await admin.post(
        f"/api/v1/accounts/{account_id}/disable", headers={"X-CSRF-Token": admin_csrf}
    )
    assert disabled.status == 200
    assert therapist.ws is not None
    # The disabled therapist tries to end the session and to read a client's check-in.
    await therapist.ws.send_json({"type": "end"})
    assert await closed(therapist) == (4401, "account-disabled")
    await visitor.send({**PULSE, "idempotency_key": "k" * 16})
    await visitor.expect("checkin-ack")
    await visitor.send({"type": "ping", "id": "p"})
    await visitor.expect("pong")  # the session was not ended by the disabled account
    assert client.app[HUB].rooms.get(visitor.session_id) is not None


async def test_a_password_reset_closes_every_open_socket_of_the_account_with_4401(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, visitor, _ = await _setup(client, aiohttp_client)
    await _admitted(therapist, visitor)
    admin = await aiohttp_client(client.server)
    await add_account(client.app, "admin@example.org", Role.ADMIN)
    admin_csrf = await sign_in(admin, "admin@example.org")
    account_id = (await (await client.get("/api/v1/auth/me")).json())["account"]["id"]
    reset = await admin.post(
        f"/api/v1/accounts/{account_id}/reset", headers={"X-CSRF-Token": admin_csrf}
    )
    assert reset.status == 200  # a one-time link for the therapist; the admin sets nothing
    assert await closed(therapist) == (4401, "password-changed")


async def test_changing_ones_password_closes_the_other_sign_ins_socket_and_keeps_this_one(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, visitor, _ = await _setup(client, aiohttp_client)
    await _admitted(therapist, visitor)  # the room is open on the office computer
    laptop_http = await aiohttp_client(client.server)
    laptop_csrf = await sign_in(laptop_http, "t@example.org")
    laptop = Party(laptop_http, visitor.session_id)
    await laptop.connect()  # takes the room over: the office tab closes as replaced (4001)
    assert (await closed(therapist))[0] == 4001
    office = Party(client, visitor.session_id)
    await office.connect()  # and the office takes it back
    assert (await closed(laptop))[0] == 4001
    changed = await laptop_http.post(
        "/api/v1/auth/password",
        json={"current_password": PASSWORD, "new_password": "a brand new long passphrase"},
        headers={"X-CSRF-Token": laptop_csrf},
    )
    assert changed.status == 204
    assert await closed(office) == (4401, "password-changed")
    mine = Party(laptop_http, visitor.session_id)
    await mine.connect()  # the changer's own sign-in still opens the room
    await mine.send({"type": "ping"})
    await mine.expect("pong")


async def test_ending_another_sign_in_on_the_account_page_closes_that_devices_socket(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, visitor, _ = await _setup(client, aiohttp_client)
    await _admitted(therapist, visitor)  # the room is open on a forgotten computer
    phone = await aiohttp_client(client.server)
    await sign_in(phone, "t@example.org")
    listed = (await (await phone.get("/api/v1/auth/sessions")).json())["items"]
    (forgotten,) = [item for item in listed if not item["current"]]
    page = await (await phone.get("/account")).text()
    form = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    ended = await phone.post(f"/account/sign-ins/{forgotten['id']}/end", data={"csrf_token": form})
    assert ended.status == 200
    assert await closed(therapist) == (4401, "signed-out")
    await visitor.expect("peer-left")


# --- the client's link -------------------------------------------------------------------------


async def test_a_revoked_links_open_client_socket_is_closed_and_its_checkin_is_never_stored(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, visitor, csrf = await _setup(client, aiohttp_client)
    await _admitted(therapist, visitor)
    revoked = await client.delete(
        f"/api/v1/sessions/{visitor.session_id}/invite", headers={"X-CSRF-Token": csrf}
    )
    assert revoked.status == 204
    assert visitor.ws is not None
    await visitor.ws.send_json({**PULSE, "idempotency_key": "r" * 16})
    assert await closed(visitor) == (4401, "link-revoked")
    seen = await _until_pong(therapist)
    assert "peer-left" in seen and "checkin-result" not in seen
    assert (await visitor.http.get("/api/v1/visit/export")).status == 401


async def test_a_reissued_links_old_client_socket_is_closed_as_replaced(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, visitor, csrf = await _setup(client, aiohttp_client)
    await _admitted(therapist, visitor)
    new = await client.post(
        f"/api/v1/sessions/{visitor.session_id}/invite", headers={"X-CSRF-Token": csrf}
    )
    assert new.status == 201
    assert await closed(visitor) == (4401, "link-replaced")
    assert (await visitor.http.get("/api/v1/visit/consents")).status == 401


async def test_a_revoked_cookie_does_not_come_back_on_any_visit_endpoint_after_the_end(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, visitor, csrf = await _setup(client, aiohttp_client)
    client_csrf = await _visit_csrf(visitor)
    await _admitted(therapist, visitor)
    revoked = await client.delete(
        f"/api/v1/sessions/{visitor.session_id}/invite", headers={"X-CSRF-Token": csrf}
    )
    assert revoked.status == 204
    await therapist.send({"type": "end"})
    await therapist.expect("session-ended")
    headers = {"X-CSRF-Token": client_csrf}
    http = visitor.http
    answers = {"instrument_id": "after", "answers": {}, "idempotency_key": "a" * 16}
    for response in (
        await http.get("/api/v1/visit/export"),
        await http.get("/api/v1/visit/consents"),
        await http.post(
            "/api/v1/visit/consents",
            json={"purpose": "telehealth", "decision": "withdrawn", "notice_version": 1},
            headers=headers,
        ),
        await http.post("/api/v1/visit/erase", json={"confirm": True}, headers=headers),
        await http.post("/api/v1/visit/checkins", json=answers, headers=headers),
        await http.get("/visit/after"),
    ):
        assert response.status in (401, 403), (response.url, response.status)
    landing = await http.get("/visit", allow_redirects=False)
    assert landing.status == 404  # the neutral "this link does not work" page


async def test_after_the_end_the_cookie_reaches_only_the_after_checkin(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, visitor, _ = await _setup(client, aiohttp_client)
    client_csrf = await _visit_csrf(visitor)
    await _admitted(therapist, visitor)
    await therapist.send({"type": "end"})
    assert (await closed(visitor))[0] == 4004
    headers = {"X-CSRF-Token": client_csrf}
    http = visitor.http
    for response in (
        await http.get("/api/v1/visit/export"),
        await http.get("/api/v1/visit/consents"),
        await http.get("/api/v1/visit/consents/receipt"),
        await http.post("/api/v1/visit/erase", json={"confirm": True}, headers=headers),
        await http.post(
            "/api/v1/visit/consents",
            json={"purpose": "telehealth", "decision": "withdrawn", "notice_version": 1},
            headers=headers,
        ),
        await http.post(
            "/api/v1/visit/checkins",
            json={**{k: v for k, v in PULSE.items() if k != "type"}, "idempotency_key": "p" * 16},
            headers=headers,
        ),
        await http.get("/visit/data/export.json", allow_redirects=False),
        await http.get("/visit/consent", allow_redirects=False),
    ):
        assert response.status in (403, 303), (response.url, response.status)
        if response.status == 303:
            assert response.headers["Location"] == "/visit"
    landing = await http.get("/visit", allow_redirects=False)
    assert (landing.status, landing.headers["Location"]) == (303, "/visit/after")
    assert (await http.get("/visit/after")).status == 200
    after = await http.post(
        "/api/v1/visit/checkins",
        json={
            "instrument_id": "after",
            "answers": {
                "bond": 9,
                "goals": 9,
                "approach": 9,
                "technology": 9,
                "overall": 9,
                "rupture": "no",
            },
            "idempotency_key": "f" * 16,
        },
        headers=headers,
    )
    assert after.status == 201, await after.text()


# --- one device per link -----------------------------------------------------------------------


async def _second_device(client: TestClient, aiohttp_client: Any, visitor: Party) -> Party:
    """The same link opened again on another device (the first cookie still lives)."""
    http = await aiohttp_client(client.server)
    opened = await http.get(f"/join/{visitor.join_token}", allow_redirects=False)
    assert opened.status == 303
    second = Party(http, visitor.session_id)
    second.join_token = visitor.join_token
    return second


async def test_a_second_opening_of_the_link_cannot_export_erase_or_change_consents(
    client: TestClient, aiohttp_client: Any
) -> None:
    _, visitor, _ = await _setup(client, aiohttp_client)
    intruder = await _second_device(client, aiohttp_client, visitor)
    headers = {"X-CSRF-Token": await _visit_csrf(intruder)}
    for response in (
        await intruder.http.get("/api/v1/visit/export"),
        await intruder.http.post("/api/v1/visit/erase", json={"confirm": True}, headers=headers),
        await intruder.http.post(
            "/api/v1/visit/consents",
            json={"purpose": "telehealth", "decision": "withdrawn", "notice_version": 1},
            headers=headers,
        ),
        await intruder.http.post(
            "/api/v1/visit/checkins",
            json={**{k: v for k, v in PULSE.items() if k != "type"}, "idempotency_key": "i" * 16},
            headers=headers,
        ),
    ):
        assert response.status == 403, (response.url, response.status)
        assert (await response.json())["error"]["code"] == "another-device"
    # The first device still acts for the client.
    assert (await visitor.http.get("/api/v1/visit/export")).status == 200


async def test_a_second_device_knocks_as_another_device_and_admitting_it_ends_the_older_cookie(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, visitor, _ = await _setup(client, aiohttp_client)
    await _admitted(therapist, visitor)
    assert visitor.ws is not None
    await visitor.ws.close()  # the phone drops; the client picks up the laptop
    await therapist.expect("peer-left")
    laptop = await _second_device(client, aiohttp_client, visitor)
    welcome = await laptop.connect()
    lobby = await therapist.expect("lobby")
    while not any(k["knock_id"] == welcome["knock_id"] for k in lobby["waiting"]):
        lobby = await therapist.expect("lobby")
    (knock,) = [k for k in lobby["waiting"] if k["knock_id"] == welcome["knock_id"]]
    assert "another device" in knock["label"]

    phone_again = Party(visitor.http, visitor.session_id)
    await phone_again.connect()  # the phone knocks again before the laptop is admitted
    await therapist.send({"type": "admit", "knock_id": welcome["knock_id"]})
    await laptop.expect("admitted")
    assert await closed(phone_again) == (4401, "another-device")
    assert (await visitor.http.get("/api/v1/visit/export")).status == 401
    assert (await laptop.http.get("/api/v1/visit/export")).status == 200


# --- limits ------------------------------------------------------------------------------------


async def test_a_client_cannot_post_checkins_in_a_loop(
    client: TestClient, aiohttp_client: Any
) -> None:
    _, visitor, _ = await _setup(client, aiohttp_client)
    headers = {"X-CSRF-Token": await _visit_csrf(visitor)}
    statuses = []
    for n in range(25):
        response = await visitor.http.post(
            "/api/v1/visit/checkins",
            json={
                "instrument_id": "pulse",
                "answers": {"pulse": 3},
                "idempotency_key": f"{n:016d}",
            },
            headers=headers,
        )
        statuses.append(response.status)
    assert statuses[:20] == [201] * 20
    assert statuses[20:] == [429] * 5
    assert int(response.headers["Retry-After"]) >= 1
    assert await _stored_checkins(client) <= 20


async def test_export_erasure_consents_and_connection_checks_are_each_rate_limited_per_link(
    client: TestClient, aiohttp_client: Any
) -> None:
    _, visitor, _ = await _setup(client, aiohttp_client)
    headers = {"X-CSRF-Token": await _visit_csrf(visitor)}
    http = visitor.http
    cases: list[tuple[int, Any]] = [
        (3, lambda: http.get("/api/v1/visit/export")),
        (3, lambda: http.post("/api/v1/visit/erase", json={"confirm": False}, headers=headers)),
        (
            9,  # the tenth was the telehealth consent given on the way in
            lambda: http.post(
                "/api/v1/visit/consents",
                json={"purpose": "cue_analysis", "decision": "granted", "notice_version": 1},
                headers=headers,
            ),
        ),
        (5, lambda: http.post("/api/v1/visit/conncheck", json={}, headers=headers)),
    ]
    for allowed, call in cases:
        for _ in range(allowed):
            assert (await call()).status != 429
        refused = await call()
        assert refused.status == 429, refused.url
        assert "Retry-After" in refused.headers


async def test_one_client_cookie_cannot_open_more_than_three_knocks(
    client: TestClient, aiohttp_client: Any
) -> None:
    _, visitor, _ = await _setup(client, aiohttp_client)
    knocks = [Party(visitor.http, visitor.session_id) for _ in range(3)]
    for knock in knocks:
        await knock.connect()
    fourth = Party(visitor.http, visitor.session_id)
    fourth.ws = await visitor.http.ws_connect(f"/ws/session/{visitor.session_id}")
    error = await fourth.expect("error")
    assert error["code"] == "too-many-knocks"
    assert await closed(fourth) == (4429, "too-many-knocks")


async def test_a_flooding_socket_is_closed_with_4429_and_logged_once(
    client: TestClient, aiohttp_client: Any, caplog: Any
) -> None:
    therapist, _, _ = await _setup(client, aiohttp_client)
    await therapist.connect()
    assert therapist.ws is not None
    for _ in range(400):
        if therapist.ws.closed:
            break
        await therapist.ws.send_str(json.dumps({"type": "ping"}))
    assert await closed(therapist) == (4429, "too-many-messages")
    floods = [r for r in caplog.records if "exceeding the message rate" in r.getMessage()]
    assert len(floods) == 1
    assert not [r for r in caplog.records if "outbox is full" in r.getMessage()]


async def test_every_client_operation_that_writes_or_exports_counts_against_a_limit(
    client: TestClient,
) -> None:
    from server.keys import API_OPERATIONS
    from server.security.client_writes import CLIENT_WRITE_OPERATIONS

    for op in client.app[API_OPERATIONS]:
        if op.auth.startswith("client") and (op.method != "GET" or "export" in op.path):
            assert op.operation_id in CLIENT_WRITE_OPERATIONS, op.operation_id


async def test_a_second_device_waiting_cannot_withdraw_consents_or_send_checkins_over_its_socket(
    client: TestClient, aiohttp_client: Any
) -> None:
    _, visitor, _ = await _setup(client, aiohttp_client)
    intruder = await _second_device(client, aiohttp_client, visitor)
    await intruder.connect()
    await intruder.send(
        {"type": "consent", "purpose": "telehealth", "decision": "withdrawn", "notice_version": 1}
    )
    assert (await intruder.expect("error"))["code"] == "forbidden"
    await intruder.send({**PULSE, "idempotency_key": "w" * 16})
    assert (await intruder.expect("error"))["code"] == "forbidden"
    consents = await (await visitor.http.get("/api/v1/visit/consents")).json()
    states = {item["purpose"]: item["state"] for item in consents["items"]}
    assert states["telehealth"] == "granted"


async def test_a_client_cannot_send_checkins_over_the_socket_in_a_loop_either(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, visitor, _ = await _setup(client, aiohttp_client)
    await _admitted(therapist, visitor)
    for n in range(20):
        await visitor.send({**PULSE, "idempotency_key": f"{n:016}"})
        await visitor.expect("checkin-ack")
    await visitor.send({**PULSE, "idempotency_key": "x" * 16})
    assert (await visitor.expect("error"))["code"] == "rate-limited"


async def test_opening_the_link_again_in_the_same_browser_is_not_another_device(
    client: TestClient, aiohttp_client: Any
) -> None:
    _, visitor, _ = await _setup(client, aiohttp_client)
    again = await visitor.http.get(f"/join/{visitor.join_token}", allow_redirects=False)
    assert again.status == 303
    assert (await visitor.http.get("/api/v1/visit/export")).status == 200
    welcome = await visitor.connect()
    assert welcome["state"] == "waiting"
    # and a different browser still is another device
    elsewhere = await _second_device(client, aiohttp_client, visitor)
    assert (await elsewhere.http.get("/api/v1/visit/export")).status == 403

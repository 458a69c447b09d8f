"""Up to four people in one session: the therapist adds clients and guests, each with their own
link, cookie and consent; removing or re-issuing one person's link ends only theirs."""

from __future__ import annotations

import json
import re
from typing import Any

import sqlalchemy as sa
from aiohttp.test_utils import TestClient

from server.core.protocol import CloseCode
from server.db.tables import audit_log, consent_records, session_participants
from server.keys import DB
from tests.conftest import add_account, sign_in
from tests.integration.test_signaling import Party

CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


class Practice:
    """A signed-in therapist with a session of client "J.M." and one more client "K.L."."""

    def __init__(self, http: TestClient, csrf: str) -> None:
        self.http, self.csrf = http, csrf
        self.session_id = self.primary_id = self.second_id = self.primary_token = ""

    @property
    def headers(self) -> dict[str, str]:
        return {"X-CSRF-Token": self.csrf}

    async def setup(self) -> Practice:
        ids = []
        for alias in ("J.M.", "K.L."):
            response = await self.http.post(
                "/api/v1/clients", json={"alias": alias}, headers=self.headers
            )
            ids.append((await response.json())["id"])
        self.primary_id, self.second_id = ids
        body = await (
            await self.http.post(
                "/api/v1/sessions",
                json={"client_id": self.primary_id, "starts_at": "2026-11-23T09:00:00Z"},
                headers=self.headers,
            )
        ).json()
        self.session_id = body["session"]["id"]
        self.primary_token = body["join_url"].split("/join/")[1]
        return self

    @property
    def path(self) -> str:
        return f"/api/v1/sessions/{self.session_id}/participants"

    async def add(self, body: dict[str, Any], status: int = 201) -> dict[str, Any]:
        response = await self.http.post(self.path, json=body, headers=self.headers)
        assert response.status == status, await response.text()
        result: dict[str, Any] = await response.json()
        return result

    async def people(self) -> list[dict[str, Any]]:
        response = await self.http.get(self.path)
        assert response.status == 200
        items: list[dict[str, Any]] = (await response.json())["items"]
        return items


async def _practice(client: TestClient) -> Practice:
    await add_account(client.app, "t@example.org")
    return await Practice(client, await sign_in(client, "t@example.org")).setup()


def _token(join_url: str) -> str:
    return join_url.split("/join/")[1]


async def _visitor(aiohttp_client: Any, client: TestClient, token: str) -> tuple[TestClient, str]:
    """A person's own browser that opened their link: (its HTTP client, its CSRF token)."""
    visitor: TestClient = await aiohttp_client(client.server)
    response = await visitor.get(f"/join/{token}", allow_redirects=False)
    assert response.status == 303, await response.text()
    page = await (await visitor.get("/visit/consent")).text()
    found = CSRF_FIELD.search(page)
    assert found
    return visitor, found.group(1)


async def _decide(visitor: TestClient, csrf: str, purpose: str, decision: str = "granted") -> Any:
    return await visitor.post(
        "/api/v1/visit/consents",
        headers={"X-CSRF-Token": csrf},
        json={"purpose": purpose, "decision": decision, "notice_version": 1},
    )


async def test_the_therapist_adds_a_second_client_and_a_guest_each_with_their_own_link(
    client: TestClient,
) -> None:
    practice = await _practice(client)
    couple = await practice.add({"kind": "client", "client_id": practice.second_id})
    guest = await practice.add({"kind": "guest", "label": "  Interpreter  "})
    links = {practice.primary_token, _token(couple["join_url"]), _token(guest["join_url"])}
    assert len(links) == 3  # one person, one link
    people = await practice.people()
    assert [(p["kind"], p["label"], p["position"]) for p in people] == [
        ("client", "J.M.", 1),
        ("client", "K.L.", 2),
        ("guest", "Interpreter", 3),
    ]
    assert people[1]["client_id"] == practice.second_id and people[2]["client_id"] is None
    assert all(p["link_active"] and not p["link_opened"] for p in people)
    async with client.app[DB].read() as conn:
        stored = await conn.scalar(
            sa.select(session_participants.c.label_ciphertext).where(
                session_participants.c.id == guest["participant"]["id"]
            )
        )
        details = list(
            await conn.scalars(
                sa.select(audit_log.c.details).where(audit_log.c.action == "participant.add")
            )
        )
    assert stored is not None and b"Interpreter" not in bytes(stored)  # sealed at rest
    assert [json.loads(d) for d in details] == [
        {"kind": "client", "position": 2},
        {"kind": "guest", "position": 3},
    ]


async def test_a_session_holds_at_most_four_people_and_each_client_once(
    client: TestClient,
) -> None:
    practice = await _practice(client)
    again = await practice.add({"kind": "client", "client_id": practice.primary_id}, 409)
    assert "already takes part" in again["error"]["message"]
    await practice.add({"kind": "client", "client_id": practice.second_id})
    await practice.add({"kind": "guest", "label": "Interpreter"})
    full = await practice.add({"kind": "guest", "label": "Mother"}, 409)
    assert "at most 4 people" in full["error"]["message"]


async def test_bad_additions_get_a_clear_error(client: TestClient) -> None:
    practice = await _practice(client)
    await practice.add({"kind": "guest", "label": "x" * 61}, 422)
    await practice.add({"kind": "guest", "label": "   "}, 422)
    await practice.add({"kind": "guest", "label": "a\u0000b"}, 422)
    await practice.add({"kind": "guest", "client_id": practice.second_id}, 422)
    await practice.add({"kind": "client", "label": "K.L."}, 422)
    await practice.add({"kind": "client", "client_id": "0" * 32}, 404)
    await practice.add({"kind": "therapist"}, 422)


async def test_another_therapist_finds_neither_the_session_nor_its_people(
    client: TestClient, aiohttp_client: Any
) -> None:
    practice = await _practice(client)
    guest = await practice.add({"kind": "guest", "label": "Interpreter"})
    pid = guest["participant"]["id"]
    other: TestClient = await aiohttp_client(client.server)
    await add_account(client.app, "other@example.org")
    csrf = await sign_in(other, "other@example.org")
    headers = {"X-CSRF-Token": csrf}
    theirs = await (
        await other.post("/api/v1/clients", json={"alias": "Z"}, headers=headers)
    ).json()
    assert (await other.get(practice.path)).status == 404
    add = await other.post(practice.path, json={"kind": "guest", "label": "X"}, headers=headers)
    assert add.status == 404
    assert (await other.delete(f"{practice.path}/{pid}", headers=headers)).status == 404
    assert (await other.post(f"{practice.path}/{pid}/invite", headers=headers)).status == 404
    # nor may my session take someone else's client
    await practice.add({"kind": "client", "client_id": theirs["id"]}, 404)


async def test_writes_need_the_csrf_token(client: TestClient) -> None:
    practice = await _practice(client)
    response = await client.post(practice.path, json={"kind": "guest", "label": "Interpreter"})
    assert response.status == 403


async def test_a_second_client_s_consent_and_data_are_their_own(
    client: TestClient, aiohttp_client: Any
) -> None:
    practice = await _practice(client)
    couple = await practice.add({"kind": "client", "client_id": practice.second_id})
    visitor, csrf = await _visitor(aiohttp_client, client, _token(couple["join_url"]))
    assert (await _decide(visitor, csrf, "telehealth")).status == 201
    assert (await _decide(visitor, csrf, "cue_analysis")).status == 201
    async with client.app[DB].read() as conn:
        subjects = set(await conn.scalars(sa.select(consent_records.c.client_id)))
    assert subjects == {practice.second_id}  # nothing recorded for the session's first client
    export = await (await visitor.get("/api/v1/visit/export")).json()
    assert export["client"]["id"] == practice.second_id
    assert [s["id"] for s in export["sessions"]] == [practice.session_id]  # the couple's
    # one safety check per session, the session's client's: not asked of a second client
    safety = await (await visitor.get("/api/v1/visit/safety")).json()
    assert safety == {"enabled": False, "previous": None}
    answer = await visitor.post("/api/v1/visit/safety", json={}, headers={"X-CSRF-Token": csrf})
    assert answer.status == 403
    assert "J.M." not in json.dumps(export)  # nothing of the other client
    receipt = await (await visitor.get("/api/v1/visit/consents/receipt")).json()
    assert receipt["client"] == "K.L."


async def test_two_people_s_links_are_not_each_other_s_second_device(
    client: TestClient, aiohttp_client: Any
) -> None:
    practice = await _practice(client)
    couple = await practice.add({"kind": "client", "client_id": practice.second_id})
    first, first_csrf = await _visitor(aiohttp_client, client, practice.primary_token)
    second, second_csrf = await _visitor(aiohttp_client, client, _token(couple["join_url"]))
    # a waiting "another device" may only agree to telehealth; both are their link's one device
    assert (await _decide(first, first_csrf, "cue_analysis")).status == 201
    assert (await _decide(second, second_csrf, "cue_analysis")).status == 201
    # the same person's link on a second browser still waits as another device
    again, again_csrf = await _visitor(aiohttp_client, client, _token(couple["join_url"]))
    refused = await _decide(again, again_csrf, "cue_analysis")
    assert refused.status == 403 and (await refused.json())["error"]["code"] == "another-device"


async def test_a_guest_gives_only_their_own_telehealth_consent_and_reaches_no_client_record(
    client: TestClient, aiohttp_client: Any
) -> None:
    practice = await _practice(client)
    guest = await practice.add({"kind": "guest", "label": "Interpreter"})
    pid = guest["participant"]["id"]
    visitor, csrf = await _visitor(aiohttp_client, client, _token(guest["join_url"]))
    state = await (await visitor.get("/api/v1/visit/consents")).json()
    assert [item["purpose"] for item in state["items"]] == ["telehealth"]
    assert (await _decide(visitor, csrf, "cue_analysis")).status == 422
    assert (await _decide(visitor, csrf, "telehealth")).status == 201
    async with client.app[DB].read() as conn:
        rows = (
            await conn.execute(sa.select(consent_records.c.client_id, consent_records.c.subject))
        ).all()
        actors = list(
            await conn.scalars(
                sa.select(audit_log.c.actor).where(audit_log.c.action == "consent.grant")
            )
        )
    assert [tuple(r) for r in rows] == [(pid, "guest")]
    assert actors == [f"guest:{pid}"]
    for path in ("/api/v1/visit/export", "/api/v1/visit/measures", "/visit/progress"):
        response = await visitor.get(path)
        assert response.status == 403, path
    erase = await visitor.post(
        "/api/v1/visit/erase", json={"confirm": True}, headers={"X-CSRF-Token": csrf}
    )
    assert erase.status == 403 and (await erase.json())["error"]["code"] == "guest"
    checkin = await visitor.post("/api/v1/visit/checkins", json={}, headers={"X-CSRF-Token": csrf})
    assert checkin.status == 403
    safety = await (await visitor.get("/api/v1/visit/safety")).json()
    assert safety == {"enabled": False, "previous": None}
    data = await visitor.get("/visit/data", allow_redirects=False)
    assert data.status == 303 and data.headers["Location"] == "/visit/consent/receipt"
    receipt = await (await visitor.get("/api/v1/visit/consents/receipt")).json()
    assert receipt["client"] == "Interpreter"
    page = await (await visitor.get("/visit")).text()
    assert "guest of this session" in page and "/visit/progress" not in page
    assert "Only the people in this session see and hear you" in page


async def test_removing_a_person_ends_their_link_and_cookie_and_nobody_else_s(
    client: TestClient, aiohttp_client: Any
) -> None:
    practice = await _practice(client)
    guest = await practice.add({"kind": "guest", "label": "Interpreter"})
    pid = guest["participant"]["id"]
    first, _ = await _visitor(aiohttp_client, client, practice.primary_token)
    visitor, _ = await _visitor(aiohttp_client, client, _token(guest["join_url"]))
    assert [p["link_opened"] for p in await practice.people()] == [True, True]
    removed = await client.delete(f"{practice.path}/{pid}", headers=practice.headers)
    assert removed.status == 204
    assert (await visitor.get("/visit")).status == 404  # the cookie ended at once
    reopened = await visitor.get(f"/join/{_token(guest['join_url'])}", allow_redirects=False)
    assert reopened.status == 404
    assert (await first.get("/visit")).status == 200
    assert [p["label"] for p in await practice.people()] == ["J.M."]
    async with client.app[DB].read() as conn:
        label = await conn.scalar(
            sa.select(session_participants.c.label_ciphertext).where(
                session_participants.c.id == pid
            )
        )
    assert label is None  # a removed guest's label is not kept
    again = await client.delete(f"{practice.path}/{pid}", headers=practice.headers)
    assert again.status == 404


async def test_the_session_s_own_client_cannot_be_removed(client: TestClient) -> None:
    practice = await _practice(client)
    (primary,) = await practice.people()
    response = await client.delete(f"{practice.path}/{primary['id']}", headers=practice.headers)
    assert response.status == 409


async def test_reissuing_one_person_s_link_ends_their_old_cookie_only(
    client: TestClient, aiohttp_client: Any
) -> None:
    practice = await _practice(client)
    couple = await practice.add({"kind": "client", "client_id": practice.second_id})
    pid = couple["participant"]["id"]
    first, _ = await _visitor(aiohttp_client, client, practice.primary_token)
    second, _ = await _visitor(aiohttp_client, client, _token(couple["join_url"]))
    response = await client.post(f"{practice.path}/{pid}/invite", headers=practice.headers)
    assert response.status == 201
    fresh = await response.json()
    assert fresh["participant"]["id"] == pid and not fresh["participant"]["link_opened"]
    assert (await second.get("/visit")).status == 404
    old = await second.get(f"/join/{_token(couple['join_url'])}", allow_redirects=False)
    assert old.status == 404
    assert (await first.get("/visit")).status == 200
    new, _ = await _visitor(aiohttp_client, client, _token(fresh["join_url"]))
    assert (await new.get("/visit")).status == 200


async def test_a_cancelled_session_takes_no_new_people(client: TestClient) -> None:
    practice = await _practice(client)
    cancelled = await client.post(
        f"/api/v1/sessions/{practice.session_id}/cancel", headers=practice.headers
    )
    assert cancelled.status == 200
    await practice.add({"kind": "guest", "label": "Interpreter"}, 409)


async def test_each_person_knocks_under_their_own_name_and_by_their_own_consent(
    client: TestClient, aiohttp_client: Any
) -> None:
    practice = await _practice(client)
    couple = await practice.add({"kind": "client", "client_id": practice.second_id})
    guest = await practice.add({"kind": "guest", "label": "Interpreter"})
    first, first_csrf = await _visitor(aiohttp_client, client, practice.primary_token)
    assert (await _decide(first, first_csrf, "telehealth")).status == 201
    # the first client's consent does not let anyone else in
    second, second_csrf = await _visitor(aiohttp_client, client, _token(couple["join_url"]))
    refused = Party(second, practice.session_id)
    refused.ws = await second.ws_connect(f"/ws/session/{practice.session_id}")
    assert await refused.closed_with() == CloseCode.CONSENT_REQUIRED
    assert (await _decide(second, second_csrf, "telehealth")).status == 201
    visitor, csrf = await _visitor(aiohttp_client, client, _token(guest["join_url"]))
    assert (await _decide(visitor, csrf, "telehealth")).status == 201

    therapist = Party(client, practice.session_id)
    await therapist.connect()
    for http in (second, visitor):
        welcome = await Party(http, practice.session_id).connect()
        assert welcome["role"] == "client" and welcome["consents"]["telehealth"] == "granted"
    waiting: list[str] = []
    while len(waiting) < 2:
        waiting = [k["label"] for k in (await therapist.expect("lobby"))["waiting"]]
    assert sorted(waiting) == ["Interpreter", "K.L."]


async def test_a_guest_is_told_in_their_language_what_is_and_is_not_theirs(
    client: TestClient, aiohttp_client: Any
) -> None:
    practice = await _practice(client)
    guest = await practice.add({"kind": "guest", "label": "Intérprete"})
    visitor, _ = await _visitor(aiohttp_client, client, _token(guest["join_url"]))
    page = await (await visitor.get("/visit", headers={"Accept-Language": "es"})).text()
    assert "Está invitado o invitada a esta sesión" in page
    refused = await visitor.get("/visit/progress", headers={"Accept-Language": "de"})
    assert refused.status == 403
    assert "Als Gast der Sitzung gibt es hier keine Daten über Sie." in await refused.text()


async def test_a_guest_withdrawing_telehealth_consent_leaves_and_the_others_stay(
    client: TestClient, aiohttp_client: Any
) -> None:
    practice = await _practice(client)
    guest = await practice.add({"kind": "guest", "label": "Interpreter"})
    first, first_csrf = await _visitor(aiohttp_client, client, practice.primary_token)
    visitor, csrf = await _visitor(aiohttp_client, client, _token(guest["join_url"]))
    for http, token in ((first, first_csrf), (visitor, csrf)):
        assert (await _decide(http, token, "telehealth")).status == 201
    staying, leaving = Party(first, practice.session_id), Party(visitor, practice.session_id)
    await staying.connect()
    await leaving.connect()
    assert (await _decide(visitor, csrf, "telehealth", "withdrawn")).status == 201
    assert await leaving.closed_with() == CloseCode.FORBIDDEN  # 4403 consent-withdrawn
    await staying.send({"type": "ping", "id": "still-here"})
    assert (await staying.expect("pong"))["ref"] == "still-here"
    async with client.app[DB].read() as conn:
        decisions = list(
            await conn.scalars(
                sa.select(consent_records.c.decision).where(
                    consent_records.c.client_id == guest["participant"]["id"]
                )
            )
        )
    assert decisions == ["granted", "withdrawn"]


async def test_the_people_page_adds_shows_the_link_once_and_removes_by_form(
    client: TestClient, aiohttp_client: Any
) -> None:
    practice = await _practice(client)
    page_path = f"/dashboard/sessions/{practice.session_id}/people"
    page = await client.get(page_path)
    assert page.status == 200 and "Add a guest" in await page.text()
    form = {"csrf_token": practice.csrf}
    refused = await client.post(page_path, data={"kind": "guest", "label": "Interpreter"})
    assert refused.status == 403  # no CSRF token
    bad = await client.post(page_path, data={**form, "kind": "other"})
    assert bad.status == 422 and "Choose a client or a guest." in await bad.text()
    too_long = await client.post(page_path, data={**form, "kind": "guest", "label": "x" * 61})
    assert too_long.status == 422 and "60 characters" in await too_long.text()
    added = await client.post(
        page_path, data={**form, "kind": "guest", "label": "Interpreter"}, allow_redirects=False
    )
    assert added.status == 303 and added.headers["Location"] == page_path
    shown = await (await client.get(page_path)).text()
    link = re.search(r'value="(http://[^"]+/join/[A-Za-z0-9_-]{43})"', shown)
    assert link and "Link for Interpreter" in shown and "<td>Interpreter</td>" in shown
    (guest,) = [p for p in await practice.people() if p["kind"] == "guest"]
    removed = await client.post(
        f"{page_path}/{guest['id']}/remove", data=form, allow_redirects=False
    )
    assert removed.status == 303
    after = await (await client.get(page_path)).text()
    assert "<td>Interpreter</td>" not in after and "Link for" not in after

    other: TestClient = await aiohttp_client(client.server)
    await add_account(client.app, "other@example.org")
    await sign_in(other, "other@example.org")
    assert (await other.get(page_path)).status == 404


async def test_revoking_the_session_s_link_ends_its_client_s_only(
    client: TestClient, aiohttp_client: Any
) -> None:
    practice = await _practice(client)
    guest = await practice.add({"kind": "guest", "label": "Interpreter"})
    first, _ = await _visitor(aiohttp_client, client, practice.primary_token)
    visitor, _ = await _visitor(aiohttp_client, client, _token(guest["join_url"]))
    revoked = await client.delete(
        f"/api/v1/sessions/{practice.session_id}/invite", headers=practice.headers
    )
    assert revoked.status == 204
    assert (await first.get("/visit")).status == 404
    assert (await visitor.get("/visit")).status == 200
    assert [p["link_active"] for p in await practice.people()] == [False, True]


async def test_a_new_time_with_new_links_gives_clients_new_links_and_leaves_guests_to_reissue(
    client: TestClient, aiohttp_client: Any
) -> None:
    practice = await _practice(client)
    couple = await practice.add({"kind": "client", "client_id": practice.second_id})
    guest = await practice.add({"kind": "guest", "label": "Interpreter"})
    visitor, _ = await _visitor(aiohttp_client, client, _token(guest["join_url"]))
    moved = await client.post(
        f"/dashboard/sessions/{practice.session_id}/edit",
        data={
            "csrf_token": practice.csrf,
            "starts_at": "2026-11-23T09:30:00Z",
            "minutes": "50",
            "link": "new",
        },
        allow_redirects=False,
    )
    assert moved.status == 303, await moved.text()
    assert (await visitor.get("/visit")).status == 404  # every old link ended
    people = {p["label"]: p for p in await practice.people()}
    assert people["J.M."]["link_active"] and people["K.L."]["link_active"]
    assert not people["Interpreter"]["link_active"]  # re-issued by hand, where it is shown
    for token in (practice.primary_token, _token(couple["join_url"])):
        stale = await visitor.get(f"/join/{token}", allow_redirects=False)
        assert stale.status == 404

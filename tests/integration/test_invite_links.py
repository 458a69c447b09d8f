"""Invite links: swapped for a cookie, token-free redirect, window, revoke, re-issue, throttle."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from server.core.models import Account
from tests.conftest import FakeClock


async def _schedule(client: TestClient, csrf: str, starts_at: str) -> tuple[str, str]:
    headers = {"X-CSRF-Token": csrf}
    created = await (
        await client.post("/api/v1/clients", json={"alias": "J.M."}, headers=headers)
    ).json()
    body = await (
        await client.post(
            "/api/v1/sessions",
            json={"client_id": created["id"], "starts_at": starts_at, "minutes": 50},
            headers=headers,
        )
    ).json()
    return body["session"]["id"], body["join_url"].split("/join/", 1)[1]


async def _open(client: TestClient, token: str) -> tuple[int, str, str]:
    """Open a link as a fresh client (no cookies); (status, location, body)."""
    client.session.cookie_jar.clear(lambda c: c.key == "attune-client")
    response = await client.get(f"/join/{token}", allow_redirects=False)
    return response.status, response.headers.get("Location", ""), await response.text()


async def test_valid_link_swaps_the_token_for_a_cookie_and_redirects(
    client: TestClient, therapist: tuple[Account, str]
) -> None:
    _, csrf = therapist
    _, token = await _schedule(client, csrf, "2026-11-23T09:10:00Z")
    status, location, _ = await _open(client, token)
    assert status == 303
    assert location == "/visit" and token not in location
    cookie = client.session.cookie_jar.filter_cookies(client.make_url("/"))["attune-client"]
    assert cookie.value != token
    visit = await client.get("/visit")
    assert visit.status == 200
    assert "Welcome" in await visit.text()


async def test_a_link_opened_from_another_site_moves_on_by_a_page_of_ours_in_the_clients_language(
    client: TestClient, therapist: tuple[Account, str]
) -> None:
    """From webmail (Sec-Fetch-Site: cross-site) a 303 would lose the Strict cookie on /visit:
    a page of ours moves on instead, so the next request is same-site and carries it."""
    _, csrf = therapist
    _, token = await _schedule(client, csrf, "2026-11-23T09:10:00Z")
    client.session.cookie_jar.clear(lambda c: c.key == "attune-client")
    response = await client.get(
        f"/join/{token}",
        allow_redirects=False,
        headers={"Sec-Fetch-Site": "cross-site", "Accept-Language": "es"},
    )
    body = await response.text()
    assert response.status == 200
    assert '<meta http-equiv="refresh" content="0;url=/visit">' in body
    assert "Su sesión" in body and token not in body
    assert response.headers["Cache-Control"] == "no-store"
    assert "attune-client" in response.cookies
    assert (await client.get("/visit")).status == 200


async def test_link_opens_15_minutes_early_and_closes_after_grace(
    client: TestClient, therapist: tuple[Account, str], clock: FakeClock
) -> None:
    _, csrf = therapist
    _, token = await _schedule(client, csrf, "2026-11-23T10:00:00Z")  # now is 09:00
    status, _, body = await _open(client, token)
    assert status == 403 and "a little early" in body
    # it says when, in UTC without JavaScript and as a <time> the browser rewrites to local
    assert 'datetime="2026-11-23T10:00:00Z"' in body and "10:00 UTC" in body
    assert 'datetime="2026-11-23T09:45:00Z" data-local="time">09:45 UTC' in body
    clock.advance(minutes=45)  # 09:45, exactly 15 min before
    assert (await _open(client, token))[0] == 303
    clock.advance(minutes=15 + 50 + 29)  # 10:59: session ended 10:50, grace 30 min
    assert (await _open(client, token))[0] == 303
    clock.advance(minutes=1)  # 11:00
    status, _, body = await _open(client, token)
    assert status == 404 and "does not work" in body


async def test_client_cookie_stops_working_when_the_window_closes(
    client: TestClient, therapist: tuple[Account, str], clock: FakeClock
) -> None:
    _, csrf = therapist
    _, token = await _schedule(client, csrf, "2026-11-23T09:00:00Z")
    await _open(client, token)
    assert (await client.get("/visit")).status == 200
    clock.advance(minutes=50 + 30)
    assert (await client.get("/visit")).status == 404


async def test_revoked_expired_and_unknown_links_look_the_same(
    client: TestClient, therapist: tuple[Account, str], clock: FakeClock
) -> None:
    _, csrf = therapist
    session_id, revoked = await _schedule(client, csrf, "2026-11-23T09:00:00Z")
    await client.delete(f"/api/v1/sessions/{session_id}/invite", headers={"X-CSRF-Token": csrf})
    unknown = "A" * 43
    pages = [await _open(client, t) for t in (revoked, unknown, "short")]
    assert {status for status, _, _ in pages} == {404}
    assert len({body.split("<main", 1)[1].split("</main>", 1)[0] for _, _, body in pages}) == 1


async def test_reissue_kills_the_old_link_and_the_new_one_works(
    client: TestClient, therapist: tuple[Account, str]
) -> None:
    _, csrf = therapist
    session_id, old = await _schedule(client, csrf, "2026-11-23T09:00:00Z")
    await _open(client, old)  # client inside with the old link
    response = await client.post(
        f"/api/v1/sessions/{session_id}/invite", headers={"X-CSRF-Token": csrf}
    )
    assert response.status == 201
    new = (await response.json())["join_url"].split("/join/", 1)[1]
    assert new != old
    assert (await client.get("/visit")).status == 404  # old link's cookie died with it
    assert (await _open(client, old))[0] == 404
    assert (await _open(client, new))[0] == 303


async def test_cancelling_closes_the_link(
    client: TestClient, therapist: tuple[Account, str]
) -> None:
    _, csrf = therapist
    session_id, token = await _schedule(client, csrf, "2026-11-23T09:00:00Z")
    await _open(client, token)
    cancelled = await client.post(
        f"/api/v1/sessions/{session_id}/cancel", headers={"X-CSRF-Token": csrf}
    )
    assert (await cancelled.json())["status"] == "cancelled"
    assert (await client.get("/visit")).status == 404
    assert (await _open(client, token))[0] == 404
    again = await client.post(
        f"/api/v1/sessions/{session_id}/invite", headers={"X-CSRF-Token": csrf}
    )
    assert again.status == 409


async def test_link_guessing_is_throttled(
    client: TestClient, therapist: tuple[Account, str]
) -> None:
    _, csrf = therapist
    _, token = await _schedule(client, csrf, "2026-11-23T09:00:00Z")
    for attempt in range(20):
        assert (await _open(client, f"{'B' * 42}{attempt % 10}"))[0] == 404
    status, _, _ = await _open(client, token)
    assert status == 429  # even a right token waits once the address is throttled

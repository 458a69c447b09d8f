"""The connection check contacts only the requester itself and answers with one address."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aioice.ice import get_host_addresses
from aiortc import RTCPeerConnection, RTCSessionDescription

from server.app import create_app
from server.realtime.conncheck import CONNECTION_CHECKS
from server.settings import Settings
from tests.conftest import FakeClock
from tests.integration.test_conncheck import (
    Client,
    EchoProbe,
    open_link,
    schedule_links,
    with_conncheck,
)
from tests.integration.test_conncheck import probes as probes

SERVER_ADDRESS = get_host_addresses(use_ipv4=True, use_ipv6=False)[0]
CLIENT_ADDRESS = "203.0.113.7"
TURN_ADDRESS = "198.51.100.50"


@pytest.fixture
def settings(data_dir: Path) -> Settings:
    return Settings(
        data_dir=data_dir,
        trusted_proxies=("127.0.0.1",),
        conncheck_advertised_address=SERVER_ADDRESS,
        turn_urls=(f"turn:{TURN_ADDRESS}:3478",),
    )


@pytest.fixture
def app(settings: Settings, clock: FakeClock) -> web.Application:
    return with_conncheck(create_app(settings, clock=clock))


@pytest.fixture
def offers_to_aiortc(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every offer SDP the server hands to aiortc."""
    seen: list[str] = []
    original = RTCPeerConnection.setRemoteDescription

    async def spy(self: RTCPeerConnection, description: RTCSessionDescription) -> None:
        if description.type == "offer":
            seen.append(description.sdp)
        await original(self, description)

    monkeypatch.setattr(RTCPeerConnection, "setRemoteDescription", spy)
    return seen


def with_candidates(sdp: str, *candidates: str) -> str:
    """The offer with its own candidates replaced by `candidates` in every media section."""
    lines = []
    for line in sdp.splitlines():
        if line.startswith(("a=candidate:", "a=end-of-candidates")):
            continue
        lines.append(line)
        if line.startswith("a=mid:"):
            lines += [
                f"a=candidate:{n} 1 udp 2130706431 {address} {40000 + n} typ {kind}"
                for n, (address, kind) in enumerate(c.split("/") for c in candidates)
            ]
    return "\r\n".join(lines) + "\r\n"


def addresses(sdp: str) -> set[str]:
    return {line.split()[4] for line in sdp.splitlines() if line.startswith("a=candidate:")}


async def _post(client: Client, probe: EchoProbe, *candidates: str, via: str | None) -> Any:
    csrf = await open_link(client, (await schedule_links(client))[0])
    offer = await probe.offer()
    body = {"type": "offer", "sdp": with_candidates(offer["sdp"], *candidates)}
    headers = {"X-CSRF-Token": csrf}
    if via:
        headers["X-Forwarded-For"] = via
    return await client.post("/api/v1/visit/conncheck", json=body, headers=headers)


async def test_an_offer_naming_internal_and_link_local_targets_gets_no_stun_sent_there(
    client: Client, probes: Callable[[], EchoProbe], offers_to_aiortc: list[str]
) -> None:
    response = await _post(
        client,
        probes(),
        "10.0.0.1/host",
        "169.254.1.1/host",
        "198.51.100.99/host",
        "198.51.100.51/relay",
        f"{TURN_ADDRESS}/relay",
        f"{CLIENT_ADDRESS}/srflx",
        via=CLIENT_ADDRESS,
    )
    assert response.status == 200, await response.text()
    [offer] = offers_to_aiortc
    assert addresses(offer) == {CLIENT_ADDRESS, TURN_ADDRESS}


async def test_the_answer_shows_only_the_advertised_address_not_every_interface(
    client: Client, probes: Callable[[], EchoProbe]
) -> None:
    response = await _post(client, probes(), f"{CLIENT_ADDRESS}/srflx", via=CLIENT_ADDRESS)
    assert response.status == 200
    assert addresses((await response.json())["sdp"]) == {SERVER_ADDRESS}


async def test_an_offer_that_only_names_other_hosts_is_refused_with_400_and_no_peer(
    client: Client, probes: Callable[[], EchoProbe], offers_to_aiortc: list[str]
) -> None:
    response = await _post(
        client, probes(), "198.51.100.99/host", "224.0.0.1/host", via=CLIENT_ADDRESS
    )
    assert response.status == 400
    error = (await response.json())["error"]
    assert error["code"] == "invalid"
    assert "network address" in error["message"]
    assert offers_to_aiortc == []
    assert client.app[CONNECTION_CHECKS].live_count == 0


async def test_a_loopback_requester_may_name_loopback_but_not_other_private_targets(
    aiohttp_client: Any,
    data_dir: Path,
    clock: FakeClock,
    probes: Callable[[], EchoProbe],
    offers_to_aiortc: list[str],
) -> None:
    client = await aiohttp_client(
        with_conncheck(create_app(Settings(data_dir=data_dir), clock=clock))
    )
    response = await _post(
        client, probes(), "10.0.0.1/host", "169.254.1.1/host", "127.0.0.1/host", via=None
    )
    assert response.status == 200
    [offer] = offers_to_aiortc
    assert addresses(offer) == {"127.0.0.1"}

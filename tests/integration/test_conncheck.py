"""The connection check's server peer, driven by an aiortc client playing the browser's part."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aioice.ice
import av
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from aiortc import (
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
    VideoStreamTrack,
)
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from server.app import create_app
from server.errors import InvalidInput
from server.keys import AUDIT, CLOCK, DB
from server.realtime.conncheck import (
    CONNCHECK_LIMITS,
    CONNCHECK_OPERATIONS,
    CONNECTION_CHECKS,
    MAX_ECHO_MESSAGE_BYTES,
    MAX_SDP_BYTES,
    CheckLimits,
    ConnectionChecks,
    ConnectionCheckUnavailable,
    conncheck_cleanup_ctx,
    validated_offer,
    without_mdns_candidates,
)
from server.services import scheduling
from server.settings import Settings
from tests.conftest import FakeClock, add_account

Client = TestClient[web.Request, web.Application]
CONNCHECK = "/api/v1/visit/conncheck"
PATTERN_WIDTH, PATTERN_HEIGHT = 160, 120
WAIT_SECONDS = 5.0


def with_conncheck(app: web.Application, limits: CheckLimits | None = None) -> web.Application:
    """Wire the check into `app` unless create_app already does."""
    if limits is not None:
        app[CONNCHECK_LIMITS] = limits
    wired = {(r.method, r.resource.canonical) for r in app.router.routes() if r.resource}
    if ("POST", CONNCHECK) not in wired:
        for op in CONNCHECK_OPERATIONS:
            app.router.add_route(op.method, op.path, op.handler, name=op.operation_id)
    if conncheck_cleanup_ctx not in app.cleanup_ctx:
        app.cleanup_ctx.append(conncheck_cleanup_ctx)
    return app


class GeneratedPattern(VideoStreamTrack):
    """A small generated video (a grey ramp), like the browser's canvas pattern."""

    def __init__(self) -> None:
        super().__init__()
        self._count = 0

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        self._count += 1
        frame = av.VideoFrame(width=PATTERN_WIDTH, height=PATTERN_HEIGHT, format="yuv420p")
        frame.planes[0].update(bytes([(self._count * 8) % 256]) * frame.planes[0].buffer_size)
        frame.pts, frame.time_base = pts, time_base
        return frame


class EchoProbe:
    """The browser's half of a check: a generated video track and a data channel."""

    def __init__(self) -> None:
        self.peer = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.peer.addTrack(GeneratedPattern())
        self.channel = self.peer.createDataChannel("conncheck")
        self._opened = asyncio.Event()
        self._echoes: asyncio.Queue[str] = asyncio.Queue()
        self._echoed_track: asyncio.Future[MediaStreamTrack] = asyncio.Future()
        self.channel.on("open", self._opened.set)
        self.channel.on("message", self._echoes.put_nowait)
        self.peer.on("track", self._echoed_track.set_result)

    async def offer(self) -> dict[str, str]:
        """A fully gathered offer, as the browser sends it."""
        await self.peer.setLocalDescription(await self.peer.createOffer())
        local = self.peer.localDescription
        return {"type": local.type, "sdp": local.sdp}

    async def accept(self, answer: dict[str, Any]) -> None:
        """Apply the server's answer."""
        await self.peer.setRemoteDescription(RTCSessionDescription(answer["sdp"], answer["type"]))

    async def first_echoed_frame(self) -> av.VideoFrame:
        """The first video frame that came back from the server."""
        async with asyncio.timeout(WAIT_SECONDS):
            track = await self._echoed_track
            frame = await track.recv()
        assert isinstance(frame, av.VideoFrame)
        return frame

    async def send(self, message: str) -> None:
        """Send `message` on the data channel once it is open."""
        async with asyncio.timeout(WAIT_SECONDS):
            await self._opened.wait()
        self.channel.send(message)

    async def next_echo(self) -> str:
        """The next message that came back on the data channel."""
        async with asyncio.timeout(WAIT_SECONDS):
            return await self._echoes.get()

    async def echo_has_ended(self) -> bool:
        """True when the echoed video stops for good (the server closed its peer)."""
        track = await self._echoed_track
        try:
            async with asyncio.timeout(WAIT_SECONDS):
                while True:
                    await track.recv()
        except MediaStreamError:
            return True
        except TimeoutError:
            return False

    async def close(self) -> None:
        await self.peer.close()


@pytest.fixture
async def probes() -> AsyncIterator[Callable[[], EchoProbe]]:
    """Makes echo probes and closes them all after the test."""
    made: list[EchoProbe] = []

    def make() -> EchoProbe:
        made.append(EchoProbe())
        return made[-1]

    yield make
    await asyncio.gather(*(probe.close() for probe in made))


async def eventually(condition: Callable[[], bool], seconds: float = WAIT_SECONDS) -> bool:
    """Whether `condition` holds within `seconds` (polled every 20 ms)."""
    for _ in range(int(seconds / 0.02)):
        if condition():
            return True
        await asyncio.sleep(0.02)
    return condition()


# --- through the app -------------------------------------------------------------------------


@pytest.fixture
def limits() -> CheckLimits:
    return CheckLimits()


@pytest.fixture
def app(settings: Settings, clock: FakeClock, limits: CheckLimits) -> web.Application:
    return with_conncheck(create_app(settings, clock=clock), limits)


async def schedule_links(client: Client, count: int = 1) -> list[str]:
    """A therapist schedules `count` sessions starting now; returns their join paths."""
    app = client.app
    therapist = await add_account(app, "t@example.org")
    now = app[CLOCK]()
    paths = []
    for number in range(count):
        person = await scheduling.create_client(app[DB], app[AUDIT], therapist, f"C.{number}", now)
        _, invite = await scheduling.create_session(
            app[DB], app[AUDIT], therapist, client_id=person.id, starts_at=now, minutes=50, now=now
        )
        paths.append(f"/join/{invite.token}")
    return paths


async def open_link(client: Client, path: str) -> str:
    """The client opens the invite link; returns the visit's CSRF token."""
    await client.get(path)
    page = await (await client.get("/visit/consent")).text()
    return page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]


async def post_offer(client: Client, csrf: str, body: Any) -> tuple[int, dict[str, Any]]:
    response = await client.post(CONNCHECK, json=body, headers={"X-CSRF-Token": csrf})
    return response.status, await response.json()


async def test_the_server_echoes_the_generated_video_and_data_channel_back(
    client: Client, probes: Callable[[], EchoProbe]
) -> None:
    csrf = await open_link(client, (await schedule_links(client))[0])
    probe = probes()
    status, answer = await post_offer(client, csrf, await probe.offer())
    assert status == 200
    assert answer["type"] == "answer"
    assert "a=candidate:" in answer["sdp"]  # gathered before answering: aiortc does not trickle
    await probe.accept(answer)

    frame = await probe.first_echoed_frame()
    assert (frame.width, frame.height) == (PATTERN_WIDTH, PATTERN_HEIGHT)
    ping = json.dumps({"seq": 1})
    await probe.send(ping)
    assert await probe.next_echo() == ping
    assert client.app[CONNECTION_CHECKS].live_count == 1


async def test_a_new_offer_from_the_same_visit_closes_the_previous_check(
    client: Client, probes: Callable[[], EchoProbe]
) -> None:
    csrf = await open_link(client, (await schedule_links(client))[0])
    first, second = probes(), probes()
    _, answer = await post_offer(client, csrf, await first.offer())
    await first.accept(answer)
    await first.first_echoed_frame()

    status, answer = await post_offer(client, csrf, await second.offer())
    assert status == 200
    await second.accept(answer)

    assert await second.first_echoed_frame()
    assert await first.echo_has_ended()
    assert client.app[CONNECTION_CHECKS].live_count == 1


@pytest.mark.parametrize("limits", [CheckLimits(max_seconds=0.5)], ids=["half-second"])
async def test_a_check_is_closed_when_its_time_limit_passes(
    client: Client, probes: Callable[[], EchoProbe]
) -> None:
    csrf = await open_link(client, (await schedule_links(client))[0])
    probe = probes()
    offer = await probe.offer()
    started = time.monotonic()
    _, answer = await post_offer(client, csrf, offer)
    await probe.accept(answer)
    checks = client.app[CONNECTION_CHECKS]
    assert checks.live_count == 1

    assert await probe.echo_has_ended()
    assert time.monotonic() - started >= 0.5
    assert checks.live_count == 0


@pytest.mark.parametrize("limits", [CheckLimits(max_concurrent=1)], ids=["one-at-a-time"])
async def test_beyond_the_global_cap_a_new_check_is_refused_until_one_ends(
    client: Client, probes: Callable[[], EchoProbe]
) -> None:
    first_link, second_link = await schedule_links(client, count=2)
    first_csrf = await open_link(client, first_link)
    status, _ = await post_offer(client, first_csrf, await probes().offer())
    assert status == 200

    second_csrf = await open_link(client, second_link)
    response = await client.post(
        CONNCHECK, json=await probes().offer(), headers={"X-CSRF-Token": second_csrf}
    )
    assert response.status == 429
    assert (await response.json())["error"]["code"] == "rate_limited"
    assert int(response.headers["Retry-After"]) >= 1


async def test_without_the_client_cookie_the_check_is_refused(client: Client) -> None:
    response = await client.post(CONNCHECK, json={"type": "offer", "sdp": "v=0\r\n"})
    assert response.status == 401


def _offer_with(*media: str) -> str:
    lines = ["v=0", "o=- 1 1 IN IP4 0.0.0.0", "s=-", "t=0 0"]
    lines += [f"m={kind} 9 UDP/TLS/RTP/SAVPF 96" for kind in media]
    return "\r\n".join(lines) + "\r\n"


INVALID_BODIES = {
    "an-answer": ({"type": "answer", "sdp": _offer_with("video")}, "body.type"),
    "no-sdp": ({"type": "offer"}, "body.sdp: this field is required"),
    "over-32-KiB": ({"type": "offer", "sdp": _offer_with("video") + "a=x\r\n" * 8000}, "too long"),
    "unknown-field": ({"type": "offer", "sdp": _offer_with("video"), "x": 1}, "unknown field"),
    "not-sdp": ({"type": "offer", "sdp": "hello"}, "not a session description"),
    "no-ice-or-dtls": ({"type": "offer", "sdp": _offer_with("audio")}, "cannot be answered"),
}


@pytest.mark.parametrize(("body", "reason"), INVALID_BODIES.values(), ids=INVALID_BODIES.keys())
async def test_an_invalid_offer_is_refused_with_422_and_leaves_no_peer(
    client: Client, body: dict[str, Any], reason: str
) -> None:
    csrf = await open_link(client, (await schedule_links(client))[0])
    status, error = await post_offer(client, csrf, body)
    assert status == 422
    assert error["error"]["code"] == "invalid_input"
    assert reason in error["error"]["message"]
    assert client.app[CONNECTION_CHECKS].live_count == 0


INVALID_OFFERS = {
    "an-answer": (_offer_with("video"), "answer", "accepts only an offer"),
    "empty": ("", "offer", "not a session description"),
    "not-sdp": ("hello", "offer", "not a session description"),
    "no-media": (_offer_with(), "offer", "no media"),
    "two-videos": (_offer_with("video", "video"), "offer", "at most one video"),
    "unknown-media": (_offer_with("text"), "offer", "unsupported media"),
    "multibyte-over-32-KiB": (_offer_with("video") + "a=tool:" + "é" * 20_000, "offer", "larger"),
}


@pytest.mark.parametrize(
    ("sdp", "kind", "reason"), INVALID_OFFERS.values(), ids=INVALID_OFFERS.keys()
)
def test_only_a_bounded_offer_with_one_section_per_kind_is_accepted(
    sdp: str, kind: str, reason: str
) -> None:
    assert len(sdp) < MAX_SDP_BYTES  # the bound counts bytes, not characters
    with pytest.raises(InvalidInput, match=reason):
        validated_offer(sdp, kind)


# --- the peer manager on its own ---------------------------------------------------------------


async def _answered(checks: ConnectionChecks, key: str, probe: EchoProbe) -> None:
    offer = await probe.offer()
    await probe.accept(await checks.offer(key, offer["sdp"], offer["type"]))


async def test_shutdown_closes_every_peer_and_refuses_new_checks(
    probes: Callable[[], EchoProbe],
) -> None:
    checks = ConnectionChecks()
    first, second = probes(), probes()
    await _answered(checks, "visit-a", first)
    await _answered(checks, "visit-b", second)
    await first.first_echoed_frame()
    assert checks.live_count == 2

    await checks.close_all()

    assert checks.live_count == 0
    assert await first.echo_has_ended()
    with pytest.raises(ConnectionCheckUnavailable):
        await _answered(checks, "visit-c", probes())


async def test_an_offer_still_being_answered_at_shutdown_gets_a_clear_error(
    probes: Callable[[], EchoProbe],
) -> None:
    checks = ConnectionChecks()
    offer = await probes().offer()
    answering = asyncio.create_task(checks.offer("visit-a", offer["sdp"], offer["type"]))
    await asyncio.sleep(0)  # the server peer is now setting up

    await checks.close_all()

    with pytest.raises(ConnectionCheckUnavailable):
        await answering
    assert checks.live_count == 0


async def test_only_ping_sized_data_channel_messages_are_echoed(
    probes: Callable[[], EchoProbe],
) -> None:
    checks = ConnectionChecks()
    probe = probes()
    await _answered(checks, "visit-a", probe)

    await probe.send("x" * (MAX_ECHO_MESSAGE_BYTES + 1))
    await probe.send("ping")

    assert await probe.next_echo() == "ping"
    await checks.close_all()


async def test_a_browser_that_never_connects_frees_its_slot_after_the_connect_timeout(
    probes: Callable[[], EchoProbe],
) -> None:
    checks = ConnectionChecks(CheckLimits(connect_timeout_seconds=0.3))
    offer = await probes().offer()
    await checks.offer("visit-a", offer["sdp"], offer["type"])  # the answer is never applied
    assert checks.live_count == 1

    assert await eventually(lambda: checks.live_count == 0, seconds=2.0)


MDNS = "a=candidate:1 1 udp 2113937151 0bf9b270-fb67-4836-93ea-de432de32aca.local 49127 typ host"
IPV4 = "a=candidate:2 1 udp 2122194687 192.0.2.2 33604 typ host"
IPV6 = "a=candidate:3 1 udp 2122265343 fd00::2 60681 typ host"
RELAY = "a=candidate:4 1 udp 41885439 203.0.113.9 3478 typ relay raddr 0.0.0.0 rport 0"


@pytest.mark.parametrize(
    ("lines", "kept"),
    [
        ([MDNS, IPV4], [IPV4]),
        ([IPV4, IPV6, RELAY], [IPV4, IPV6, RELAY]),
        ([MDNS, "a=end-of-candidates"], []),
        (["a=mid:0", MDNS.replace(".local", ".LOCAL")], ["a=mid:0"]),
    ],
    ids=["mdns-dropped", "addresses-kept", "end-marker-dropped", "case-insensitive"],
)
def test_mdns_candidates_are_left_to_peer_reflexive_discovery(
    lines: list[str], kept: list[str]
) -> None:
    head = ["v=0", "m=audio 9 UDP/TLS/RTP/SAVPF 111"]
    sdp = "\r\n".join(head + lines) + "\r\n"
    assert without_mdns_candidates(sdp) == "\r\n".join(head + kept) + "\r\n"


async def test_a_peer_that_gathers_no_candidates_answers_with_an_error_not_a_hang(
    probes: Callable[[], EchoProbe], monkeypatch: pytest.MonkeyPatch
) -> None:
    probe = probes()
    offer = await probe.offer()
    # Like a machine whose only interface is loopback, which aioice skips when gathering.
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: [])
    checks = ConnectionChecks()

    started = time.monotonic()
    with pytest.raises(ConnectionCheckUnavailable):
        await checks.offer("visit-a", offer["sdp"], offer["type"])
    assert time.monotonic() - started < WAIT_SECONDS
    assert checks.live_count == 0


@pytest.mark.parametrize(
    "limits",
    [
        {"max_seconds": 0},
        {"max_concurrent": 0},
        {"gather_timeout_seconds": -1},
        {"max_sdp_bytes": 0},
    ],
    ids=["no-time", "no-room", "negative-gather-timeout", "no-sdp-room"],
)
def test_limits_that_would_disable_the_check_are_rejected(limits: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        CheckLimits(**limits)  # type: ignore[arg-type]

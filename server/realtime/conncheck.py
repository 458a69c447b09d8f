"""The pre-session connection check: a server-side aiortc peer that echoes a generated pattern.

The browser sends a canvas test pattern, a tone and a data channel (never the camera or the
microphone, DESIGN.md §2); this peer sends the media straight back through a `MediaRelay` and
echoes every data-channel message, so the page can measure round-trip time, loss and bitrate.
Nothing is recorded or stored. Each check is bounded: one live check per client key (a new
offer closes the old peer), a hard time limit, a global cap, and every wait has a timeout.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiortc import (
    RTCConfiguration,
    RTCDataChannel,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.contrib.media import MediaRelay
from aiortc.exceptions import InvalidAccessError, InvalidStateError, OperationError
from aiortc.mediastreams import MediaStreamTrack

from server.errors import AttuneError, InvalidInput, RateLimited
from server.keys import SETTINGS
from server.security.forwarded import Address
from server.security.ice_candidates import filter_answer
from server.web.conncheck_targets import conncheck_targets
from server.web.guard import VISIT
from server.web.openapi import Operation
from server.web.validation import read_json

log = logging.getLogger("attune.conncheck")

MAX_SDP_BYTES = 32 * 1024
# A data-channel ping is a few dozen bytes; anything longer is not ours and is not echoed.
MAX_ECHO_MESSAGE_BYTES = 1024
# One audio, one video and one data channel: more m-lines would only multiply the server's
# decode/encode work.
_ALLOWED_MEDIA = ("audio", "video", "application")
_CLOSING_STATES = frozenset({"failed", "closed"})
STOPPED_MESSAGE = "This check was stopped before it began; try again."


class ConnectionCheckUnavailable(AttuneError):
    """The server cannot run a connection check right now (no network path, shutting down)."""

    status = 503
    code = "conncheck_unavailable"


@dataclass(frozen=True)
class CheckLimits:
    """How long, how many and how large; the defaults suit a small clinic's server."""

    max_seconds: float = 30.0
    max_concurrent: int = 20
    gather_timeout_seconds: float = 5.0
    # A browser that never completes ICE (it gave up, or cannot reach us) frees its slot early.
    connect_timeout_seconds: float = 10.0
    max_sdp_bytes: int = MAX_SDP_BYTES

    def __post_init__(self) -> None:
        timeouts = (self.max_seconds, self.gather_timeout_seconds, self.connect_timeout_seconds)
        if min(timeouts) <= 0:
            raise ValueError("time limits must be positive")
        if self.max_concurrent < 1 or self.max_sdp_bytes < 1:
            raise ValueError("max_concurrent and max_sdp_bytes must be at least 1")


@dataclass(eq=False)
class _Check:
    """One live echo peer and the timer that ends it."""

    peer: RTCPeerConnection
    relay: MediaRelay = field(default_factory=MediaRelay)
    expiry: asyncio.Task[None] | None = None
    closed: bool = False


def validated_offer(sdp: str, kind: str, max_sdp_bytes: int = MAX_SDP_BYTES) -> str:
    """The offer's SDP if it is a plausible, bounded offer; InvalidInput otherwise."""
    if kind != "offer":
        raise InvalidInput("type: the connection check accepts only an offer.")
    if len(sdp.encode("utf-8")) > max_sdp_bytes:
        raise InvalidInput(f"sdp: larger than {max_sdp_bytes} bytes.")
    lines = sdp.splitlines()
    if not lines or lines[0].strip() != "v=0":
        raise InvalidInput("sdp: not a session description.")
    media = [line[2:].split(" ", 1)[0] for line in lines if line.startswith("m=")]
    if not media:
        raise InvalidInput("sdp: the offer has no media.")
    for section in media:
        if section not in _ALLOWED_MEDIA:
            raise InvalidInput(f"sdp: unsupported media {section!r}.")
        if media.count(section) > 1:
            raise InvalidInput(f"sdp: at most one {section} section.")
    return sdp


def without_mdns_candidates(sdp: str) -> str:
    """The SDP without `.local` (mDNS) candidates and without an end-of-candidates marker.

    Resolving a browser's mDNS name costs aioice a one-second timeout per check on a server and
    uses one process-wide socket; the browser's own connectivity checks reach our candidates
    anyway and teach aioice the browser's address (a peer-reflexive candidate), as long as it
    is not told that no more candidates will come.
    """
    kept = []
    for line in sdp.splitlines():
        if line.startswith("a=end-of-candidates"):
            continue
        if line.startswith("a=candidate:"):
            fields = line.split()
            if len(fields) > 4 and fields[4].lower().endswith(".local"):
                continue
        kept.append(line)
    return "\r\n".join(kept) + "\r\n"


def _has_candidates(sdp: str) -> bool:
    return any(line.startswith("a=candidate:") for line in sdp.splitlines())


class ConnectionChecks:
    """The live echo peers of one application: at most one per client key, all bounded."""

    def __init__(self, limits: CheckLimits | None = None, *, stun_urls: Sequence[str] = ()) -> None:
        self._limits = limits or CheckLimits()
        # An explicit list, even empty: aiortc falls back to a public STUN server otherwise.
        self._ice_servers = [RTCIceServer(urls=url) for url in stun_urls]
        self._checks: dict[str, _Check] = {}
        self._shut_down = False

    @property
    def limits(self) -> CheckLimits:
        """The bounds this instance enforces."""
        return self._limits

    @property
    def live_count(self) -> int:
        """How many checks are running."""
        return len(self._checks)

    def is_live(self, client_key: str) -> bool:
        """True while a check runs for this client key."""
        return client_key in self._checks

    async def offer(
        self, client_key: str, sdp: str, type: str, *, advertise: Address | None = None
    ) -> dict[str, str]:
        """Answer a browser's offer with a fully gathered SDP answer and start echoing; with
        `advertise`, the answer lists only candidates at that address."""
        offer_sdp = without_mdns_candidates(validated_offer(sdp, type, self._limits.max_sdp_bytes))
        if self._shut_down:
            raise ConnectionCheckUnavailable("The server is restarting; try again in a moment.")
        # No await between the cap test and the insert, so concurrent offers cannot overshoot.
        previous = self._checks.pop(client_key, None)
        if len(self._checks) >= self._limits.max_concurrent:
            raise RateLimited(
                "Many people are checking their connection right now; try again shortly.",
                retry_after=int(self._limits.max_seconds),
            )
        check = _Check(RTCPeerConnection(RTCConfiguration(iceServers=self._ice_servers)))
        self._checks[client_key] = check
        check.expiry = asyncio.create_task(self._expire(client_key, check))
        if previous is not None:
            await self._dispose(previous)
        try:
            answer_sdp = await self._answer(client_key, check, offer_sdp, advertise)
        except BaseException as exc:
            stopped_meanwhile = check.closed  # replaced, timed out or shut down while answering
            await self._drop(client_key, check)
            if stopped_meanwhile and isinstance(exc, Exception):
                raise ConnectionCheckUnavailable(STOPPED_MESSAGE) from None
            raise
        if check.closed:
            raise ConnectionCheckUnavailable(STOPPED_MESSAGE)
        return {"type": "answer", "sdp": answer_sdp}

    async def close(self, client_key: str) -> None:
        """End the client's check, if one runs."""
        check = self._checks.pop(client_key, None)
        if check is not None:
            await self._dispose(check)

    async def close_all(self) -> None:
        """End every check and refuse new ones (application shutdown)."""
        self._shut_down = True
        checks = list(self._checks.values())  # snapshot: closing awaits
        self._checks.clear()
        await asyncio.gather(*(self._dispose(check) for check in checks))

    async def _answer(
        self, client_key: str, check: _Check, offer_sdp: str, advertise: Address | None
    ) -> str:
        peer = check.peer

        @peer.on("track")
        def echo_track(track: MediaStreamTrack) -> None:
            # Unbuffered: a slow encoder drops stale frames instead of adding latency.
            peer.addTrack(check.relay.subscribe(track, buffered=False))

        @peer.on("datachannel")
        def echo_channel(channel: RTCDataChannel) -> None:
            @channel.on("message")
            def echo(message: str | bytes) -> None:
                size = len(message.encode("utf-8") if isinstance(message, str) else message)
                if size <= MAX_ECHO_MESSAGE_BYTES and channel.readyState == "open":
                    channel.send(message)

        @peer.on("connectionstatechange")
        async def end_when_done() -> None:
            if peer.connectionState in _CLOSING_STATES:
                await self._drop(client_key, check)

        try:
            await peer.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
            answer = await peer.createAnswer()
        except (ValueError, InvalidAccessError, InvalidStateError, OperationError) as exc:
            raise InvalidInput(f"sdp: the offer cannot be answered ({exc}).") from None
        try:
            # aiortc does not trickle: setting the answer gathers every candidate first.
            async with asyncio.timeout(self._limits.gather_timeout_seconds):
                await peer.setLocalDescription(answer)
        except TimeoutError:
            raise ConnectionCheckUnavailable(
                "The server could not prepare a connection in time; try again."
            ) from None
        local = peer.localDescription
        if local is None or not _has_candidates(local.sdp):
            log.warning("connection check gathered no ICE candidates (no usable interface)")
            raise ConnectionCheckUnavailable("The server has no network path for the check.")
        if advertise is None:
            return str(local.sdp)
        answer_sdp = filter_answer(local.sdp, advertise)
        if not _has_candidates(answer_sdp):
            log.warning(
                "connection check has no candidate at the address clients reach us at; "
                "set conncheck_advertised_address"
            )
            raise ConnectionCheckUnavailable("The server has no network path for the check.")
        return answer_sdp

    async def _expire(self, client_key: str, check: _Check) -> None:
        limits = self._limits
        to_connect = min(limits.connect_timeout_seconds, limits.max_seconds)
        await asyncio.sleep(to_connect)
        if check.peer.connectionState == "connected":
            await asyncio.sleep(limits.max_seconds - to_connect)
        await self._drop(client_key, check)

    async def _drop(self, client_key: str, check: _Check) -> None:
        """Forget `check` if it is still the client's current one, and close it."""
        if self._checks.get(client_key) is check:
            del self._checks[client_key]
        await self._dispose(check)

    async def _dispose(self, check: _Check) -> None:
        if check.closed:
            return
        check.closed = True
        if check.expiry is not None and check.expiry is not asyncio.current_task():
            check.expiry.cancel()
        await check.peer.close()


CONNECTION_CHECKS = web.AppKey("connection_checks", ConnectionChecks)
# Optional: set before startup to change the bounds (tests shorten them); defaults otherwise.
CONNCHECK_LIMITS = web.AppKey("conncheck_limits", CheckLimits)


async def conncheck_cleanup_ctx(app: web.Application) -> AsyncIterator[None]:
    """Create the application's ConnectionChecks; close every peer on shutdown."""
    limits = app.get(CONNCHECK_LIMITS, CheckLimits())
    checks = ConnectionChecks(limits, stun_urls=app[SETTINGS].stun_urls)
    app[CONNECTION_CHECKS] = checks
    yield
    await checks.close_all()


def visit_check_key(session_id: str, csrf_token: str) -> str:
    """One key per client visit: the session id and a digest of that visit's CSRF token."""
    digest = hashlib.sha256(csrf_token.encode("utf-8")).hexdigest()[:32]
    return f"{session_id}:{digest}"


# --- HTTP ------------------------------------------------------------------------------------

CONNCHECK_OFFER_SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "required": ["type", "sdp"],
    "additionalProperties": False,
    "properties": {
        "type": {"type": "string", "enum": ["offer"]},
        "sdp": {"type": "string", "minLength": 1, "maxLength": MAX_SDP_BYTES},
    },
}
CONNCHECK_ANSWER_SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "properties": {
        "type": {"type": "string", "enum": ["answer"]},
        "sdp": {"type": "string"},
    },
}


async def post_conncheck(request: web.Request) -> web.StreamResponse:
    """Start a connection check for the client who opened the link: offer in, answer out."""
    visit = request[VISIT]
    body = await read_json(request, CONNCHECK_OFFER_SCHEMA)
    key = visit_check_key(visit.session.id, visit.csrf_token)
    offer = validated_offer(
        body["sdp"], body["type"], request.app[CONNECTION_CHECKS].limits.max_sdp_bytes
    )
    filtered, advertise = conncheck_targets(request, offer)
    answer = await request.app[CONNECTION_CHECKS].offer(
        key, filtered, body["type"], advertise=advertise
    )
    return web.json_response(answer)


_ERR: Mapping[str, Any] = {"type": "object"}
CONNCHECK_OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "POST",
        "/api/v1/visit/conncheck",
        post_conncheck,
        "Connection check: echo a generated test pattern to measure the network",
        "startConnectionCheck",
        auth="client",
        request_schema=CONNCHECK_OFFER_SCHEMA,
        responses={
            200: ("The server peer's answer, ICE candidates included", CONNCHECK_ANSWER_SCHEMA),
            429: ("Too many checks running (see Retry-After)", _ERR),
            503: ("The server cannot run a check right now", _ERR),
        },
        tags=["video"],
    ),
)

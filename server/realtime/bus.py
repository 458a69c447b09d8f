"""The bus between processes: where a room's actions run, and how effects reach sockets.

Without Redis (`LocalBus`) every room lives in this process and an action runs at once, as it
always did. With Redis (`RedisBus`) any process accepts any socket; a room is *owned* by one
process at a time (a lease key renewed while the owner lives), its state is written to Redis
after every action that changes it (the cue engine's windows at a bounded rate), and sockets on
other processes forward their actions to the owner, which runs them and routes each effect to
the process holding the socket. When an owner dies, the
next process that needs the room claims it and rebuilds it from the stored state; the
connections of dead processes count as dropped, so their places are held for resume.
The design, keys, TTLs and failure cases are written down in docs/architecture.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import secrets
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Any, Protocol

from privacy.consent import ConsentChanged, ConsentDecision, Purpose
from server.core.cues.config import CueConfig
from server.core.models import Account, Role
from server.core.participants import THERAPIST_PEER_ID, PersonKind
from server.core.protocol import CloseCode, IceTransportPolicy, SessionRole
from server.core.room_seats import SOLE_CLIENT_PEER_ID
from server.core.rooms import Close, Effect, Room, Send
from server.realtime.lease_keeper import LeaseKeeper

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.client import PubSub

    from server.realtime.hub import Hub
    from server.settings import Settings

log = logging.getLogger("attune.bus")

# Renew the lease only while we still hold it; release it only if we still hold it.
_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end
return 0
"""
# Many leases at once (KEYS: owner key, state key, owner key, state key, ...): each lease still
# ours is renewed and its room's state kept alive for STATE_TTL_MS (a room whose state has not
# changed is not rewritten); one answer per room, 1 when renewed.
_RENEW_MANY = """
local renewed = {}
for i = 1, #KEYS, 2 do
  if redis.call('get', KEYS[i]) == ARGV[1] then
    redis.call('pexpire', KEYS[i], ARGV[2])
    redis.call('pexpire', KEYS[i + 1], ARGV[3])
    renewed[#renewed + 1] = 1
  else
    renewed[#renewed + 1] = 0
  end
end
return renewed
"""
# Write (or, with no state given, delete) a room's state only while still its owner: a process
# that lost its lease mid-action cannot overwrite the new owner's state (a fencing check).
_SAVE = """
if redis.call('get', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '' then return redis.call('del', KEYS[2]) end
redis.call('set', KEYS[2], ARGV[2], 'PX', ARGV[3])
return 1
"""
# Owners and what is left of their leases, for many rooms at once: [owner or nil, pttl, ...]
_OWNERS = """
local found = {}
for i = 1, #KEYS do
  found[2 * i - 1] = redis.call('get', KEYS[i]) or false
  found[2 * i] = redis.call('pttl', KEYS[i])
end
return found
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""
# A batch of messages (ARGV: channel, message, channel, message, ...) published in order in one
# command: one reply (the receivers' count of each) instead of one per PUBLISH of a pipeline,
# which redis-py read and timed one by one (most of the publish loop's CPU).
_PUBLISH_MANY = """
local counts = {}
for i = 1, #ARGV, 2 do counts[#counts + 1] = redis.call('publish', ARGV[i], ARGV[i + 1]) end
return counts
"""
STATE_TTL_MS = 120_000
"""A room's state outlives its last owner this long: longer than the resume grace (60 s)."""
CHECKPOINT_S = 5.25
"""The cue engine's working state (its windows, taken by the live operations at most every
`carry_every_ms`, 5 s) is written this long after the last write at the earliest: a little
longer than `carry_every_ms`, so the windows written are always taken afresh. `features`
frames change nothing else (`open_bus` scales it with `cue_time_scale`)."""
MAX_HOPS = 3
"""An action forwarded this often without finding its owner is dropped (and logged)."""


class Change(Enum):
    """What an action did to its room, so the owner knows when to write the room's state."""

    NONE = "none"  # nothing stored changed (a relay, a ping, features without cue analysis)
    LATER = "later"  # only the cue engine's windows: written with the next checkpoint
    NOW = "now"  # the room or the live operations' state: written before the next action


class BusUnavailable(Exception):
    """Redis cannot be reached (or has just come back empty): no room action can be routed
    now. Edges answer "try again later" (a 503 page, WebSocket close 1013), never a 500."""


def is_redis_outage(exc: BaseException) -> bool:
    """Whether `exc` means Redis cannot be used now (refused, reset, timed out, away)."""
    if isinstance(exc, BusUnavailable | ConnectionError | TimeoutError):
        return True
    try:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError
    except ImportError:  # pragma: no cover - redis is a dependency
        return False
    return isinstance(exc, RedisConnectionError | RedisTimeoutError)


def new_token() -> str:
    """A resume token: 24 random bytes, base64url."""
    return secrets.token_urlsafe(24)


def process_of(conn_id: str) -> str:
    """The process holding a connection: its id is `<process id>.<random>`."""
    return conn_id.split(".", 1)[0] if "." in conn_id else ""


@dataclass(frozen=True)
class ConnRef:
    """A connection as the room's owner sees it, wherever its socket is."""

    conn_id: str
    role: SessionRole
    session_id: str
    client_id: str
    account: Account | None = None  # the therapist's account; None for a client
    sign_in_id: str | None = None  # which sign-in opened it (a hash, never the token)
    client_access_id: str | None = None  # which client cookie opened it (a hash)
    another_device: bool = False  # a second device of the link, not yet admitted
    # the person behind it: None for the therapist, else the participant (its `peer_id`)
    participant_id: str | None = None
    # CLIENT unless given; a therapist's connection is always THERAPIST (see __post_init__)
    kind: PersonKind = PersonKind.CLIENT

    def __post_init__(self) -> None:
        if self.role is SessionRole.THERAPIST:
            if self.kind is PersonKind.GUEST:
                raise ValueError("a therapist's connection cannot be a guest")
            object.__setattr__(self, "kind", PersonKind.THERAPIST)
        elif self.kind is PersonKind.THERAPIST:
            raise ValueError("a client's connection cannot be the therapist")

    @property
    def peer_id(self) -> str:
        """The person's id in the protocol: "therapist", or the participant id (a client
        connection that names none is the session's sole client)."""
        if self.role is SessionRole.THERAPIST:
            return THERAPIST_PEER_ID
        return self.participant_id or SOLE_CLIENT_PEER_ID

    def to_json(self) -> dict[str, Any]:
        account = self.account
        return {
            "sign_in_id": self.sign_in_id,
            "client_access_id": self.client_access_id,
            "another_device": self.another_device,
            "participant_id": self.participant_id,
            "kind": self.kind.value,
            "conn_id": self.conn_id,
            "role": self.role.value,
            "session_id": self.session_id,
            "client_id": self.client_id,
            "account": None
            if account is None
            else {
                "id": account.id,
                "email": account.email,
                "role": account.role.value,
                "disabled": account.disabled,
                "created_at": account.created_at.isoformat(),
            },
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ConnRef:
        raw = data["account"]
        account = (
            None
            if raw is None
            else Account(
                id=str(raw["id"]),
                email=str(raw["email"]),
                role=Role(raw["role"]),
                disabled=bool(raw["disabled"]),
                created_at=datetime.fromisoformat(raw["created_at"]),
            )
        )
        return cls(
            conn_id=str(data["conn_id"]),
            role=SessionRole(data["role"]),
            session_id=str(data["session_id"]),
            client_id=str(data["client_id"]),
            account=account,
            sign_in_id=data.get("sign_in_id"),
            client_access_id=data.get("client_access_id"),
            another_device=bool(data.get("another_device", False)),
            participant_id=data.get("participant_id"),
            kind=PersonKind(data.get("kind", PersonKind.CLIENT)),
        )


@dataclass(slots=True)
class RoomOp:
    """One action on a room, from one connection: joining, a message, or leaving. Built for
    every frame, so not frozen: a frozen dataclass's `__init__` sets each field through
    `object.__setattr__` (8 µs for these fields against 2 µs). Nothing changes one after it
    is built."""

    kind: str  # "join" | "message" | "leave"
    ref: ConnRef
    label: str = ""
    resume: str | None = None
    ice_servers: Sequence[Mapping[str, Any]] = ()
    ice_transport_policy: IceTransportPolicy = IceTransportPolicy.ALL
    ice_ttl_seconds: int = 0
    consents: Mapping[str, str] = field(default_factory=dict)
    text: str = ""
    dropped: bool = False
    parsed: Any = None  # the parsed client message, when it never left this process
    received_at: float | None = None  # time.monotonic() of the frame's receipt, likewise
    message_type: str = ""  # the message's `type`, as the socket's process parsed it

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "ref": self.ref.to_json(),
            "label": self.label,
            "resume": self.resume,
            "ice_servers": list(self.ice_servers),
            "ice_transport_policy": self.ice_transport_policy.value,
            "ice_ttl_seconds": self.ice_ttl_seconds,
            "consents": dict(self.consents),
            "text": self.text,
            "dropped": self.dropped,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RoomOp:
        return cls(
            kind=str(data["kind"]),
            ref=ConnRef.from_json(data["ref"]),
            label=str(data["label"]),
            resume=data["resume"],
            ice_servers=tuple(data["ice_servers"]),
            ice_transport_policy=IceTransportPolicy(data["ice_transport_policy"]),
            ice_ttl_seconds=int(data["ice_ttl_seconds"]),
            consents=dict(data["consents"]),
            text=str(data["text"]),
            dropped=bool(data["dropped"]),
        )


class RoomRunner(Protocol):
    """What the owner of a room does with an action (server.realtime.signaling)."""

    async def run(self, op: RoomOp) -> Change:
        """Carry out one action on the room (join, message, leave); what it changed."""

    async def adopt(self, session_id: str, client_id: str, live: Mapping[str, Any]) -> None:
        """This process took the room over: reload what the live operations need."""

    def snapshot(self, session_id: str) -> dict[str, Any]:
        """What the live operations need to go on after a takeover (plain JSON)."""


LiveCall = Callable[["Hub", str, Mapping[str, Any]], None]
"""A LiveRooms call carried to the owner: (hub, session id, arguments)."""


class Bus(Protocol):
    """Where room actions run and how effects reach sockets on other processes."""

    process_id: str

    def bind(self, hub: Hub, runner: RoomRunner, live_calls: Mapping[str, LiveCall]) -> None:
        """Wire the bus to the hub, the room runner and the LiveRooms calls it may forward."""

    async def start(self) -> None:
        """Open connections and start background tasks."""

    async def stop(self) -> None:
        """Hand rooms over and close."""

    async def submit(self, op: RoomOp) -> None:
        """Run an action on its room's owner."""

    def owns(self, session_id: str) -> bool:
        """Whether this process holds the room now."""

    async def available(self) -> bool:
        """Whether room actions can be routed now (new joins are refused while they cannot)."""

    async def room_states(self, session_ids: Sequence[str]) -> dict[str, Mapping[str, Any]]:
        """The rooms held by other processes, as their owners last wrote them (`Room.to_state`),
        by session id; rooms nobody holds, or all when Redis is away, are left out."""

    def forward_effect(self, effect: Effect) -> None:
        """Deliver an effect to a connection held by another process."""

    def changed(self, session_id: str) -> None:
        """Something outside a room action changed a room held here (a LiveRooms call, a
        resume slot given up): its state is written with the next renewal."""

    def forward_live(self, session_id: str, call: str, args: Mapping[str, Any]) -> None:
        """Run a LiveRooms call on the room's owner (nothing when no process holds it)."""

    def broadcast(self, kind: str, payload: Mapping[str, Any]) -> None:
        """Tell every process (this one included) on the control channel."""

    def on_control(self, kind: str, handler: Callable[[Mapping[str, Any]], object]) -> None:
        """Handle control messages of a kind, from any process."""


class LocalBus:
    """One process: every room is here and every action runs at once."""

    process_id = ""

    def __init__(self) -> None:
        self._runner: RoomRunner | None = None
        self._control: dict[str, Callable[[Mapping[str, Any]], object]] = {}

    def bind(self, hub: Hub, runner: RoomRunner, live_calls: Mapping[str, LiveCall]) -> None:
        self._runner = runner

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def submit(self, op: RoomOp) -> None:
        assert self._runner is not None, "bind the bus first"
        await self._runner.run(op)

    def owns(self, session_id: str) -> bool:
        return True

    async def available(self) -> bool:
        return True

    async def room_states(self, session_ids: Sequence[str]) -> dict[str, Mapping[str, Any]]:
        return {}  # every room is in this process

    def forward_effect(self, effect: Effect) -> None:
        return None  # every connection is here: an unknown one has simply closed

    def changed(self, session_id: str) -> None:
        return None  # nothing is stored anywhere else

    def forward_live(self, session_id: str, call: str, args: Mapping[str, Any]) -> None:
        return None  # every live room is here: no room, nothing to do

    def broadcast(self, kind: str, payload: Mapping[str, Any]) -> None:
        handler = self._control.get(kind)
        if handler is not None:
            handler(payload)

    def on_control(self, kind: str, handler: Callable[[Mapping[str, Any]], object]) -> None:
        self._control[kind] = handler


class RedisBus:
    """Several processes sharing rooms through Redis: leases, stored state, forwarding.

    Redis may go away and come back (empty, if it kept nothing on disk): every loop survives
    its errors, the subscription is opened again, and rooms this process held in memory are
    re-claimed when nobody else took them meanwhile (docs/architecture.md, failure table).
    """

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str,
        lease_ms: int,
        checkpoint_s: float = CHECKPOINT_S,
        keeper: LeaseKeeper | None = None,
        loop_lag: Callable[[float], None] = lambda _seconds: None,
    ) -> None:
        self.process_id = secrets.token_hex(6)
        self._redis = redis
        # Renews our leases from a thread, so a busy event loop does not lose them (its own
        # renewal below still decides what was lost, and writes state)
        self._keeper = keeper
        self._loop_lag = loop_lag
        self._prefix = prefix
        self._lease_ms = lease_ms
        self._checkpoint_s = checkpoint_s
        self._owned: dict[str, float] = {}  # session id -> monotonic time the lease holds until
        self._loaded: set[str] = set()
        # Rooms held elsewhere: session id -> (owner, monotonic time until which we trust it:
        # until its lease, as it stood when we looked, runs out). An owner that gave the room
        # up meanwhile (stopped, or lost it) routes on: a stale entry costs one hop.
        self._known_owner: dict[str, tuple[str, float]] = {}
        self._owners_in_use: set[str] = set()  # known owners used since the last renewal
        self._changed: set[str] = set()  # owned rooms whose state is to be written at once
        self._cue_dirty: set[str] = set()  # owned rooms whose cue windows moved since written
        self._saved_at: dict[str, float] = {}  # owned room -> monotonic time last written
        self._ref_text: dict[str, tuple[ConnRef, str]] = {}  # conn id -> its ref as JSON text
        self._meta_in: dict[str, tuple[ConnRef, str, int]] = {}  # see _meta_of
        # Rooms kept in memory while Redis could not be reached (session id -> since when,
        # monotonic): re-claimed when it answers again, unless another process took them.
        self._suspended: dict[str, float] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._stopping = False
        self._hub: Hub | None = None
        self._runner: RoomRunner | None = None
        self._live_calls: Mapping[str, LiveCall] = {}
        self._control: dict[str, Callable[[Mapping[str, Any]], object]] = {}
        self._outgoing: asyncio.Queue[tuple[str, str, asyncio.Future[int] | None]] = asyncio.Queue()
        self.published_batches = 0  # PUBLISH pipelines sent (a test sees batching at work)
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[None]] = set()
        # Forwarded actions waiting for their room, in arrival order (see _enqueue)
        self._mailboxes: dict[str, deque[tuple[_Action, bool]]] = {}
        self._pubsub: PubSub | None = None
        self._listening = False  # subscribed to our channel and the control channel now
        self._reachable = True  # the last Redis command of the renew loop answered
        self._epoch: str | None = None  # tells a Redis that lost its data (a restart)
        self._recovering_until = 0.0  # monotonic: until then, only rooms held here are claimed
        self._closed = False
        self._renew = redis.register_script(_RENEW)
        self._renew_many = redis.register_script(_RENEW_MANY)
        self._release = redis.register_script(_RELEASE)
        self._owners = redis.register_script(_OWNERS)
        self._save_script = redis.register_script(_SAVE)
        self._publish_many = redis.register_script(_PUBLISH_MANY)
        self.renewing = True  # tests stop renewal to play a process that froze

    # --- keys and channels ------------------------------------------------------------

    def _owner_key(self, session_id: str) -> str:
        return f"{self._prefix}room:{session_id}:owner"

    def _state_key(self, session_id: str) -> str:
        return f"{self._prefix}room:{session_id}:state"

    def _alive_key(self, process_id: str) -> str:
        return f"{self._prefix}proc:{process_id}:alive"

    def _channel(self, process_id: str) -> str:
        return f"{self._prefix}proc:{process_id}"

    @property
    def _control_channel(self) -> str:
        return f"{self._prefix}control"

    @property
    def _epoch_key(self) -> str:
        return f"{self._prefix}epoch"

    # --- lifetime ---------------------------------------------------------------------

    def bind(self, hub: Hub, runner: RoomRunner, live_calls: Mapping[str, LiveCall]) -> None:
        self._hub, self._runner, self._live_calls = hub, runner, live_calls

    async def start(self) -> None:
        try:
            await self._heartbeat()
            await self._subscribe()
        except BaseException:  # Redis away at start (or cancelled): leave no socket behind
            await self._close_connections()
            raise
        self._tasks = [
            asyncio.create_task(self._listen()),
            asyncio.create_task(self._publish_loop()),
            asyncio.create_task(self._renew_loop()),
        ]
        if self._keeper is not None:
            self._keeper.start(
                asyncio.get_running_loop(),
                process_id=self.process_id,
                alive_key=self._alive_key(self.process_id),
                keys=lambda session_id: (self._owner_key(session_id), self._state_key(session_id)),
                rooms=lambda: list(self._owned.copy()),  # one step under the GIL
                enabled=lambda: self.renewing,
                renewed=self._kept,
                lag=self._loop_lag,
            )

    def _kept(self, sent: float, session_ids: list[str]) -> None:
        """The keeper renewed these leases with a request sent at `sent` (monotonic)."""
        until = sent + self._lease_ms / 1000
        for session_id in session_ids:
            held = self._owned.get(session_id)
            if held is not None and held < until:
                self._owned[session_id] = until

    async def _stop_keeper(self) -> None:
        if self._keeper is not None:
            await self._keeper.stop()

    async def stop(self) -> None:
        """Save and hand over every owned room (the next process claims it at once)."""
        if self._closed:  # vanished already: nothing to hand over, nothing left to close
            return
        self._stopping = True  # from now on no room is claimed here: it is being handed over
        # A few rooms at a time (one by one, 500 rooms outlasted the shutdown grace on a busy
        # machine): each one's state is written if it changed since, then its lease released.
        # Bounded: a room whose lock or Redis does not answer is left to its lease lapsing
        # (the next process takes it over then); shutdown must never hang on one room.
        await self._stop_keeper()
        at_once = asyncio.Semaphore(_RENEWAL_SAVES_AT_ONCE)
        now = time.monotonic()
        await asyncio.gather(
            *(self._hand_over(session_id, now, at_once) for session_id in list(self._owned))
        )
        self._owned.clear()
        self._suspended.clear()
        await self._cancel_tasks()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(_HAND_OVER_S):
                await self._redis.delete(self._alive_key(self.process_id))
        await self._close_connections()

    async def _hand_over(self, session_id: str, now: float, at_once: asyncio.Semaphore) -> None:
        with contextlib.suppress(Exception):
            async with at_once, asyncio.timeout(_HAND_OVER_S), self._lock(session_id):
                changed = session_id in self._cue_dirty or self._due_for_writing(session_id, now)
                if changed and session_id in self._loaded:  # (not loaded: nothing to write)
                    await self._save(session_id)
                await self._release(keys=[self._owner_key(session_id)], args=[self.process_id])

    async def vanish(self) -> None:
        """Stop at once as if killed: no renewal, no hand-over, no goodbye (tests). Its
        connections to Redis are closed too, as the kernel would close a killed process's."""
        self.renewing = False
        await self._stop_keeper()
        self._owned.clear()
        self._suspended.clear()
        await self._cancel_tasks()
        await self._close_connections()

    async def _cancel_tasks(self) -> None:
        # Until none is left: forwarded work spawned while stopping is cancelled too, so no
        # task outlives the bus to open a connection on its closed pool. Bounded overall: a
        # task that ignores its cancellation cannot hold shutdown.
        deadline = time.monotonic() + _HAND_OVER_S
        while tasks := [task for task in (*self._tasks, *self._background) if not task.done()]:
            for task in tasks:
                task.cancel()
            left = deadline - time.monotonic()
            if left <= 0:
                break
            await asyncio.wait(tasks, timeout=left)
        self._tasks = []

    async def _close_connections(self) -> None:
        """Close the subscription and the client with its pool, once; never raises."""
        if self._closed:
            return
        self._closed = True
        pubsub, self._pubsub = self._pubsub, None
        self._listening = False
        if pubsub is not None:
            with contextlib.suppress(Exception):
                await pubsub.aclose()
        with contextlib.suppress(Exception):
            await self._redis.aclose()

    # --- reachability -----------------------------------------------------------------

    async def available(self) -> bool:
        """Redis answers a PING within a second, our subscription is up and no recovery from
        an emptied Redis is under way: a new session may start."""
        if not self._listening or time.monotonic() < self._recovering_until:
            return False
        try:
            async with asyncio.timeout(_PING_TIMEOUT_S):
                await self._redis.ping()
        except Exception as exc:
            if not is_redis_outage(exc):
                raise
            return False
        return True

    async def room_states(self, session_ids: Sequence[str]) -> dict[str, Mapping[str, Any]]:
        if not session_ids:
            return {}
        try:
            raws = await self._redis.mget([self._state_key(s) for s in session_ids])
        except Exception as exc:
            if not is_redis_outage(exc):
                raise
            return {}  # Redis away: only this process's rooms are known
        states: dict[str, Mapping[str, Any]] = {}
        for session_id, raw in zip(session_ids, raws, strict=True):
            if raw is not None:
                states[session_id] = json.loads(raw)["room"]
        return states

    async def _heartbeat(self) -> bool:
        """Renew our liveness key and look at the epoch (one round trip); True when Redis
        lost its data since we last looked (it restarted without saving)."""
        key = self._epoch_key
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.set(self._alive_key(self.process_id), "1", px=self._lease_ms)
            pipe.set(key, secrets.token_hex(8), nx=True)
            pipe.get(key)
            _, _, current = await pipe.execute()
        return self._saw_epoch(None if current is None else str(current))

    def _saw_epoch(self, current: str | None) -> bool:
        if current == self._epoch:
            return False
        lost = self._epoch is not None
        self._epoch = current
        if lost:
            # Rooms held in memory are re-claimed by their holders within a renewal; until
            # then no process may claim a room it does not hold, or a client would knock anew.
            self._recovering_until = time.monotonic() + 2 * self._lease_ms / 1000
            log.warning("Redis lost its data (a restart): rooms held here are re-claimed")
        return lost

    async def _subscribe(self) -> None:
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(self._channel(self.process_id), self._control_channel)
        except BaseException:
            with contextlib.suppress(Exception):
                await pubsub.aclose()
            raise
        self._pubsub = pubsub
        self._listening = True

    # --- ownership --------------------------------------------------------------------

    def owns(self, session_id: str) -> bool:
        until = self._owned.get(session_id)
        return until is not None and time.monotonic() < until

    def _lock(self, session_id: str) -> asyncio.Lock:
        lock = self._locks.get(session_id)
        if lock is None:
            lock = self._locks[session_id] = asyncio.Lock()
        return lock

    async def _owner(self, session_id: str, *, claim: bool) -> str | None:
        """The process owning the room; with `claim`, this one when nobody does."""
        assert self._hub is not None
        while True:
            if self.owns(session_id):
                return self.process_id
            started = time.monotonic()
            known = self._known_owner.get(session_id)
            if known is not None and started < known[1]:
                self._owners_in_use.add(session_id)  # looked at again with the next renewal
                return known[0]
            owner, left_ms = await self._look_up_owner(session_id)
            if owner == self.process_id:  # our lease, but our clock says it lapsed: renew it
                if await self._renew(
                    keys=[self._owner_key(session_id)], args=[self.process_id, self._lease_ms]
                ):
                    self._owned[session_id] = started + self._lease_ms / 1000
                    return self.process_id
                continue
            if owner is not None:
                if int(left_ms) > 0:  # trusted no longer than the lease itself lasts
                    self._known_owner[session_id] = (str(owner), started + int(left_ms) / 1000)
                    self._owners_in_use.add(session_id)
                return str(owner)
            if not claim or self._stopping:
                return None
            if self._hub.rooms.get(session_id) is None:
                # A room we do not hold: if Redis came back empty, its holder re-claims it
                # within a renewal; claiming it first would make a stranger of everyone in it.
                async with self._redis.pipeline(transaction=False) as pipe:
                    pipe.get(self._epoch_key)
                    (current,) = await pipe.execute()
                lost = self._saw_epoch(None if current is None else str(current))
                if lost or current is None or time.monotonic() < self._recovering_until:
                    raise BusUnavailable("rooms are being re-claimed after a Redis restart")
            if await self._redis.set(
                self._owner_key(session_id), self.process_id, nx=True, px=self._lease_ms
            ):
                self._owned[session_id] = started + self._lease_ms / 1000
                self._loaded.discard(session_id)
                log.info("claimed a room", extra={"process_id": self.process_id})
                return self.process_id

    async def _look_up_owner(self, session_id: str) -> tuple[str | None, int]:
        """A room's owner and what is left of its lease (ms), one round trip."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.get(self._owner_key(session_id))
            pipe.pttl(self._owner_key(session_id))
            owner, left_ms = await pipe.execute()
        return (None if owner is None else str(owner)), int(left_ms)

    async def _refresh_known_owners(self) -> None:
        """Look again at the owners of the rooms used since the last renewal, all in one round
        trip, so they stay trusted for as long as their leases run, without a lookup per room
        per lease on the way of a message: at 1,000 rooms under load, those lookups held the
        pool's connections long enough for actions to wait out the pool, fail as if Redis
        were away, and close their sockets with 1013. A lease that lapsed (a frozen owner)
        ends the trust: the next message looks again and may claim the room."""
        in_use = [s for s in self._owners_in_use if s in self._known_owner]
        self._owners_in_use.clear()
        if not in_use:
            return
        started = time.monotonic()
        async with self._redis.pipeline(transaction=False) as pipe:
            for at in range(0, len(in_use), _RENEWALS_PER_SCRIPT):
                keys = [self._owner_key(s) for s in in_use[at : at + _RENEWALS_PER_SCRIPT]]
                await self._owners(keys=keys, client=pipe)
            answers = await pipe.execute()
        found = [value for answer in answers for value in answer]
        for i, session_id in enumerate(in_use):
            owner, left_ms = found[2 * i], int(found[2 * i + 1])
            if owner is not None and owner != self.process_id and left_ms > 0:
                self._known_owner[session_id] = (str(owner), started + left_ms / 1000)
            else:
                self._known_owner.pop(session_id, None)

    async def _free_lease_of(self, session_id: str, owner: str) -> None:
        """The owner's channel has no listener: it is gone, so its lease is lifted now."""
        self._known_owner.pop(session_id, None)
        await self._release(keys=[self._owner_key(session_id)], args=[owner])

    async def _alive(self, process_id: str) -> bool:
        if process_id == self.process_id:
            return True
        if not await self._redis.exists(self._alive_key(process_id)):
            return False
        counts = await self._redis.pubsub_numsub(self._channel(process_id))
        return bool(counts and int(counts[0][1]) > 0)

    def _suspend(self, session_id: str) -> None:
        """Redis is away and our lease is over by our own clock: stop acting for the room but
        keep it in memory, to be re-claimed when Redis answers again."""
        self._owned.pop(session_id, None)
        self._loaded.discard(session_id)
        if self._hub is not None and self._hub.rooms.get(session_id) is not None:
            self._suspended.setdefault(session_id, time.monotonic())

    async def _reclaim(self, session_id: str) -> bool:
        """Hold again a room this process kept in memory after its lease lapsed (a Redis
        outage or restart), unless another process holds it or held it meanwhile (its stored
        state is newer than ours). True when held again."""
        assert self._hub is not None
        self._suspended.pop(session_id, None)
        room = self._hub.rooms.get(session_id)
        if room is None:
            return False
        started = time.monotonic()
        owner_key = self._owner_key(session_id)
        if not await self._redis.set(owner_key, self.process_id, nx=True, px=self._lease_ms):
            return False  # another process holds it now
        raw = await self._redis.get(self._state_key(session_id))
        if raw is not None and json.loads(raw).get("by") != self.process_id:
            await self._release(keys=[owner_key], args=[self.process_id])
            return False
        self._owned[session_id] = started + self._lease_ms / 1000
        self._loaded.add(session_id)
        # Our sockets of the room that closed while nothing could be routed count as dropped
        # (their places are held for resume); sockets elsewhere resume or carry on.
        now_ms = int(time.time() * 1000)
        for conn_id in room.conn_ids:
            if process_of(conn_id) == self.process_id and not self._hub.holds(conn_id):
                self._hub.conn_refs.pop(conn_id, None)
                self._hub.execute(room.leave(conn_id, now_ms, dropped=True))
        await self._save(session_id)
        log.info("re-claimed a room after a Redis outage", extra={"process_id": self.process_id})
        return True

    # --- running actions where the room is ----------------------------------------------

    async def submit(self, op: RoomOp) -> None:
        """Run the action on the room's owner; BusUnavailable while Redis cannot be reached."""
        try:
            await self._route(op.ref.session_id, _Action(op=op), claim=True)
        except BusUnavailable:
            raise
        except Exception as exc:
            if not is_redis_outage(exc):
                raise
            # what went wrong, for the log (redis-py's messages hold no secrets: host and port)
            reason = f"Redis cannot be reached: {type(exc).__name__}: {exc}"
            raise BusUnavailable(reason[:160]) from None

    def forward_live(self, session_id: str, call: str, args: Mapping[str, Any]) -> None:
        self._enqueue(session_id, _Action(live=(session_id, call, dict(args))), claim=False)

    async def _route(self, session_id: str, action: _Action, *, claim: bool) -> None:
        for _ in range(MAX_HOPS + 1):
            owner = await self._owner(session_id, claim=claim)
            if owner is None:
                return  # no live room anywhere: nothing to tell
            if owner == self.process_id:
                if await self._run_here(session_id, action):
                    return
                continue
            if action.hops >= MAX_HOPS:
                break
            receivers = await self._publish(self._channel(owner), self._encode(action))
            if receivers > 0:
                return
            await self._free_lease_of(session_id, owner)
        log.warning("dropped an action whose room has no reachable owner")

    def _encode(self, action: _Action) -> str:
        """The action as it travels to its owner, one hop further. A message travels as
        `M<meta JSON>\n<the client's frame as received>`, so the frame is neither wrapped in
        nor escaped into another JSON document; joins, leaves and LiveRooms calls as JSON."""
        hops = action.hops + 1
        op = action.op
        if op is not None and op.kind == "message":
            kind = json.dumps(op.message_type)
            return f'M{{"h":{hops},"t":{kind},"ref":{self._ref_json(op.ref)}}}\n{op.text}'
        if op is not None:
            return json.dumps({"k": "op", "op": op.to_json(), "hops": hops})
        assert action.live is not None
        session_id, call, args = action.live
        payload = {"k": "live", "session_id": session_id, "call": call, "args": args}
        return json.dumps({**payload, "hops": hops})

    def _ref_json(self, ref: ConnRef) -> str:
        """A connection's descriptor as JSON text, encoded once per descriptor."""
        cached = self._ref_text.get(ref.conn_id)
        if cached is not None and cached[0] is ref:
            return cached[1]
        text = json.dumps(ref.to_json())
        if len(self._ref_text) >= _REF_TEXTS_KEPT:
            self._ref_text.clear()  # connections come and go; a new one encodes again
        self._ref_text[ref.conn_id] = (ref, text)
        return text

    async def _run_here(self, session_id: str, action: _Action) -> bool:
        """Run under the room's lock if still the owner; False to route again. The room's
        state is written after any action that changed it (`Change.NOW`), or after a
        takeover; `features` only mark the cue windows for the next checkpoint."""
        assert self._hub is not None and self._runner is not None
        async with self._lock(session_id):
            if not self.owns(session_id):
                return False
            took_over = session_id not in self._loaded
            if took_over:
                await self._load(session_id)
            if action.op is not None:
                change = await self._runner.run(action.op)
            else:
                assert action.live is not None
                _, call_name, args = action.live
                call = self._live_calls.get(call_name)
                if call is not None:
                    call(self._hub, session_id, args)
                change = Change.NOW
            if change is Change.LATER:
                self._cue_dirty.add(session_id)
            if not (took_over or change is Change.NOW or session_id in self._changed):
                return True
            try:
                await self._save(session_id)
            except Exception as exc:  # done here already; the next renewal writes it
                if not is_redis_outage(exc):
                    raise
                self._changed.add(session_id)
                log.warning("a room's state was not written: Redis unreachable")
        return True

    async def _load(self, session_id: str) -> None:
        """Take the room over: its stored state, minus connections of processes that died."""
        assert self._hub is not None and self._runner is not None
        hub = self._hub
        raw = await self._redis.get(self._state_key(session_id))
        self._loaded.add(session_id)
        self._suspended.pop(session_id, None)
        if raw is None or hub.rooms.get(session_id) is not None:
            return
        blob = json.loads(raw)
        room = Room.from_state(blob["room"], new_token=new_token)
        hub.rooms.adopt(room)
        hub.room_clients[session_id] = str(blob["client_id"])
        now_ms = int(time.time() * 1000)
        for conn_id in room.conn_ids:
            process = process_of(conn_id)
            gone = (
                not hub.holds(conn_id)
                if process == self.process_id
                else not await self._alive(process)
            )
            if gone:
                hub.execute(room.leave(conn_id, now_ms, dropped=True))
        await self._runner.adopt(session_id, str(blob["client_id"]), blob.get("live", {}))
        log.info("took a room over", extra={"process_id": self.process_id})

    async def _save(self, session_id: str) -> None:
        """Write the room's state (or, once it is gone, remove it and hand the lease back)."""
        assert self._hub is not None and self._runner is not None
        room = self._hub.rooms.get(session_id)
        keys = [self._owner_key(session_id), self._state_key(session_id)]
        if room is None:
            self._owned.pop(session_id, None)
            self._loaded.discard(session_id)
            self._locks.pop(session_id, None)
            self._forget_writes(session_id)
            self._hub.room_clients.pop(session_id, None)
            await self._save_script(keys=keys, args=[self.process_id, "", 0])
            await self._release(keys=[self._owner_key(session_id)], args=[self.process_id])
            return
        started = time.monotonic()
        blob = {
            "room": room.to_state(),
            "client_id": self._hub.room_clients.get(session_id, ""),
            "live": self._runner.snapshot(session_id),
            "by": self.process_id,  # a holder back from an outage keeps its room only if so
        }
        # Taken before writing: a change made while the write is under way is written next.
        # The cue windows just written are fresh only if the last write (and so the last time
        # they were taken) is a checkpoint ago; else they stay due for the next checkpoint.
        self._changed.discard(session_id)
        if started - self._saved_at.get(session_id, -self._checkpoint_s) >= self._checkpoint_s:
            self._cue_dirty.discard(session_id)
        self._saved_at[session_id] = time.monotonic()
        if not await self._save_script(
            keys=keys, args=[self.process_id, json.dumps(blob), STATE_TTL_MS]
        ):
            log.warning("a room's state was not written: its lease is held elsewhere now")

    def _forget_writes(self, session_id: str) -> None:
        self._changed.discard(session_id)
        self._cue_dirty.discard(session_id)
        self._saved_at.pop(session_id, None)

    def changed(self, session_id: str) -> None:
        if session_id in self._owned:
            self._changed.add(session_id)

    def _lose(self, session_id: str) -> None:
        """Our lease lapsed and another process has (or had) the room: forget it and send our
        sockets of it to reconnect, so they resume through whoever owns it now."""
        assert self._hub is not None
        self._owned.pop(session_id, None)
        self._loaded.discard(session_id)
        self._suspended.pop(session_id, None)
        self._forget_writes(session_id)
        self._hub.rooms.forget(session_id)
        self._hub.close_session_connections(session_id, CloseCode.GOING_AWAY, "reconnect")
        log.warning("lost a room's lease", extra={"process_id": self.process_id})

    async def _renew_loop(self) -> None:
        interval = self._lease_ms / 3000
        while True:
            await asyncio.sleep(interval)
            if not self.renewing:
                continue
            try:
                await self._renew_once()
            except Exception as exc:
                if not is_redis_outage(exc):
                    log.exception("renewing leases failed")
                    continue
                if self._reachable:  # once per outage, without a traceback
                    log.warning("Redis unreachable (%s): no room can be routed", type(exc).__name__)
                self._reachable = False
                for session_id in list(self._owned):
                    if not self.owns(session_id):  # our own clock says the lease is over
                        self._suspend(session_id)
                self._give_up_old_suspensions()

    async def _renew_once(self) -> None:
        """Liveness, our leases and our rooms' state; after an outage, re-claim what we kept."""
        lost_data = await self._heartbeat()
        if not self._reachable:
            log.warning("Redis reachable again")
            self._reachable = True
        if lost_data:  # nothing of ours is in Redis any more: every room must be re-claimed
            for session_id in list(self._owned):
                self._suspend(session_id)
        if self._listening:  # re-claim only once other processes can reach us
            for session_id in list(self._suspended):
                async with self._lock(session_id):
                    if not await self._reclaim(session_id):
                        self._lose(session_id)
        self._give_up_old_suspensions()
        await self._refresh_known_owners()
        owned = list(self._owned)
        if not owned:
            return
        # Every lease (and its room's state's TTL) in one round trip, a script per
        # _RENEWALS_PER_SCRIPT rooms; then only the states that changed are written, each
        # under its room's lock: rewriting every room each second cost more than the traffic.
        started = time.monotonic()
        async with self._redis.pipeline(transaction=False) as pipe:
            for at in range(0, len(owned), _RENEWALS_PER_SCRIPT):
                keys: list[str] = []
                for session_id in owned[at : at + _RENEWALS_PER_SCRIPT]:
                    keys += [self._owner_key(session_id), self._state_key(session_id)]
                await self._renew_many(
                    keys=keys, args=[self.process_id, self._lease_ms, STATE_TTL_MS], client=pipe
                )
            answers = await pipe.execute()
        renewed = [ok for answer in answers for ok in answer]
        held: list[str] = []
        for session_id, ok in zip(owned, renewed, strict=True):
            if ok:
                if session_id in self._owned:
                    self._owned[session_id] = started + self._lease_ms / 1000
                    if self._due_for_writing(session_id, started):
                        held.append(session_id)
                continue
            async with self._lock(session_id):
                if not await self._reclaim(session_id):
                    self._lose(session_id)
        self._forget_old_owners(started)
        # a few at a time: all at once they took the pool's connections from the rooms' own
        # actions, which then waited out the pool and failed
        at_once = asyncio.Semaphore(_RENEWAL_SAVES_AT_ONCE)
        failures = await asyncio.gather(
            *(self._save_held(session_id, at_once) for session_id in held),
            return_exceptions=True,
        )
        for failure in failures:
            if isinstance(failure, BaseException):
                raise failure

    def _due_for_writing(self, session_id: str, now: float) -> bool:
        """Whether the renewal writes a held room's state: it changed outside an action, or
        is gone (its state is removed), or its cue windows moved and the last write is a
        checkpoint (CHECKPOINT_S) old."""
        assert self._hub is not None
        if session_id in self._changed or self._hub.rooms.get(session_id) is None:
            return True
        return (
            session_id in self._cue_dirty
            and now - self._saved_at.get(session_id, -self._checkpoint_s) >= self._checkpoint_s
        )

    def _forget_old_owners(self, now: float) -> None:
        for session_id, (_owner, until) in list(self._known_owner.items()):
            if until <= now:
                del self._known_owner[session_id]

    async def _save_held(self, session_id: str, at_once: asyncio.Semaphore) -> None:
        async with at_once, self._lock(session_id):
            if self.owns(session_id) and session_id in self._loaded:
                await self._save(session_id)

    def _give_up_old_suspensions(self) -> None:
        """A room kept through an outage longer than its state would have lived is given up
        (its clients knock again when Redis is back, as with a lost state)."""
        now = time.monotonic()
        for session_id, since in list(self._suspended.items()):
            if now - since > STATE_TTL_MS / 1000:
                self._lose(session_id)

    # --- effects and control ----------------------------------------------------------

    def forward_effect(self, effect: Effect) -> None:
        process = process_of(effect.conn_id)
        if not process or process == self.process_id:
            return  # ours and already closed
        if isinstance(effect, Send):
            # `S<conn id>\n<the message's JSON>`: encoded once here, written as it is there
            message = f"S{effect.conn_id}\n{json.dumps(effect.message)}"
        else:
            message = json.dumps(
                {"k": "close", "conn_id": effect.conn_id, "code": int(effect.code),
                 "reason": effect.reason}
            )  # fmt: skip
        self._outgoing.put_nowait((self._channel(process), message, None))

    def broadcast(self, kind: str, payload: Mapping[str, Any]) -> None:
        message = json.dumps({"k": "control", "kind": kind, "payload": dict(payload)})
        self._outgoing.put_nowait((self._control_channel, message, None))

    def on_control(self, kind: str, handler: Callable[[Mapping[str, Any]], object]) -> None:
        self._control[kind] = handler

    async def _publish(self, channel: str, message: str) -> int:
        """Publish in order with everything else this process sends; the receivers' count."""
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._outgoing.put_nowait((channel, message, done))
        return await done

    async def _publish_loop(self) -> None:
        """One publisher, so messages from this process arrive in the order they were sent;
        what queued up meanwhile goes out in one command (one round trip, in order). While
        Redis is away a batch fails (its senders hear why, if they wait) and the loop goes on
        with the next."""
        while True:
            batch = [await self._outgoing.get()]
            while len(batch) < _PUBLISH_BATCH and not self._outgoing.empty():
                batch.append(self._outgoing.get_nowait())
            args: list[str] = []
            for channel, message, _done in batch:
                args += (channel, message)
            try:
                answers = await self._publish_many(args=args)
                self.published_batches += 1
            except Exception as exc:
                for _channel, _message, done in batch:
                    if done is not None and not done.done():
                        done.set_exception(exc)
                continue
            for (_channel, _message, done), answer in zip(batch, answers, strict=True):
                if done is not None and not done.done():
                    done.set_result(int(answer))

    async def _listen(self) -> None:
        """Handle messages on our channels; when the subscription breaks (Redis restarted or
        unreachable), subscribe again with back-off, for as long as the process runs."""
        delay = _RESUBSCRIBE_MIN_S
        while True:
            try:
                if self._pubsub is None:
                    await self._subscribe()
                    log.warning("subscribed again after losing Redis")
                delay = _RESUBSCRIBE_MIN_S
                assert self._pubsub is not None
                await self._read_subscription(self._pubsub)
            except Exception as exc:
                if not is_redis_outage(exc):
                    log.exception("the bus's subscription failed")
                self._listening = False
                pubsub, self._pubsub = self._pubsub, None
                if pubsub is not None:
                    with contextlib.suppress(Exception):
                        await pubsub.aclose()
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RESUBSCRIBE_MAX_S)

    async def _read_subscription(self, pubsub: PubSub) -> None:
        """Read the subscription's replies straight off its connection until it fails.

        `PubSub.listen()` wrapped every message in a retry and a timing of its own and built a
        dict for it (a third of the listener's CPU with hiredis); its retry only reconnected to
        raise anyway, and our back-off above re-subscribes. A message is `[kind, channel,
        data]`: only "message" is ours to handle (subscribe confirmations are not)."""
        connection = pubsub.connection
        if connection is None:
            raise ConnectionError("the subscription has no connection")
        read = connection.read_response
        while True:
            # math.inf: block until a message comes, however long (not the 5 s socket_timeout)
            reply = await read(timeout=math.inf, disconnect_on_error=False, push_request=True)
            # a list (with hiredis, its subclass for what the server pushed)
            if isinstance(reply, list) and len(reply) == 3 and reply[0] == "message":
                try:
                    self._on_message(reply[2])
                except Exception:
                    log.exception("a bus message could not be handled")

    def _on_message(self, raw: str) -> None:
        assert self._hub is not None
        if raw.startswith("S"):  # a message for a socket of ours, as its JSON text
            conn_id, _, text = raw[1:].partition("\n")
            self._hub.deliver_text(conn_id, text)
            return
        if raw.startswith("M"):  # a client's message for a room we own
            meta_text, _, text = raw[1:].partition("\n")
            ref, message_type, hops = self._meta_of(meta_text)
            op = RoomOp("message", ref, text=text, message_type=message_type)
            self._enqueue(ref.session_id, _Action(op=op, hops=hops), claim=True)
            return
        data = json.loads(raw)
        kind = data.get("k")
        hops = int(data.get("hops", 0))
        if kind == "close":
            code = CloseCode(int(data["code"]))
            self._hub.execute([Close(str(data["conn_id"]), code, str(data["reason"]))])
        elif kind == "op":
            op = RoomOp.from_json(data["op"])
            self._enqueue(op.ref.session_id, _Action(op=op, hops=hops), claim=True)
        elif kind == "live":
            session_id = str(data["session_id"])
            action = _Action(live=(session_id, str(data["call"]), dict(data["args"])), hops=hops)
            self._enqueue(session_id, action, claim=False)
        elif kind == "control":
            handler = self._control.get(str(data["kind"]))
            if handler is not None:
                handler(data["payload"])

    def _meta_of(self, meta_text: str) -> tuple[ConnRef, str, int]:
        """A forwarded message's descriptor, type and hops, decoded once per distinct text:
        a socket sends the same few (its descriptor is encoded once, see `_ref_json`), and a
        changed descriptor is a different text. ConnRef is frozen, so one is shared safely."""
        meta = self._meta_in.get(meta_text)
        if meta is None:
            data = json.loads(meta_text)
            meta = (ConnRef.from_json(data["ref"]), str(data["t"]), int(data["h"]))
            if len(self._meta_in) >= _REF_TEXTS_KEPT:
                self._meta_in.clear()  # connections come and go; a new one decodes again
            self._meta_in[meta_text] = meta
        return meta

    def _enqueue(self, session_id: str, action: _Action, *, claim: bool) -> None:
        """Run a forwarded action (or a LiveRooms call) on its room, after the room's earlier
        ones: each room has a mailbox, drained in arrival order by one task while it is not
        empty (a burst for a room costs one task, not one each, and a slow action is never
        overtaken by a later one of its room). Rooms do not wait for each other."""
        if self._closed:  # stopping: nothing new may start on a pool that is closing
            return
        mailbox = self._mailboxes.get(session_id)
        if mailbox is not None:
            mailbox.append((action, claim))
            return
        mailbox = self._mailboxes[session_id] = deque([(action, claim)])
        task = asyncio.create_task(self._drain(session_id, mailbox))
        self._background.add(task)  # stop() cancels it, and what it has not run is dropped
        task.add_done_callback(self._background.discard)

    async def _drain(self, session_id: str, mailbox: deque[tuple[_Action, bool]]) -> None:
        """Run a room's mailbox until it is empty; an action that fails is logged and the next
        one runs, as when each had a task of its own."""
        try:
            while mailbox and not self._closed:
                action, claim = mailbox.popleft()
                try:
                    await self._route(session_id, action, claim=claim)
                except Exception as exc:
                    if is_redis_outage(exc):
                        log.warning("a forwarded action was lost: Redis unreachable")
                    else:
                        log.exception("a forwarded action failed")
        finally:  # emptied, cancelled or closed: the next action starts a new mailbox
            if self._mailboxes.get(session_id) is mailbox:
                del self._mailboxes[session_id]


@dataclass(frozen=True)
class _Action:
    """What travels to a room's owner: a room action, or a LiveRooms call (session id, call
    name, arguments); `hops` counts the processes it went through on the way."""

    op: RoomOp | None = None
    live: tuple[str, str, dict[str, Any]] | None = None
    hops: int = 0


_CARRY_EVERY_S = 5.0  # CueConfig's carry_every_ms at scale 1, which CHECKPOINT_S exceeds
_HAND_OVER_S = 2.0  # per room, on a graceful stop
_PUBLISH_BATCH = 256  # messages per PUBLISH pipeline at most
_RENEWALS_PER_SCRIPT = 500  # leases renewed per script call (one pipeline for all of them)
_REF_TEXTS_KEPT = 20_000  # encoded connection descriptors kept (about two per session)
_PING_TIMEOUT_S = 1.0  # how long a page waits to learn whether live sessions can start
_RENEWAL_SAVES_AT_ONCE = 8  # of the pool's 64 connections, while actions need the rest
_RESUBSCRIBE_MIN_S = 0.1
_RESUBSCRIBE_MAX_S = 2.0
_REDIS_TIMEOUT_S = 5.0  # a command or connection attempt with no answer counts as an outage
_REDIS_MAX_CONNECTIONS = 64
_REDIS_POOL_WAIT_S = 5.0


def open_bus(
    settings: Settings,
    round_trip: Callable[[float], None] = lambda _seconds: None,
    loop_lag: Callable[[float], None] = lambda _seconds: None,
) -> Bus:
    """The Redis bus when `redis_url` is set, else the in-process one. `round_trip` hears
    the duration of every Redis command (the metrics' attune_redis_round_trip_seconds),
    `loop_lag` every wait of the lease keeper's probe on the event loop."""
    if not settings.redis_url:
        return LocalBus()
    from redis import Redis as BlockingRedis
    from redis.asyncio import BlockingConnectionPool, Redis
    from redis.asyncio.client import Pipeline
    from redis.exceptions import ConnectionError as RedisConnectionError

    class TimedPipeline(Pipeline):
        """A pipeline is one round trip: timed from send to the last reply."""

        async def execute(self, raise_on_error: bool = True) -> list[Any]:
            started = time.monotonic()
            try:
                return await super().execute(raise_on_error)
            finally:
                round_trip(time.monotonic() - started)

    class TimedRedis(Redis):
        """Every command and pipeline (not the pub/sub listener) timed from send to reply."""

        async def execute_command(self, *args: Any, **options: Any) -> Any:
            started = time.monotonic()
            try:
                # redis-py leaves execute_command untyped
                return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
            finally:
                round_trip(time.monotonic() - started)

        def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
            return TimedPipeline(
                self.connection_pool, self.response_callbacks, transaction, shard_hint
            )

    class ClosablePool(BlockingConnectionPool):
        """Once closed, it opens nothing more: redis-py's pool would otherwise connect again
        for a late caller, and a connection still being opened while it closed would stay
        open, unowned, until a garbage collection found it."""

        closed = False

        async def get_connection(self, *args: Any, **options: Any) -> Any:
            if self.closed:
                raise RedisConnectionError("the bus is closed")
            connection = await super().get_connection(*args, **options)  # type: ignore[no-untyped-call]
            if self.closed:  # closed while this one was connecting: it missed the disconnect
                await connection.disconnect()
                raise RedisConnectionError("the bus is closed")
            return connection

        async def aclose(self) -> None:
            self.closed = True
            await super().aclose()

    # A burst of room actions waits for a free connection instead of failing: the default pool
    # raises "Too many connections" past 100, which broke rooms at ~1,000 sessions under load.
    pool = ClosablePool.from_url(
        settings.redis_url,
        max_connections=_REDIS_MAX_CONNECTIONS,
        timeout=_REDIS_POOL_WAIT_S,
        decode_responses=True,
        socket_timeout=_REDIS_TIMEOUT_S,
        socket_connect_timeout=_REDIS_TIMEOUT_S,
    )
    redis = TimedRedis.from_pool(pool)  # owns the pool: closing the client closes it
    carry_s = CueConfig().scaled(settings.cue_time_scale).carry_every_ms / 1000
    keeper = LeaseKeeper(
        BlockingRedis.from_url(
            settings.redis_url,
            decode_responses=True,
            socket_timeout=_REDIS_TIMEOUT_S,
            socket_connect_timeout=_REDIS_TIMEOUT_S,
        ),
        _RENEW_MANY,
        lease_ms=settings.redis_lease_ms,
        state_ttl_ms=STATE_TTL_MS,
    )
    return RedisBus(
        redis,
        prefix=settings.redis_prefix,
        lease_ms=settings.redis_lease_ms,
        checkpoint_s=carry_s * CHECKPOINT_S / _CARRY_EVERY_S,
        keeper=keeper,
        loop_lag=loop_lag,
    )


def consent_event_json(event: ConsentChanged) -> dict[str, Any]:
    """A consent change as it travels on the control channel (no clinical content)."""
    return {
        "client_id": event.client_id,
        "purpose": event.purpose.value,
        "decision": event.decision.value,
        "at": event.at.isoformat(),
    }


def consent_event(payload: Mapping[str, Any]) -> ConsentChanged:
    """The consent change `consent_event_json` described."""
    return ConsentChanged(
        str(payload["client_id"]),
        Purpose(payload["purpose"]),
        ConsentDecision(payload["decision"]),
        datetime.fromisoformat(payload["at"]),
    )

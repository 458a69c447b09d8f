"""docker-compose.yml's production stack, run natively: nginx from deploy/nginx.conf.template
with TLS (a certificate made for the test) in front of two `attune serve` processes on one
fresh PostgreSQL database and a Redis database of their own, and coturn with the shared
secret — each configured with the `ATTUNE_*` environment the compose file passes. Through
the TLS front door: the probes, a client's session socket, TURN allocations with the app's
credentials (UDP, TCP, and TLS on the HTTPS port), and a relay-only video call between two
Chromium pages at https://attune.test.

Docker does not run on these machines; what changes natively is only where things listen:
compose's service names and container ports become loopback addresses and free ports (the
`NATIVE` table below), and DNS for the two names is stood in for by connecting to 127.0.0.1
while naming the host in TLS. Every other value is the compose file's, as rendered from a
`.env` made for the run.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import signal
import ssl
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
import redis
import yaml
from aioice import turn
from playwright.async_api import async_playwright

from privacy.consent import Channel, ConsentDecision, Purpose
from server.core.models import Role
from server.runtime import runtime
from server.services import scheduling
from server.services.accounts import create_account
from server.services.consents import Consents
from server.settings import load_settings
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, THERAPIST_EMAIL, BrowserHarness
from tests.browser.test_turn_relay import SELECTED_PAIR
from tests.browser.video_helpers import (
    MEDIA_ARGS,
    admit,
    client_reaches_waiting_room,
    therapist_opens_room,
    wait_for_video,
)
from tests.conftest import PASSWORD
from tests.coturn import Coturn, free_port, running_coturn
from tests.integration.test_production_topology import (
    ATTUNE_DOMAIN,
    DEBIAN_STREAM_MODULE,
    TEMPLATE,
    TURN_DOMAIN,
    _wait_port,
    render,
    require_nginx,
    self_signed,
    start_nginx,
)
from tests.multiproc.conftest import unavailable
from tests.multiproc.processes import (
    REPO,
    Cluster,
    HarnessError,
    cluster,
    fresh_postgres_database,
    fresh_redis_database,
    master_key,
)

pytestmark = [pytest.mark.multiproc, pytest.mark.browser]  # a relay-only call in Chromium too

COMPOSE = REPO / "docker-compose.yml"
APPS = ("app1", "app2")
TIMEOUT_S = 20.0


def compose_value(value: str, env: dict[str, str]) -> str:
    """Compose's ${NAME}, ${NAME:-default} and ${NAME:?message} against `.env`."""

    def one(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3)
        if name in env:
            return env[name]
        assert op == ":-", f"${{{name}}} is neither in .env nor defaulted"
        return arg

    return re.sub(r"\$\{([A-Z0-9_]+)(?:(:-|:\?)([^}]*))?\}", one, value)


def compose_app_environment(service: str, dotenv: dict[str, str]) -> dict[str, str]:
    """The ATTUNE_* environment docker compose would give `service`."""
    document: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    environment = document["services"][service]["environment"]
    return {name: compose_value(str(value), dotenv) for name, value in environment.items()}


@dataclass(frozen=True)
class Native:
    """Where the stack's parts listen on this machine instead of compose's names and ports."""

    data_dir: Path
    database_url: str
    redis_url: str
    turn_port: int  # coturn's 3478 (UDP and TCP)
    front_port: int  # nginx's 443 (HTTPS and TURN over TLS, told apart by name)

    def apply(self, env: dict[str, str], app_port: int) -> dict[str, str]:
        """Compose's values with its service addresses and ports mapped to loopback."""
        ports = {"3478": str(self.turn_port), "443": str(self.front_port)}

        def urls(value: str) -> str:
            return re.sub(r":(3478|443)\b", lambda m: ":" + ports[m.group(1)], value)

        native = {
            **env,
            "ATTUNE_HOST": "127.0.0.1",  # 0.0.0.0 inside a container; loopback here
            "ATTUNE_PORT": str(app_port),  # compose maps 127.0.0.1:808N to the container's 8080
            "ATTUNE_DATA_DIR": str(self.data_dir),  # the attune-data volume
            "ATTUNE_DATABASE_URL": self.database_url,  # db:5432, a database of the run's own
            "ATTUNE_REDIS_URL": self.redis_url,  # redis:6379, a database number of its own
            "ATTUNE_STUN_URLS": urls(env["ATTUNE_STUN_URLS"]),
            "ATTUNE_TURN_URLS": urls(env["ATTUNE_TURN_URLS"]),
        }
        assert set(native) == set(env), "the mapping adds no setting compose does not pass"
        return native


@dataclass
class Stack:
    cluster: Cluster
    coturn: Coturn
    compose_env: dict[str, str]
    native: Native
    tls: ssl.SSLContext
    cert: Path
    socket_visit: Visit
    call_visit: Visit

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.native.front_port}{path}"


@pytest.fixture
def services() -> Iterator[tuple[str, str]]:
    """A fresh PostgreSQL database and Redis database number (missing fails in CI)."""
    try:
        with fresh_postgres_database() as database_url, fresh_redis_database() as redis_url:
            yield database_url, redis_url
    except HarnessError as exc:
        unavailable("PostgreSQL and Redis", exc)


@dataclass(frozen=True)
class Visit:
    """A session starting now and its client's invite path."""

    session_id: str
    link: str


async def prepare(settings_env: dict[str, str]) -> tuple[Visit, Visit]:
    """A therapist and two clients with telehealth consent, each with a session starting now
    (one for the raw socket check, one for the browsers), written with the processes' own
    settings (the same master key)."""
    settings = load_settings(environ=settings_env)
    now = datetime.now(UTC)
    visits = []
    async with runtime(settings) as rt:
        therapist = await create_account(
            rt.db,
            rt.audit,
            email=THERAPIST_EMAIL,
            password=PASSWORD,
            role=Role.THERAPIST,
            actor="system:test",
            now=now,
        )
        consents = await Consents.load(rt.db)
        for alias in ("A.B.", "J.M."):
            client = await scheduling.create_client(rt.db, rt.audit, therapist, alias, now)
            session, invite = await scheduling.create_session(
                rt.db, rt.audit, therapist, client_id=client.id, starts_at=now, minutes=50, now=now
            )
            await consents.decide(
                rt.db,
                rt.audit,
                client_id=client.id,
                purpose=Purpose.TELEHEALTH,
                decision=ConsentDecision.GRANTED,
                notice_version=consents.catalog.current(Purpose.TELEHEALTH).version,
                channel=Channel.API,
                now=now,
            )
            visits.append(Visit(session.id, f"/join/{invite.token}"))
    return visits[0], visits[1]


@pytest.fixture
async def stack(tmp_path: Path, services: tuple[str, str]) -> AsyncIterator[Stack]:
    nginx = require_nginx()
    database_url, redis_url = services
    dotenv = {  # what an admin writes into .env (README "Deploying"), for this run
        "ATTUNE_DOMAIN": ATTUNE_DOMAIN,
        "TURN_DOMAIN": TURN_DOMAIN,
        "TURN_PUBLIC_IP": "127.0.0.1",
        "ATTUNE_MASTER_KEY": master_key(),
        "TURN_SECRET": secrets.token_hex(32),
        "POSTGRES_PASSWORD": secrets.token_hex(24),
    }
    compose_env = compose_app_environment("app1", dotenv)
    assert compose_app_environment("app2", dotenv) == compose_env
    cert, key = self_signed(tmp_path)
    turn_tls_port, front_port = free_port(), free_port()
    with running_coturn(tmp_path, dotenv["TURN_SECRET"], tls=(cert, key, turn_tls_port)) as coturn:
        native = Native(tmp_path / "data", database_url, redis_url, coturn.port, front_port)
        settings_env = native.apply(compose_env, 0)
        del settings_env["ATTUNE_PORT"]  # each process's own, set by the harness
        async with cluster(tmp_path, database_url, processes=0, settings=settings_env) as group:
            socket_visit, call_visit = await prepare(settings_env)  # after the migration
            await group.start(len(APPS))
            values = {
                "ATTUNE_DOMAIN": ATTUNE_DOMAIN,
                "TURN_DOMAIN": TURN_DOMAIN,
                "APP1_ADDR": f"127.0.0.1:{group.processes[0].port}",
                "APP2_ADDR": f"127.0.0.1:{group.processes[1].port}",
                "TURN_TLS_ADDR": f"127.0.0.1:{turn_tls_port}",
                "TURN_TLS_INNER_ADDR": f"127.0.0.1:{free_port()}",
                "HTTPS_PORT": f"127.0.0.1:{front_port}",
                "HTTP_PORT": f"127.0.0.1:{free_port()}",
                "INTERNAL_HTTPS_ADDR": f"127.0.0.1:{free_port()}",
                "TLS_CERT": str(cert),
                "TLS_KEY": str(key),
                "RUN_DIR": str(tmp_path),
            }
            conf = tmp_path / "nginx.conf"
            conf.write_text(
                f"load_module {DEBIAN_STREAM_MODULE};\n" + render(TEMPLATE.read_text(), values)
            )
            assert "${" not in conf.read_text()
            proxy = start_nginx(nginx, conf, tmp_path)
            try:
                await asyncio.to_thread(_wait_port, front_port)
                yield Stack(
                    cluster=group,
                    coturn=coturn,
                    compose_env=compose_env,
                    native=native,
                    tls=ssl.create_default_context(cafile=str(cert)),
                    cert=cert,
                    socket_visit=socket_visit,
                    call_visit=call_visit,
                )
            finally:
                proxy.send_signal(signal.SIGQUIT)
                try:
                    proxy.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proxy.kill()
                    proxy.wait(timeout=5)


class PublicSite:
    """The clinic as browsers see it: its public https:// address (helpers take a site)."""

    def url(self, path: str) -> str:
        return f"https://{ATTUNE_DOMAIN}{path}"


async def relay_only_call_through_the_stack(stack: Stack) -> None:
    """Therapist and client in two Chromium contexts at https://attune.test (the names
    resolved to the front door, as DNS would), admitted and decoding each other's video over
    coturn relays only."""
    if not CHROMIUM.exists():
        unavailable("Chromium", f"{CHROMIUM} is missing; `make system-deps` installs it")
    front = stack.native.front_port
    resolve = f"MAP {ATTUNE_DOMAIN} 127.0.0.1:{front},MAP {TURN_DOMAIN} 127.0.0.1"
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[*CHROMIUM_ARGS, *MEDIA_ARGS, f"--host-resolver-rules={resolve}"],
            headless=True,
        )
        try:
            harness = BrowserHarness(browser)
            site = PublicSite()
            therapist = await harness.new_page(ignore_https_errors=True)
            await therapist_opens_room(therapist, site, stack.call_visit.session_id)  # type: ignore[arg-type]
            client = await harness.new_page(ignore_https_errors=True)
            await client_reaches_waiting_room(
                client, site.url(stack.call_visit.link), consent=False
            )
            await admit(therapist, "J.M.")
            await wait_for_video(client)
            await wait_for_video(therapist)
            for page in (therapist, client):
                pair = await page.evaluate(SELECTED_PAIR, {"timeoutMs": 15_000})
                assert pair["local"] == "relay" and pair["remote"] == "relay", pair
            harness.assert_no_policy_violations()
        finally:
            await browser.close()


def process_environment(pid: int) -> dict[str, str]:
    """The ATTUNE_* variables a running process was started with (/proc/PID/environ)."""
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    pairs = (item.decode().partition("=") for item in raw if item)
    return {name: value for name, _, value in pairs if name.startswith("ATTUNE_")}


class NamedTLS(ssl.SSLContext):
    """TLS that names `server_name` whatever address it connects to — as a client does that
    resolved the name to that address (the test has no DNS for its names)."""

    server_name = TURN_DOMAIN

    def wrap_bio(self, *args: Any, **kwargs: Any) -> ssl.SSLObject:
        kwargs["server_hostname"] = self.server_name
        return super().wrap_bio(*args, **kwargs)


async def allocate(server: tuple[str, int], username: str, password: str, **how: Any) -> None:
    """One TURN allocation with these credentials (fails if coturn refuses them)."""
    async with asyncio.timeout(TIMEOUT_S):
        transport, _ = await turn.create_turn_endpoint(
            asyncio.DatagramProtocol, server, username, password, **how
        )
    try:
        assert transport.get_extra_info("sockname") is not None  # the relayed address
    finally:
        transport.close()


async def test_the_compose_stack_runs_natively_behind_its_tls_front_door(stack: Stack) -> None:
    jar = aiohttp.CookieJar(unsafe=True)  # the front door is reached at 127.0.0.1
    async with (
        aiohttp.ClientSession(cookie_jar=jar) as http,
        asyncio.timeout(60),
    ):
        # probes through nginx's TLS: alive, and ready (database and Redis answer)
        async with http.get(
            stack.url("/healthz"), ssl=stack.tls, server_hostname=ATTUNE_DOMAIN
        ) as response:
            assert response.status == 200
            assert "max-age" in response.headers.get("Strict-Transport-Security", "")
        async with http.get(
            stack.url("/readyz"), ssl=stack.tls, server_hostname=ATTUNE_DOMAIN
        ) as response:
            assert (response.status, await response.json()) == (200, {"status": "ready"})
        for process in stack.cluster.processes:  # and each process on its own
            async with http.get(f"{process.url}/readyz") as response:
                assert (response.status, await response.json()) == (200, {"status": "ready"})

        # the client opens the invite link and its session socket upgrades through nginx
        async with http.get(
            stack.url(stack.socket_visit.link),
            allow_redirects=False,
            ssl=stack.tls,
            server_hostname=ATTUNE_DOMAIN,
        ) as response:
            assert response.status in (302, 303), await response.text()
        async with http.ws_connect(
            stack.url(f"/ws/session/{stack.socket_visit.session_id}"),
            headers={"Origin": f"https://{ATTUNE_DOMAIN}"},
            ssl=stack.tls,
            server_hostname=ATTUNE_DOMAIN,
        ) as ws:
            await ws.send_json({"type": "hello", "version": 1})
            welcome = json.loads(await ws.receive_str())
            await ws.close()
    assert welcome["type"] == "welcome" and welcome["role"] == "client", welcome

    # what compose passes is what each process got, and what it acts on
    for process in stack.cluster.processes:
        got = process_environment(process.pid)
        assert got == stack.native.apply(stack.compose_env, process.port)
        assert got["ATTUNE_TURN_SECRET"] == stack.coturn.secret
        assert got["ATTUNE_RELAY_ONLY"] == "true"
    assert welcome["ice_transport_policy"] == "relay"  # ATTUNE_RELAY_ONLY
    assert welcome["ice_ttl_seconds"] == int(stack.compose_env["ATTUNE_TURN_TTL_SECONDS"])
    turn_server = next(s for s in welcome["ice_servers"] if s.get("username"))
    assert set(turn_server["urls"]) == set(
        stack.native.apply(stack.compose_env, 0)["ATTUNE_TURN_URLS"].split(",")
    )

    # the app's TURN credentials allocate on coturn: UDP on 3478, and TLS through port 443
    username, password = turn_server["username"], turn_server["credential"]
    for url in turn_server["urls"]:
        scheme, rest = url.split(":", 1)
        where = urlsplit(f"//{rest}")
        assert where.hostname == TURN_DOMAIN and where.port is not None
        server = ("127.0.0.1", where.port)  # DNS for turn.attune.test
        if scheme == "turns":
            named = NamedTLS(ssl.PROTOCOL_TLS_CLIENT)
            named.load_verify_locations(cafile=str(stack.cert))
            await allocate(server, username, password, transport="tcp", ssl=named)
        elif url.endswith("transport=udp"):
            await allocate(server, username, password, transport="udp")
        else:
            await allocate(server, username, password, transport="tcp")
    allocations = [
        line
        for line in stack.coturn.log().splitlines()
        if "ALLOCATE processed, success" in line and f"user <{username}>" in line
    ]
    assert len(allocations) == len(turn_server["urls"]), stack.coturn.log()[-3000:]

    # a relay-only video call between two Chromium pages through all of it
    await relay_only_call_through_the_stack(stack)

    # both processes listen on the run's Redis database (the bus: one subscriber each)
    number = int(stack.native.redis_url.rsplit("/", 1)[1])
    with redis.Redis(host="127.0.0.1", port=6379) as admin:
        clients = admin.client_list()
    subscribers = [c for c in clients if int(c["db"]) == number and "P" in c["flags"]]
    assert len(subscribers) == len(APPS), subscribers

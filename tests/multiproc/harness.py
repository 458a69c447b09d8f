"""A clinic of several processes for tests: N `attune serve` processes on one PostgreSQL
database (created for the run, dropped after) and one Redis (a key prefix of the run's own,
removed after), behind Debian's nginx as the load balancer.

nginx pins a browser to a backend by a marker in its User-Agent (`attune-pin-<n>`), with the
other backends as `backup`, so a pinned browser fails over when its backend dies; requests
without a marker are spread round robin with `max_fails=0` (a dead backend is retried next
time, never taken out). See /work/shared/TESTING.md, "nginx as a test load balancer".
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import unused_port
from redis.asyncio import Redis
from redis.exceptions import RedisError

REPO = Path(__file__).resolve().parents[2]
REDIS_URL = "redis://127.0.0.1:6379/0"
PG_ADMIN = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "database": "postgres"}
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
START_TIMEOUT_S = 30.0


def unavailable(what: str, why: object) -> None:
    """Missing in CI is a failure (`make services` and `make system-deps` provide it)."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is needed for tests/multiproc in CI: {why}")
    pytest.skip(f"{what} unavailable: {why}")


async def check_services() -> None:
    """nginx, PostgreSQL and Redis are there (else skip, or fail in CI)."""
    if not os.access(NGINX, os.X_OK):
        unavailable("nginx", f"{NGINX} is missing; `make system-deps` installs it")
    try:
        await (await asyncpg.connect(timeout=5, **PG_ADMIN)).close()  # type: ignore[arg-type]
    except (OSError, asyncpg.PostgresError) as exc:
        unavailable("PostgreSQL", exc)
    redis = Redis.from_url(REDIS_URL)
    try:
        await redis.ping()
    except (OSError, RedisError) as exc:
        unavailable("Redis", exc)
    finally:
        await redis.aclose()


def pin(n: int) -> str:
    """The User-Agent marker that sends a browser to backend `n` (while it is alive)."""
    return f"attune-pin-{n}"


def nginx_config(workdir: Path, listen_port: int, backend_ports: list[int]) -> str:
    """One server on `listen_port` proxying HTTP and WebSockets to the backends."""
    upstreams, pins = [], []
    for n, port in enumerate(backend_ports):
        others = [p for p in backend_ports if p != port]
        lines = [f"server 127.0.0.1:{port} max_fails=0;"]
        lines += [f"server 127.0.0.1:{p} backup;" for p in others]
        upstreams.append(f"upstream pin_{n} {{ {' '.join(lines)} }}")
        pins.append(f"~{pin(n)} pin_{n};")
    every = " ".join(f"server 127.0.0.1:{p} max_fails=0;" for p in backend_ports)
    upstreams.append(f"upstream every {{ {every} }}")
    return f"""
worker_processes 1;
daemon off;
pid {workdir}/nginx.pid;
error_log {workdir}/nginx-error.log warn;
events {{ worker_connections 512; }}
http {{
  access_log off;
  client_body_temp_path {workdir}/body;
  proxy_temp_path {workdir}/proxy;
  fastcgi_temp_path {workdir}/fastcgi;
  uwsgi_temp_path {workdir}/uwsgi;
  scgi_temp_path {workdir}/scgi;
  map $http_user_agent $pool {{ {" ".join(pins)} default every; }}
  map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
  {chr(10).join(upstreams)}
  server {{
    listen 127.0.0.1:{listen_port};
    location / {{
      proxy_pass http://$pool;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_connect_timeout 2s;
      proxy_read_timeout 1h;
      proxy_next_upstream error timeout;
    }}
  }}
}}
"""


@dataclass
class Cluster:
    """The running clinic: its URL, its settings' environment and its processes."""

    workdir: Path
    size: int = 2
    database: str = field(default_factory=lambda: f"attune_mp_{secrets.token_hex(5)}")
    redis_prefix: str = field(default_factory=lambda: f"attune-mp-{secrets.token_hex(4)}:")
    backend_ports: list[int] = field(default_factory=list)
    port: int = 0
    processes: list[asyncio.subprocess.Process | None] = field(default_factory=list)
    nginx: asyncio.subprocess.Process | None = None
    _log_files: list[BinaryIO] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.port = unused_port()
        self.backend_ports = [unused_port() for _ in range(self.size)]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def database_url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:5432/{self.database}"

    def env(self, backend: int | None = None) -> dict[str, str]:
        """The settings every process shares (plus a backend's own port)."""
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "ATTUNE_DATA_DIR": str(self.workdir / "data"),
            "ATTUNE_DATABASE_URL": self.database_url,
            "ATTUNE_REDIS_URL": REDIS_URL,
            "ATTUNE_REDIS_PREFIX": self.redis_prefix,
            "ATTUNE_PUBLIC_BASE_URL": self.base_url,
            "ATTUNE_TRUSTED_PROXIES": "127.0.0.1",
            "ATTUNE_LOG_LEVEL": "WARNING",
        }
        if backend is not None:
            env["ATTUNE_HOST"] = "127.0.0.1"
            env["ATTUNE_PORT"] = str(self.backend_ports[backend])
        return env

    async def create_database(self) -> None:
        admin = await asyncpg.connect(timeout=5, **PG_ADMIN)  # type: ignore[arg-type]
        try:
            await admin.execute(f'CREATE DATABASE "{self.database}"')
        finally:
            await admin.close()

    async def start(self) -> None:
        """Every backend, then nginx; returns when each answers through its own port."""
        for n in range(self.size):
            log = (self.workdir / f"backend-{n}.log").open("wb")
            self._log_files.append(log)
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                "import sys; from server.cli import main; sys.exit(main(sys.argv[1:]))",
                "serve",
                env=self.env(n),
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                cwd=self.workdir,
            )
            self.processes.append(process)
        config = self.workdir / "nginx.conf"
        config.write_text(nginx_config(self.workdir, self.port, self.backend_ports))
        self.nginx = await asyncio.create_subprocess_exec(
            NGINX,
            "-c",
            str(config),
            "-p",
            str(self.workdir),
            "-e",
            str(self.workdir / "nginx-error.log"),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        urls = [f"http://127.0.0.1:{p}/healthz" for p in self.backend_ports]
        await _until_ok([*urls, f"{self.base_url}/healthz"])

    def kill(self, backend: int) -> None:
        """SIGKILL a backend: no shutdown, no goodbye."""
        process = self.processes[backend]
        assert process is not None and process.returncode is None
        process.send_signal(signal.SIGKILL)

    async def stop(self) -> None:
        """Stop everything this cluster started (by pid) and remove its database and keys."""
        for process in [*self.processes, self.nginx]:
            if process is not None and process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGTERM)
        for process in [*self.processes, self.nginx]:
            if process is None:
                continue
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        for log in self._log_files:
            log.close()
        admin = await asyncpg.connect(timeout=5, **PG_ADMIN)  # type: ignore[arg-type]
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        finally:
            await admin.close()
        redis = Redis.from_url(REDIS_URL, decode_responses=True)
        try:
            keys = [key async for key in redis.scan_iter(match=f"{self.redis_prefix}*")]
            if keys:
                await redis.delete(*keys)
        finally:
            await redis.aclose()

    def logs(self) -> str:
        """The backends' and nginx's logs, for a failing test's report."""
        parts = []
        for path in sorted(self.workdir.glob("*.log")):
            parts.append(f"--- {path.name}\n{path.read_text(errors='replace')[-4000:]}")
        return "\n".join(parts)


async def _until_ok(urls: list[str]) -> None:
    async with aiohttp.ClientSession() as http, asyncio.timeout(START_TIMEOUT_S):
        for url in urls:
            while True:
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(url) as response:
                        if response.status == 200:
                            break
                await asyncio.sleep(0.1)  # polling a starting process, bounded by the timeout

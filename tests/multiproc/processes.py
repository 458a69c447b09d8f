"""Several `attune serve` processes on one PostgreSQL database (and Redis), behind nginx.

Used by tests/multiproc and by the benchmarks. Everything listens on 127.0.0.1 only; every
wait has a deadline. A run gets its own PostgreSQL database (created, migrated once, dropped
with --force) and its own Redis database number (claimed with a marker key, flushed after).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parents[2]
PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
# A browser whose User-Agent carries this marker followed by a digit is pinned to that backend.
PIN_MARKER = "attune-backend-"
READY_TIMEOUT_S = 90.0  # generous: shared CI machines can be very loaded
STOP_TIMEOUT_S = 20.0


class HarnessError(RuntimeError):
    """A service the harness needs is missing or did not come up in time."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def attune_command() -> list[str]:
    """`attune` run by this interpreter, from this tree (PYTHONPATH points here)."""
    return [sys.executable, "-c", "import sys; from server.cli import main; sys.exit(main())"]


def child_env(extra: Mapping[str, str]) -> dict[str, str]:
    """The environment of a child process: ours, with this tree first and the ATTUNE_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATTUNE_")}
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p
    )
    env.update(extra)
    return env


def find_nginx() -> str:
    """Debian's nginx lives in /usr/sbin, which is not always on PATH."""
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        raise HarnessError("nginx is not installed (make system-deps installs it)")
    return found


# --- PostgreSQL and Redis, one of each per run -------------------------------------------


@contextlib.contextmanager
def fresh_postgres_database(prefix: str = "attune_mp") -> Iterator[str]:
    """Create a database of its own for this run; yield its SQLAlchemy URL; drop it after."""
    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"
    base = ["-h", PG_HOST, "-p", str(PG_PORT), "-U", PG_USER]
    try:
        subprocess.run(["createdb", *base, name], check=True, capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        raise HarnessError(f"cannot create a PostgreSQL database: {exc}") from None
    try:
        yield f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        subprocess.run(
            ["dropdb", *base, "--force", "--if-exists", name], capture_output=True, timeout=30
        )


@contextlib.contextmanager
def fresh_redis_database() -> Iterator[str]:
    """Claim an empty Redis database number (1-15) for this run; yield its URL; flush after.
    Every client is closed on every path (a claim refused, Redis away, the run failing)."""
    import redis

    claim = "attune:test-harness:claimed"
    claimed: redis.Redis | None = None
    number = 0
    for number in secrets.SystemRandom().sample(range(1, 16), 15):
        conn = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=number, socket_timeout=5)
        try:
            if conn.dbsize() == 0 and conn.set(claim, str(os.getpid()), nx=True, ex=3600):
                claimed = conn
                break
        except redis.RedisError as exc:
            raise HarnessError(f"Redis is not reachable: {exc}") from None
        finally:
            if claimed is not conn:
                conn.close()
    if claimed is None:
        raise HarnessError("no free Redis database number (1-15) for this run")
    try:
        yield f"redis://{REDIS_HOST}:{REDIS_PORT}/{number}"
    finally:
        try:
            claimed.flushdb()
        finally:
            claimed.close()


def master_key() -> str:
    """A fresh master key in the form ATTUNE_MASTER_KEY takes."""
    return base64.b64encode(secrets.token_bytes(32)).decode()


# --- one `attune serve` ------------------------------------------------------------------


@dataclass
class ServerProcess:
    """One `attune serve` child on its own port, with its output in a log file."""

    index: int
    port: int
    env: dict[str, str]
    log_path: Path
    popen: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def start(self) -> None:
        """Start the process (again, after a kill); returns at once — wait_ready() waits."""
        assert self.popen is None or self.popen.poll() is not None, "still running"
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"--- start {self.starts} ---\n".encode())
            self.popen = subprocess.Popen(
                [*attune_command(), "serve", "--port", str(self.port)],
                env=self.env,
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    async def wait_ready(self, within: float = READY_TIMEOUT_S) -> None:
        """Poll /readyz until it answers 200; fail with the log's tail if it never does."""
        deadline = time.monotonic() + within
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
            while time.monotonic() < deadline:
                if self.popen is not None and self.popen.poll() is not None:
                    raise HarnessError(f"process {self.index} exited:\n{self.log_tail()}")
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with http.get(self.url + "/readyz") as response:
                        if response.status == 200:
                            return
                await asyncio.sleep(0.05)
        raise HarnessError(f"process {self.index} not ready in {within} s:\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL, as a crash would: nothing is flushed, no shutdown hook runs."""
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait(timeout=STOP_TIMEOUT_S)

    def terminate(self) -> None:
        """Send SIGTERM (a graceful restart); wait_exit() collects the exit status."""
        assert self.popen is not None
        self.popen.send_signal(signal.SIGTERM)

    async def wait_exit(self, within: float = STOP_TIMEOUT_S) -> int:
        """The exit status, waiting at most `within` seconds."""
        assert self.popen is not None
        deadline = time.monotonic() + within
        while (code := self.popen.poll()) is None:
            if time.monotonic() > deadline:
                raise HarnessError(f"process {self.index} still running after {within} s")
            await asyncio.sleep(0.02)
        return code

    async def restart(self) -> None:
        """Kill -9 and start again, ready."""
        self.kill()
        self.start()
        await self.wait_ready()

    def stop(self) -> None:
        """Tear down: SIGTERM, then SIGKILL if it lingers."""
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.kill()

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


# --- nginx in front ----------------------------------------------------------------------


def nginx_config(listen_port: int, backend_ports: Sequence[int], prefix: Path) -> str:
    """Round robin over the backends (max_fails=0: a dead one is skipped per request), a
    User-Agent marker `attune-backend-N` pinning to backend N, and WebSocket upgrades."""
    servers = "\n".join(f"    server 127.0.0.1:{p} max_fails=0;" for p in backend_ports)
    pinned = "\n".join(
        f"  upstream attune_{i} {{ server 127.0.0.1:{p}; }}" for i, p in enumerate(backend_ports)
    )
    pins = "\n".join(f'    "~{PIN_MARKER}{i}\\b" attune_{i};' for i in range(len(backend_ports)))
    return f"""
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {prefix}/tmp/body;
  proxy_temp_path {prefix}/tmp/proxy;
  fastcgi_temp_path {prefix}/tmp/fastcgi;
  uwsgi_temp_path {prefix}/tmp/uwsgi;
  scgi_temp_path {prefix}/tmp/scgi;
  upstream attune_all {{
{servers}
  }}
{pinned}
  map $http_user_agent $attune_backend {{
    default attune_all;
{pins}
  }}
  map $http_upgrade $connection_upgrade {{
    default upgrade;
    ''      '';
  }}
  server {{
    listen 127.0.0.1:{listen_port};
    location / {{
      proxy_pass http://$attune_backend;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_next_upstream error timeout http_502 http_503;
      proxy_connect_timeout 2s;
      proxy_read_timeout 120s;
    }}
  }}
}}
"""


@dataclass
class Nginx:
    """Debian's nginx with our own config, in the foreground, killed by its PID."""

    port: int
    backend_ports: Sequence[int]
    prefix: Path
    popen: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def launch(self) -> None:
        """Write the config and start nginx; start() also waits until it listens."""
        for sub in ("tmp/body", "tmp/proxy", "tmp/fastcgi", "tmp/uwsgi", "tmp/scgi"):
            (self.prefix / sub).mkdir(parents=True, exist_ok=True)
        conf = self.prefix / "nginx.conf"
        conf.write_text(nginx_config(self.port, self.backend_ports, self.prefix))
        log = (self.prefix / "stderr.log").open("ab")
        self.popen = subprocess.Popen(
            [
                find_nginx(),
                "-e",
                "stderr",
                "-c",
                str(conf),
                "-p",
                str(self.prefix),
                "-g",
                "daemon off;",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

    async def start(self, within: float = 10.0) -> None:
        """Launch and wait until the port accepts connections."""
        self.launch()
        assert self.popen is not None
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise HarnessError(f"nginx exited: {(self.prefix / 'stderr.log').read_text()}")
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.close()
                return
            await asyncio.sleep(0.05)
        raise HarnessError("nginx did not listen in time")

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGQUIT)  # graceful: finish open requests
            try:
                self.popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=5)


# --- the whole clinic ----------------------------------------------------------------------


@dataclass
class Cluster:
    """N processes sharing one database (and Redis), optionally behind nginx."""

    workdir: Path
    database_url: str
    redis_url: str = ""
    settings: dict[str, str] = field(default_factory=dict)
    processes: list[ServerProcess] = field(default_factory=list)
    nginx: Nginx | None = None
    front_port: int = field(default_factory=free_port)

    @property
    def url(self) -> str:
        """Where users go: nginx when it runs, else the first process."""
        return self.nginx.url if self.nginx is not None else self.processes[0].url

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    def env(self, **extra: str) -> dict[str, str]:
        """The ATTUNE_* settings every process and CLI command of this cluster shares."""
        values = {
            "ATTUNE_DATABASE_URL": self.database_url,
            "ATTUNE_DATA_DIR": str(self.data_dir),
            "ATTUNE_PUBLIC_BASE_URL": f"http://127.0.0.1:{self.front_port}",
            "ATTUNE_LOG_LEVEL": "WARNING",
            **({"ATTUNE_REDIS_URL": self.redis_url} if self.redis_url else {}),
            **self.settings,
            **extra,
        }
        return child_env(values)

    def cli(self, *args: str, stdin: str = "", timeout: float = 60) -> str:
        """Run `attune ARGS` against this cluster's settings; its stdout (fails loudly)."""
        done = subprocess.run(
            [*attune_command(), *args],
            env=self.env(),
            cwd=REPO,
            input=stdin.encode(),
            capture_output=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise HarnessError(
                f"attune {' '.join(args)} exited {done.returncode}: {done.stderr.decode()}"
            )
        return done.stdout.decode()

    def migrate(self) -> None:
        """Bring the schema to head once, before any process starts (and create the key files)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.cli("db", "upgrade")

    async def start(self, count: int, *, nginx: bool = False, **extra_env: str) -> None:
        """Start `count` processes (concurrently) and wait until each is ready; then nginx."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        first = len(self.processes)
        for index in range(first, first + count):
            port = free_port()
            env = self.env(ATTUNE_PORT=str(port), **extra_env)
            process = ServerProcess(index, port, env, self.workdir / f"serve-{index}.log")
            self.processes.append(process)
            process.start()
        await asyncio.gather(*(p.wait_ready() for p in self.processes[first:]))
        if nginx:
            self.nginx = Nginx(
                self.front_port, [p.port for p in self.processes], self.workdir / "nginx"
            )
            await self.nginx.start()

    def stop(self) -> None:
        if self.nginx is not None:
            self.nginx.stop()
        for process in self.processes:
            process.stop()

    def add_therapist_session(self, email: str, alias: str, password: str) -> tuple[str, str]:
        """A therapist, a client and a session starting now; (session id, client join path)."""
        self.cli("user", "add", email, "--role", "therapist", stdin=password + "\n")
        self.cli("client", "add", "--therapist", email, alias)
        out = self.cli("session", "create", "--therapist", email, "--client", alias)
        session_id = out.split()[1]
        join_path = "/join/" + out.split("/join/")[1].split()[0]
        return session_id, join_path


@contextlib.asynccontextmanager
async def cluster(
    workdir: Path,
    database_url: str,
    *,
    redis_url: str = "",
    processes: int = 1,
    nginx: bool = False,
    settings: Mapping[str, str] | None = None,
) -> AsyncIterator[Cluster]:
    """A migrated cluster of `processes` servers (and nginx), stopped on exit."""
    group = Cluster(
        workdir=workdir,
        database_url=database_url,
        redis_url=redis_url,
        settings={"ATTUNE_MASTER_KEY": master_key(), **(settings or {})},
    )
    group.migrate()
    try:
        if processes:
            await group.start(processes, nginx=nginx)
        yield group
    finally:
        group.stop()


# --- a database outage without stopping the machine's PostgreSQL -----------------------------


def _psql(sql: str) -> None:
    subprocess.run(
        ["psql", "-h", PG_HOST, "-p", str(PG_PORT), "-U", PG_USER, "-d", "postgres", "-qc", sql],
        check=True,
        capture_output=True,
        timeout=30,
    )


def database_name(url: str) -> str:
    """The database name at the end of a PostgreSQL URL."""
    return url.rsplit("/", 1)[1]


def cut_off_database(url: str) -> None:
    """Refuse new connections to this run's database and end the open ones (an outage)."""
    name = database_name(url)
    _psql(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
    _psql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")


def restore_database(url: str) -> None:
    """Accept connections to this run's database again."""
    _psql(f'ALTER DATABASE "{database_name(url)}" WITH ALLOW_CONNECTIONS true')

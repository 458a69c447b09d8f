"""A real coturn (Debian's `turnserver`) on loopback for tests: TURN REST credentials
(`use-auth-secret`), relays kept on loopback, and its log read back by the test.

The flags are the ones measured in TESTING.md: `-n` (no /etc/turnserver.conf), loopback peers
allowed and every other peer range denied, so a test relay can reach nothing but this machine.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

TURNSERVER = "turnserver"
REALM = "attune.test"
START_TIMEOUT_S = 10.0
# Every peer range but loopback: the relay may reach only this machine.
_USER = re.compile(r"user <([^>]+)>")
DENIED_PEER_RANGES = (
    "0.0.0.0-126.255.255.255",
    "128.0.0.0-255.255.255.255",
)


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (TURN listens on both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = int(tcp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port for TURN")


def require_turnserver() -> str:
    """The coturn binary; missing is a failure on CI (`make system-deps` installs it)."""
    path = shutil.which(TURNSERVER)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("coturn's `turnserver` is missing; `make system-deps` installs it")
        pytest.skip("coturn's `turnserver` is not installed (`make system-deps`)")
    return path


@dataclass
class Coturn:
    """A running coturn: where it listens, its shared secret and its log."""

    port: int
    secret: str
    log_file: Path

    @property
    def turn_urls(self) -> tuple[str, ...]:
        """The TURN URLs to hand browsers (UDP and TCP, as a deployment would)."""
        return (
            f"turn:127.0.0.1:{self.port}?transport=udp",
            f"turn:127.0.0.1:{self.port}?transport=tcp",
        )

    def log(self) -> str:
        """Everything coturn logged so far."""
        return self.log_file.read_text(errors="replace")

    def allocating_usernames(self) -> set[str]:
        """The usernames whose Allocate requests coturn accepted."""
        return {
            match.group(1)
            for line in self.log().splitlines()
            if "ALLOCATE processed, success" in line and (match := _USER.search(line)) is not None
        }

    def unauthorized_for(self, usernames: set[str]) -> list[str]:
        """401 answers that name one of `usernames` (every first Allocate gets a 401 without
        a username, which says nothing about the credentials)."""
        return [
            line
            for line in self.log().splitlines()
            if "error 401" in line and any(f"user <{name}>" in line for name in usernames)
        ]

    def usernames(self) -> set[str]:
        """Every TURN username coturn was shown."""
        return set(_USER.findall(self.log()))


@contextmanager
def running_coturn(
    tmp_path: Path, secret: str, *, tls: tuple[Path, Path, int] | None = None
) -> Iterator[Coturn]:
    """Start coturn on a free loopback port; stop it (by its own PID) afterwards. With `tls`
    (certificate, key, port) it also serves TURN over TLS on that port."""
    binary = require_turnserver()
    port = free_port()
    if tls is None:
        tls_args = ["--no-tls"]
    else:
        cert, key, tls_port = tls
        tls_args = [f"--tls-listening-port={tls_port}", f"--cert={cert}", f"--pkey={key}"]
    log_file = tmp_path / f"coturn-{port}.log"
    args = [
        binary,
        "-n",
        "--listening-ip=127.0.0.1",
        "--relay-ip=127.0.0.1",
        f"--listening-port={port}",
        "--use-auth-secret",
        f"--static-auth-secret={secret}",
        f"--realm={REALM}",
        "--allow-loopback-peers",
        *(f"--denied-peer-ip={ranges}" for ranges in DENIED_PEER_RANGES),
        *tls_args,
        "--no-dtls",
        "--no-cli",
        "--no-rfc5780",
        "--no-stun-backward-compatibility",
        "--log-file=stdout",
        "--simple-log",
        "--verbose",
    ]
    with log_file.open("wb") as sink:
        process = subprocess.Popen(args, stdout=sink, stderr=subprocess.STDOUT)
    try:
        _wait_listening(process, port, log_file)
        yield Coturn(port=port, secret=secret, log_file=log_file)
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def _wait_listening(process: subprocess.Popen[bytes], port: int, log_file: Path) -> None:
    """Until coturn accepts TCP on its port (its UDP listener opens with it)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"turnserver exited: {log_file.read_text(errors='replace')[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)  # polling a port a child process is opening, with a deadline
    raise RuntimeError(f"turnserver did not listen on {port} within {START_TIMEOUT_S} s")


async def eventually_logged(coturn: Coturn, needle: str, seconds: float = 5.0) -> bool:
    """Whether `needle` appears in coturn's log within `seconds` (coturn logs asynchronously)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if needle in coturn.log():
            return True
        await asyncio.sleep(0.05)
    return needle in coturn.log()

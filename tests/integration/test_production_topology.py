"""The production front door, run natively: the repository's own nginx template (as the compose
file's proxy uses it) in front of two Attune apps and a coturn with TURN over TLS, all on
loopback. Port "443" carries both HTTPS and TURN over TLS, told apart by the server name."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType, web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from server.app import create_app
from server.core.protocol import CloseCode
from server.settings import Settings
from tests.coturn import Coturn, free_port, running_coturn

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "deploy" / "nginx.conf.template"
ATTUNE_DOMAIN, TURN_DOMAIN = "attune.test", "turn.attune.test"
# Debian builds the stream module (ssl_preread) as a dynamic module; nginx.org's image has it in.
DEBIAN_STREAM_MODULE = Path("/usr/lib/nginx/modules/ngx_stream_module.so")
STUN_BINDING_REQUEST, STUN_BINDING_SUCCESS, STUN_MAGIC = 0x0001, 0x0101, 0x2112A442


def require_nginx() -> str:
    """Debian's nginx with its stream module; missing fails on CI (`make system-deps`)."""
    path = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if path is None or not DEBIAN_STREAM_MODULE.exists():
        if os.environ.get("CI") == "true":
            pytest.fail("nginx with its stream module is missing; `make system-deps` installs it")
        pytest.skip("nginx or libnginx-mod-stream is not installed (`make system-deps`)")
    return path


def render(template: str, values: dict[str, str]) -> str:
    """envsubst as the nginx image runs it: only the named ${VARIABLES}; nginx's own stay."""
    return re.sub(r"\$\{([A-Z0-9_]+)\}", lambda m: values.get(m.group(1), m.group(0)), template)


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for both names, like the clinic's real one."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ATTUNE_DOMAIN)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(ATTUNE_DOMAIN), x509.DNSName(TURN_DOMAIN)]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "fullchain.pem", directory / "privkey.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def _wait_port(port: int, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)  # polling a port a child process is opening, with a deadline
    raise RuntimeError(f"nothing listens on {port}")


def start_nginx(nginx: str, conf: Path, prefix: Path) -> subprocess.Popen[bytes]:
    """nginx in the foreground with `conf`; the caller stops it by its PID."""
    return subprocess.Popen(
        [
            nginx,
            "-c",
            str(conf),
            "-p",
            str(prefix),
            "-e",
            str(prefix / "error.log"),
            "-g",
            "daemon off;",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )


class Front:
    """The running front door: its HTTPS/TURN-TLS port and the TLS context that trusts it."""

    def __init__(self, port: int, cert: Path, hits: dict[str, int]) -> None:
        self.port = port
        self.tls = ssl.create_default_context(cafile=str(cert))
        self.hits = hits

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.port}{path}"


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    return self_signed(tmp_path)


@pytest.fixture
def coturn_tls(tmp_path: Path, certificate: tuple[Path, Path]) -> Iterator[tuple[Coturn, int]]:
    tls_port = free_port()
    cert, key = certificate
    with running_coturn(tmp_path, "front-door-secret", tls=(cert, key, tls_port)) as server:
        yield server, tls_port


@pytest.fixture
async def front(
    aiohttp_server: Any,
    tmp_path: Path,
    certificate: tuple[Path, Path],
    coturn_tls: tuple[Coturn, int],
) -> AsyncIterator[Front]:
    """nginx from deploy/nginx.conf.template before two apps (one data directory, as the
    compose file's two processes share one database) and coturn."""
    nginx = require_nginx()
    hits = {"app1": 0, "app2": 0}
    https_port, http_port = free_port(), free_port()
    app_ports = []
    for name in hits:
        port = free_port()
        settings = Settings(
            data_dir=tmp_path / "data",
            host="127.0.0.1",
            port=port,
            public_base_url=f"https://{ATTUNE_DOMAIN}",
            trusted_proxies=("127.0.0.1",),
        )
        app = create_app(settings)

        async def count(
            _request: web.Request, _response: web.StreamResponse, n: str = name
        ) -> None:
            hits[n] += 1

        app.on_response_prepare.append(count)
        await aiohttp_server(app, host="127.0.0.1", port=port)
        app_ports.append(port)
    _coturn, turn_tls_port = coturn_tls
    cert, key = certificate
    values = {
        "ATTUNE_DOMAIN": ATTUNE_DOMAIN,
        "TURN_DOMAIN": TURN_DOMAIN,
        "APP1_ADDR": f"127.0.0.1:{app_ports[0]}",
        "APP2_ADDR": f"127.0.0.1:{app_ports[1]}",
        "TURN_TLS_ADDR": f"127.0.0.1:{turn_tls_port}",
        "TURN_TLS_INNER_ADDR": f"127.0.0.1:{free_port()}",
        "HTTPS_PORT": f"127.0.0.1:{https_port}",
        "HTTP_PORT": f"127.0.0.1:{http_port}",
        "INTERNAL_HTTPS_ADDR": f"127.0.0.1:{free_port()}",
        "TLS_CERT": str(cert),
        "TLS_KEY": str(key),
        "RUN_DIR": str(tmp_path),
    }
    conf = tmp_path / "nginx.conf"
    conf.write_text(f"load_module {DEBIAN_STREAM_MODULE};\n" + render(TEMPLATE.read_text(), values))
    assert "${" not in conf.read_text(), "every ${VARIABLE} of the template has a value"
    process = start_nginx(nginx, conf, tmp_path)
    try:
        _wait_port(https_port)
        yield Front(https_port, cert, hits)
    finally:
        process.send_signal(signal.SIGQUIT)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


async def test_https_through_the_proxy_reaches_both_apps(front: Front) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(20):
            async with http.get(
                front.url("/healthz"), ssl=front.tls, server_hostname=ATTUNE_DOMAIN
            ) as response:
                assert response.status == 200
                assert "max-age" in response.headers.get("Strict-Transport-Security", "")
    assert front.hits["app1"] > 0 and front.hits["app2"] > 0, front.hits


async def test_the_session_socket_upgrades_through_the_proxy_and_its_close_code_arrives(
    front: Front,
) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(
            front.url(f"/ws/session/{'0' * 32}"), ssl=front.tls, server_hostname=ATTUNE_DOMAIN
        ) as ws,
    ):
        async with asyncio.timeout(5):
            message = await ws.receive()
    assert message.type == WSMsgType.CLOSE
    assert message.data == CloseCode.UNAUTHORIZED  # no sign-in: told, not an HTTP error


def stun_over_tls(port: int, context: ssl.SSLContext, server_name: str) -> int:
    """Send a STUN Binding request over TLS with `server_name`; the answer's message type."""
    transaction = os.urandom(12)
    request = struct.pack("!HHI", STUN_BINDING_REQUEST, 0, STUN_MAGIC) + transaction
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=server_name) as tls,
    ):
        tls.sendall(request)
        header = tls.recv(20)
    kind, _length, magic = struct.unpack("!HHI", header[:8])
    assert magic == STUN_MAGIC and header[8:20] == transaction
    return int(kind)


async def test_turn_over_tls_shares_port_443_by_server_name(front: Front) -> None:
    kind = await asyncio.to_thread(stun_over_tls, front.port, front.tls, TURN_DOMAIN)
    assert kind == STUN_BINDING_SUCCESS  # coturn answered through the proxy

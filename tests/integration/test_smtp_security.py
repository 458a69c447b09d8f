"""The SMTP settings against a real server on loopback (aiosmtpd with a certificate made for
the test): STARTTLS with a sign-in whose password comes from a file, TLS from the first
byte, and the plain reasons the therapist sees when the server offers no STARTTLS or signs
Attune in with the wrong password."""

from __future__ import annotations

import ipaddress
import ssl
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from server.app import create_app
from server.db.tables import email_outbox
from server.keys import DB
from server.smtp import NO_SIGN_IN, NO_STARTTLS, SIGN_IN_FAILED, UNTRUSTED
from tests.conftest import FakeClock
from tests.integration.test_email import (
    CLIENT_EMAIL,
    Mailbox,
    _book,
    _email_settings,
    _free_port,
    _practice,
    _round,
)

USER, PASSWORD = "attune-mailer", "correct horse battery staple"


@dataclass
class Certificate:
    """A self-signed certificate for 127.0.0.1 (the test trusts it through SSL_CERT_FILE)."""

    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        return context


@pytest.fixture
def certificate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "attune-test-smtp")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    found = Certificate(tmp_path / "smtp-cert.pem", tmp_path / "smtp-key.pem")
    found.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    found.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    monkeypatch.setenv("SSL_CERT_FILE", str(found.cert))  # what an operator's trust store does
    return found


@dataclass
class SigningMailbox(Mailbox):
    """Accepts mail only after a sign-in with USER and PASSWORD, and notes how it went."""

    sign_ins: list[tuple[str, bool]] = field(default_factory=list)

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        login, password = data.login.decode(), data.password.decode()
        ok = (login, password) == (USER, PASSWORD)
        in_tls = (
            session.ssl is not None or server.transport.get_extra_info("ssl_object") is not None
        )
        self.sign_ins.append((login, in_tls and ok))
        return AuthResult(success=ok, handled=False)  # aiosmtpd answers 535 itself


def _server(box: SigningMailbox, port: int, **options: Any) -> Controller:
    return Controller(
        box,
        hostname="127.0.0.1",
        port=port,
        ready_timeout=5,
        authenticator=box.authenticate,
        auth_required=True,
        **options,
    )


@pytest.fixture
def password_file(tmp_path: Path) -> Path:
    path = tmp_path / "smtp-password"
    path.write_text(PASSWORD + "\n")
    return path


async def _one_invitation(aiohttp_client: Any, settings: Any, clock: FakeClock) -> TestClient:
    client: TestClient = await aiohttp_client(create_app(settings, clock=clock))
    practice = await _practice(client)
    await _book(client, practice, "2026-11-25T10:00:00Z")
    await _round(client, clock)
    return client


async def _invitation_status(client: TestClient) -> tuple[str, str | None]:
    async with client.app[DB].read() as conn:
        row = (
            await conn.execute(
                sa.select(email_outbox.c.status, email_outbox.c.last_error).where(
                    email_outbox.c.kind == "invitation"
                )
            )
        ).one()
    return str(row[0]), row[1]


async def test_starttls_with_a_sign_in_whose_password_is_read_from_a_file(
    aiohttp_client: Any,
    data_dir: Path,
    clock: FakeClock,
    certificate: Certificate,
    password_file: Path,
) -> None:
    box, port = SigningMailbox(), _free_port()
    controller = _server(box, port, tls_context=certificate.server_context(), require_starttls=True)
    controller.start()
    try:
        settings = replace(
            _email_settings(data_dir, port),
            smtp_security="starttls",
            smtp_username=USER,
            smtp_password_file=password_file,
        )
        client = await _one_invitation(aiohttp_client, settings, clock)
    finally:
        controller.stop()
    assert box.sign_ins == [(USER, True)]  # signed in, inside TLS
    [(recipients, _)] = box.messages
    assert recipients == [CLIENT_EMAIL]
    assert await _invitation_status(client) == ("sent", None)


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
async def test_tls_from_the_first_byte(
    aiohttp_client: Any,
    data_dir: Path,
    clock: FakeClock,
    certificate: Certificate,
    password_file: Path,
) -> None:
    box, port = SigningMailbox(), _free_port()
    # TLS from the first byte: aiosmtpd does not count it as TLS for AUTH, so it may not ask
    controller = _server(
        box, port, ssl_context=certificate.server_context(), auth_require_tls=False
    )
    controller.start()
    try:
        settings = replace(
            _email_settings(data_dir, port),
            smtp_security="tls",
            smtp_username=USER,
            smtp_password_file=password_file,
        )
        client = await _one_invitation(aiohttp_client, settings, clock)
    finally:
        controller.stop()
    assert box.sign_ins == [(USER, True)]
    assert len(box.messages) == 1
    assert await _invitation_status(client) == ("sent", None)


async def test_starttls_is_required_and_a_server_without_it_is_named_as_the_reason(
    aiohttp_client: Any, data_dir: Path, clock: FakeClock
) -> None:
    box, port = Mailbox(), _free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port, ready_timeout=5)  # no TLS
    controller.start()
    try:
        settings = replace(_email_settings(data_dir, port), smtp_security="starttls")
        client = await _one_invitation(aiohttp_client, settings, clock)
    finally:
        controller.stop()
    assert box.messages == []  # nothing went in clear
    assert await _invitation_status(client) == ("retrying", NO_STARTTLS)
    dashboard = await (await client.get("/dashboard")).text()
    assert "Invitation: retrying (The mail server does not offer STARTTLS" in dashboard


async def test_a_wrong_password_is_named_as_the_reason(
    aiohttp_client: Any, data_dir: Path, clock: FakeClock, certificate: Certificate
) -> None:
    box, port = SigningMailbox(), _free_port()
    controller = _server(box, port, tls_context=certificate.server_context(), require_starttls=True)
    controller.start()
    try:
        settings = replace(
            _email_settings(data_dir, port),
            smtp_security="starttls",
            smtp_username=USER,
            smtp_password="not the password",
        )
        client = await _one_invitation(aiohttp_client, settings, clock)
    finally:
        controller.stop()
    assert box.messages == [] and {login for login, _ in box.sign_ins} == {USER}  # PLAIN, LOGIN
    assert await _invitation_status(client) == ("retrying", SIGN_IN_FAILED)


async def test_a_certificate_that_is_not_trusted_stops_the_sending_and_is_named(
    aiohttp_client: Any,
    data_dir: Path,
    clock: FakeClock,
    certificate: Certificate,
    password_file: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE")  # the server's certificate is in no trust store now
    box, port = SigningMailbox(), _free_port()
    controller = _server(box, port, tls_context=certificate.server_context(), require_starttls=True)
    controller.start()
    try:
        settings = replace(
            _email_settings(data_dir, port),
            smtp_security="starttls",
            smtp_username=USER,
            smtp_password_file=password_file,
        )
        client = await _one_invitation(aiohttp_client, settings, clock)
    finally:
        controller.stop()
    assert box.sign_ins == [] and box.messages == []  # the password never left
    assert await _invitation_status(client) == ("retrying", UNTRUSTED)


async def test_a_server_that_offers_no_sign_in_is_named_as_the_reason(
    aiohttp_client: Any,
    data_dir: Path,
    clock: FakeClock,
    certificate: Certificate,
    password_file: Path,
) -> None:
    box, port = SigningMailbox(), _free_port()
    # TLS from the first byte, but aiosmtpd offers AUTH only after STARTTLS: none here
    controller = _server(box, port, ssl_context=certificate.server_context())
    controller.start()
    try:
        settings = replace(
            _email_settings(data_dir, port),
            smtp_security="tls",
            smtp_username=USER,
            smtp_password_file=password_file,
        )
        client = await _one_invitation(aiohttp_client, settings, clock)
    finally:
        controller.stop()
    assert box.sign_ins == [] and box.messages == []
    assert await _invitation_status(client) == ("retrying", NO_SIGN_IN)

"""A real crash between queueing an email and sending it: `attune session create` queues the
invitation in the booking's transaction, the running `attune serve`'s email job claims it and
is killed (SIGKILL) in the middle of the SMTP conversation, before the server accepted the
message. After a restart the invitation goes exactly once."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy.ext.asyncio import create_async_engine

from server.db.tables import email_outbox
from tests.integration.test_email import CLIENT_EMAIL, Mailbox, _free_port
from tests.multiproc.conftest import MakeCluster

pytestmark = pytest.mark.multiproc

PASSWORD = "a calm and long passphrase"
THERAPIST = "t@example.org"


@dataclass
class StallingMailbox(Mailbox):
    """Holds the first conversation at RCPT until the test says so; then accepts as usual."""

    stalled: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    recipients_seen: int = 0

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        self.recipients_seen += 1
        if self.recipients_seen == 1:
            self.stalled.set()
            await asyncio.to_thread(self.release.wait, 60)
            return "451 4.3.0 Try again later"
        return await super().handle_RCPT(server, session, envelope, address, options)


async def _outbox(database_url: str) -> list[tuple[str, int]]:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(sa.select(email_outbox.c.status, email_outbox.c.attempts))
            return [(str(r[0]), int(r[1])) for r in rows]
    finally:
        await engine.dispose()


async def _let_leases_lapse(database_url: str) -> None:
    """What five minutes would do: every sender's lease is over."""
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                email_outbox.update()
                .where(email_outbox.c.lease_until.is_not(None))
                .values(lease_until=datetime.now(UTC) - timedelta(seconds=1))
            )
    finally:
        await engine.dispose()


async def _save_address(url: str, join_path: str) -> None:
    """The client opens their link and saves an address for reminders on the visit page."""
    jar = aiohttp.CookieJar(unsafe=True)
    timeout = aiohttp.ClientTimeout(total=20)
    async with aiohttp.ClientSession(url, cookie_jar=jar, timeout=timeout) as http:
        await http.get(join_path)
        page = await (await http.get("/visit/contact")).text()
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert csrf, page[:300]
        saved = await http.post(
            "/visit/contact",
            data={
                "csrf_token": csrf.group(1),
                "notice_version": "1",
                "email": CLIENT_EMAIL,
                "consent": "yes",
            },
            allow_redirects=False,
        )
        assert saved.status == 303, await saved.text()


async def test_a_server_killed_while_sending_sends_the_invitation_once_after_its_restart(
    make_cluster: MakeCluster,
) -> None:
    box, port = StallingMailbox(), _free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port, ready_timeout=5)
    controller.start()
    try:
        group = await make_cluster(
            processes=1,
            settings={
                "ATTUNE_SMTP_HOST": "127.0.0.1",
                "ATTUNE_SMTP_PORT": str(port),
                "ATTUNE_SMTP_SECURITY": "none",
                "ATTUNE_EMAIL_FROM": "appointments@attune.test",
                "ATTUNE_EMAIL_INTERVAL_SECONDS": "1",
            },
        )
        server = group.processes[0]
        _, join_path = group.add_therapist_session(THERAPIST, "J.M.", PASSWORD)
        await _save_address(server.url, join_path)

        starts = (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
        group.cli(
            "session", "create", "--therapist", THERAPIST, "--client", "J.M.", "--start", starts
        )
        assert await asyncio.to_thread(box.stalled.wait, 30), server.log_tail()
        server.kill()  # mid-conversation: the message was never accepted
        box.release.set()
        assert await _outbox(group.database_url) == [("sending", 1)]
        assert box.messages == []

        await _let_leases_lapse(group.database_url)
        server.start()
        await server.wait_ready()
        deadline = time.monotonic() + 30
        while not box.messages:
            assert time.monotonic() < deadline, server.log_tail()
            await asyncio.sleep(0.1)
        await asyncio.sleep(3)  # three more rounds of the job: nothing goes again
        [(recipients, raw)] = box.messages
        assert recipients == [CLIENT_EMAIL]
        assert b"Subject: Your appointment on " in raw
        assert await _outbox(group.database_url) == [("sent", 2)]
    finally:
        controller.stop()

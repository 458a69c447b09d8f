"""Email: a client's address, queueing messages with their cause, reminders, and sending.

Messages are queued in the outbox inside the transaction of the action that causes them
(booking, cancelling, rescheduling), so an acknowledged booking always has its invitation
and a rolled-back one has none. Each message is rendered when queued and stored encrypted
under the client's data key (address, link and calendar file included). The email job
(`server/jobs/email.py`) queues due reminders and sends through `server/smtp.py`.

Sending is at-least-once with one narrow window: a sender claims a message under a lease in
its own transaction, talks to SMTP, then marks it sent. If it dies after the server accepted
the message and before the mark commits, the lease lapses and the message goes again, with
the same Message-ID. docs/privacy.md ("Email") says so.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email import message_from_bytes
from email.utils import parseaddr
from typing import Final

from sqlalchemy.ext.asyncio import AsyncConnection

from privacy.consent import Purpose
from privacy.vault import DecryptionError, FieldContext, KeyShredded
from server.audit import AuditTrail
from server.core.email_schedule import (
    EmailKind,
    OutboxStatus,
    after_temporary_failure,
    due_reminders,
    retry_delay,
)
from server.core.languages import N_
from server.core.links import SessionStatus
from server.core.models import TherapySession
from server.db import accounts as account_queries
from server.db import email as q
from server.db import participants as pq
from server.db import scheduling as sq
from server.db.engine import Database
from server.errors import InvalidInput
from server.security.tokens import looks_like_token, new_id, new_token, token_hash
from server.services.consents import Consents
from server.services.email_compose import Appointment, Composer, new_message_id
from server.services.participants import as_seen_by
from server.settings import Settings
from server.smtp import DeliveryError, Transport
from server.vault_store import ClientVault

log = logging.getLogger("attune.email")

MAX_EMAIL_CHARS: Final = 254
_EMAIL = re.compile(r"^[^@\s<>\"',;()\[\]\\]{1,64}@[A-Za-z0-9.-]{1,251}\.[A-Za-z]{2,63}$")
NOTIFY_ALERT_CATEGORIES: Final = frozenset({"rupture", "safety"})
"""Alerts a therapist who opted in hears about by email when not in the session."""
LEASE: Final = timedelta(minutes=5)
RETRY_CAP_SECONDS: Final = 6 * 3600
ADDRESS_GONE: Final = "The client's address was removed before sending."
DATA_ERASED: Final = "The client's data was erased before sending."


def clean_email(raw: str) -> str:
    """A plain address, trimmed; InvalidInput when it cannot be one."""
    email = raw.strip()
    if not email:
        raise InvalidInput(N_("Enter your email address."))
    if len(email) > MAX_EMAIL_CHARS or not _EMAIL.fullmatch(email) or ".." in email:
        raise InvalidInput(N_("That does not look like an email address, e.g. name@example.org."))
    return email


def _contact_ctx(client_id: str) -> FieldContext:
    return FieldContext("client_contacts", client_id, "email", client_id)


def _seal_ctx(invite_id: str, client_id: str) -> FieldContext:
    return FieldContext("invite_seals", invite_id, "token", client_id)


def _message_ctx(row_id: str, client_id: str) -> FieldContext:
    return FieldContext("email_outbox", row_id, "message", client_id)


@dataclass(frozen=True)
class SessionEmailStatus:
    """What the therapist sees for a session: the latest message and how it went."""

    kind: EmailKind
    status: OutboxStatus
    reason: str | None
    sent_count: int

    @property
    def label(self) -> str:
        """Plain words for the dashboard."""
        what = self.kind.value.capitalize()
        if self.status is OutboxStatus.SENT:
            return f"{what} sent"
        if self.status is OutboxStatus.RETRYING:
            return f"{what}: retrying ({self.reason or 'temporary problem'})"
        if self.status is OutboxStatus.FAILED:
            return f"{what} failed: {self.reason or 'unknown reason'}"
        if self.status is OutboxStatus.CANCELLED:
            return f"{what} not sent (no longer needed)"
        return f"{what} queued"


class Mailer:
    """Everything email, for the pages, the API, scheduling and the email job."""

    def __init__(
        self,
        settings: Settings,
        vault: ClientVault,
        consents: Consents,
        composer: Composer | None = None,
    ) -> None:
        self.settings = settings
        self._vault = vault
        self._consents = consents
        self._composer = composer or Composer(settings)

    @property
    def enabled(self) -> bool:
        """False when no SMTP server is configured: links are shared by hand."""
        return self.settings.email_enabled

    # --- the client's address ------------------------------------------------------------

    async def contact_email(self, db: Database, client_id: str) -> str | None:
        """The client's address (for their own page only), or None."""
        async with db.read() as conn:
            return await self._address(conn, client_id)

    async def _address(self, conn: AsyncConnection, client_id: str) -> str | None:
        found = await self._contact(conn, client_id)
        return None if found is None else found[0]

    async def _contact(self, conn: AsyncConnection, client_id: str) -> tuple[str, str] | None:
        """(address, unsubscribe token), both sealed together under the client's key."""
        row = await q.contact(conn, client_id)
        if row is None:
            return None
        try:
            value = await self._vault.decrypt_json(
                conn, _contact_ctx(client_id), row.email_ciphertext
            )
        except (KeyShredded, DecryptionError):
            return None
        return str(value["email"]), str(value["unsubscribe"])

    async def reminders_on(self, db: Database, client_id: str) -> bool:
        """Whether the client's reminders are switched on."""
        async with db.read() as conn:
            row = await q.contact(conn, client_id)
        return row is not None and row.reminders

    async def set_contact(
        self, db: Database, audit: AuditTrail, *, client_id: str, email: str, now: datetime
    ) -> None:
        """Save the client's address (the `contact` consent must already be granted)."""
        email = clean_email(email)
        async with db.write() as conn:
            if not await self._consents.allows(conn, client_id, Purpose.CONTACT, now):
                raise InvalidInput(N_("Tick “Email me reminders” to save an address."))
            unsubscribe = new_token()
            ciphertext = await self._vault.encrypt_json(
                conn, _contact_ctx(client_id), {"email": email, "unsubscribe": unsubscribe}
            )
            await q.upsert_contact(
                conn,
                client_id=client_id,
                email_ciphertext=ciphertext,
                unsubscribe_hash=token_hash(unsubscribe),
                now=now,
            )
            await audit.record(
                conn,
                at=now,
                actor=f"client:{client_id}",
                action="contact.set",
                targets=(f"client:{client_id}",),
            )

    async def remove_contact(
        self, db: Database, audit: AuditTrail, *, client_id: str, now: datetime
    ) -> None:
        """Delete the client's address and drop what was waiting to go to it."""
        async with db.write() as conn:
            if await self.delete_contact(conn, client_id):
                await audit.record(
                    conn,
                    at=now,
                    actor=f"client:{client_id}",
                    action="contact.remove",
                    targets=(f"client:{client_id}",),
                )

    async def delete_contact(self, conn: AsyncConnection, client_id: str) -> bool:
        """Delete the address and drop unsent messages; True when there was an address."""
        await q.cancel_pending(conn, client_id=client_id)
        return await q.delete_contact(conn, client_id)

    async def delete_contact_effect(self, conn: AsyncConnection, client_id: str) -> None:
        """The `contact` consent's withdrawal effect (inside the withdrawal's transaction)."""
        await self.delete_contact(conn, client_id)

    async def unsubscribe(self, db: Database, audit: AuditTrail, token: str, now: datetime) -> bool:
        """Switch reminders off with the link from an email; False for an unknown link."""
        if not looks_like_token(token):
            return False
        async with db.write() as conn:
            client_id = await q.stop_reminders(conn, token_hash(token))
            if client_id is None:
                return False
            await q.cancel_pending(conn, client_id=client_id, kinds=(EmailKind.REMINDER,))
            await audit.record(
                conn,
                at=now,
                actor="client",
                action="contact.unsubscribe",
                targets=(f"client:{client_id}",),
            )
        return True

    # --- queueing with the cause -----------------------------------------------------------

    async def on_invite_issued(
        self,
        conn: AsyncConnection,
        *,
        invite_id: str,
        session_id: str,
        client_id: str,
        token: str,
        now: datetime,
    ) -> None:
        """Seal the new token under the client's key, so emails can carry a working link."""
        if not self.enabled:
            return
        ciphertext = await self._vault.encrypt_text(conn, _seal_ctx(invite_id, client_id), token)
        await q.insert_seal(
            conn,
            invite_id=invite_id,
            session_id=session_id,
            client_id=client_id,
            token_ciphertext=ciphertext,
            now=now,
        )

    async def on_session_closed(
        self,
        conn: AsyncConnection,
        session: TherapySession,
        status: SessionStatus,
        now: datetime,
    ) -> None:
        """Ended: nothing more to send. Cancelled: say so and update the calendar entry."""
        if status is SessionStatus.CANCELLED:
            await self.queue_cancellation(conn, session, now)
        else:
            await q.cancel_pending(conn, session_id=session.id)

    async def queue_invitation(
        self, conn: AsyncConnection, session: TherapySession, now: datetime
    ) -> bool:
        """On booking: the join link and a calendar entry, if the client wants email."""
        return await self._queue_calendar(conn, session, EmailKind.INVITATION, now)

    async def queue_reschedule_email(
        self, conn: AsyncConnection, session: TherapySession, now: datetime
    ) -> bool:
        """The hook for rescheduling: call inside the transaction that moved the session,
        with the session at its new times. Drops the old reminders and invitation not yet
        sent, and sends the new time with the same calendar entry (higher SEQUENCE); the
        reminders for the new time follow from the schedule."""
        await q.cancel_pending(
            conn,
            session_id=session.id,
            kinds=(EmailKind.REMINDER, EmailKind.INVITATION, EmailKind.RESCHEDULE),
        )
        queued = False
        for seen_by in await self._clients_of(conn, session):
            queued |= await self._queue_calendar(conn, seen_by, EmailKind.RESCHEDULE, now)
        return queued

    async def queue_cancellation(
        self, conn: AsyncConnection, session: TherapySession, now: datetime
    ) -> bool:
        """On cancelling: drop what has not gone, and cancel the calendar entry if one went."""
        await q.cancel_pending(conn, session_id=session.id)
        queued = False
        for seen_by in await self._clients_of(conn, session):
            if await q.has_calendar_entry(conn, session.id, seen_by.client_id):
                queued |= await self._queue_calendar(conn, seen_by, EmailKind.CANCELLATION, now)
        return queued

    async def _clients_of(
        self, conn: AsyncConnection, session: TherapySession
    ) -> list[TherapySession]:
        """The session as each of its clients' emails name it (a couple's two clients each
        get their own); guests get no email (none is kept for them)."""
        views = []
        for person in await pq.present(conn, session.id):
            if person.client_id == session.client_id:
                views.append(session)
            elif person.client_id is not None:
                views.append(as_seen_by(session, person))
        return views or [session]

    async def _wants_email(self, conn: AsyncConnection, client_id: str, now: datetime) -> bool:
        if not self.enabled:
            return False
        if await q.contact(conn, client_id) is None:
            return False
        return await self._consents.allows(conn, client_id, Purpose.CONTACT, now)

    async def _join_url(self, conn: AsyncConnection, session: TherapySession) -> str | None:
        found = await q.seal_for(conn, session.id, session.client_id)
        if found is None:
            return None
        invite_id, ciphertext = found
        token = await self._vault.decrypt_text(
            conn, _seal_ctx(invite_id, session.client_id), ciphertext
        )
        return f"{self.settings.base_url}/join/{token}"

    async def _queue_calendar(
        self, conn: AsyncConnection, session: TherapySession, kind: EmailKind, now: datetime
    ) -> bool:
        if not await self._wants_email(conn, session.client_id, now):
            return False
        sequence = await q.next_ics_sequence(conn, session.id)
        key = f"{kind.value}:{session.id}:{sequence}"
        await self._queue(conn, session, kind, key, sequence, now)
        return True

    async def _queue(
        self,
        conn: AsyncConnection,
        session: TherapySession,
        kind: EmailKind,
        dedupe_key: str,
        ics_sequence: int | None,
        now: datetime,
    ) -> None:
        contact = await self._contact(conn, session.client_id)
        if contact is None:
            return
        to, unsubscribe = contact
        join_url = None if kind is EmailKind.CANCELLATION else await self._join_url(conn, session)
        unsubscribe_url = (
            f"{self.settings.base_url}/email/unsubscribe/{unsubscribe}"
            if kind is EmailKind.REMINDER
            else None
        )
        message_id = new_message_id(self.settings)
        message = self._composer.compose(
            language=await self._client_language(conn, session.client_id),
            kind=kind,
            to=to,
            message_id=message_id,
            appointment=Appointment(session.id, session.starts_at, session.ends_at),
            join_url=join_url,
            unsubscribe_url=unsubscribe_url,
            ics_sequence=ics_sequence,
            now=now,
        )
        await self._store_client_message(
            conn, session, message_id, message, kind, dedupe_key, ics_sequence, now
        )

    async def _client_language(self, conn: AsyncConnection, client_id: str) -> str:
        """The language of a client's emails: their own, else the clinic's default."""
        client = await sq.client_by_id(conn, client_id)
        return self._composer.language_for(client.preferred_language if client else None)

    async def _store_client_message(
        self,
        conn: AsyncConnection,
        session: TherapySession,
        message_id: str,
        message: bytes,
        kind: EmailKind,
        dedupe_key: str,
        ics_sequence: int | None,
        now: datetime,
    ) -> None:
        """A composed client email into the outbox, encrypted with the client's key, in the
        caller's transaction (sent by the background job)."""
        row_id = new_id()
        ciphertext = await self._vault.encrypt_text(
            conn, _message_ctx(row_id, session.client_id), message.decode("ascii")
        )
        await q.insert_message(
            conn,
            row_id=row_id,
            message_id=message_id,
            dedupe_key=dedupe_key,
            kind=kind,
            client_id=session.client_id,
            session_id=session.id,
            therapist_id=session.therapist_id,
            ics_sequence=ics_sequence,
            send_after=now,
            message_ciphertext=ciphertext,
            now=now,
        )

    # --- an account holder's one-time link ---------------------------------------------------

    async def send_account_link(
        self,
        transport: Transport,
        *,
        to: str,
        url: str,
        expires_at: datetime,
        first_password: bool,
        now: datetime,
    ) -> None:
        """Email a set-up or reset link to the account's own address, at once rather than
        through the outbox: the admin who pressed the button learns whether it went, and the
        link's token is kept nowhere (only its hash is stored). Raises DeliveryError."""
        message = self._composer.compose_account_link(
            to=to,
            url=url,
            expires_at=expires_at,
            first_password=first_password,
            message_id=new_message_id(self.settings),
            now=now,
        )
        await transport.send(message, sender=self.settings.email_from, recipient=to)

    async def wants_email(self, conn: AsyncConnection, client_id: str, now: datetime) -> bool:
        """Whether the client may be emailed now: email set up, an address on file and the
        `contact` consent granted."""
        return await self._wants_email(conn, client_id, now)

    async def queue_measures_link(
        self,
        conn: AsyncConnection,
        *,
        session: TherapySession,
        link_id: str,
        token: str,
        expires_at: datetime,
        now: datetime,
    ) -> bool:
        """Queue the client's link to answer due measures between sessions (in the transaction
        that created the link), if the client wants email. The message names no measure."""
        if not await self._wants_email(conn, session.client_id, now):
            return False
        contact = await self._contact(conn, session.client_id)
        if contact is None:
            return False
        message_id = new_message_id(self.settings)
        message = self._composer.compose_measures_link(
            language=await self._client_language(conn, session.client_id),
            to=contact[0],
            message_id=message_id,
            url=f"{self.settings.base_url}/m/{token}",
            expires_at=expires_at,
            now=now,
        )
        await self._store_client_message(
            conn, session, message_id, message, EmailKind.MEASURES, f"measures:{link_id}", None, now
        )
        return True

    # --- therapists' alert emails --------------------------------------------------------------

    async def alert_emails_on(self, db: Database, account_id: str) -> bool:
        """Whether this therapist asked for alert emails."""
        async with db.read() as conn:
            return await q.alert_emails_on(conn, account_id)

    async def set_alert_emails(
        self, db: Database, *, account_id: str, on: bool, now: datetime
    ) -> None:
        """Switch the therapist's alert emails on or off."""
        async with db.write() as conn:
            await q.set_alert_emails(conn, account_id, on, now)

    async def queue_alert_notice(
        self,
        db: Database,
        *,
        session: TherapySession,
        alert_categories: frozenset[str],
        source_id: str,
        now: datetime,
    ) -> bool:
        """Tell an opted-in therapist that an alert waits (rupture or safety), never what it is.
        Call only for alerts that were stored, raised while the therapist is not in the room."""
        if not self.enabled or not alert_categories & NOTIFY_ALERT_CATEGORIES:
            return False
        async with db.write() as conn:
            if not await q.alert_emails_on(conn, session.therapist_id):
                return False
            return await self._queue_to_therapist(
                conn,
                session=session,
                dedupe_key=f"alert:{source_id}",
                compose=self._composer.compose_alert,
                now=now,
            )

    async def queue_safety_notice(
        self, db: Database, *, session: TherapySession, source_id: str, now: datetime
    ) -> bool:
        """Tell the therapist that a client's questionnaire needs attention (a safety alert),
        whenever email is configured: no opt-in can switch it off. Never whose or what.
        Queued once per alert, so a client's retry after a crash may call it again."""
        if not self.enabled:
            return False
        dedupe_key = f"safety:{source_id}"
        async with db.write() as conn:
            if dedupe_key in await q.dedupe_keys_for(conn, [session.id]):
                return False
            return await self._queue_to_therapist(
                conn,
                session=session,
                dedupe_key=dedupe_key,
                compose=self._composer.compose_safety_alert,
                now=now,
            )

    async def _queue_to_therapist(
        self,
        conn: AsyncConnection,
        *,
        session: TherapySession,
        dedupe_key: str,
        compose: Callable[..., bytes],
        now: datetime,
    ) -> bool:
        """Queue a neutral alert email to the session's therapist (none when disabled)."""
        therapist = await account_queries.account_by_id(conn, session.therapist_id)
        if therapist is None or therapist.disabled:
            return False
        row_id, message_id = new_id(), new_message_id(self.settings)
        message = compose(to=therapist.email, message_id=message_id, now=now)
        ciphertext = await self._vault.encrypt_text(
            conn, _message_ctx(row_id, session.client_id), message.decode("ascii")
        )
        await q.insert_message(
            conn,
            row_id=row_id,
            message_id=message_id,
            dedupe_key=dedupe_key,
            kind=EmailKind.ALERT,
            client_id=session.client_id,
            session_id=session.id,
            therapist_id=session.therapist_id,
            ics_sequence=None,
            send_after=now,
            message_ciphertext=ciphertext,
            now=now,
        )
        return True

    # --- the email job -----------------------------------------------------------------------

    async def queue_due_reminders(self, db: Database, now: datetime) -> int:
        """Queue every reminder due now; forget sealed tokens of sessions long over."""
        offsets = self.settings.reminder_offsets
        if not self.enabled or not offsets:
            return 0
        horizon = now + timedelta(minutes=max(offsets))
        queued = 0
        async with db.write() as conn:
            grace = timedelta(minutes=self.settings.invite_grace_minutes)
            await q.delete_stale_seals(conn, now - grace)
            upcoming = await q.upcoming_for_reminders(conn, now, horizon)
            keys = await q.dedupe_keys_for(conn, [s.session_id for s in upcoming])
            for due in due_reminders(upcoming, offsets, keys, now):
                session = await sq.session_by_id(conn, due.session_id)
                if session is None or session.status is not SessionStatus.SCHEDULED:
                    continue
                if due.client_id != session.client_id:  # a client added to the session
                    person = await pq.participant_of_client(conn, session.id, due.client_id)
                    if person is None:
                        continue
                    session = as_seen_by(session, person)
                if not await self._wants_email(conn, session.client_id, now):
                    continue
                await self._queue(conn, session, EmailKind.REMINDER, due.dedupe_key, None, now)
                queued += 1
        return queued

    async def send_due(
        self, db: Database, audit: AuditTrail, transport: Transport, now: datetime
    ) -> int:
        """Send every message due now, one claim at a time; returns how many were sent."""
        sent = 0
        while True:
            lease_id = new_id()
            async with db.write() as conn:
                row = await q.claim_next(conn, lease_id=lease_id, now=now, lease_until=now + LEASE)
                if row is None:
                    return sent
                message, problem = await self._open(conn, row)
                if problem is not None:
                    await q.finish(
                        conn,
                        row_id=row.id,
                        lease_id=lease_id,
                        status=OutboxStatus.FAILED,
                        now=now,
                        error=problem,
                    )
                    continue
            assert message is not None
            if await self._deliver(db, audit, transport, row, lease_id, message, now):
                sent += 1

    async def _open(
        self, conn: AsyncConnection, row: q.OutboxRow
    ) -> tuple[bytes | None, str | None]:
        try:
            text = await self._vault.decrypt_text(
                conn, _message_ctx(row.id, row.client_id), row.message_ciphertext
            )
        except KeyShredded:
            return None, DATA_ERASED
        if row.kind is not EmailKind.ALERT and await q.contact(conn, row.client_id) is None:
            return None, ADDRESS_GONE
        return text.encode("ascii"), None

    async def _deliver(
        self,
        db: Database,
        audit: AuditTrail,
        transport: Transport,
        row: q.OutboxRow,
        lease_id: str,
        message: bytes,
        now: datetime,
    ) -> bool:
        recipient = parseaddr(str(message_from_bytes(message).get("To", "")))[1]
        try:
            await transport.send(message, sender=self.settings.email_from, recipient=recipient)
        except DeliveryError as exc:
            status = (
                OutboxStatus.FAILED
                if exc.permanent
                else after_temporary_failure(row.attempts, self.settings.email_max_attempts)
            )
            retry_at = None
            if status is OutboxStatus.RETRYING:
                retry_at = now + retry_delay(
                    row.attempts, self.settings.email_retry_base_seconds, RETRY_CAP_SECONDS
                )
            async with db.write() as conn:
                await q.finish(
                    conn,
                    row_id=row.id,
                    lease_id=lease_id,
                    status=status,
                    now=now,
                    error=exc.reason,
                    retry_at=retry_at,
                )
                if status is OutboxStatus.FAILED:
                    await audit.record(
                        conn,
                        at=now,
                        actor="system:email",
                        action="email.failed",
                        targets=tuple(
                            t
                            for t in (f"client:{row.client_id}",)
                            + ((f"session:{row.session_id}",) if row.session_id else ())
                        ),
                        details={"kind": row.kind.value, "attempts": row.attempts},
                    )
            log.warning(
                "email not delivered (%s, attempt %d): %s", row.kind.value, row.attempts, status
            )
            return False
        async with db.write() as conn:
            await q.finish(
                conn, row_id=row.id, lease_id=lease_id, status=OutboxStatus.SENT, now=now
            )
        return True

    # --- what the therapist sees -------------------------------------------------------------

    async def statuses(self, db: Database, therapist_id: str) -> dict[str, SessionEmailStatus]:
        """Per session: the latest message's kind, status and plain reason."""
        async with db.read() as conn:
            rows = await q.statuses_for_therapist(conn, therapist_id)
        latest: dict[str, SessionEmailStatus] = {}
        sent: dict[str, int] = {}
        for row in rows:
            if row.session_id is None:
                continue
            if row.status is OutboxStatus.SENT:
                sent[row.session_id] = sent.get(row.session_id, 0) + 1
            latest[row.session_id] = SessionEmailStatus(
                row.kind, row.status, row.last_error, sent.get(row.session_id, 0)
            )
        return latest

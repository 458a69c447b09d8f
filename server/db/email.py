"""Email queries: client contacts, sealed invite tokens and the outbox (SQL only)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from server.core.email_schedule import PENDING, EmailKind, OutboxStatus, UpcomingSession
from server.core.links import SessionStatus
from server.db.tables import (
    client_contacts,
    email_outbox,
    invite_seals,
    therapist_email_prefs,
    therapy_sessions,
)

CLIENT_KINDS: tuple[EmailKind, ...] = (
    EmailKind.INVITATION,
    EmailKind.REMINDER,
    EmailKind.RESCHEDULE,
    EmailKind.CANCELLATION,
    EmailKind.MEASURES,
)

# --- contacts ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ContactRow:
    """A client's stored address (still encrypted) and reminder choice."""

    client_id: str
    email_ciphertext: bytes
    reminders: bool
    updated_at: datetime


async def contact(conn: AsyncConnection, client_id: str) -> ContactRow | None:
    """The client's contact row, if any."""
    row = (
        await conn.execute(
            sa.select(client_contacts).where(client_contacts.c.client_id == client_id)
        )
    ).first()
    if row is None:
        return None
    m = row._mapping
    return ContactRow(m["client_id"], bytes(m["email_ciphertext"]), m["reminders"], m["updated_at"])


async def upsert_contact(
    conn: AsyncConnection,
    *,
    client_id: str,
    email_ciphertext: bytes,
    unsubscribe_hash: str,
    now: datetime,
) -> None:
    """Save (or replace) a client's address; reminders are on again."""
    await conn.execute(client_contacts.delete().where(client_contacts.c.client_id == client_id))
    await conn.execute(
        client_contacts.insert().values(
            client_id=client_id,
            email_ciphertext=email_ciphertext,
            reminders=True,
            unsubscribe_hash=unsubscribe_hash,
            updated_at=now,
        )
    )


async def delete_contact(conn: AsyncConnection, client_id: str) -> bool:
    """Delete a client's address; True when there was one."""
    result = await conn.execute(
        client_contacts.delete().where(client_contacts.c.client_id == client_id)
    )
    return result.rowcount > 0


async def stop_reminders(conn: AsyncConnection, unsubscribe_hash: str) -> str | None:
    """Switch reminders off for the contact with this unsubscribe token; its client id."""
    client_id = await conn.scalar(
        sa.select(client_contacts.c.client_id).where(
            client_contacts.c.unsubscribe_hash == unsubscribe_hash
        )
    )
    if client_id is None:
        return None
    await conn.execute(
        client_contacts.update()
        .where(client_contacts.c.client_id == client_id)
        .values(reminders=False)
    )
    return str(client_id)


# --- sealed invite tokens ----------------------------------------------------------------------


async def insert_seal(
    conn: AsyncConnection,
    *,
    invite_id: str,
    session_id: str,
    client_id: str,
    token_ciphertext: bytes,
    now: datetime,
) -> None:
    """Keep a client's current token for a session sealed (one per client and session: a
    couple's two clients each have their own link)."""
    await conn.execute(
        invite_seals.delete().where(
            invite_seals.c.session_id == session_id, invite_seals.c.client_id == client_id
        )
    )
    await conn.execute(
        invite_seals.insert().values(
            invite_id=invite_id,
            session_id=session_id,
            client_id=client_id,
            token_ciphertext=token_ciphertext,
            created_at=now,
        )
    )


async def seal_for(
    conn: AsyncConnection, session_id: str, client_id: str
) -> tuple[str, bytes] | None:
    """(invite id, ciphertext) of this client's sealed token for the session."""
    row = (
        await conn.execute(
            sa.select(invite_seals.c.invite_id, invite_seals.c.token_ciphertext).where(
                invite_seals.c.session_id == session_id, invite_seals.c.client_id == client_id
            )
        )
    ).first()
    return (row[0], bytes(row[1])) if row else None


async def delete_seals(conn: AsyncConnection, session_id: str) -> None:
    """Forget a session's sealed token (the link was revoked, replaced or the session closed)."""
    await conn.execute(invite_seals.delete().where(invite_seals.c.session_id == session_id))


async def delete_stale_seals(conn: AsyncConnection, ended_before: datetime) -> int:
    """Forget sealed tokens of sessions that ended before this time."""
    stale = sa.select(therapy_sessions.c.id).where(therapy_sessions.c.ends_at < ended_before)
    result = await conn.execute(invite_seals.delete().where(invite_seals.c.session_id.in_(stale)))
    return result.rowcount


# --- outbox ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutboxRow:
    """An outbox message's metadata and its (encrypted) content."""

    id: str
    kind: EmailKind
    client_id: str
    session_id: str | None
    status: OutboxStatus
    attempts: int
    message_ciphertext: bytes


async def insert_message(
    conn: AsyncConnection,
    *,
    message_id: str,
    row_id: str,
    dedupe_key: str,
    kind: EmailKind,
    client_id: str,
    session_id: str | None,
    therapist_id: str,
    ics_sequence: int | None,
    send_after: datetime,
    message_ciphertext: bytes,
    now: datetime,
) -> None:
    """Queue a message (inside the caller's transaction)."""
    await conn.execute(
        email_outbox.insert().values(
            id=row_id,
            dedupe_key=dedupe_key,
            kind=kind.value,
            client_id=client_id,
            session_id=session_id,
            therapist_id=therapist_id,
            status=OutboxStatus.QUEUED.value,
            ics_sequence=ics_sequence,
            send_after=send_after,
            attempts=0,
            message_id=message_id,
            created_at=now,
            message_ciphertext=message_ciphertext,
        )
    )


async def dedupe_keys_for(conn: AsyncConnection, session_ids: Sequence[str]) -> frozenset[str]:
    """Every dedupe key already used for these sessions."""
    if not session_ids:
        return frozenset()
    rows = await conn.execute(
        sa.select(email_outbox.c.dedupe_key).where(email_outbox.c.session_id.in_(session_ids))
    )
    return frozenset(str(r[0]) for r in rows)


async def next_ics_sequence(conn: AsyncConnection, session_id: str) -> int:
    """The SEQUENCE for the session's next calendar update (0 for the first)."""
    latest = await conn.scalar(
        sa.select(sa.func.max(email_outbox.c.ics_sequence)).where(
            email_outbox.c.session_id == session_id
        )
    )
    return 0 if latest is None else int(latest) + 1


async def has_calendar_entry(conn: AsyncConnection, session_id: str, client_id: str) -> bool:
    """True when an invitation or reschedule (with a calendar file) went to this client for the
    session (queued and not dropped)."""
    found = await conn.scalar(
        sa.select(sa.func.count())
        .select_from(email_outbox)
        .where(
            email_outbox.c.session_id == session_id,
            email_outbox.c.client_id == client_id,
            email_outbox.c.kind.in_([EmailKind.INVITATION.value, EmailKind.RESCHEDULE.value]),
            email_outbox.c.status != OutboxStatus.CANCELLED.value,
        )
    )
    return bool(found)


async def cancel_pending(
    conn: AsyncConnection,
    *,
    session_id: str | None = None,
    client_id: str | None = None,
    kinds: Sequence[EmailKind] = CLIENT_KINDS,
) -> int:
    """Drop messages to the client not yet sent (for a session or a client; some kinds)."""
    query = email_outbox.update().where(email_outbox.c.status.in_([s.value for s in PENDING]))
    if session_id is not None:
        query = query.where(email_outbox.c.session_id == session_id)
    if client_id is not None:
        query = query.where(email_outbox.c.client_id == client_id)
    query = query.where(email_outbox.c.kind.in_([k.value for k in kinds]))
    result = await conn.execute(query.values(status=OutboxStatus.CANCELLED.value))
    return result.rowcount


async def upcoming_for_reminders(
    conn: AsyncConnection, now: datetime, horizon: datetime
) -> list[UpcomingSession]:
    """(Session, client) pairs of scheduled sessions starting in (now, horizon] whose client
    has reminders switched on and a sealed link of their own (every client of a couple's
    session); `announced_at` is that client's last invitation or reschedule email's time."""
    announced = (
        sa.select(sa.func.max(email_outbox.c.created_at))
        .where(
            email_outbox.c.session_id == therapy_sessions.c.id,
            email_outbox.c.client_id == invite_seals.c.client_id,
            email_outbox.c.kind.in_([EmailKind.INVITATION.value, EmailKind.RESCHEDULE.value]),
        )
        .scalar_subquery()
    )
    rows = await conn.execute(
        sa.select(
            therapy_sessions.c.id,
            invite_seals.c.client_id,
            (invite_seals.c.client_id == therapy_sessions.c.client_id).label("first_client"),
            therapy_sessions.c.starts_at,
            therapy_sessions.c.created_at,
            announced.label("announced_at"),
        )
        .join(invite_seals, invite_seals.c.session_id == therapy_sessions.c.id)
        .join(client_contacts, client_contacts.c.client_id == invite_seals.c.client_id)
        .where(
            therapy_sessions.c.status == SessionStatus.SCHEDULED.value,
            therapy_sessions.c.starts_at > now,
            therapy_sessions.c.starts_at <= horizon,
            client_contacts.c.reminders.is_(True),
        )
    )
    found: list[UpcomingSession] = []
    for row in rows:
        m = row._mapping
        announced_at = m["announced_at"]
        if isinstance(announced_at, str):  # SQLite hands back aggregates untyped
            announced_at = datetime.fromisoformat(announced_at)
        if announced_at is not None and announced_at.tzinfo is None:
            announced_at = announced_at.replace(tzinfo=m["created_at"].tzinfo)
        found.append(
            UpcomingSession(
                session_id=m["id"],
                client_id=m["client_id"],
                starts_at=m["starts_at"],
                announced_at=announced_at or m["created_at"],
                first_client=bool(m["first_client"]),
            )
        )
    return found


def _claimable(now: datetime) -> sa.ColumnElement[bool]:
    return sa.or_(
        sa.and_(
            email_outbox.c.status.in_([s.value for s in PENDING]),
            email_outbox.c.send_after <= now,
        ),
        # A sender that claimed it and vanished (crash, kill) before saying how it went.
        sa.and_(
            email_outbox.c.status == OutboxStatus.SENDING.value,
            email_outbox.c.lease_until <= now,
        ),
    )


async def claim_next(
    conn: AsyncConnection, *, lease_id: str, now: datetime, lease_until: datetime
) -> OutboxRow | None:
    """Claim the oldest due message under a lease, or None. A conditional update, so two
    senders can never both claim one message."""
    candidates = await conn.execute(
        sa.select(email_outbox.c.id)
        .where(_claimable(now))
        .order_by(email_outbox.c.send_after, email_outbox.c.id)
        .limit(5)
    )
    for (row_id,) in list(candidates):
        result = await conn.execute(
            email_outbox.update()
            .where(email_outbox.c.id == row_id, _claimable(now))
            .values(
                status=OutboxStatus.SENDING.value,
                lease_id=lease_id,
                lease_until=lease_until,
                attempts=email_outbox.c.attempts + 1,
            )
        )
        if result.rowcount != 1:
            continue
        row = (await conn.execute(sa.select(email_outbox).where(email_outbox.c.id == row_id))).one()
        m = row._mapping
        return OutboxRow(
            id=m["id"],
            kind=EmailKind(m["kind"]),
            client_id=m["client_id"],
            session_id=m["session_id"],
            status=OutboxStatus(m["status"]),
            attempts=m["attempts"],
            message_ciphertext=bytes(m["message_ciphertext"]),
        )
    return None


async def finish(
    conn: AsyncConnection,
    *,
    row_id: str,
    lease_id: str,
    status: OutboxStatus,
    now: datetime,
    error: str | None = None,
    retry_at: datetime | None = None,
) -> bool:
    """Record how a claimed send went; False when the lease was lost meanwhile."""
    values: dict[str, object] = {"status": status.value, "lease_id": None, "lease_until": None}
    if status is OutboxStatus.SENT:
        values |= {"sent_at": now, "last_error": None}
    else:
        values["last_error"] = error
    if retry_at is not None:
        values["send_after"] = retry_at
    result = await conn.execute(
        email_outbox.update()
        .where(email_outbox.c.id == row_id, email_outbox.c.lease_id == lease_id)
        .values(**values)
    )
    return result.rowcount == 1


@dataclass(frozen=True)
class EmailStatusRow:
    """One message as the therapist sees it: no address, no content."""

    session_id: str | None
    kind: EmailKind
    status: OutboxStatus
    last_error: str | None
    attempts: int
    created_at: datetime
    sent_at: datetime | None


async def statuses_for_therapist(conn: AsyncConnection, therapist_id: str) -> list[EmailStatusRow]:
    """Every message about the therapist's sessions, oldest first."""
    rows = await conn.execute(
        sa.select(
            email_outbox.c.session_id,
            email_outbox.c.kind,
            email_outbox.c.status,
            email_outbox.c.last_error,
            email_outbox.c.attempts,
            email_outbox.c.created_at,
            email_outbox.c.sent_at,
        )
        .where(
            email_outbox.c.therapist_id == therapist_id,
            email_outbox.c.kind.in_([k.value for k in CLIENT_KINDS]),
        )
        .order_by(email_outbox.c.created_at, email_outbox.c.id)
    )
    return [
        EmailStatusRow(
            session_id=r.session_id,
            kind=EmailKind(r.kind),
            status=OutboxStatus(r.status),
            last_error=r.last_error,
            attempts=r.attempts,
            created_at=r.created_at,
            sent_at=r.sent_at,
        )
        for r in rows
    ]


# --- therapists' alert emails ------------------------------------------------------------------


async def alert_emails_on(conn: AsyncConnection, account_id: str) -> bool:
    """Whether the therapist asked for alert emails."""
    found = await conn.scalar(
        sa.select(therapist_email_prefs.c.alerts).where(
            therapist_email_prefs.c.account_id == account_id
        )
    )
    return bool(found)


async def set_alert_emails(conn: AsyncConnection, account_id: str, on: bool, now: datetime) -> None:
    """Record the therapist's choice."""
    await conn.execute(
        therapist_email_prefs.delete().where(therapist_email_prefs.c.account_id == account_id)
    )
    await conn.execute(
        therapist_email_prefs.insert().values(account_id=account_id, alerts=on, updated_at=now)
    )

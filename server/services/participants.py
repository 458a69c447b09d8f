"""Who takes part in a session besides the therapist, and how each person gets in.

One person, one link, one cookie, one consent: a participant is a client of this therapist
(a couple is two clients) or a guest (interpreter, guardian, support person: a label and a
link, no client record). The therapist adds, removes and re-issues participants' links; every
change is audited (ids only, never a label) and a removed or replaced link's cookies and open
sockets end at once through the live "access ends" path.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncConnection

from server.audit import AuditTrail
from server.core.links import SessionStatus
from server.core.models import Account, IssuedInvite, TherapySession
from server.core.participant_rules import (
    Participant,
    ParticipantRefused,
    check_new_client,
    clean_guest_label,
    next_position,
)
from server.core.participants import PersonKind
from server.core.protocol import AccessEnd
from server.db import participants as pq
from server.db.engine import Database
from server.db.participants import ParticipantRow
from server.errors import Conflict, InvalidInput, NotFound
from server.security.tokens import new_id
from server.services.access import LiveAccess
from server.services.scheduling import (
    guest_label_context,
    issue_invite,
    own_client,
    own_session,
    person_label,
    replace_participant_link,
    require_open,
)
from server.vault_store import ClientVault

if TYPE_CHECKING:
    from server.services.email import Mailer


async def _view(
    conn: AsyncConnection, vault: ClientVault, session: TherapySession, row: ParticipantRow
) -> Participant:
    return Participant(
        id=row.id,
        session_id=row.session_id,
        kind=row.kind,
        client_id=row.client_id,
        label=await person_label(conn, vault, session, row),
        position=row.position,
        created_at=row.created_at,
        link_active=row.link_active,
        link_opened=row.link_opened,
    )


async def list_participants(
    db: Database, vault: ClientVault, therapist: Account, session_id: str
) -> list[Participant]:
    """The people in one of the therapist's sessions besides the therapist, by position."""
    async with db.read() as conn:
        session = await own_session(conn, therapist, session_id)
        return [
            await _view(conn, vault, session, row) for row in await pq.present(conn, session_id)
        ]


async def _open_session(
    conn: AsyncConnection, therapist: Account, session_id: str
) -> TherapySession:
    session = await own_session(conn, therapist, session_id)
    require_open(session)
    return session


async def _insert(
    conn: AsyncConnection,
    audit: AuditTrail,
    therapist: Account,
    session: TherapySession,
    *,
    kind: PersonKind,
    client_id: str | None,
    max_people: int,
    now: datetime,
) -> ParticipantRow:
    present = await pq.present(conn, session.id)
    try:
        if client_id is not None:
            check_new_client(client_id, [p.client_id for p in present if p.client_id])
        position = next_position([p.position for p in present], max_people)
    except ParticipantRefused as exc:
        raise Conflict(str(exc)) from None
    participant_id = new_id()
    await pq.insert_participant(
        conn,
        participant_id=participant_id,
        session_id=session.id,
        kind=kind,
        client_id=client_id,
        position=position,
        now=now,
    )
    targets = [f"session:{session.id}", f"participant:{participant_id}"]
    if client_id is not None:
        targets.append(f"client:{client_id}")
    await audit.record(
        conn,
        at=now,
        actor=f"account:{therapist.id}",
        action="participant.add",
        targets=tuple(targets),
        details={"kind": kind.value, "position": position},
    )
    row = await pq.participant(conn, session.id, participant_id)
    assert row is not None  # written just now, in this transaction
    return row


async def add_client(
    db: Database,
    audit: AuditTrail,
    vault: ClientVault,
    therapist: Account,
    session_id: str,
    *,
    client_id: str,
    max_people: int,
    now: datetime,
    mail: Mailer | None = None,
) -> tuple[Participant, IssuedInvite]:
    """Add one of the therapist's clients (not already in it) to an open session, with their
    own link (returned once); with `mail`, their own invitation goes out when they agreed to
    email (`contact`)."""
    async with db.write() as conn:
        session = await _open_session(conn, therapist, session_id)
        client = await own_client(conn, therapist, client_id)
        row = await _insert(
            conn,
            audit,
            therapist,
            session,
            kind=PersonKind.CLIENT,
            client_id=client.id,
            max_people=max_people,
            now=now,
        )
        issued = await issue_invite(conn, audit, therapist, session_id, row, now, mail)
        if mail is not None and session.status is SessionStatus.SCHEDULED:
            await mail.queue_invitation(conn, as_seen_by(session, row), now)
        return await _view(conn, vault, session, row), issued


async def add_guest(
    db: Database,
    audit: AuditTrail,
    vault: ClientVault,
    therapist: Account,
    session_id: str,
    *,
    label: str,
    max_people: int,
    now: datetime,
) -> tuple[Participant, IssuedInvite]:
    """Add a guest by a label (1 to 60 characters; sealed at rest under the session's primary
    client's key) with their own link, returned once: the therapist shares it by hand (no
    email is kept for guests)."""
    try:
        label = clean_guest_label(label)
    except ParticipantRefused as exc:
        raise InvalidInput(str(exc)) from None
    async with db.write() as conn:
        session = await _open_session(conn, therapist, session_id)
        row = await _insert(
            conn,
            audit,
            therapist,
            session,
            kind=PersonKind.GUEST,
            client_id=None,
            max_people=max_people,
            now=now,
        )
        sealed = await vault.encrypt_text(conn, guest_label_context(session, row.id), label)
        await pq.set_label(conn, row.id, sealed)
        row = replace(row, label_ciphertext=sealed)
        issued = await issue_invite(conn, audit, therapist, session_id, row, now, None)
        return await _view(conn, vault, session, row), issued


async def _present(conn: AsyncConnection, session_id: str, participant_id: str) -> ParticipantRow:
    row = await pq.participant(conn, session_id, participant_id)
    if row is None:
        raise NotFound("No such participant.")
    return row


async def remove(
    db: Database,
    audit: AuditTrail,
    live: LiveAccess,
    therapist: Account,
    session_id: str,
    participant_id: str,
    now: datetime,
) -> None:
    """Take a participant out of an open session: their link and cookies end at once and
    their open sockets close (4401, "link-revoked"); a guest's label is dropped. The session's
    own (primary) client stays: cancel the session instead."""
    async with db.write() as conn:
        session = await _open_session(conn, therapist, session_id)
        row = await _present(conn, session_id, participant_id)
        if row.client_id is not None and row.client_id == session.client_id:
            raise Conflict("The session's own client cannot be removed; cancel the session.")
        ended = await replace_participant_link(conn, audit, therapist, row, now)
        await pq.mark_removed(conn, row.id, now)
        await audit.record(
            conn,
            at=now,
            actor=f"account:{therapist.id}",
            action="participant.remove",
            targets=(f"session:{session_id}", f"participant:{row.id}"),
            details={"kind": row.kind.value},
        )
    for access_id in ended:
        live.end_client_access(AccessEnd.LINK_REVOKED, client_access_id=access_id)


async def reissue(
    db: Database,
    audit: AuditTrail,
    live: LiveAccess,
    therapist: Account,
    session_id: str,
    participant_id: str,
    now: datetime,
    mail: Mailer | None = None,
) -> IssuedInvite:
    """Replace one participant's link with a new one (returned once); the old link's cookies
    and open sockets end now (4401, "link-replaced"); the others' links are untouched."""
    async with db.write() as conn:
        await _open_session(conn, therapist, session_id)
        row = await _present(conn, session_id, participant_id)
        ended = await replace_participant_link(conn, audit, therapist, row, now)
        issued = await issue_invite(conn, audit, therapist, session_id, row, now, mail)
    for access_id in ended:
        live.end_client_access(AccessEnd.LINK_REPLACED, client_access_id=access_id)
    return issued


async def count_present(db: Database, session_id: str) -> int:
    """How many people besides the therapist take part in the session (a visit's own page
    says who else may see and hear them)."""
    async with db.read() as conn:
        return len(await pq.present(conn, session_id))


def as_seen_by(session: TherapySession, participant: ParticipantRow) -> TherapySession:
    """The session as one client participant's emails and pages name it: their own client id,
    alias and language (the session's primary client stays in `sessions.client_id`)."""
    if participant.client_id is None:
        raise ValueError("a guest has no client view of a session")
    return replace(
        session,
        client_id=participant.client_id,
        client_alias=participant.client_alias or "",
        client_language=participant.client_language,
    )

"""Clients, sessions and invite links for a therapist; redeeming a link for a client."""

from __future__ import annotations

import secrets
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncConnection

from privacy.vault import DecryptionError, FieldContext, KeyShredded
from server.audit import AuditTrail
from server.core.languages import LANGUAGE_CODES, N_
from server.core.links import (
    LinkState,
    LinkWindow,
    SessionStatus,
    link_closes_at,
    link_opens_at,
    link_state,
)
from server.core.models import Account, Client, IssuedInvite, TherapySession
from server.core.participants import PersonKind
from server.core.protocol import AccessEnd
from server.db import participants as pq
from server.db import scheduling as q
from server.db.engine import Database
from server.db.participants import ParticipantRow
from server.errors import Conflict, Forbidden, InvalidInput, NotFound
from server.security.tokens import looks_like_token, new_id, new_token, token_hash
from server.services.access import LiveAccess, access_ref

if TYPE_CHECKING:
    from server.services.email import Mailer
    from server.vault_store import ClientVault

MAX_ALIAS_CHARS = 64
MIN_SESSION_MINUTES = 5
MAX_SESSION_MINUTES = 480
MAX_SCHEDULE_AHEAD = timedelta(days=731)


def clean_alias(raw: str) -> str:
    """A pseudonymous alias: 1 to 64 printable characters, whitespace collapsed."""
    alias = " ".join(raw.split())
    if not alias:
        raise InvalidInput("Enter an alias, such as initials.")
    if len(alias) > MAX_ALIAS_CHARS:
        raise InvalidInput(f"Keep the alias to {MAX_ALIAS_CHARS} characters.")
    if any(unicodedata.category(ch).startswith("C") for ch in alias):
        raise InvalidInput("The alias contains characters that cannot be shown.")
    return alias


def session_window(starts_at: datetime, minutes: int) -> tuple[datetime, datetime]:
    """Validated (start, end) of a session."""
    if starts_at.tzinfo is None:
        raise InvalidInput("Give the start time with a time zone, e.g. 2026-11-23T14:00:00Z.")
    if not MIN_SESSION_MINUTES <= minutes <= MAX_SESSION_MINUTES:
        raise InvalidInput(
            f"A session lasts between {MIN_SESSION_MINUTES} and {MAX_SESSION_MINUTES} minutes."
        )
    try:
        starts_at = starts_at.astimezone(UTC)
        return starts_at, starts_at + timedelta(minutes=minutes)
    except OverflowError:
        raise InvalidInput("That start time is out of range.") from None


async def create_client(
    db: Database, audit: AuditTrail, therapist: Account, alias: str, now: datetime
) -> Client:
    """Add a client known by a pseudonymous alias."""
    alias = clean_alias(alias)
    client_id = new_id()
    async with db.write() as conn:
        if await q.alias_taken(conn, therapist.id, alias):
            raise Conflict("You already have a client with this alias.")
        await q.insert_client(
            conn, client_id=client_id, therapist_id=therapist.id, alias=alias, now=now
        )
        await audit.record(
            conn,
            at=now,
            actor=f"account:{therapist.id}",
            action="client.create",
            targets=(f"client:{client_id}",),
        )
    return Client(id=client_id, therapist_id=therapist.id, alias=alias, created_at=now)


async def list_clients(db: Database, therapist: Account) -> list[Client]:
    """The therapist's own clients."""
    async with db.read() as conn:
        return await q.list_clients(conn, therapist.id)


async def own_client(conn: AsyncConnection, therapist: Account, client_id: str) -> Client:
    """One of the therapist's clients, or NotFound (also for other therapists' ids): the check
    every operation on a client starts with, inside its own transaction."""
    client = await q.client_for(conn, therapist.id, client_id)
    if client is None:
        raise NotFound("No such client.")
    return client


async def get_client(db: Database, therapist: Account, client_id: str) -> Client:
    """One of the therapist's clients, or NotFound (also for other therapists' ids)."""
    async with db.read() as conn:
        return await own_client(conn, therapist, client_id)


async def set_client_language(
    db: Database,
    audit: AuditTrail,
    client_id: str,
    language: str | None,
    now: datetime,
    *,
    therapist: Account | None = None,
) -> None:
    """Remember the language a client's pages open in (None: their browser's, then the
    clinic's). Set by the client (no `therapist`) or by their own therapist; audited."""
    if language is not None and language not in LANGUAGE_CODES:
        raise InvalidInput("Choose one of the offered languages.")
    async with db.write() as conn:
        if therapist is not None:
            await own_client(conn, therapist, client_id)
        await q.set_client_language(conn, client_id, language)
        await audit.record(
            conn,
            at=now,
            actor=f"account:{therapist.id}" if therapist else f"client:{client_id}",
            action="client.language",
            targets=(f"client:{client_id}",),
            details={"language": language},
        )


async def client_by_alias(db: Database, therapist: Account, alias: str) -> Client:
    """The therapist's client with this alias, or NotFound (CLI lookups)."""
    async with db.read() as conn:
        client = await q.client_by_alias(conn, therapist.id, clean_alias(alias))
    if client is None:
        raise NotFound(f"No client with alias {alias!r} for this therapist.")
    return client


async def issue_invite(
    conn: AsyncConnection,
    audit: AuditTrail,
    therapist: Account,
    session_id: str,
    participant: ParticipantRow,
    now: datetime,
    mail: Mailer | None,
) -> IssuedInvite:
    """Mint a participant's link inside the caller's transaction. A client's token is sealed
    for their emails (with `mail`); a guest's link is only ever shown to the therapist."""
    token, invite_id = new_token(), new_id()
    await q.insert_invite(
        conn,
        invite_id=invite_id,
        session_id=session_id,
        participant_id=participant.id,
        token_hash=token_hash(token),
        now=now,
    )
    client_id = participant.client_id
    if mail is not None and client_id is not None:
        await mail.on_invite_issued(
            conn,
            invite_id=invite_id,
            session_id=session_id,
            client_id=client_id,
            token=token,
            now=now,
        )
    await audit.record(
        conn,
        at=now,
        actor=f"account:{therapist.id}",
        action="invite.issue",
        targets=(f"session:{session_id}", f"participant:{participant.id}"),
    )
    return IssuedInvite(
        invite_id=invite_id, session_id=session_id, token=token, participant_id=participant.id
    )


async def create_session(
    db: Database,
    audit: AuditTrail,
    therapist: Account,
    *,
    client_id: str,
    starts_at: datetime,
    minutes: int,
    now: datetime,
    mail: Mailer | None = None,
) -> tuple[TherapySession, IssuedInvite]:
    """Schedule a session with one of the therapist's clients and mint its invite link; with
    `mail`, the invitation email is queued in the same transaction."""
    starts_at, ends_at = session_window(starts_at, minutes)
    if ends_at <= now:
        raise InvalidInput("That session would already be over; pick a later time.")
    if starts_at - now > MAX_SCHEDULE_AHEAD:
        raise InvalidInput("Sessions can be scheduled up to two years ahead.")
    session_id = new_id()
    async with db.write() as conn:
        client = await own_client(conn, therapist, client_id)
        await q.insert_session(
            conn,
            session_id=session_id,
            therapist_id=therapist.id,
            client_id=client.id,
            starts_at=starts_at,
            ends_at=ends_at,
            now=now,
        )
        await audit.record(
            conn,
            at=now,
            actor=f"account:{therapist.id}",
            action="session.create",
            targets=(f"session:{session_id}", f"client:{client.id}"),
        )
        primary = await add_primary_participant(conn, session_id, client.id, now)
        invite = await issue_invite(conn, audit, therapist, session_id, primary, now, mail)
        session = TherapySession(
            id=session_id,
            therapist_id=therapist.id,
            client_id=client.id,
            client_alias=client.alias,
            starts_at=starts_at,
            ends_at=ends_at,
            status=SessionStatus.SCHEDULED,
            created_at=now,
            invite_active=True,
        )
        if mail is not None:
            await mail.queue_invitation(conn, session, now)
    return session, invite


async def list_sessions(
    db: Database, therapist: Account, *, client_id: str | None = None
) -> list[TherapySession]:
    """The therapist's own sessions, soonest first."""
    async with db.read() as conn:
        return await q.list_sessions(conn, therapist.id, client_id=client_id)


async def own_session(conn: AsyncConnection, therapist: Account, session_id: str) -> TherapySession:
    """One of the therapist's sessions, or NotFound (someone else's is not found either)."""
    session = await q.session_for(conn, therapist.id, session_id)
    if session is None:
        raise NotFound("No such session.")
    return session


async def get_session(db: Database, therapist: Account, session_id: str) -> TherapySession:
    """One of the therapist's sessions, or NotFound."""
    async with db.read() as conn:
        return await own_session(conn, therapist, session_id)


def require_open(session: TherapySession) -> None:
    if session.status in (SessionStatus.ENDED, SessionStatus.CANCELLED):
        raise Conflict(f"This session is {session.status.value}; its link cannot change.")


async def _revoke_links(
    conn: AsyncConnection, audit: AuditTrail, therapist: Account, session_id: str, now: datetime
) -> None:
    """Revoke the session's active links, audited when there was one."""
    if await q.revoke_invites(conn, session_id, now):
        await audit.record(
            conn,
            at=now,
            actor=f"account:{therapist.id}",
            action="invite.revoke",
            targets=(f"session:{session_id}",),
        )


async def reschedule_session(
    db: Database,
    audit: AuditTrail,
    live: LiveAccess,
    therapist: Account,
    session_id: str,
    *,
    starts_at: datetime,
    minutes: int,
    new_link: bool,
    now: datetime,
    mail: Mailer | None = None,
) -> IssuedInvite | None:
    """Move a scheduled session to a new time (audited as `session.reschedule`, with the old
    and new times). The participants' links keep working for the new time, or, when the
    therapist asks for it, each is replaced by a new one (the primary client's is returned,
    the others are re-issued from the participants list; the old links' sockets close). With
    `mail`, the client's calendar entry moves too (same UID, higher SEQUENCE)."""
    starts_at, ends_at = session_window(starts_at, minutes)
    if ends_at <= now:
        raise InvalidInput("That session would already be over; pick a later time.")
    if starts_at - now > MAX_SCHEDULE_AHEAD:
        raise InvalidInput("Sessions can be scheduled up to two years ahead.")
    async with db.write() as conn:
        session = await own_session(conn, therapist, session_id)
        require_open(session)
        await q.set_session_times(conn, session_id, starts_at, ends_at)
        await audit.record(
            conn,
            at=now,
            actor=f"account:{therapist.id}",
            action="session.reschedule",
            targets=(f"session:{session_id}", f"client:{session.client_id}"),
            details={
                "from": session.starts_at.isoformat(),
                "to": starts_at.isoformat(),
                "minutes": minutes,
                "new_link": new_link,
            },
        )
        issued = None
        if new_link:
            await _revoke_links(conn, audit, therapist, session_id, now)
            await q.delete_client_sessions(conn, session_id)
            for person in await pq.present(conn, session_id):
                minted = await issue_invite(conn, audit, therapist, session_id, person, now, mail)
                if person.client_id == session.client_id:
                    issued = minted
        if mail is not None:
            moved = await q.session_by_id(conn, session_id)
            if moved is not None:
                await mail.queue_reschedule_email(conn, moved, now)
    if issued is not None:
        live.end_client_access(AccessEnd.LINK_REPLACED, session_id=session_id)
    return issued


async def reissue_invite(
    db: Database,
    audit: AuditTrail,
    live: LiveAccess,
    therapist: Account,
    session_id: str,
    now: datetime,
    mail: Mailer | None = None,
) -> IssuedInvite:
    """Revoke the primary client's current link and mint a new one (reminders from now on
    carry the new one); the old link's cookies and their open sockets end now (4401,
    "link-replaced"). Other participants' links are re-issued one by one
    (`server/services/participants.py`)."""
    async with db.write() as conn:
        session = await own_session(conn, therapist, session_id)
        require_open(session)
        primary = await pq.participant_of_client(conn, session_id, session.client_id)
        if primary is None:
            raise NotFound("No such participant.")
        ended = await replace_participant_link(conn, audit, therapist, primary, now)
        issued = await issue_invite(conn, audit, therapist, session_id, primary, now, mail)
    for access_id in ended:
        live.end_client_access(AccessEnd.LINK_REPLACED, client_access_id=access_id)
    return issued


async def replace_participant_link(
    conn: AsyncConnection,
    audit: AuditTrail,
    therapist: Account,
    participant: ParticipantRow,
    now: datetime,
) -> list[str]:
    """Revoke one participant's link and end its cookies (audited when a link was live);
    returns the ended cookies' access ids, for closing their sockets after the commit."""
    if await pq.revoke_invites(conn, participant.id, now):
        await audit.record(
            conn,
            at=now,
            actor=f"account:{therapist.id}",
            action="invite.revoke",
            targets=(f"session:{participant.session_id}", f"participant:{participant.id}"),
        )
    return [access_ref(h) for h in await pq.delete_cookies(conn, participant.id)]


async def add_primary_participant(
    conn: AsyncConnection, session_id: str, client_id: str, now: datetime
) -> ParticipantRow:
    """A new session's client takes part as position 1."""
    participant_id = new_id()
    await pq.insert_participant(
        conn,
        participant_id=participant_id,
        session_id=session_id,
        kind=PersonKind.CLIENT,
        client_id=client_id,
        position=1,
        now=now,
    )
    found = await pq.participant(conn, session_id, participant_id)
    assert found is not None  # just written in this transaction
    return found


async def revoke_invite(
    db: Database,
    audit: AuditTrail,
    live: LiveAccess,
    therapist: Account,
    session_id: str,
    now: datetime,
) -> None:
    """Revoke the session's link: its cookies end everywhere, also after the session's end,
    and their open sockets close now (4401, "link-revoked")."""
    async with db.write() as conn:
        await own_session(conn, therapist, session_id)
        await _revoke_links(conn, audit, therapist, session_id, now)
        await q.delete_client_sessions(conn, session_id)
    live.end_client_access(AccessEnd.LINK_REVOKED, session_id=session_id)


async def keep_only_device(db: Database, session_id: str, client_access_id: str) -> list[str]:
    """The therapist admitted this cookie's device: when it was "another device", it becomes
    the link's one device and the same participant's other cookies end. Returns the ended
    cookies' access ids (none when the admitted device already was the link's)."""
    async with db.write() as conn:
        devices = await q.client_session_devices(conn, session_id)
        mine = next((d for d in devices if access_ref(d[0]) == client_access_id), None)
        if mine is None or not mine[1]:
            return []
        ended = await q.keep_only_client_session(conn, mine[2], mine[0])
    return [access_ref(h) for h in ended]


async def close_session(
    db: Database,
    audit: AuditTrail,
    therapist: Account,
    session_id: str,
    status: SessionStatus,
    now: datetime,
    mail: Mailer | None = None,
) -> None:
    """End or cancel a session: its link and client cookies stop working at once; with
    `mail`, unsent emails are dropped and a cancellation updates the client's calendar."""
    async with db.write() as conn:
        session = await own_session(conn, therapist, session_id)
        require_open(session)
        await q.set_session_status(conn, session_id, status, now)
        if mail is not None:
            await mail.on_session_closed(conn, session, status, now)
        action = "session.end" if status is SessionStatus.ENDED else "session.cancel"
        await audit.record(
            conn,
            at=now,
            actor=f"account:{therapist.id}",
            action=action,
            targets=(f"session:{session_id}",),
        )


@dataclass(frozen=True)
class ClientEntry:
    """A redeemed link: the client's cookie token (never stored) and where to send them."""

    session_id: str
    cookie_token: str
    expires_at: datetime


@dataclass(frozen=True)
class TooEarly:
    """A real link opened before its window: when it opens and when the session starts (told
    to the client, since it says nothing another visitor could use)."""

    opens_at: datetime
    starts_at: datetime


async def redeem_invite(
    db: Database,
    audit: AuditTrail,
    token: str,
    window: LinkWindow,
    now: datetime,
    *,
    replacing: str | None = None,
) -> ClientEntry | TooEarly | LinkState:
    """Swap a valid invite token for a client cookie; otherwise say why (never which).
    `replacing` is the client cookie this browser already holds: opening the link again in
    the same browser replaces it (and keeps its standing) instead of being another device."""
    if not looks_like_token(token):
        return LinkState.EXPIRED
    async with db.write() as conn:
        found = await q.invite_by_token_hash(conn, token_hash(token))
        if found is None:
            return LinkState.EXPIRED
        invite_id, session_id, facts = found.invite_id, found.session_id, found.facts
        state = link_state(facts, window, now)
        if state is LinkState.TOO_EARLY:
            return TooEarly(link_opens_at(facts, window), facts.starts_at)
        if state is not LinkState.VALID:
            return state
        cookie_token = new_token()
        expires_at = link_closes_at(facts, window)
        # One device per person: while another cookie of this participant lives, this one
        # waits as "another device" until the therapist admits it.
        kept = None
        if replacing is not None and looks_like_token(replacing):
            kept = await q.take_client_session(conn, token_hash(replacing), session_id)
        if kept is not None:
            another_device = kept
        else:
            another_device = await q.has_live_client_session(conn, found.participant_id, now)
        await q.insert_client_session(
            conn,
            token_hash=token_hash(cookie_token),
            session_id=session_id,
            invite_id=invite_id,
            participant_id=found.participant_id,
            csrf_token=secrets.token_urlsafe(32),
            now=now,
            expires_at=expires_at,
            another_device=another_device,
        )
        await q.mark_invite_redeemed(conn, invite_id, now)
        await audit.record(
            conn,
            at=now,
            actor="client",
            action="invite.redeem",
            targets=(f"session:{session_id}", f"participant:{found.participant_id}"),
        )
    return ClientEntry(session_id=session_id, cookie_token=cookie_token, expires_at=expires_at)


@dataclass(frozen=True)
class ClientVisit:
    """A person recognised by their link's cookie: a client, or a guest of the session.

    `person_client_id` is the client record this person is (None for a guest); `label` the
    name the room shows (the client's alias or the guest's label)."""

    session: TherapySession
    csrf_token: str
    access_id: str = ""  # this cookie's id for live sockets and limits (never the token)
    another_device: bool = False  # opened while another device held the link; not admitted
    participant_id: str = ""
    kind: PersonKind = PersonKind.CLIENT
    person_client_id: str | None = None
    label: str = ""
    language: str | None = None  # this person's remembered language (a client's own)

    @property
    def after_session(self) -> bool:
        """The session has ended: the cookie is good for the after-session check-in only."""
        return self.session.status is SessionStatus.ENDED

    @property
    def may_act(self) -> bool:
        """Whether this cookie may change anything for the client (consents, export, erasure,
        check-ins): only while the session is open and on the link's admitted device."""
        return not self.after_session and not self.another_device

    @property
    def is_guest(self) -> bool:
        """A guest (interpreter, guardian, support person) has no client record."""
        return self.kind is PersonKind.GUEST

    @property
    def is_session_client(self) -> bool:
        """This person is the session's own (first) client, not one added to it."""
        return self.person_client_id == self.session.client_id

    @property
    def client_id(self) -> str:
        """The client record this visit speaks for (their own, not necessarily the session's
        primary client's); a guest has none, so every client-data page refuses them here."""
        if self.person_client_id is None:
            raise Forbidden(GUEST_NO_RECORD, code="guest")
        return self.person_client_id

    @property
    def consent_subject(self) -> str:
        """Whose consent records this person's decisions are: a client's id, or a guest's
        participant id (docs/privacy.md, "Participants")."""
        return self.person_client_id or self.participant_id


GUEST_NO_RECORD = N_("This page is for clients. As a guest of the session you have no record here.")


async def resolve_client(
    db: Database, cookie_token: str, now: datetime, vault: ClientVault | None = None
) -> ClientVisit | None:
    """The person a link cookie grants, while its invite stands and the window is open. A
    guest's label is unsealed with `vault` (without one, the guest is "Guest")."""
    if not looks_like_token(cookie_token):
        return None
    async with db.read() as conn:
        found = await q.client_session(conn, token_hash(cookie_token), now)
        if found is None:
            return None
        session = await q.session_by_id(conn, found.session_id)
        person = await pq.participant(conn, found.session_id, found.participant_id)
        if session is None or person is None:
            return None
        label = await person_label(conn, vault, session, person)
    return ClientVisit(
        session=session,
        csrf_token=found.csrf_token,
        access_id=access_ref(token_hash(cookie_token)),
        another_device=found.another_device,
        participant_id=person.id,
        kind=person.kind,
        person_client_id=person.client_id,
        label=label,
        language=person.client_language,
    )


def guest_label_context(session: TherapySession, participant_id: str) -> FieldContext:
    """Where a guest's sealed label lives: under the session's primary client's data key, so
    shredding that client makes the label unreadable."""
    return FieldContext("session_participants", participant_id, "label", session.client_id)


async def person_label(
    conn: AsyncConnection,
    vault: ClientVault | None,
    session: TherapySession,
    person: ParticipantRow,
) -> str:
    """The name the room shows for a participant: a client's alias, a guest's label."""
    if person.kind is PersonKind.CLIENT:
        return person.client_alias or ""
    if vault is None or person.label_ciphertext is None:
        return GUEST_FALLBACK_LABEL
    try:
        return await vault.decrypt_text(
            conn, guest_label_context(session, person.id), person.label_ciphertext
        )
    except (KeyShredded, DecryptionError):
        return GUEST_FALLBACK_LABEL


GUEST_FALLBACK_LABEL = "Guest"

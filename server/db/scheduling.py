"""Client, therapy-session, invite and client-cookie queries (always scoped to a therapist)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from server.core.links import InviteFacts, SessionStatus
from server.core.models import Client, TherapySession
from server.db import tables
from server.db.tables import (
    AnyRow,
    client_sessions,
    clients,
    invite_seals,
    invites,
    therapy_sessions,
)


def _client(row: AnyRow) -> Client:
    m = row._mapping
    return Client(
        id=m["id"],
        therapist_id=m["therapist_id"],
        alias=m["alias"],
        created_at=m["created_at"],
        preferred_language=m["preferred_language"],
    )


async def set_client_language(conn: AsyncConnection, client_id: str, language: str | None) -> None:
    """Store a client's preferred language (None: no preference)."""
    await conn.execute(
        clients.update().where(clients.c.id == client_id).values(preferred_language=language)
    )


async def insert_client(
    conn: AsyncConnection, *, client_id: str, therapist_id: str, alias: str, now: datetime
) -> None:
    """Add a client under a therapist."""
    await conn.execute(
        clients.insert().values(
            id=client_id, therapist_id=therapist_id, alias=alias, created_at=now
        )
    )


async def delete_client(conn: AsyncConnection, client_id: str) -> bool:
    """Delete a client's alias row (its sessions, invites, cookies and notes cascade); True
    when there was one."""
    result = await conn.execute(clients.delete().where(clients.c.id == client_id))
    return result.rowcount > 0


async def alias_taken(conn: AsyncConnection, therapist_id: str, alias: str) -> bool:
    """True when this therapist already has a client with this alias."""
    found = await conn.scalar(
        sa.select(clients.c.id).where(
            clients.c.therapist_id == therapist_id, clients.c.alias == alias
        )
    )
    return found is not None


async def list_clients(conn: AsyncConnection, therapist_id: str) -> list[Client]:
    """A therapist's clients by alias."""
    rows = await conn.execute(
        sa.select(clients).where(clients.c.therapist_id == therapist_id).order_by(clients.c.alias)
    )
    return [_client(row) for row in rows]


async def client_by_id(conn: AsyncConnection, client_id: str) -> Client | None:
    """The client with this id, whoever its therapist (the client's own requests)."""
    row = (await conn.execute(sa.select(clients).where(clients.c.id == client_id))).first()
    return _client(row) if row else None


async def client_for(conn: AsyncConnection, therapist_id: str, client_id: str) -> Client | None:
    """The client when it belongs to this therapist, else None."""
    row = (
        await conn.execute(
            sa.select(clients).where(
                clients.c.id == client_id, clients.c.therapist_id == therapist_id
            )
        )
    ).first()
    return _client(row) if row else None


async def client_by_alias(conn: AsyncConnection, therapist_id: str, alias: str) -> Client | None:
    """The therapist's client with this alias, else None."""
    row = (
        await conn.execute(
            sa.select(clients).where(
                clients.c.alias == alias, clients.c.therapist_id == therapist_id
            )
        )
    ).first()
    return _client(row) if row else None


_active_invite = (
    sa.select(sa.func.count())
    .select_from(invites)
    .where(invites.c.session_id == therapy_sessions.c.id, invites.c.revoked_at.is_(None))
    .scalar_subquery()
)

_SESSION_COLUMNS = (
    therapy_sessions,
    clients.c.alias.label("client_alias"),
    clients.c.preferred_language.label("client_language"),
    _active_invite.label("active_invites"),
)


def _session(row: AnyRow) -> TherapySession:
    m = row._mapping
    return TherapySession(
        id=m["id"],
        therapist_id=m["therapist_id"],
        client_id=m["client_id"],
        client_alias=m["client_alias"],
        starts_at=m["starts_at"],
        ends_at=m["ends_at"],
        status=SessionStatus(m["status"]),
        created_at=m["created_at"],
        invite_active=bool(m["active_invites"]),
        client_language=m["client_language"],
    )


async def insert_session(
    conn: AsyncConnection,
    *,
    session_id: str,
    therapist_id: str,
    client_id: str,
    starts_at: datetime,
    ends_at: datetime,
    now: datetime,
) -> None:
    """Schedule a session."""
    await conn.execute(
        therapy_sessions.insert().values(
            id=session_id,
            therapist_id=therapist_id,
            client_id=client_id,
            starts_at=starts_at,
            ends_at=ends_at,
            status=SessionStatus.SCHEDULED.value,
            created_at=now,
        )
    )


async def list_sessions(
    conn: AsyncConnection, therapist_id: str, *, client_id: str | None = None
) -> list[TherapySession]:
    """A therapist's sessions, soonest first."""
    query = (
        sa.select(*_SESSION_COLUMNS)
        .join(clients, clients.c.id == therapy_sessions.c.client_id)
        .where(therapy_sessions.c.therapist_id == therapist_id)
        .order_by(therapy_sessions.c.starts_at)
    )
    if client_id is not None:
        query = query.where(therapy_sessions.c.client_id == client_id)
    return [_session(row) for row in await conn.execute(query)]


async def session_for(
    conn: AsyncConnection, therapist_id: str, session_id: str
) -> TherapySession | None:
    """The session when it belongs to this therapist, else None."""
    row = (
        await conn.execute(
            sa.select(*_SESSION_COLUMNS)
            .join(clients, clients.c.id == therapy_sessions.c.client_id)
            .where(
                therapy_sessions.c.id == session_id,
                therapy_sessions.c.therapist_id == therapist_id,
            )
        )
    ).first()
    return _session(row) if row else None


async def session_by_id(conn: AsyncConnection, session_id: str) -> TherapySession | None:
    """The session regardless of owner (for the client's cookie path)."""
    row = (
        await conn.execute(
            sa.select(*_SESSION_COLUMNS)
            .join(clients, clients.c.id == therapy_sessions.c.client_id)
            .where(therapy_sessions.c.id == session_id)
        )
    ).first()
    return _session(row) if row else None


async def set_session_times(
    conn: AsyncConnection, session_id: str, starts_at: datetime, ends_at: datetime
) -> None:
    """Move a session to a new time window."""
    await conn.execute(
        therapy_sessions.update()
        .where(therapy_sessions.c.id == session_id)
        .values(starts_at=starts_at, ends_at=ends_at)
    )


async def set_session_status(
    conn: AsyncConnection, session_id: str, status: SessionStatus, now: datetime
) -> None:
    """Move a session along; ending or cancelling revokes its links, cancelling also the
    client cookies (an ended session's cookie stays for the after-session check-in)."""
    values: dict[str, object] = {"status": status.value}
    if status in (SessionStatus.ENDED, SessionStatus.CANCELLED):
        values["ended_at"] = now
        await revoke_invites(conn, session_id, now)
    if status is SessionStatus.CANCELLED:
        await conn.execute(
            client_sessions.delete().where(client_sessions.c.session_id == session_id)
        )
    await conn.execute(
        therapy_sessions.update().where(therapy_sessions.c.id == session_id).values(**values)
    )


# --- invites and client cookies --------------------------------------------------------------


async def insert_invite(
    conn: AsyncConnection,
    *,
    invite_id: str,
    session_id: str,
    participant_id: str,
    token_hash: str,
    now: datetime,
) -> None:
    """Store a new invite of one participant by its token hash."""
    await conn.execute(
        invites.insert().values(
            id=invite_id,
            session_id=session_id,
            participant_id=participant_id,
            token_hash=token_hash,
            created_at=now,
        )
    )


async def revoke_invites(conn: AsyncConnection, session_id: str, now: datetime) -> int:
    """Revoke every live invite of a session (and forget its sealed token, if any)."""
    await conn.execute(invite_seals.delete().where(invite_seals.c.session_id == session_id))
    result = await conn.execute(
        invites.update()
        .where(invites.c.session_id == session_id, invites.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return result.rowcount


@dataclass(frozen=True)
class FoundInvite:
    """An invite looked up by its token hash: whose it is and the facts its validity needs."""

    invite_id: str
    session_id: str
    participant_id: str
    facts: InviteFacts


async def invite_by_token_hash(conn: AsyncConnection, token_hash: str) -> FoundInvite | None:
    """The invite with this token hash, with the facts for the validity rule."""
    row = (
        await conn.execute(
            sa.select(
                invites.c.id,
                invites.c.session_id,
                invites.c.participant_id,
                invites.c.revoked_at,
                therapy_sessions.c.starts_at,
                therapy_sessions.c.ends_at,
                therapy_sessions.c.status,
            )
            .join(therapy_sessions, therapy_sessions.c.id == invites.c.session_id)
            .where(invites.c.token_hash == token_hash)
        )
    ).first()
    if row is None:
        return None
    m = row._mapping
    facts = InviteFacts(
        starts_at=m["starts_at"],
        ends_at=m["ends_at"],
        status=SessionStatus(m["status"]),
        revoked_at=m["revoked_at"],
    )
    return FoundInvite(m["id"], m["session_id"], m["participant_id"], facts)


async def mark_invite_redeemed(conn: AsyncConnection, invite_id: str, now: datetime) -> None:
    """Record the first redemption time (later ones keep the first)."""
    await conn.execute(
        invites.update()
        .where(invites.c.id == invite_id, invites.c.first_redeemed_at.is_(None))
        .values(first_redeemed_at=now)
    )


async def insert_client_session(
    conn: AsyncConnection,
    *,
    token_hash: str,
    session_id: str,
    invite_id: str,
    participant_id: str,
    csrf_token: str,
    now: datetime,
    expires_at: datetime,
    another_device: bool = False,
) -> None:
    """Remember a participant's cookie (by hash) for one therapy session."""
    await conn.execute(
        client_sessions.insert().values(
            token_hash=token_hash,
            session_id=session_id,
            invite_id=invite_id,
            participant_id=participant_id,
            csrf_token=csrf_token,
            created_at=now,
            expires_at=expires_at,
            another_device=another_device,
        )
    )


async def take_client_session(
    conn: AsyncConnection, token_hash: str, session_id: str
) -> bool | None:
    """Delete one client cookie of this session (being replaced in the same browser); its
    "another device" flag, or None when there is no such cookie."""
    flag = await conn.scalar(
        sa.select(client_sessions.c.another_device).where(
            client_sessions.c.token_hash == token_hash,
            client_sessions.c.session_id == session_id,
        )
    )
    if flag is None:
        return None
    await conn.execute(client_sessions.delete().where(client_sessions.c.token_hash == token_hash))
    return bool(flag)


async def has_live_client_session(
    conn: AsyncConnection, participant_id: str, now: datetime
) -> bool:
    """Whether a cookie of this participant is still live (a new one is another device)."""
    found = await conn.scalar(
        sa.select(sa.func.count())
        .select_from(client_sessions)
        .where(
            client_sessions.c.participant_id == participant_id,
            client_sessions.c.expires_at > now,
        )
    )
    return int(found or 0) > 0


async def delete_client_sessions(conn: AsyncConnection, session_id: str) -> list[str]:
    """End every client cookie of a session; returns their token hashes."""
    hashes = list(
        await conn.scalars(
            sa.select(client_sessions.c.token_hash).where(
                client_sessions.c.session_id == session_id
            )
        )
    )
    await conn.execute(client_sessions.delete().where(client_sessions.c.session_id == session_id))
    return hashes


async def client_session_devices(
    conn: AsyncConnection, session_id: str
) -> list[tuple[str, bool, str]]:
    """(token hash, another device?, participant id) of a session's client cookies (a handful
    at most)."""
    rows = await conn.execute(
        sa.select(
            client_sessions.c.token_hash,
            client_sessions.c.another_device,
            client_sessions.c.participant_id,
        ).where(client_sessions.c.session_id == session_id)
    )
    return [(row[0], bool(row[1]), row[2]) for row in rows]


async def keep_only_client_session(
    conn: AsyncConnection, participant_id: str, token_hash: str
) -> list[str]:
    """The cookie `token_hash` becomes its participant's one device: the participant's other
    cookies end (their token hashes are returned) and it is no longer "another device"."""
    others = sa.and_(
        client_sessions.c.participant_id == participant_id,
        client_sessions.c.token_hash != token_hash,
    )
    hashes = list(await conn.scalars(sa.select(client_sessions.c.token_hash).where(others)))
    await conn.execute(client_sessions.delete().where(others))
    await conn.execute(
        client_sessions.update()
        .where(client_sessions.c.token_hash == token_hash)
        .values(another_device=False)
    )
    return hashes


@dataclass(frozen=True)
class FoundCookie:
    """A live participant cookie: its session, participant, CSRF token and device standing."""

    session_id: str
    participant_id: str
    csrf_token: str
    another_device: bool


async def client_session(
    conn: AsyncConnection, token_hash: str, now: datetime
) -> FoundCookie | None:
    """The live participant cookie with this hash, whose invite still stands, or whose invite
    ended with the session (not before it)."""
    row = (
        await conn.execute(
            sa.select(
                client_sessions.c.session_id,
                client_sessions.c.participant_id,
                client_sessions.c.csrf_token,
                client_sessions.c.another_device,
            )
            .join(invites, invites.c.id == client_sessions.c.invite_id)
            .join(therapy_sessions, therapy_sessions.c.id == client_sessions.c.session_id)
            .where(
                client_sessions.c.token_hash == token_hash,
                client_sessions.c.expires_at > now,
                # A revoked or re-issued link ends its cookies (they are also deleted); an
                # ended session keeps them until the grace period is over, for the
                # after-session check-in only — unless the link was revoked before the end.
                sa.or_(
                    invites.c.revoked_at.is_(None),
                    sa.and_(
                        therapy_sessions.c.status == SessionStatus.ENDED.value,
                        invites.c.revoked_at >= therapy_sessions.c.ended_at,
                    ),
                ),
            )
        )
    ).first()
    if row is None:
        return None
    m = row._mapping
    return FoundCookie(
        m["session_id"], m["participant_id"], m["csrf_token"], bool(m["another_device"])
    )


async def all_clients_for_holds(conn: AsyncConnection) -> list[tuple[str, str, datetime]]:
    """(client id, therapist's email, when the client was added) of every client, for the
    admin's legal holds: who treats them and since when — not even the alias, which admins
    never see."""
    rows = await conn.execute(
        sa.select(tables.clients.c.id, tables.accounts.c.email, tables.clients.c.created_at)
        .join(tables.accounts, tables.accounts.c.id == tables.clients.c.therapist_id)
        .order_by(tables.accounts.c.email, tables.clients.c.created_at)
    )
    return [(row.id, row.email, row.created_at) for row in rows]

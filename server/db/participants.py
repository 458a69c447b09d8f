"""Session participant queries: who besides the therapist takes part, and their links."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from server.core.participants import PersonKind
from server.db.tables import (
    AnyRow,
    client_sessions,
    clients,
    invite_seals,
    invites,
    session_participants,
)

_p = session_participants


@dataclass(frozen=True)
class ParticipantRow:
    """A participant as stored: a guest's label still sealed (`label_ciphertext`)."""

    id: str
    session_id: str
    kind: PersonKind
    client_id: str | None
    client_alias: str | None
    client_language: str | None
    label_ciphertext: bytes | None
    position: int
    created_at: datetime
    link_active: bool
    link_opened: bool


_live_invite = (
    sa.select(sa.func.count())
    .select_from(invites)
    .where(invites.c.participant_id == _p.c.id, invites.c.revoked_at.is_(None))
    .scalar_subquery()
)
_opened_invite = (
    sa.select(sa.func.count())
    .select_from(invites)
    .where(
        invites.c.participant_id == _p.c.id,
        invites.c.revoked_at.is_(None),
        invites.c.first_redeemed_at.is_not(None),
    )
    .scalar_subquery()
)

_COLUMNS = (
    _p,
    clients.c.alias.label("client_alias"),
    clients.c.preferred_language.label("client_language"),
    _live_invite.label("live_invites"),
    _opened_invite.label("opened_invites"),
)


def _row(row: AnyRow) -> ParticipantRow:
    m = row._mapping
    return ParticipantRow(
        id=m["id"],
        session_id=m["session_id"],
        kind=PersonKind(m["kind"]),
        client_id=m["client_id"],
        client_alias=m["client_alias"],
        client_language=m["client_language"],
        label_ciphertext=m["label_ciphertext"],
        position=m["position"],
        created_at=m["created_at"],
        link_active=bool(m["live_invites"]),
        link_opened=bool(m["opened_invites"]),
    )


def _select() -> sa.Select[tuple[object, ...]]:
    return sa.select(*_COLUMNS).outerjoin(clients, clients.c.id == _p.c.client_id)


async def insert_participant(
    conn: AsyncConnection,
    *,
    participant_id: str,
    session_id: str,
    kind: PersonKind,
    client_id: str | None,
    position: int,
    now: datetime,
) -> None:
    """Add a person to a session (a guest's sealed label is set with `set_label`)."""
    await conn.execute(
        _p.insert().values(
            id=participant_id,
            session_id=session_id,
            kind=kind.value,
            client_id=client_id,
            position=position,
            created_at=now,
        )
    )


async def set_label(conn: AsyncConnection, participant_id: str, ciphertext: bytes) -> None:
    """Store a guest's sealed label."""
    await conn.execute(
        _p.update().where(_p.c.id == participant_id).values(label_ciphertext=ciphertext)
    )


async def present(conn: AsyncConnection, session_id: str) -> list[ParticipantRow]:
    """The session's participants who have not been removed, by position."""
    rows = await conn.execute(
        _select()
        .where(_p.c.session_id == session_id, _p.c.removed_at.is_(None))
        .order_by(_p.c.position)
    )
    return [_row(row) for row in rows]


async def participant(
    conn: AsyncConnection, session_id: str, participant_id: str
) -> ParticipantRow | None:
    """One present participant of this session, else None (removed ones are gone)."""
    row = (
        await conn.execute(
            _select().where(
                _p.c.id == participant_id,
                _p.c.session_id == session_id,
                _p.c.removed_at.is_(None),
            )
        )
    ).first()
    return _row(row) if row else None


async def participant_of_client(
    conn: AsyncConnection, session_id: str, client_id: str
) -> ParticipantRow | None:
    """The present participant that is this client in this session, else None."""
    row = (
        await conn.execute(
            _select().where(
                _p.c.session_id == session_id,
                _p.c.client_id == client_id,
                _p.c.removed_at.is_(None),
            )
        )
    ).first()
    return _row(row) if row else None


async def mark_removed(conn: AsyncConnection, participant_id: str, now: datetime) -> None:
    """Take a person out of the session (the row stays for the session's record; a guest's
    label is dropped with it)."""
    await conn.execute(
        _p.update().where(_p.c.id == participant_id).values(removed_at=now, label_ciphertext=None)
    )


async def revoke_invites(conn: AsyncConnection, participant_id: str, now: datetime) -> int:
    """Revoke this participant's live invite (and forget its sealed token, if any)."""
    await conn.execute(
        invite_seals.delete().where(
            invite_seals.c.invite_id.in_(
                sa.select(invites.c.id).where(invites.c.participant_id == participant_id)
            )
        )
    )
    result = await conn.execute(
        invites.update()
        .where(invites.c.participant_id == participant_id, invites.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return result.rowcount


async def delete_cookies(conn: AsyncConnection, participant_id: str) -> list[str]:
    """End every client cookie of this participant; returns their token hashes."""
    hashes = list(
        await conn.scalars(
            sa.select(client_sessions.c.token_hash).where(
                client_sessions.c.participant_id == participant_id
            )
        )
    )
    await conn.execute(
        client_sessions.delete().where(client_sessions.c.participant_id == participant_id)
    )
    return hashes


async def guest_ids_of_session(conn: AsyncConnection, session_id: str) -> list[str]:
    """Ids of every guest this session ever had (their consent records carry the id)."""
    return list(
        await conn.scalars(
            sa.select(_p.c.id).where(
                _p.c.session_id == session_id, _p.c.kind == PersonKind.GUEST.value
            )
        )
    )

"""Plain records the application passes around (no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from server.core.links import SessionStatus


class Role(StrEnum):
    """Who an account is (people who sign in)."""

    ADMIN = "admin"
    THERAPIST = "therapist"


class SessionRole(StrEnum):
    """Which side of a therapy session someone speaks for: a connection, a goal's change."""

    THERAPIST = "therapist"
    CLIENT = "client"


@dataclass(frozen=True)
class Account:
    """A therapist or admin who signs in."""

    id: str
    email: str
    role: Role
    disabled: bool
    created_at: datetime


@dataclass(frozen=True)
class Client:
    """A therapist's client, known only by a pseudonymous alias."""

    id: str
    therapist_id: str
    alias: str
    created_at: datetime
    preferred_language: str | None = None  # None: the browser's language, then the clinic's


@dataclass(frozen=True)
class TherapySession:
    """One scheduled meeting between a therapist and a client."""

    id: str
    therapist_id: str
    client_id: str
    client_alias: str
    starts_at: datetime
    ends_at: datetime
    status: SessionStatus
    created_at: datetime
    invite_active: bool
    client_language: str | None = None  # the client's preferred language, if any


@dataclass(frozen=True)
class IssuedInvite:
    """A freshly minted invite: the token exists only here, never in storage."""

    invite_id: str
    session_id: str
    token: str
    participant_id: str = ""  # whose link it is (one person, one link)

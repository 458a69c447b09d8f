"""Invite link validity (pure): when a link opens, closes, and why it does not work."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class SessionStatus(StrEnum):
    """Where a therapy session is in its life."""

    SCHEDULED = "scheduled"
    LIVE = "live"
    ENDED = "ended"
    CANCELLED = "cancelled"


class LinkState(StrEnum):
    """What opening an invite link leads to."""

    VALID = "valid"
    TOO_EARLY = "too_early"
    EXPIRED = "expired"
    REVOKED = "revoked"
    CLOSED = "closed"  # the session ended or was cancelled


@dataclass(frozen=True)
class LinkWindow:
    """The policy: how early a link opens and how long after the end it still works."""

    early: timedelta
    grace: timedelta


@dataclass(frozen=True)
class InviteFacts:
    """What the decision needs to know about an invite and its session."""

    starts_at: datetime
    ends_at: datetime
    status: SessionStatus
    revoked_at: datetime | None


def link_opens_at(facts: InviteFacts, window: LinkWindow) -> datetime:
    """The first moment the link works."""
    return facts.starts_at - window.early


def link_closes_at(facts: InviteFacts, window: LinkWindow) -> datetime:
    """The first moment the link no longer works."""
    return facts.ends_at + window.grace


def link_state(facts: InviteFacts, window: LinkWindow, now: datetime) -> LinkState:
    """Decide whether the link lets a client in at `now`, and if not, why."""
    if facts.revoked_at is not None and facts.revoked_at <= now:
        return LinkState.REVOKED
    if facts.status in (SessionStatus.ENDED, SessionStatus.CANCELLED):
        return LinkState.CLOSED
    if now < link_opens_at(facts, window):
        return LinkState.TOO_EARLY
    if now >= link_closes_at(facts, window):
        return LinkState.EXPIRED
    return LinkState.VALID

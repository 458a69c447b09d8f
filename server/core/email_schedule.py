"""What email to send when (pure): reminders due, retry back-off, and neutral subjects.

Sessions, the clinic's reminder offsets and `now` go in; due reminders come out. The email
service queues them in the outbox, the email job sends them. No clock, no database, no SMTP.

Reminder rule
    A reminder with offset `o` is due for a scheduled session once `starts_at - o <= now`,
    and only while the session has not started. When several offsets have passed (the server
    was down, or the session was booked late), only the one closest to the start goes: two
    reminders at once help no one. A reminder whose moment had already passed when the client
    was last told about the session (the invitation or a reschedule email, `announced_at`) is
    not sent either: that email just did its job. Each reminder has a dedupe key naming the
    session, the offset and the start time, so it is queued once per start time, and a
    rescheduled session gets its reminders again. A session with more than one client (a couple)
    reminds each client who wants email; a key names the client too, except for the session's
    first client (whose keys are as they always were).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

from server.core.languages import N_


class EmailKind(StrEnum):
    """Why an email is sent."""

    INVITATION = "invitation"
    REMINDER = "reminder"
    RESCHEDULE = "reschedule"
    CANCELLATION = "cancellation"
    ALERT = "alert"  # to the therapist: "you have an alert", never what it is
    MEASURES = "measures"  # to the client: a link to a short form between sessions


class OutboxStatus(StrEnum):
    """Where an outbox message stands."""

    QUEUED = "queued"  # waiting for its time (send_after)
    SENDING = "sending"  # claimed by a sender under a lease
    RETRYING = "retrying"  # a temporary failure; tried again at send_after
    SENT = "sent"  # the SMTP server accepted it
    FAILED = "failed"  # given up, with a plain reason
    CANCELLED = "cancelled"  # no longer wanted (session cancelled, address removed)


PENDING: Final = frozenset({OutboxStatus.QUEUED, OutboxStatus.RETRYING})


@dataclass(frozen=True, slots=True)
class UpcomingSession:
    """A scheduled session of a client who may get reminders."""

    session_id: str
    client_id: str
    starts_at: datetime
    announced_at: datetime  # when the client was last told about it (invitation, reschedule)
    first_client: bool = True  # the session's own client (not a client added to it)


@dataclass(frozen=True, slots=True)
class DueReminder:
    """A reminder to queue now."""

    session_id: str
    client_id: str
    offset_minutes: int
    dedupe_key: str


def reminder_key(
    session_id: str, offset_minutes: int, starts_at: datetime, client_id: str | None = None
) -> str:
    """Once per session, offset and start time (and client, for a client added to it)."""
    key = f"reminder:{session_id}:{offset_minutes}:{starts_at.strftime('%Y%m%dT%H%M%SZ')}"
    return key if client_id is None else f"{key}:{client_id}"


def due_reminders(
    sessions: Iterable[UpcomingSession],
    offsets_minutes: Sequence[int],
    queued_keys: frozenset[str],
    now: datetime,
) -> list[DueReminder]:
    """The reminders to queue at `now` (see the module docstring for the rule)."""
    due: list[DueReminder] = []
    for session in sessions:
        if now >= session.starts_at:
            continue
        passed = [o for o in offsets_minutes if session.starts_at - timedelta(minutes=o) <= now]
        if not passed:
            continue
        offset = min(passed)
        if session.starts_at - timedelta(minutes=offset) <= session.announced_at:
            continue
        added = None if session.first_client else session.client_id
        key = reminder_key(session.session_id, offset, session.starts_at, added)
        if key in queued_keys:
            continue
        due.append(DueReminder(session.session_id, session.client_id, offset, key))
    return due


def retry_delay(attempts: int, base_seconds: float, cap_seconds: float) -> timedelta:
    """Exponential back-off after the `attempts`-th failed try: base, 2·base, 4·base… capped."""
    exponent = max(0, attempts - 1)
    return timedelta(seconds=min(cap_seconds, base_seconds * (2 ** min(exponent, 30))))


def after_temporary_failure(attempts: int, max_attempts: int) -> OutboxStatus:
    """Retry while attempts remain, then give up."""
    return OutboxStatus.RETRYING if attempts < max_attempts else OutboxStatus.FAILED


_WEEKDAYS: Final = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

# A client's email subject, per kind: `%(date)s` is the day in the email's language.
CLIENT_SUBJECTS: Final = {
    EmailKind.INVITATION: N_("Your appointment on %(date)s"),
    EmailKind.REMINDER: N_("Reminder: your appointment on %(date)s"),
    EmailKind.RESCHEDULE: N_("Your appointment has moved to %(date)s"),
    EmailKind.CANCELLATION: N_("Your appointment on %(date)s is cancelled"),
}
MEASURES_SUBJECT: Final = N_("A short form from your practice")


def subject_line(
    kind: EmailKind,
    local_start: datetime,
    *,
    date: str | None = None,
    gettext: Callable[[str], str] = str,
) -> str:
    """A neutral subject naming only the day: nothing about therapy, nobody's name. `date` is
    the day as the email's language writes it (English: "Monday 23 November"), `gettext` that
    language's catalogue."""
    if kind is EmailKind.ALERT:
        return "You have a new alert in Attune"
    if kind is EmailKind.MEASURES:
        return gettext(MEASURES_SUBJECT)
    if date is None:
        day = _WEEKDAYS[local_start.weekday()]
        date = f"{day} {local_start.day} {local_start.strftime('%B')}"
    template = CLIENT_SUBJECTS.get(kind, CLIENT_SUBJECTS[EmailKind.CANCELLATION])
    return gettext(template) % {"date": date}

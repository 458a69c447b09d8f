"""Writing an email: neutral text and HTML bodies from jinja2 templates, and a calendar file.

What a message may hold is fixed here: the day and time, the join link, the unsubscribe link
and a calendar entry titled "Appointment". It is given no alias, note, score or alert, so it
cannot carry them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import icalendar
import jinja2

from server.core.email_schedule import EmailKind, subject_line
from server.settings import Settings

CALENDAR_TITLE = "Appointment"


@dataclass(frozen=True)
class Appointment:
    """What an email may say about a session."""

    session_id: str
    starts_at: datetime
    ends_at: datetime


def calendar_uid(settings: Settings, session_id: str) -> str:
    """One calendar entry per session, across every update (same UID, higher SEQUENCE)."""
    return f"{session_id}@{_domain(settings)}"


def _domain(settings: Settings) -> str:
    return urlsplit(settings.base_url).hostname or "attune.invalid"


def new_message_id(settings: Settings) -> str:
    """A Message-ID that stays with its outbox row, so a resend can be recognised."""
    return make_msgid(domain=_domain(settings))


def calendar_file(
    settings: Settings,
    appointment: Appointment,
    *,
    sequence: int,
    cancelled: bool,
    join_url: str | None,
    now: datetime,
) -> bytes:
    """An iCalendar (RFC 5545) entry: REQUEST, or CANCEL for a cancelled session."""
    cal = icalendar.Calendar()
    cal.add("prodid", "-//Attune//Appointments//EN")
    cal.add("version", "2.0")
    cal.add("method", "CANCEL" if cancelled else "REQUEST")
    event = icalendar.Event()
    event.add("uid", calendar_uid(settings, appointment.session_id))
    event.add("sequence", sequence)
    event.add("dtstamp", now)
    event.add("dtstart", appointment.starts_at)
    event.add("dtend", appointment.ends_at)
    event.add("summary", CALENDAR_TITLE)
    event.add("status", "CANCELLED" if cancelled else "CONFIRMED")
    event.add("organizer", f"mailto:{settings.email_from}")
    if join_url:
        event.add("url", join_url)
        event.add("location", join_url)
        event.add("description", f"Join from this link: {join_url}")
    cal.add_component(event)
    return bytes(cal.to_ical())


SAFETY_SUBJECT = "A client's questionnaire needs your attention"


class Composer:
    """Renders messages from the templates in client_web/templates/email/."""

    def __init__(self, settings: Settings, templates_dir: Path | None = None) -> None:
        self._settings = settings
        folder = templates_dir or Path(str(resources.files("client_web"))) / "templates" / "email"
        self._env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(folder)),
            autoescape=jinja2.select_autoescape(["html"]),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
        )
        self._zone = ZoneInfo(settings.email_timezone)

    def _when(self, at: datetime) -> str:
        local = at.astimezone(self._zone)
        date = f"{local.strftime('%A')} {local.day} {local.strftime('%B %Y')}"
        return f"{date} at {local.strftime('%H:%M')} ({local.tzname()})"

    def compose_alert(self, *, to: str, message_id: str, now: datetime) -> bytes:
        """The therapist's notice: that there is an alert, never what it is or about whom."""
        subject = subject_line(EmailKind.ALERT, now)
        values = {"subject": subject, "sign_in_url": f"{self._settings.base_url}/login"}
        message = self._headers(subject, to, message_id, now)
        message.set_content(self._env.get_template("alert.txt").render(values))
        message.add_alternative(self._env.get_template("alert.html").render(values), subtype="html")
        return message.as_bytes(policy=message.policy.clone(linesep="\r\n"))

    def compose_safety_alert(self, *, to: str, message_id: str, now: datetime) -> bytes:
        """The therapist's safety notice: a questionnaire needs attention; not whose, not what."""
        subject = SAFETY_SUBJECT
        values = {"subject": subject, "dashboard_url": f"{self._settings.base_url}/dashboard"}
        message = self._headers(subject, to, message_id, now)
        message.set_content(self._env.get_template("safety_alert.txt").render(values))
        message.add_alternative(
            self._env.get_template("safety_alert.html").render(values), subtype="html"
        )
        return message.as_bytes(policy=message.policy.clone(linesep="\r\n"))

    def compose_measures_link(
        self, *, to: str, message_id: str, url: str, expires_at: datetime, now: datetime
    ) -> bytes:
        """The client's link to a short form between sessions: no measure's name, no score,
        nothing about why (the page behind the link says what it asks)."""
        subject = subject_line(EmailKind.MEASURES, now)
        values = {"subject": subject, "url": url, "until": self._when(expires_at)}
        message = self._headers(subject, to, message_id, now)
        message.set_content(self._env.get_template("measures_link.txt").render(values))
        message.add_alternative(
            self._env.get_template("measures_link.html").render(values), subtype="html"
        )
        return message.as_bytes(policy=message.policy.clone(linesep="\r\n"))

    def _headers(self, subject: str, to: str, message_id: str, now: datetime) -> EmailMessage:
        message = EmailMessage()
        message["Subject"] = subject
        message["From"] = self._settings.email_from
        message["To"] = to
        message["Date"] = format_datetime(now)
        message["Message-ID"] = message_id
        message["Auto-Submitted"] = "auto-generated"
        return message

    def compose(
        self,
        *,
        kind: EmailKind,
        to: str,
        message_id: str,
        appointment: Appointment,
        join_url: str | None,
        unsubscribe_url: str | None,
        ics_sequence: int | None,
        now: datetime,
    ) -> bytes:
        """The whole message, ready for SMTP (bytes, CRLF line ends)."""
        settings = self._settings
        subject = subject_line(kind, appointment.starts_at.astimezone(self._zone))
        calendar = ics_sequence is not None
        values = {
            "kind": kind.value,
            "subject": subject,
            "when": self._when(appointment.starts_at),
            "join_url": join_url,
            "unsubscribe_url": unsubscribe_url,
            "calendar": calendar,
            "early_minutes": settings.invite_early_minutes,
        }
        message = self._headers(subject, to, message_id, now)
        if unsubscribe_url:
            message["List-Unsubscribe"] = f"<{unsubscribe_url}>"
            message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        message.set_content(self._env.get_template("message.txt").render(values))
        message.add_alternative(
            self._env.get_template("message.html").render(values), subtype="html"
        )
        if calendar:
            assert ics_sequence is not None
            ics = calendar_file(
                settings,
                appointment,
                sequence=ics_sequence,
                cancelled=kind is EmailKind.CANCELLATION,
                join_url=join_url,
                now=now,
            )
            method = "CANCEL" if kind is EmailKind.CANCELLATION else "REQUEST"
            message.add_attachment(
                ics,
                maintype="text",
                subtype="calendar",
                filename="appointment.ics",
                params={"method": method},
            )
        return message.as_bytes(policy=message.policy.clone(linesep="\r\n"))

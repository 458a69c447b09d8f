"""Writing an email: neutral text and HTML bodies from jinja2 templates, and a calendar file.

What a message may hold is fixed here: the day and time, the join link, the unsubscribe link
and a calendar entry titled "Appointment". It is given no alias, note, score or alert, so it
cannot carry them.

A client's message is written in their language (`compose(language=…)`: the client's own
choice, else the clinic's `default_language`): the text through the `messages` catalogue
(client_web/locales), the day and time through Babel, the calendar entry's title and
description too. The therapist's notices stay English.
"""

from __future__ import annotations

import email.policy
import gettext
import re
from collections.abc import Callable, Mapping
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
from babel import Locale
from babel.dates import format_date, format_skeleton
from babel.dates import format_datetime as babel_datetime

from server.core.email_schedule import EmailKind, subject_line
from server.core.languages import N_, SOURCE_LANGUAGE, offered
from server.settings import Settings
from server.web.catalogues import load_catalogues

CALENDAR_TITLE = N_("Appointment")
CALENDAR_DESCRIPTION = N_("Join from this link: %(url)s")


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
    gettext: Callable[[str], str] = str,
) -> bytes:
    """An iCalendar (RFC 5545) entry: REQUEST, or CANCEL for a cancelled session; its title
    and description in the language of `gettext`."""
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
    event.add("summary", gettext(CALENDAR_TITLE))
    event.add("status", "CANCELLED" if cancelled else "CONFIRMED")
    event.add("organizer", f"mailto:{settings.email_from}")
    if join_url:
        event.add("url", join_url)
        event.add("location", join_url)
        event.add("description", gettext(CALENDAR_DESCRIPTION) % {"url": join_url})
    cal.add_component(event)
    return bytes(cal.to_ical())


# Every message is plain ASCII on the wire (quoted-printable or base64 for other letters): the
# outbox stores it as ASCII text, and not every SMTP server takes 8-bit bodies.
_SEVEN_BIT = email.policy.default.clone(cte_type="7bit")

SAFETY_SUBJECT = "A client's questionnaire needs your attention"
ACCOUNT_SETUP_SUBJECT = "Choose your Attune password"
ACCOUNT_RESET_SUBJECT = "Your Attune password was reset"


class Composer:
    """Renders messages from the templates in client_web/templates/email/."""

    def __init__(
        self,
        settings: Settings,
        templates_dir: Path | None = None,
        catalogues: Mapping[str, gettext.NullTranslations] | None = None,
    ) -> None:
        self._settings = settings
        package = Path(str(resources.files("client_web")))
        folder = templates_dir or package / "templates" / "email"
        if catalogues is None:
            loaded = load_catalogues(package / "locales")
            catalogues = {code: c.translations for code, c in loaded.items()}
        self._catalogues = dict(catalogues)
        self._envs = {code: self._environment(folder, t) for code, t in self._catalogues.items()}
        self._env = self._envs[SOURCE_LANGUAGE]
        self._zone = ZoneInfo(settings.email_timezone)

    @staticmethod
    def _environment(folder: Path, translations: gettext.NullTranslations) -> jinja2.Environment:
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(folder)),
            autoescape=jinja2.select_autoescape(["html"]),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
            extensions=["jinja2.ext.i18n"],
        )
        env.policies["ext.i18n.trimmed"] = True  # a message is its words, not its line breaks
        env.install_gettext_translations(translations, newstyle=True)  # type: ignore[attr-defined]
        return env

    def language_for(self, preferred: str | None) -> str:
        """The language of a client's email: their own, else the clinic's default."""
        return offered(preferred) or offered(self._settings.default_language) or SOURCE_LANGUAGE

    def _when(self, at: datetime, language: str = SOURCE_LANGUAGE) -> str:
        local = at.astimezone(self._zone)
        if language == SOURCE_LANGUAGE:
            date = f"{local.strftime('%A')} {local.day} {local.strftime('%B %Y')}"
            return f"{date} at {local.strftime('%H:%M')} ({local.tzname()})"
        words = self._catalogues[language]
        return words.gettext("%(date)s at %(time)s (%(zone)s)") % {
            "date": format_date(local, "full", locale=language),
            "time": format_skeleton("Hm", local, tzinfo=self._zone, locale=language),
            "zone": babel_datetime(local, "z", tzinfo=self._zone, locale=language),
        }

    def _day(self, local_start: datetime, language: str) -> str | None:
        """The day in a subject line, weekday and month written out, no year ("Mittwoch,
        25. November"); None for English, which keeps its own "Wednesday 25 November"."""
        if language == SOURCE_LANGUAGE:
            return None
        pattern = str(Locale.parse(language).datetime_skeletons["MMMMEd"].pattern)
        pattern = re.sub(r"(?<!E)E(?!E)", "EEEE", pattern)  # the weekday in full
        return babel_datetime(local_start, pattern, tzinfo=self._zone, locale=language)

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

    def compose_account_link(
        self,
        *,
        to: str,
        url: str,
        expires_at: datetime,
        first_password: bool,
        message_id: str,
        now: datetime,
    ) -> bytes:
        """An account holder's one-time link: to choose a first password (a new account), or a
        new one after an admin's reset. Says nothing about clients or sessions."""
        subject = ACCOUNT_SETUP_SUBJECT if first_password else ACCOUNT_RESET_SUBJECT
        values = {
            "subject": subject,
            "url": url,
            "expires": self._when(expires_at),
            "first_password": first_password,
        }
        message = self._headers(subject, to, message_id, now)
        message.set_content(self._env.get_template("account_link.txt").render(values))
        message.add_alternative(
            self._env.get_template("account_link.html").render(values), subtype="html"
        )
        return message.as_bytes(policy=message.policy.clone(linesep="\r\n"))

    def compose_measures_link(
        self,
        *,
        to: str,
        message_id: str,
        url: str,
        expires_at: datetime,
        now: datetime,
        language: str = SOURCE_LANGUAGE,
    ) -> bytes:
        """The client's link to a short form between sessions, in `language`: no measure's
        name, no score, nothing about why (the page behind the link says what it asks)."""
        language = language if language in self._envs else SOURCE_LANGUAGE
        env, words = self._envs[language], self._catalogues[language]
        subject = subject_line(EmailKind.MEASURES, now, gettext=words.gettext)
        values = {
            "lang": language,
            "subject": subject,
            "url": url,
            "until": self._when(expires_at, language),
        }
        message = self._headers(subject, to, message_id, now)
        message.set_content(env.get_template("measures_link.txt").render(values))
        message.add_alternative(
            env.get_template("measures_link.html").render(values), subtype="html"
        )
        message["Content-Language"] = language  # after the body: set_content clears it
        return message.as_bytes(policy=message.policy.clone(linesep="\r\n"))

    def _headers(self, subject: str, to: str, message_id: str, now: datetime) -> EmailMessage:
        message = EmailMessage(policy=_SEVEN_BIT)
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
        language: str = SOURCE_LANGUAGE,
    ) -> bytes:
        """The whole message in `language`, ready for SMTP (bytes, CRLF line ends)."""
        settings = self._settings
        language = language if language in self._envs else SOURCE_LANGUAGE
        env, words = self._envs[language], self._catalogues[language]
        local_start = appointment.starts_at.astimezone(self._zone)
        subject = subject_line(
            kind, local_start, date=self._day(local_start, language), gettext=words.gettext
        )
        calendar = ics_sequence is not None
        values = {
            "lang": language,
            "kind": kind.value,
            "subject": subject,
            "when": self._when(appointment.starts_at, language),
            "join_url": join_url,
            "unsubscribe_url": unsubscribe_url,
            "calendar": calendar,
            "early_minutes": settings.invite_early_minutes,
        }
        message = self._headers(subject, to, message_id, now)
        if unsubscribe_url:
            message["List-Unsubscribe"] = f"<{unsubscribe_url}>"
            message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        message.set_content(env.get_template("message.txt").render(values))
        message.add_alternative(env.get_template("message.html").render(values), subtype="html")
        if calendar:
            assert ics_sequence is not None
            ics = calendar_file(
                settings,
                appointment,
                sequence=ics_sequence,
                cancelled=kind is EmailKind.CANCELLATION,
                join_url=join_url,
                now=now,
                gettext=words.gettext,
            )
            method = "CANCEL" if kind is EmailKind.CANCELLATION else "REQUEST"
            message.add_attachment(
                ics,
                maintype="text",
                subtype="calendar",
                filename="appointment.ics",
                params={"method": method},
            )
        message["Content-Language"] = language  # after the body: set_content clears it
        return message.as_bytes(policy=message.policy.clone(linesep="\r\n"))

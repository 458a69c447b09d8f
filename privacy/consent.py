"""Consent (pure): demonstrable, granular, revocable, after EDPB 05/2020 and ISO/IEC TS 27560.

A consent record says who (client pseudonym or guardian) decided what (grant or withdraw),
for which purpose, under which notice version (and the SHA-256 of the exact text shown),
when (server UTC) and how (page or API); a withdrawal also lists what it set in motion.
``may_process`` is the one gate every optional processing path asks; a new notice version
asks again. Notice texts live in ``privacy/notices/<purpose>/v<N>.md`` (English) and
``v<N>.<lang>.md`` (the same version in another language: its own text, its own SHA-256).
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

logger = logging.getLogger(__name__)


class Purpose(StrEnum):
    """What a client's data may be used for."""

    TELEHEALTH = "telehealth"  # required to join a video session
    CHECKIN_STORAGE = "checkin_storage"  # keep check-in answers beyond the live session
    CUE_ANALYSIS = "cue_analysis"  # on-device nonverbal features → therapist prompts
    CONTACT = "contact"  # use the client's email address for invitations and reminders
    RESEARCH = "research"  # reserved: not offered yet


REQUIRED_PURPOSES: Final = frozenset({Purpose.TELEHEALTH})
OPTIONAL_PURPOSES: Final = frozenset(
    {Purpose.CHECKIN_STORAGE, Purpose.CUE_ANALYSIS, Purpose.CONTACT}
)
OFFERED_PURPOSES: Final = (
    Purpose.TELEHEALTH,
    Purpose.CHECKIN_STORAGE,
    Purpose.CUE_ANALYSIS,
    Purpose.CONTACT,
)
"""Purposes shown on the consent page, in display order."""

WITHDRAWAL_EFFECTS: Final[Mapping[Purpose, tuple[str, ...]]] = MappingProxyType(
    {
        Purpose.TELEHEALTH: ("end-video-session",),
        Purpose.CHECKIN_STORAGE: ("delete-checkins",),
        Purpose.CUE_ANALYSIS: ("stop-feature-stream", "delete-cue-data"),
        Purpose.CONTACT: ("delete-contact",),
        Purpose.RESEARCH: ("exclude-from-research",),
    }
)
"""What withdrawing each purpose starts; recorded in ``ConsentRecord.triggered``."""


class ConsentDecision(StrEnum):
    """The affirmative action a record captures."""

    GRANTED = "granted"
    WITHDRAWN = "withdrawn"


class Channel(StrEnum):
    """How the decision reached us."""

    PAGE = "page"
    API = "api"


class Subject(StrEnum):
    """Who decided: the client, a guardian on the client's behalf, or a guest of a session
    (interpreter, support person) for their own part in it."""

    CLIENT = "client"
    GUARDIAN = "guardian"
    GUEST = "guest"


# What a guest is asked: only to take part (a guest has no client record, so no check-ins,
# cue analysis or email are ever processed for them).
GUEST_PURPOSES: Final = frozenset({Purpose.TELEHEALTH})


class NoticeNotFound(LookupError):
    """No notice exists for that purpose (and version)."""


def _sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


_TITLE_LINE = re.compile(r"# (?P<title>\S.*)")
_NOTICE_FILE = re.compile(r"v(?P<version>[1-9][0-9]*)(?:\.(?P<language>[a-z]{2,3}))?\.md")
_LANGUAGE = re.compile(r"[a-z]{2,3}")
SOURCE_LANGUAGE: Final = "en"
"""The language every notice version is written in first; others are translations of it."""
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Notice:
    """One version of the text a client reads before deciding.

    ``text`` is the whole Markdown document exactly as shown (title line included) and
    ``sha256`` is the hex SHA-256 of its UTF-8 bytes. ``language`` is the text's language
    (ISO 639-1): each language of a version is its own text with its own hash, and says the
    same as the English one.
    """

    purpose: Purpose
    version: int
    title: str
    text: str
    sha256: str
    language: str = SOURCE_LANGUAGE

    def __post_init__(self) -> None:
        object.__setattr__(self, "purpose", Purpose(self.purpose))
        if self.version < 1:
            raise ValueError("notice versions start at 1")
        if _LANGUAGE.fullmatch(self.language) is None:
            raise ValueError("a notice's language is a lowercase ISO 639 code such as 'es'")
        if self.sha256 != _sha256_hex(self.text):
            raise ValueError("notice sha256 does not match its text")

    @classmethod
    def from_markdown(
        cls, purpose: Purpose, version: int, document: str, language: str = SOURCE_LANGUAGE
    ) -> Notice:
        """Build a notice from its file: first line ``# Title``, then the body."""
        first_line = document.split("\n", 1)[0].rstrip("\r")
        match = _TITLE_LINE.fullmatch(first_line)
        if match is None:
            raise ValueError(f"notice {purpose} v{version} must start with a '# Title' line")
        return cls(
            purpose=purpose,
            version=version,
            title=match["title"].strip(),
            text=document,
            sha256=_sha256_hex(document),
            language=language,
        )

    @property
    def body(self) -> str:
        """The text after the title line."""
        return self.text.split("\n", 1)[1].strip() if "\n" in self.text else ""


@dataclass(frozen=True)
class NoticeCatalog:
    """Every published notice version, by purpose and language; replaced, never mutated.

    A version counts once whatever its languages: granting v2 in Spanish is granting v2. When
    the newest version has no text in the wanted language, the English one is shown (never an
    older translation, which would ask for consent to outdated terms).
    """

    notices: Mapping[tuple[Purpose, int, str], Notice] = field(
        default_factory=lambda: MappingProxyType({})
    )

    def current(self, purpose: Purpose, language: str = SOURCE_LANGUAGE) -> Notice:
        """The newest version for a purpose, in `language` when it has that translation."""
        versions = self.versions(purpose)
        if not versions:
            raise NoticeNotFound(f"no notice for purpose {purpose}")
        return self._in_language(purpose, versions[-1], language)

    def get(self, purpose: Purpose, version: int, language: str = SOURCE_LANGUAGE) -> Notice:
        """One exact version in one exact language."""
        try:
            return self.notices[(purpose, version, language)]
        except KeyError:
            raise NoticeNotFound(f"no notice {purpose} v{version} ({language})") from None

    def _in_language(self, purpose: Purpose, version: int, language: str) -> Notice:
        for wanted in (language, SOURCE_LANGUAGE):
            notice = self.notices.get((purpose, version, wanted))
            if notice is not None:
                return notice
        # a version published only in another language: show it as it is
        return next(
            n for (p, v, _), n in sorted(self.notices.items()) if (p, v) == (purpose, version)
        )

    def languages(self, purpose: Purpose, version: int) -> tuple[str, ...]:
        """The languages a version is published in, sorted."""
        return tuple(sorted(lang for p, v, lang in self.notices if (p, v) == (purpose, version)))

    def versions(self, purpose: Purpose) -> tuple[int, ...]:
        """Published versions of a purpose, ascending."""
        return tuple(sorted({v for p, v, _ in self.notices if p == purpose}))

    def purposes(self) -> tuple[Purpose, ...]:
        """Purposes with at least one notice, in declaration order."""
        present = {p for p, _, _ in self.notices}
        return tuple(p for p in Purpose if p in present)

    def with_notice(self, notice: Notice) -> NoticeCatalog:
        """A catalog with one more notice; a published text never changes."""
        key = (notice.purpose, notice.version, notice.language)
        existing = self.notices.get(key)
        if existing is not None and existing.sha256 != notice.sha256:
            raise ValueError(
                f"notice {notice.purpose} v{notice.version} ({notice.language})"
                " is already published"
            )
        return NoticeCatalog(MappingProxyType({**self.notices, key: notice}))


def _notice_root() -> Traversable:
    return resources.files("privacy").joinpath("notices")


def load_notices(directory: Path | None = None) -> NoticeCatalog:
    """Read ``<purpose>/v<N>.md`` notice files (default: the ones shipped in this package)."""
    root: Traversable = directory if directory is not None else _notice_root()
    catalog = NoticeCatalog()
    for purpose_dir in sorted(root.iterdir(), key=lambda t: t.name):
        if not purpose_dir.is_dir() or purpose_dir.name.startswith((".", "_")):
            continue
        purpose = Purpose(purpose_dir.name)  # ValueError names a misspelt directory
        for notice_file in sorted(purpose_dir.iterdir(), key=lambda t: t.name):
            match = _NOTICE_FILE.fullmatch(notice_file.name)
            if match is None:
                continue
            document = notice_file.read_bytes().decode("utf-8")
            version = int(match["version"])
            language = match["language"] or SOURCE_LANGUAGE
            catalog = catalog.with_notice(
                Notice.from_markdown(purpose, version, document, language)
            )
    return catalog


@dataclass(frozen=True)
class ConsentRecord:
    """One grant or withdrawal, as stored and as shown on a receipt."""

    client_id: str
    purpose: Purpose
    notice_version: int
    notice_sha256: str
    decision: ConsentDecision
    at: datetime
    channel: Channel
    subject: Subject = Subject.CLIENT
    triggered: tuple[str, ...] = ()
    notice_language: str = SOURCE_LANGUAGE  # the language of the text shown (and hashed)

    def __post_init__(self) -> None:
        # Coerce stored strings to their enums so adapters can pass database values through.
        object.__setattr__(self, "purpose", Purpose(self.purpose))
        object.__setattr__(self, "decision", ConsentDecision(self.decision))
        object.__setattr__(self, "channel", Channel(self.channel))
        object.__setattr__(self, "subject", Subject(self.subject))
        object.__setattr__(self, "triggered", tuple(self.triggered))
        if self.at.utcoffset() is None:
            raise ValueError("consent time must be timezone-aware")
        if self.notice_version < 1:
            raise ValueError("notice versions start at 1")
        if _SHA256_HEX.fullmatch(self.notice_sha256) is None:
            raise ValueError("notice_sha256 must be 64 lowercase hex digits")
        if _LANGUAGE.fullmatch(self.notice_language) is None:
            raise ValueError("notice_language must be a lowercase ISO 639 code such as 'es'")
        if self.decision is ConsentDecision.GRANTED and self.triggered:
            raise ValueError("only a withdrawal triggers actions")


def _latest_applicable(
    purpose: Purpose, records: Iterable[ConsentRecord], now: datetime
) -> ConsentRecord | None:
    """The last record for ``purpose`` at or before ``now``: by time, ties by sequence order."""
    latest: ConsentRecord | None = None
    for record in records:
        if record.purpose != purpose or record.at > now:
            continue
        if latest is None or record.at >= latest.at:
            latest = record
    return latest


def may_process(
    purpose: Purpose,
    records: Iterable[ConsentRecord],
    now: datetime,
    current_notice_version: int,
) -> bool:
    """THE gate: does the latest decision up to ``now`` grant this purpose's current notice?

    Total: odd input (naive times, foreign objects) fails closed with False, never raises.
    """
    try:
        latest = _latest_applicable(purpose, records, now)
        return (
            latest is not None
            and latest.decision == ConsentDecision.GRANTED
            and latest.notice_version == current_notice_version
        )
    except (TypeError, ValueError, AttributeError):
        return False


class ConsentState(StrEnum):
    """Where a purpose stands for one client, as the consent page shows it."""

    GRANTED = "granted"
    WITHDRAWN = "withdrawn"
    NEVER_ASKED = "never_asked"
    NEEDS_RECONSENT = "needs_reconsent"  # granted, but for an older notice version


@dataclass(frozen=True)
class ConsentStatus:
    """One purpose's state, the notice to show, and the decision it rests on."""

    purpose: Purpose
    state: ConsentState
    current_notice: Notice
    latest: ConsentRecord | None


def consent_state(
    records: Sequence[ConsentRecord],
    catalog: NoticeCatalog,
    now: datetime,
    language: str = SOURCE_LANGUAGE,
) -> dict[Purpose, ConsentStatus]:
    """The state of every purpose that has a notice in the catalog, with each notice in
    `language` where it is translated (the state itself does not depend on the language)."""
    statuses: dict[Purpose, ConsentStatus] = {}
    for purpose in catalog.purposes():
        notice = catalog.current(purpose, language)
        latest = _latest_applicable(purpose, records, now)
        if latest is None:
            state = ConsentState.NEVER_ASKED
        elif latest.decision is ConsentDecision.WITHDRAWN:
            state = ConsentState.WITHDRAWN
        elif latest.notice_version == notice.version:
            state = ConsentState.GRANTED
        else:
            state = ConsentState.NEEDS_RECONSENT
        statuses[purpose] = ConsentStatus(purpose, state, notice, latest)
    return statuses


@dataclass(frozen=True)
class ConsentChanged:
    """Published after a consent record is stored, so live sessions can react at once."""

    client_id: str
    purpose: Purpose
    decision: ConsentDecision
    at: datetime

    @classmethod
    def from_record(cls, record: ConsentRecord) -> ConsentChanged:
        """The event announcing a stored record."""
        return cls(record.client_id, record.purpose, record.decision, record.at)


ConsentListener = Callable[[ConsentChanged], None]


class ConsentEvents:
    """In-process publish/subscribe for consent changes (synchronous callbacks)."""

    def __init__(self) -> None:
        self._listeners: Mapping[int, ConsentListener] = MappingProxyType({})
        self._ids = itertools.count()

    def subscribe(self, listener: ConsentListener) -> Callable[[], None]:
        """Call ``listener`` on every change; returns an idempotent unsubscribe handle."""
        token = next(self._ids)
        # Replace, not mutate: a publish in progress keeps iterating its own snapshot.
        self._listeners = MappingProxyType({**self._listeners, token: listener})

        def unsubscribe() -> None:
            self._listeners = MappingProxyType(
                {t: f for t, f in self._listeners.items() if t != token}
            )

        return unsubscribe

    def publish(self, event: ConsentChanged) -> list[Exception]:
        """Call every listener; a failing one is logged and returned, never stops the rest."""
        errors: list[Exception] = []
        for listener in self._listeners.values():
            try:
                listener(event)
            except Exception as exc:
                logger.exception("consent listener failed for %s", event.purpose)
                errors.append(exc)
        return errors


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def receipt(
    client_alias_or_id: str,
    records: Iterable[ConsentRecord],
    catalog: NoticeCatalog,
    generated_at: datetime,
) -> dict[str, Any]:
    """A JSON-serialisable receipt of every decision, oldest first, for the client to keep."""
    entries = []
    for record in sorted(records, key=lambda r: r.at):
        try:
            title: str | None = catalog.get(
                record.purpose, record.notice_version, record.notice_language
            ).title
        except NoticeNotFound:
            title = None
        entries.append(
            {
                "purpose": record.purpose.value,
                "notice_version": record.notice_version,
                "notice_sha256": record.notice_sha256,
                "notice_language": record.notice_language,
                "notice_title": title,
                "decision": record.decision.value,
                "at": _iso(record.at),
                "channel": record.channel.value,
                "subject": record.subject.value,
                "triggered": list(record.triggered),
            }
        )
    return {
        "format": "attune-consent-receipt-v1",
        "client": client_alias_or_id,
        "generated_at": _iso(generated_at),
        "records": entries,
    }

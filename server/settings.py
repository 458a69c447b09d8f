"""Settings: defaults < TOML file < ATTUNE_* environment < command-line flags.

Every field here is documented in docs/settings.md (a test keeps the two in step).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from server.core.languages import LANGUAGE_CODES
from server.core.participants import DEFAULT_MAX_PEOPLE, MAX_PEOPLE, MIN_PEOPLE
from server.core.safety import is_phone_number
from server.security.forwarded import parse_trusted_proxies

ENV_PREFIX = "ATTUNE_"


class SettingsError(ValueError):
    """A setting is missing, malformed or out of range."""


def _is_quick_exit_url(url: str) -> bool:
    """A path here ("/weather", not "//host") or an https:// address, without spaces."""
    if not url or any(c.isspace() or c in "<>\"'\\" for c in url):
        return False
    if url.startswith("/"):
        return not url.startswith("//")
    return url.startswith("https://") and len(url) > len("https://")


@dataclass(frozen=True)
class Settings:
    """Everything Attune can be configured with."""

    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path("data")
    database_url: str = ""
    public_base_url: str = ""
    log_level: str = "INFO"
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    master_key: str = field(default="", repr=False)
    master_key_file: Path | None = None
    session_idle_minutes: int = 30
    session_absolute_hours: int = 12
    invite_early_minutes: int = 15
    invite_grace_minutes: int = 30
    login_max_failures: int = 5
    login_window_seconds: int = 900
    login_account_max_failures: int = 5
    login_backoff_seconds: int = 30
    login_backoff_max_seconds: int = 900
    trusted_proxies: tuple[str, ...] = ()
    invite_max_failures: int = 20
    invite_window_seconds: int = 600
    stun_urls: tuple[str, ...] = ()
    turn_urls: tuple[str, ...] = ()
    turn_secret: str = field(default="", repr=False)
    turn_ttl_seconds: int = 3600
    relay_only: bool = False
    conncheck_advertised_address: str = ""
    redis_url: str = ""
    metrics_port: int = 0
    metrics_host: str = "127.0.0.1"
    redis_prefix: str = "attune:"
    redis_lease_ms: int = 3000
    purge_interval_seconds: int = 3600
    max_body_bytes: int = 64 * 1024
    instruments_dir: Path | None = None
    cue_time_scale: float = 1.0
    client_write_limit_scale: float = 1.0
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_security: str = "starttls"
    smtp_username: str = ""
    smtp_password: str = field(default="", repr=False)
    smtp_password_file: Path | None = None
    smtp_timeout_seconds: int = 30
    email_from: str = ""
    email_timezone: str = "UTC"
    email_reminder_minutes: tuple[str, ...] = ("1440", "10")
    email_interval_seconds: int = 30
    email_max_attempts: int = 8
    email_retry_base_seconds: int = 60
    quick_exit_url: str = "/weather"
    clinic_emergency_number: str = ""
    safety_check: bool = True
    crisis_line_text: str = ""
    measures_review_session: int = 6
    default_language: str = "en"
    max_people_per_session: int = DEFAULT_MAX_PEOPLE

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise SettingsError(f"port must be between 1 and 65535, not {self.port}")
        if not 0 <= self.metrics_port < 65536:
            raise SettingsError("metrics_port must be between 0 (off) and 65535")
        if self.metrics_port and self.metrics_port == self.port:
            raise SettingsError("metrics_port must differ from port")
        if self.log_level.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise SettingsError("log_level must be DEBUG, INFO, WARNING or ERROR")
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise SettingsError("tls_cert_file and tls_key_file go together")
        for name in (
            "session_idle_minutes",
            "session_absolute_hours",
            "invite_grace_minutes",
            "login_max_failures",
            "login_window_seconds",
            "login_account_max_failures",
            "login_backoff_seconds",
            "login_backoff_max_seconds",
            "invite_max_failures",
            "invite_window_seconds",
            "turn_ttl_seconds",
            "purge_interval_seconds",
            "max_body_bytes",
            "smtp_timeout_seconds",
            "email_interval_seconds",
            "email_max_attempts",
            "email_retry_base_seconds",
            "redis_lease_ms",
        ):
            if getattr(self, name) <= 0:
                raise SettingsError(f"{name} must be positive")
        if not 0.001 <= self.cue_time_scale <= 10:
            raise SettingsError("cue_time_scale must be between 0.001 and 10")
        if not 0.1 <= self.client_write_limit_scale <= 10_000:
            raise SettingsError("client_write_limit_scale must be between 0.1 and 10000")
        try:
            parse_trusted_proxies(self.trusted_proxies)
        except ValueError as exc:
            raise SettingsError(str(exc)) from None
        if self.conncheck_advertised_address:
            try:
                ipaddress.ip_address(self.conncheck_advertised_address)
            except ValueError:
                raise SettingsError("conncheck_advertised_address must be an IP address") from None
        if self.redis_url and not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise SettingsError("redis_url must start with redis://, rediss:// or unix://")
        if not self.redis_prefix or any(c.isspace() for c in self.redis_prefix):
            raise SettingsError("redis_prefix must be a non-empty word without spaces")
        if self.login_backoff_max_seconds < self.login_backoff_seconds:
            raise SettingsError("login_backoff_max_seconds must be at least login_backoff_seconds")
        if self.invite_early_minutes < 0:
            raise SettingsError("invite_early_minutes must not be negative")
        self._check_email()
        if not is_phone_number(self.clinic_emergency_number):
            raise SettingsError(
                "clinic_emergency_number must be a phone number: digits, spaces, + - ( )"
            )
        if len(self.crisis_line_text) > 500 or any(c in self.crisis_line_text for c in "<>"):
            raise SettingsError("crisis_line_text must be plain text of at most 500 characters")
        if not 2 <= self.measures_review_session <= 100:
            raise SettingsError("measures_review_session must be between 2 and 100")
        if not MIN_PEOPLE <= self.max_people_per_session <= MAX_PEOPLE:
            raise SettingsError(
                f"max_people_per_session must be between {MIN_PEOPLE} and {MAX_PEOPLE}"
            )
        if self.default_language not in LANGUAGE_CODES:
            raise SettingsError(
                "default_language must be one of " + ", ".join(sorted(LANGUAGE_CODES))
            )
        if not _is_quick_exit_url(self.quick_exit_url):
            raise SettingsError(
                "quick_exit_url must be a path on this server such as /weather, "
                "or an https:// address"
            )

    def _check_email(self) -> None:
        if self.smtp_security not in {"starttls", "tls", "none"}:
            raise SettingsError("smtp_security must be starttls, tls or none")
        if not 0 < self.smtp_port < 65536:
            raise SettingsError("smtp_port must be between 1 and 65535")
        if self.smtp_host and not self.email_from:
            raise SettingsError("smtp_host needs email_from (the sender address) too")
        if self.email_from and (
            "@" not in self.email_from or any(c in self.email_from for c in "\r\n<>")
        ):
            raise SettingsError("email_from must be a plain address such as care@clinic.example")
        if self.smtp_password and self.smtp_password_file is not None:
            raise SettingsError("give smtp_password or smtp_password_file, not both")
        try:
            ZoneInfo(self.email_timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise SettingsError(
                "email_timezone must be a time zone such as Europe/Berlin"
            ) from None
        try:
            offsets = self.reminder_offsets
        except ValueError:
            raise SettingsError(
                "email_reminder_minutes must be whole minutes, e.g. 1440,10"
            ) from None
        if any(not 1 <= o <= 20160 for o in offsets):
            raise SettingsError("email_reminder_minutes must each be between 1 and 20160")

    @property
    def email_enabled(self) -> bool:
        """Email goes out only when an SMTP server is configured."""
        return bool(self.smtp_host)

    @property
    def reminder_offsets(self) -> tuple[int, ...]:
        """Minutes before a session at which reminders go, largest first."""
        return tuple(sorted({int(m) for m in self.email_reminder_minutes}, reverse=True))

    def smtp_secret(self) -> str:
        """The SMTP password, from the setting or its file (read when needed, never logged)."""
        if self.smtp_password_file is not None:
            try:
                return self.smtp_password_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise SettingsError(
                    f"cannot read smtp_password_file {self.smtp_password_file}: {exc.strerror}"
                ) from None
        return self.smtp_password

    @property
    def effective_database_url(self) -> str:
        """The database URL, defaulting to SQLite under the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'attune.db').resolve()}"

    @property
    def uses_tls(self) -> bool:
        """True when users reach Attune over HTTPS (directly or through a TLS proxy)."""
        return self.tls_cert_file is not None or self.public_base_url.startswith("https://")

    @property
    def base_url(self) -> str:
        """The URL users open, without a trailing slash."""
        if self.public_base_url:
            return self.public_base_url.rstrip("/")
        scheme = "https" if self.tls_cert_file else "http"
        return f"{scheme}://{self.host}:{self.port}"


SETTING_NAMES: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Settings))


def _coerce(name: str, raw: Any) -> Any:
    """Turn a TOML, environment or flag value into the field's type."""
    hint = get_type_hints(Settings)[name]
    text_hint = str(hint)
    try:
        if hint is int:
            if isinstance(raw, bool):
                raise ValueError
            return int(raw)
        if hint is float:
            return float(raw)
        if hint is bool:
            if isinstance(raw, bool):
                return raw
            lowered = str(raw).strip().lower()
            if lowered in {"1", "true", "yes", "on"}:
                return True
            if lowered in {"0", "false", "no", "off", ""}:
                return False
            raise ValueError
        if "tuple" in text_hint:
            if isinstance(raw, list | tuple):
                return tuple(str(item) for item in raw)
            return tuple(part.strip() for part in str(raw).split(",") if part.strip())
        if "Path" in text_hint:
            return Path(str(raw)) if str(raw) else None
        return str(raw)
    except ValueError:
        raise SettingsError(f"setting {name!r} has an invalid value") from None


def load_settings(
    *,
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build Settings from a TOML file, the environment and explicit overrides (flags)."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    config_file = config_file or (
        Path(environ[f"{ENV_PREFIX}CONFIG"]) if environ.get(f"{ENV_PREFIX}CONFIG") else None
    )
    if config_file is not None:
        try:
            document = tomllib.loads(config_file.read_text(encoding="utf-8"))
        except OSError as exc:
            raise SettingsError(f"cannot read config file {config_file}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"config file {config_file} is not valid TOML: {exc}") from None
        table = document.get("attune", document)
        for key, raw in table.items():
            if key not in SETTING_NAMES:
                raise SettingsError(f"unknown setting {key!r} in {config_file}")
            values[key] = _coerce(key, raw)
    for name in SETTING_NAMES:
        env_name = ENV_PREFIX + name.upper()
        if env_name in environ:
            values[name] = _coerce(name, environ[env_name])
    for name, raw in (overrides or {}).items():
        if raw is None:
            continue
        if name not in SETTING_NAMES:
            raise SettingsError(f"unknown setting {name!r}")
        values[name] = _coerce(name, raw)
    return Settings(**values)

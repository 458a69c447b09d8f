"""Settings come from defaults, TOML, ATTUNE_* environment and flags, and are all documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from server.settings import SETTING_NAMES, Settings, SettingsError, load_settings

DOCS = Path(__file__).resolve().parents[2] / "docs" / "settings.md"


def test_every_setting_is_documented_and_nothing_else_is() -> None:
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", DOCS.read_text(), flags=re.MULTILINE))
    assert documented == set(SETTING_NAMES)


def test_precedence_is_defaults_then_toml_then_environment_then_flags(tmp_path: Path) -> None:
    config = tmp_path / "attune.toml"
    config.write_text('[attune]\nport = 9000\nhost = "0.0.0.0"\nlog_level = "DEBUG"\n')
    settings = load_settings(
        config_file=config,
        environ={"ATTUNE_PORT": "9100", "ATTUNE_LOG_LEVEL": "WARNING"},
        overrides={"port": 9200, "data_dir": None},
    )
    assert settings.port == 9200  # flag beats environment beats TOML
    assert settings.log_level == "WARNING"  # environment beats TOML
    assert settings.host == "0.0.0.0"  # from TOML
    assert settings.data_dir == Path("data")  # default; a None flag means "not given"


def test_types_are_parsed_from_text() -> None:
    settings = load_settings(
        environ={
            "ATTUNE_RELAY_ONLY": "yes",
            "ATTUNE_TURN_URLS": "turn:a.example:3478, turns:a.example:5349",
            "ATTUNE_TLS_CERT_FILE": "/etc/cert.pem",
            "ATTUNE_TLS_KEY_FILE": "/etc/key.pem",
        }
    )
    assert settings.relay_only is True
    assert settings.turn_urls == ("turn:a.example:3478", "turns:a.example:5349")
    assert settings.tls_cert_file == Path("/etc/cert.pem")
    assert settings.uses_tls and settings.base_url.startswith("https://")


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"ATTUNE_PORT": "eighty"}, "port"),
        ({"ATTUNE_PORT": "70000"}, "port"),
        ({"ATTUNE_RELAY_ONLY": "perhaps"}, "relay_only"),
        ({"ATTUNE_LOG_LEVEL": "LOUD"}, "log_level"),
        ({"ATTUNE_SESSION_IDLE_MINUTES": "0"}, "session_idle_minutes"),
        ({"ATTUNE_TLS_CERT_FILE": "/only/cert.pem"}, "tls_key_file"),
        ({"ATTUNE_QUICK_EXIT_URL": "javascript:alert(1)"}, "quick_exit_url"),
        ({"ATTUNE_CLINIC_EMERGENCY_NUMBER": "call <b>me</b>"}, "clinic_emergency_number"),
        ({"ATTUNE_QUICK_EXIT_URL": "//elsewhere.example/"}, "quick_exit_url"),
        ({"ATTUNE_QUICK_EXIT_URL": "http://plain.example/"}, "quick_exit_url"),
        ({"ATTUNE_QUICK_EXIT_URL": '/weather"><script>'}, "quick_exit_url"),
    ],
)
def test_bad_values_are_refused_with_the_setting_named(
    environ: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(environ=environ)


def test_unknown_toml_key_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "attune.toml"
    config.write_text("prot = 80\n")
    with pytest.raises(SettingsError, match="prot"):
        load_settings(config_file=config, environ={})


def test_secrets_do_not_appear_in_the_settings_repr() -> None:
    settings = Settings(master_key="c2VjcmV0", turn_secret="hunter2")
    assert "c2VjcmV0" not in repr(settings) and "hunter2" not in repr(settings)


def test_sqlite_under_the_data_dir_is_the_default_database(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert settings.effective_database_url == f"sqlite+aiosqlite:///{tmp_path / 'attune.db'}"


def test_email_is_off_until_an_smtp_server_is_given() -> None:
    assert not Settings().email_enabled
    assert Settings(smtp_host="smtp.example", email_from="a@clinic.example").email_enabled


def test_the_smtp_password_comes_from_the_environment_or_a_file(tmp_path: Path) -> None:
    from_env = load_settings(environ={"ATTUNE_SMTP_PASSWORD": "s3cret"})
    assert from_env.smtp_secret() == "s3cret" and "s3cret" not in repr(from_env)
    secret = tmp_path / "smtp-password"
    secret.write_text("from-a-file\n")
    assert Settings(smtp_password_file=secret).smtp_secret() == "from-a-file"


@pytest.mark.parametrize(
    "values",
    [
        {"smtp_host": "smtp.example"},  # no sender address
        {"smtp_security": "ssl"},
        {"email_from": "no-at-sign"},
        {"email_from": "a@b.example\r\nBcc: x@y.example"},
        {"email_timezone": "Mars/Olympus"},
        {"email_reminder_minutes": ("soon",)},
        {"email_reminder_minutes": ("0",)},
        {"smtp_password": "x", "smtp_password_file": Path("/tmp/x")},
    ],
)
def test_malformed_email_settings_stop_the_start_with_a_message(values: dict[str, object]) -> None:
    with pytest.raises(SettingsError):
        Settings(**values)  # type: ignore[arg-type]


def test_reminder_offsets_are_whole_minutes_largest_first() -> None:
    assert load_settings(
        environ={"ATTUNE_EMAIL_REMINDER_MINUTES": "10, 1440,60"}
    ).reminder_offsets == (
        1440,
        60,
        10,
    )


@pytest.mark.parametrize("url", ["/weather", "/some/page?x=1", "https://news.example/"])
def test_the_quick_exit_goes_to_a_page_here_or_an_https_address(url: str) -> None:
    assert load_settings(environ={"ATTUNE_QUICK_EXIT_URL": url}).quick_exit_url == url

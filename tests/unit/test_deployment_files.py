"""The compose file and Dockerfile configure Attune only through settings it knows."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from server.settings import ENV_PREFIX, SETTING_NAMES, load_settings

ROOT = Path(__file__).resolve().parents[2]


ENV_EXAMPLE = ROOT / ".env.example"
APPS = ("app1", "app2")


def _env_example() -> dict[str, str]:
    """The variables `.env.example` lists, with placeholder values for the empty secrets."""
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name] = value or f"example-{name.lower()}"
    return values


def _interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ${NAME}, ${NAME:-default} and ${NAME:?message} against `env`."""

    def one(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3)
        if name in env:
            return env[name]
        assert op == ":-", f"${{{name}}} has no value in .env.example and no default"
        return arg

    return re.sub(r"\$\{([A-Z0-9_]+)(?:(:-|:\?)([^}]*))?\}", one, value)


def _compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return document


def _app_environment(service: str) -> dict[str, str]:
    environment = _compose()["services"][service]["environment"]
    return {k: _interpolate(str(v), _env_example()) for k, v in environment.items()}


def test_the_stack_has_a_proxy_two_apps_postgres_redis_and_coturn() -> None:
    services = _compose()["services"]
    assert set(services) == {"proxy", *APPS, "db", "redis", "coturn"}
    for name, service in services.items():
        assert "healthcheck" in service, f"{name} has no health check"
        for dependency in service.get("depends_on", {}).values():
            assert dependency["condition"] == "service_healthy", name
    assert set(services["proxy"]["depends_on"]) == set(APPS)


@pytest.mark.parametrize("service", APPS)
def test_each_app_uses_only_known_settings_with_valid_values(service: str) -> None:
    attune_vars = _app_environment(service)
    for name in attune_vars:
        assert name.startswith(ENV_PREFIX)
        assert name.removeprefix(ENV_PREFIX).lower() in SETTING_NAMES, name
    settings = load_settings(environ=attune_vars)
    assert settings.effective_database_url.startswith("postgresql+asyncpg://")
    assert settings.redis_url == "redis://redis:6379/0"
    assert settings.public_base_url == "https://attune.clinic.example"  # TLS: __Host- cookies
    assert settings.relay_only and settings.turn_secret == "example-turn_secret"
    assert settings.master_key == "example-attune_master_key"  # one key for both processes
    assert settings.trusted_proxies
    compose = _compose()["services"][service]
    assert any("attune-data" in volume for volume in compose["volumes"])


def test_both_apps_are_configured_alike() -> None:
    assert _app_environment("app1") == _app_environment("app2")


def test_turn_urls_cover_udp_tcp_and_tls_on_443_with_the_secret_coturn_checks() -> None:
    settings = load_settings(environ=_app_environment("app1"))
    assert set(settings.turn_urls) == {
        "turn:turn.clinic.example:3478?transport=udp",
        "turn:turn.clinic.example:3478?transport=tcp",
        "turns:turn.clinic.example:443?transport=tcp",
    }
    coturn = [
        _interpolate(arg, _env_example()) for arg in _compose()["services"]["coturn"]["command"]
    ]
    assert "--use-auth-secret" in coturn
    assert f"--static-auth-secret={settings.turn_secret}" in coturn
    assert "--realm=turn.clinic.example" in coturn
    assert "--listening-port=3478" in coturn and "--tls-listening-port=5349" in coturn
    assert "--no-cli" in coturn
    assert any(arg.startswith("--denied-peer-ip=10.0.0.0") for arg in coturn)  # no LAN peers


def test_the_proxy_fills_every_placeholder_of_the_nginx_template() -> None:
    proxy = _compose()["services"]["proxy"]
    template = (ROOT / "deploy" / "nginx.conf.template").read_text()
    placeholders = set(re.findall(r"\$\{([A-Z0-9_]+)\}", template))
    assert placeholders <= set(proxy["environment"])
    assert "proxy_set_header Upgrade $http_upgrade;" in template  # WebSockets pass
    assert "ssl_preread on;" in template  # TURN over TLS shares 443 by server name
    turn_tls = proxy["environment"]["TURN_TLS_ADDR"]
    assert turn_tls.endswith(":5349")


def test_every_secret_the_compose_file_needs_is_in_env_example() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    required = set(re.findall(r"\$\{([A-Z0-9_]+):\?", text))
    assert required <= set(_env_example())
    assert ".env" in (ROOT / ".gitignore").read_text().splitlines()


def test_dockerfile_env_uses_only_known_settings() -> None:
    text = (ROOT / "Dockerfile").read_text()
    names = re.findall(r"\b(ATTUNE_[A-Z_]+)=", text)
    assert names
    for name in names:
        assert name.removeprefix(ENV_PREFIX).lower() in SETTING_NAMES, name
    assert 'CMD ["attune", "serve"]' in text

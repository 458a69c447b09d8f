"""The compose file and Dockerfile configure Attune only through settings it knows."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from server.settings import ENV_PREFIX, SETTING_NAMES, load_settings

ROOT = Path(__file__).resolve().parents[2]


def _interpolate(value: str) -> str:
    """Compose's ${NAME:-default} with the default taken."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


def test_compose_app_environment_uses_only_known_settings_with_valid_values() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    environment = compose["services"]["app"]["environment"]
    attune_vars = {k: _interpolate(str(v)) for k, v in environment.items()}
    assert attune_vars, "the app is configured through ATTUNE_* variables"
    for name in attune_vars:
        assert name.startswith(ENV_PREFIX)
        assert name.removeprefix(ENV_PREFIX).lower() in SETTING_NAMES, name
    settings = load_settings(environ=attune_vars)
    assert settings.effective_database_url.startswith("postgresql+asyncpg://")
    assert any("attune-data" in volume for volume in compose["services"]["app"]["volumes"])
    assert "db" in compose["services"]


def test_dockerfile_env_uses_only_known_settings() -> None:
    text = (ROOT / "Dockerfile").read_text()
    names = re.findall(r"\b(ATTUNE_[A-Z_]+)=", text)
    assert names
    for name in names:
        assert name.removeprefix(ENV_PREFIX).lower() in SETTING_NAMES, name
    assert 'CMD ["attune", "serve"]' in text

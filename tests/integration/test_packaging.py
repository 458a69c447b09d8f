"""`pip install .` (not editable) gives a working Attune: the wheel carries every file it reads.

The wheel is built from a copy of the sources (setuptools writes build/ and *.egg-info beside
them, and other people work in this tree), with pip's ordinary build isolation: the virtualenv's
own setuptools is older than the one pyproject.toml asks for.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DISTRIBUTED = ("pyproject.toml", "README.md", "server", "privacy", "client_web")
BUILD_TIMEOUT_S = 240


def _run(command: list[str], *, cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S
    )
    assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("packaging")


@pytest.fixture(scope="module")
def wheel(workdir: Path) -> Path:
    """The project's wheel, built once for this module."""
    source = workdir / "source"
    source.mkdir()
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc")
    for name in DISTRIBUTED:
        original = PROJECT_ROOT / name
        if original.is_dir():
            shutil.copytree(original, source / name, ignore=skip)
        else:
            shutil.copy2(original, source / name)
    dist = workdir / "dist"
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--quiet",
            "-w",
            str(dist),
            str(source),
        ],
        cwd=workdir,
    )
    (built,) = dist.glob("attune_telehealth-*.whl")
    return built


@pytest.fixture(scope="module")
def wheel_names(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


@pytest.fixture(scope="module")
def installed(wheel: Path, workdir: Path) -> Path:
    """The wheel installed into a bare directory (dependencies come from the virtualenv)."""
    site = workdir / "site"
    pip_install = [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet"]
    _run([*pip_install, "--target", str(site), str(wheel)], cwd=workdir)
    return site


def _source_files(folder: str) -> set[str]:
    root = PROJECT_ROOT / folder
    return {
        path.relative_to(PROJECT_ROOT).as_posix()
        for path in root.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }


@pytest.mark.parametrize(
    ("folder", "landmarks"),
    [
        pytest.param(
            "client_web/templates",
            {"client_web/templates/base.html", "client_web/templates/login.html"},
            id="templates",
        ),
        pytest.param(
            "client_web/static",
            {"client_web/static/css/attune.css", "client_web/static/js/copy.js"},
            id="static-css-and-js",
        ),
        pytest.param(
            "server/db/migrations",
            {"server/db/migrations/env.py", "server/db/migrations/versions/0001_initial.py"},
            id="alembic-migrations",
        ),
        pytest.param(
            "privacy/notices",
            {"privacy/notices/telehealth/v1.md", "privacy/notices/cue_analysis/v1.md"},
            id="privacy-notices",
        ),
    ],
)
def test_wheel_carries_every_file_of(
    folder: str, landmarks: set[str], wheel_names: set[str]
) -> None:
    expected = _source_files(folder)
    assert landmarks <= expected
    assert sorted(expected - wheel_names) == []


def test_every_notice_ships_a_first_version(wheel_names: set[str]) -> None:
    purposes = {path.name for path in (PROJECT_ROOT / "privacy/notices").iterdir() if path.is_dir()}
    assert purposes
    assert {f"privacy/notices/{purpose}/v1.md" for purpose in purposes} <= wheel_names


def test_wheel_declares_the_attune_command(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        (entry_points,) = [
            n for n in archive.namelist() if n.endswith(".dist-info/entry_points.txt")
        ]
        text = archive.read(entry_points).decode()
    assert "[console_scripts]" in text
    assert "attune = server.cli:main" in text.splitlines()


# Runs in a fresh interpreter, outside the repository, with the installed copy first on the path.
PROBE = r"""
import asyncio, json, sys, tempfile
from importlib import resources
from pathlib import Path

import client_web, privacy, server
from alembic.script import ScriptDirectory
from aiohttp.test_utils import TestClient, TestServer
from privacy.consent import load_notices
from server.app import client_web_dir, create_app
from server.db.migrate import alembic_config
from server.settings import Settings

migrations = ScriptDirectory.from_config(alembic_config())


async def serve() -> dict[str, object]:
    app = create_app(Settings(data_dir=Path(tempfile.mkdtemp()) / "data"))
    async with TestClient(TestServer(app)) as client:
        login = await client.get("/login")
        css = await client.get("/static/css/attune.css")
        document = await (await client.get("/api/v1/openapi.json")).json()
        weather = await client.get("/weather", headers={"Accept-Language": "de"})
        return {
            "login": [login.status, "Sign in" in await login.text()],
            "german": "<h1>Wetter</h1>" in await weather.text(),
            "css": css.status,
            "version": document["info"]["version"],
        }


print(json.dumps({
    "modules": [server.__file__, client_web.__file__, privacy.__file__],
    "web_dir": str(client_web_dir()),
    "migrations": migrations.dir,
    "revisions": [revision.revision for revision in migrations.walk_revisions()],
    "notices_dir": str(resources.files("privacy") / "notices"),
    "notices": sorted(
        f"{purpose.value}/v{version}" + ("" if language == "en" else f".{language}")
        for purpose, version, language in load_notices().notices
    ),
    "served": asyncio.run(serve()),
}))
"""


def _isolated_env(site: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "ATTUNE_"))}
    env["PYTHONPATH"] = str(site)
    return env


def test_installed_copy_serves_from_its_own_files(installed: Path, workdir: Path) -> None:
    report = json.loads(
        _run([sys.executable, "-c", PROBE], cwd=workdir, env=_isolated_env(installed))
    )

    site = str(installed)
    located = [*report["modules"], report["web_dir"], report["migrations"], report["notices_dir"]]
    assert all(path.startswith(site) for path in located), located
    assert "0001" in report["revisions"]
    assert {"telehealth/v1", "checkin_storage/v1", "cue_analysis/v1"} <= set(report["notices"])
    assert {"telehealth/v1.es", "telehealth/v1.de"} <= set(report["notices"])
    # the catalogues travel as .po files and are compiled when the installed copy starts
    assert report["served"] == {
        "login": [200, True],
        "german": True,
        "css": 200,
        "version": "0.1.0",
    }


def test_installed_attune_command_starts(installed: Path, workdir: Path) -> None:
    script = installed / "bin" / "attune"
    output = _run([str(script), "--help"], cwd=workdir, env=_isolated_env(installed))
    assert "serve" in output

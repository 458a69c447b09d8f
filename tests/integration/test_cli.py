"""The `attune` command works on the same database a running server uses."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest

from server.app import create_app
from server.cli import main
from server.settings import Settings


def run(capsys: pytest.CaptureFixture[str], *argv: str, stdin: str = "") -> tuple[int, str, str]:
    """Run the CLI in-process; (exit code, stdout, stderr)."""
    import sys

    old = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        code = main(list(argv))
    finally:
        sys.stdin = old
    out, err = capsys.readouterr()
    return code, out, err


async def test_cli_creates_accounts_clients_and_sessions_whose_links_work(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    aiohttp_client: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = tmp_path / "data"
    monkeypatch.setenv("ATTUNE_DATA_DIR", str(data))  # the same settings the server reads
    monkeypatch.setenv("ATTUNE_PUBLIC_BASE_URL", "http://attune.test")
    code, out, _ = await _in_thread(
        run,
        capsys,
        "user",
        "add",
        "t@example.org",
        "--role",
        "therapist",
        stdin="a long therapist pass\n",
    )
    assert code == 0 and "Added therapist t@example.org" in out
    code, out, _ = await _in_thread(
        run, capsys, "client", "add", "J.M.", "--therapist", "t@example.org"
    )
    assert code == 0 and "Added client J.M." in out
    code, out, _ = await _in_thread(
        run,
        capsys,
        "session",
        "create",
        "--therapist",
        "t@example.org",
        "--client",
        "J.M.",
        "--minutes",
        "45",
    )
    assert code == 0
    join = re.search(r"http://attune\.test/join/([A-Za-z0-9_-]{43})", out)
    host = re.search(r"http://attune\.test/host/([0-9a-f]{32})", out)
    assert join and host

    client = await aiohttp_client(create_app(Settings(data_dir=data)))
    response = await client.get(f"/join/{join.group(1)}", allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/visit"
    login = await client.post(
        "/api/v1/auth/login", json={"email": "t@example.org", "password": "a long therapist pass"}
    )
    assert login.status == 200
    session = await client.get(f"/api/v1/sessions/{host.group(1)}")
    assert (await session.json())["client_alias"] == "J.M."


async def test_cli_errors_are_one_clear_line_with_exit_code_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    data = str(tmp_path / "data")
    code, _, err = await _in_thread(
        run,
        capsys,
        "user",
        "add",
        "x@example.org",
        "--role",
        "admin",
        "--data-dir",
        data,
        stdin="short\n",
    )
    assert code == 2 and "at least 12 characters" in err and "Traceback" not in err
    code, _, err = await _in_thread(
        run, capsys, "client", "add", "J", "--therapist", "nobody@example.org", "--data-dir", data
    )
    assert code == 2 and "No account with email" in err
    code, _, err = await _in_thread(
        run,
        capsys,
        "session",
        "create",
        "--therapist",
        "nobody@example.org",
        "--client",
        "J",
        "--start",
        "not-a-time",
        "--data-dir",
        data,
    )
    assert code == 2


async def _in_thread(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """The CLI runs its own event loop, so it cannot run inside the test's loop thread."""
    import asyncio

    return await asyncio.to_thread(fn, *args, **kwargs)

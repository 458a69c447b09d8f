"""`attune participants`: the therapist's list, add, remove and re-issue from the command line."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from server.app import create_app
from server.settings import Settings
from tests.integration.test_cli import _in_thread, run

LINK = re.compile(r"http://attune\.test/join/([A-Za-z0-9_-]{43})")


async def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    return await _in_thread(run, capsys, *argv, stdin="a long therapist pass\n")


async def test_the_cli_adds_lists_reissues_and_removes_people_whose_links_work(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    aiohttp_client: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = tmp_path / "data"
    monkeypatch.setenv("ATTUNE_DATA_DIR", str(data))
    monkeypatch.setenv("ATTUNE_PUBLIC_BASE_URL", "http://attune.test")
    me = ("--therapist", "t@example.org")
    assert (await _cli(capsys, "user", "add", "t@example.org", "--role", "therapist"))[0] == 0
    for alias in ("J.M.", "K.L."):
        assert (await _cli(capsys, "client", "add", alias, *me))[0] == 0
    code, out, _ = await _cli(capsys, "session", "create", *me, "--client", "J.M.")
    session = re.search(r"/host/([0-9a-f]{32})", out)
    assert code == 0 and session
    sid = session.group(1)

    code, out, _ = await _cli(capsys, "participants", "add", sid, *me, "--client", "K.L.")
    couple_link = LINK.search(out)
    assert code == 0 and "Added client K.L." in out and couple_link
    code, out, _ = await _cli(capsys, "participants", "add", sid, *me, "--guest", "Interpreter")
    guest_link = LINK.search(out)
    assert code == 0 and "Added guest Interpreter" in out and guest_link
    code, out, _ = await _cli(capsys, "participants", "list", sid, *me)
    rows = [line.split() for line in out.splitlines()]
    assert code == 0 and [(r[1], r[2], r[-1]) for r in rows] == [
        ("1", "client", "J.M."),
        ("2", "client", "K.L."),
        ("3", "guest", "Interpreter"),
    ]
    guest_id = rows[2][0]
    code, out, _ = await _cli(capsys, "participants", "reissue", sid, rows[1][0], *me)
    new_link = LINK.search(out)
    assert code == 0 and new_link and new_link.group(1) != couple_link.group(1)
    code, out, _ = await _cli(capsys, "participants", "remove", sid, guest_id, *me)
    assert code == 0 and "no longer work" in out

    browser = await aiohttp_client(create_app(Settings(data_dir=data)))
    for token, status in (
        (new_link.group(1), 303),
        (couple_link.group(1), 404),  # replaced
        (guest_link.group(1), 404),  # removed
    ):
        browser.session.cookie_jar.clear()
        assert (await browser.get(f"/join/{token}", allow_redirects=False)).status == status


async def test_cli_refusals_are_one_clear_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ATTUNE_DATA_DIR", str(tmp_path / "data"))
    me = ("--therapist", "t@example.org")
    assert (await _cli(capsys, "user", "add", "t@example.org", "--role", "therapist"))[0] == 0
    code, _, err = await _cli(capsys, "participants", "list", "0" * 32, *me)
    assert code == 2 and "No such session" in err and "Traceback" not in err
    code, _, err = await _cli(capsys, "participants", "add", "0" * 32, *me, "--guest", " ")
    assert code == 2 and "Enter a label" in err

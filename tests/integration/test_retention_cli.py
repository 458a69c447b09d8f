"""`attune retention`, `attune hold` and `attune purge` on the database a server would use."""

from __future__ import annotations

import asyncio
import io
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from privacy.vault import FieldContext
from server.cli import main
from server.core.models import Role
from server.db.tables import cue_prompts
from server.runtime import runtime
from server.security.tokens import new_id
from server.services import scheduling
from server.services.accounts import create_account
from server.settings import Settings
from tests.conftest import PASSWORD


@pytest.fixture
def data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """A data directory whose master key exists (its first use announces the new key)."""
    data = tmp_path / "data"
    assert main(["db", "upgrade", "--data-dir", str(data)]) == 0
    capsys.readouterr()
    return data


def attune(capsys: pytest.CaptureFixture[str], data: Path, *argv: str) -> tuple[int, str, str]:
    """Run the CLI in-process against `data`; (exit code, stdout, stderr)."""
    old_stdin, sys.stdin = sys.stdin, io.StringIO("")
    try:
        code = main([*argv, "--data-dir", str(data)])
    finally:
        sys.stdin = old_stdin
    out, err = capsys.readouterr()
    return code, out, err


async def _seed(data: Path, *, old_cue_rows: int) -> str:
    """A client with a session 40 days ago and `old_cue_rows` cue prompts from then."""
    then = datetime.now(UTC) - timedelta(days=40)
    async with runtime(Settings(data_dir=data)) as rt:
        therapist = await create_account(
            rt.db,
            rt.audit,
            email="t@example.org",
            password=PASSWORD,
            role=Role.THERAPIST,
            actor="system:test",
            now=then,
        )
        client = await scheduling.create_client(rt.db, rt.audit, therapist, "J.M.", then)
        session, _ = await scheduling.create_session(
            rt.db,
            rt.audit,
            therapist,
            client_id=client.id,
            starts_at=then,
            minutes=50,
            now=then - timedelta(hours=1),
        )
        async with rt.db.write() as conn:
            for _ in range(old_cue_rows):
                row_id = new_id()
                ctx = FieldContext("cue_prompts", row_id, "payload", client.id)
                await conn.execute(
                    cue_prompts.insert().values(
                        id=row_id,
                        session_id=session.id,
                        client_id=client.id,
                        created_at=then,
                        payload_ciphertext=await rt.vault.encrypt_json(conn, ctx, {}),
                    )
                )
    return client.id


def test_retention_show_lists_every_category_with_its_default(
    capsys: pytest.CaptureFixture[str], data: Path
) -> None:
    code, out, _ = attune(capsys, data, "retention", "show", "--json")

    assert code == 0
    policies = {p["category"]: p for p in json.loads(out)["policies"]}
    assert list(policies) == [
        "session_meta",
        "checkin",
        "cue",
        "signal",
        "consent",
        "audit",
        "account",
        "contact",
        "outbox",
        "safety",
        "measure",
        "goal",
    ]
    assert (policies["consent"]["keep_days"], policies["consent"]["floor_days"]) == (2192, 2192)
    assert all(p["is_default"] for p in policies.values())


# case -> (arguments after `retention set`, exit code, what standard error says)
SET_CASES = {
    "below-floor-refused": (["consent", "30"], 2, "at least 2192 days (6 years, HIPAA"),
    "below-floor-with-override-warns": (
        ["audit", "100", "--override-floor", "--reason", "court order 2026-9"],
        0,
        "below the floor of 2192 days (6 years, HIPAA",
    ),
    "override-needs-a-reason": (["consent", "30", "--override-floor"], 2, "--reason"),
    "anonymize-not-allowed-for-checkins": (
        ["checkin", "30", "--action", "anonymize"],
        2,
        "allowed: delete",
    ),
    "days-must-be-a-number": (["cue", "seven"], 2, "whole number"),
    "unknown-category": (["notes", "30"], 2, "category: one of"),
    "plain-change": (["signal", "7"], 0, ""),
}


def test_retention_set(capsys: pytest.CaptureFixture[str], data: Path) -> None:
    outcome = {}
    for case, (argv, _, says) in SET_CASES.items():
        code, _, err = attune(capsys, data, "retention", "set", *argv)
        outcome[case] = (code, says in err)
    _, shown, _ = attune(capsys, data, "retention", "show", "--json")
    saved = {p["category"]: p["keep_days"] for p in json.loads(shown)["policies"]}

    assert outcome == {case: (code, True) for case, (_, code, _) in SET_CASES.items()}
    assert (saved["audit"], saved["signal"], saved["consent"], saved["cue"]) == (100, 7, 2192, 30)


def test_holds_are_placed_and_lifted_with_a_reason(
    capsys: pytest.CaptureFixture[str], data: Path
) -> None:
    client_id = asyncio.run(_seed(data, old_cue_rows=0))
    steps = [
        (["hold", "add", "0" * 32, "--reason", "x"], 2, "No client"),
        (["hold", "add", client_id, "--reason", "litigation"], 0, ""),
        (["hold", "add", client_id, "--reason", "again"], 2, "already on hold"),
        (["hold", "remove", client_id, "--reason", "settled"], 0, ""),
        (["hold", "remove", client_id, "--reason", "again"], 2, "not on hold"),
    ]
    for argv, expected, says in steps:
        code, _, err = attune(capsys, data, *argv)
        assert (code, says in err) == (expected, True), argv

    _, out, _ = attune(capsys, data, "hold", "list", "--json")
    [hold] = json.loads(out)["holds"]
    assert (hold["reason"], hold["release_reason"], hold["active"]) == (
        "litigation",
        "settled",
        False,
    )


def test_purge_dry_run_counts_what_purge_then_does(
    capsys: pytest.CaptureFixture[str], data: Path
) -> None:
    asyncio.run(_seed(data, old_cue_rows=3))

    _, dry, _ = attune(capsys, data, "purge", "--dry-run", "--json")
    _, done, _ = attune(capsys, data, "purge", "--json")
    _, after, _ = attune(capsys, data, "purge", "--dry-run", "--json")
    code, text, _ = attune(capsys, data, "purge")

    assert json.loads(dry)["counts"]["cue"] == {"delete": 3}
    assert (json.loads(dry)["dry_run"], json.loads(done)["dry_run"]) == (True, False)
    assert json.loads(done)["counts"]["cue"] == {"delete": 3}
    assert json.loads(after)["total"] == 0
    assert code == 0 and "Nothing was due." in text
    assert attune(capsys, data, "audit", "verify")[0] == 0

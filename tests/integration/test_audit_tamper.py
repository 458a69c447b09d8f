"""`attune audit verify` catches tampering with a real database and names the first bad entry.

The app records real activity into data/attune.db (SQLite) with a signed checkpoint in the
middle and one on shutdown. Each case copies the data directory (database and signing key),
edits the copy with the sqlite3 module as an intruder with file access would, and runs the
command on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from privacy.audit import GENESIS_HASH, AuditEvent, chain_hash, sign_checkpoint
from privacy.keyfiles import load_or_create_signing_key
from server.app import create_app
from server.cli import main
from server.core.models import Role
from server.keys import AUDIT, CLOCK, DB
from server.runtime import AUDIT_SIGNING_KEY_FILE
from server.settings import Settings
from tests.conftest import FakeClock, add_account, sign_in

AppClient = TestClient[web.Request, web.Application]
START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
THERAPIST = "therapist@example.org"


@dataclass(frozen=True)
class Trail:
    """A data directory after real activity: entries 1..last, checkpoints at middle and last."""

    data_dir: Path
    middle: int  # seq of the checkpoint written mid-way
    last: int  # seq of the newest entry, checkpointed on shutdown


async def _schedule(client: AppClient, csrf: str, alias: str, starts_at: str) -> str:
    headers = {"X-CSRF-Token": csrf}
    created = await client.post("/api/v1/clients", json={"alias": alias}, headers=headers)
    assert created.status == 201
    body = {"client_id": (await created.json())["id"], "starts_at": starts_at}
    scheduled = await client.post("/api/v1/sessions", json=body, headers=headers)
    assert scheduled.status == 201
    session_id: str = (await scheduled.json())["session"]["id"]
    return session_id


async def _record_activity(data_dir: Path) -> Trail:
    """Sign-ins, clients, sessions and links through the API; a checkpoint half-way."""
    app = create_app(Settings(data_dir=data_dir), clock=FakeClock(START))
    async with TestClient(TestServer(app)) as client:
        await add_account(app, THERAPIST)
        await add_account(app, "admin@example.org", Role.ADMIN)
        wrong = await client.post(
            "/api/v1/auth/login", json={"email": THERAPIST, "password": "a wrong guess"}
        )
        assert wrong.status == 401
        csrf = await sign_in(client, THERAPIST)
        session_id = await _schedule(client, csrf, "J.M.", "2026-11-23T10:00:00Z")
        headers = {"X-CSRF-Token": csrf}
        assert (await client.post(f"/api/v1/sessions/{session_id}/invite", headers=headers)).ok
        middle = await app[AUDIT].checkpoint(app[DB], app[CLOCK]())
        assert middle is not None

        other = await _schedule(client, csrf, "K.", "2026-11-24T10:00:00Z")
        assert (await client.delete(f"/api/v1/sessions/{other}/invite", headers=headers)).ok
        assert (await client.post(f"/api/v1/sessions/{other}/cancel", headers=headers)).ok
        assert (await client.post("/api/v1/auth/logout", headers=headers)).ok
        await sign_in(client, "admin@example.org")
    # Leaving the block shut the app down, which signed a checkpoint at the newest entry.
    with contextlib.closing(sqlite3.connect(data_dir / "attune.db")) as db:
        last = db.execute("SELECT max(seq) FROM audit_log").fetchone()[0]
        checkpoints = [seq for (seq,) in db.execute("SELECT seq FROM audit_checkpoints")]
    assert checkpoints == [middle, last] and middle + 5 <= last
    return Trail(data_dir=data_dir, middle=middle, last=last)


@pytest.fixture(scope="module")
def trail(tmp_path_factory: pytest.TempPathFactory) -> Trail:
    """Recorded once per module; every case tampers with its own copy."""
    data_dir = tmp_path_factory.mktemp("audit-trail") / "data"
    return asyncio.run(_record_activity(data_dir))


@pytest.fixture(autouse=True)
def no_attune_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The command must read only the copy named by --data-dir."""
    for name in list(os.environ):
        if name.startswith("ATTUNE_"):
            monkeypatch.delenv(name)


@pytest.fixture
def copy(trail: Trail, tmp_path: Path) -> Path:
    """A copy of the data directory: database, WAL if any, and audit-signing.key."""
    target = tmp_path / "copy"
    shutil.copytree(trail.data_dir, target)
    assert (target / AUDIT_SIGNING_KEY_FILE).exists()
    return target


@contextlib.contextmanager
def database(data_dir: Path) -> Iterator[sqlite3.Connection]:
    """The copy's database, opened directly (no Attune code), committed on exit."""
    with contextlib.closing(sqlite3.connect(data_dir / "attune.db")) as db, db:
        yield db


def verify(capsys: pytest.CaptureFixture[str], data_dir: Path) -> tuple[int, str, str]:
    """Run `attune audit verify --data-dir <dir>`; (exit code, stdout, stderr)."""
    code = main(["audit", "verify", "--data-dir", str(data_dir)])
    out, err = capsys.readouterr()
    return code, out, err


# --- what an intruder with write access to the database file might do --------------------------


def _seq_of(db: sqlite3.Connection, action: str) -> int:
    seq: int = db.execute("SELECT min(seq) FROM audit_log WHERE action = ?", (action,)).fetchone()[
        0
    ]
    return seq


def edit_actor(db: sqlite3.Connection, trail: Trail) -> int:
    """Blame someone else for creating a client."""
    seq = _seq_of(db, "client.create")
    db.execute("UPDATE audit_log SET actor = 'account:someone-else' WHERE seq = ?", (seq,))
    return seq


def edit_details(db: sqlite3.Connection, trail: Trail) -> int:
    """Pretend the admin account was created as a therapist."""
    seq: int = db.execute(
        "SELECT seq FROM audit_log WHERE details LIKE '%admin%' ORDER BY seq"
    ).fetchone()[0]
    db.execute("""UPDATE audit_log SET details = '{"role": "therapist"}' WHERE seq = ?""", (seq,))
    return seq


def edit_action(db: sqlite3.Connection, trail: Trail) -> int:
    """Turn a failed sign-in into a successful one."""
    seq = _seq_of(db, "auth.login.failure")
    db.execute("UPDATE audit_log SET action = 'auth.login.success' WHERE seq = ?", (seq,))
    return seq


def edit_time(db: sqlite3.Connection, trail: Trail) -> int:
    """Move an entry by one second."""
    seq = _seq_of(db, "session.create")
    db.execute(
        "UPDATE audit_log SET at = replace(at, '09:00:00', '09:00:01') WHERE seq = ?", (seq,)
    )
    changed: int = db.execute("SELECT changes()").fetchone()[0]
    assert changed == 1
    return seq


def edit_targets(db: sqlite3.Connection, trail: Trail) -> int:
    """Point an invite revocation at a different session."""
    seq = _seq_of(db, "invite.revoke")
    db.execute(
        """UPDATE audit_log SET targets = '["session:00000000000000000000000000000000"]'
        WHERE seq = ?""",
        (seq,),
    )
    return seq


def delete_middle_entry(db: sqlite3.Connection, trail: Trail) -> int:
    """Remove one entry from the middle."""
    seq = trail.middle - 2
    db.execute("DELETE FROM audit_log WHERE seq = ?", (seq,))
    return seq


def swap_two_entries(db: sqlite3.Connection, trail: Trail) -> int:
    """Reorder: entries 3 and 6 exchange sequence numbers (each row keeps its hashes)."""
    db.execute("UPDATE audit_log SET seq = -1 WHERE seq = 3")
    db.execute("UPDATE audit_log SET seq = 3 WHERE seq = 6")
    db.execute("UPDATE audit_log SET seq = 6 WHERE seq = -1")
    return 3


def renumber_after_deleting(db: sqlite3.Connection, trail: Trail) -> int:
    """Delete entry 2 and shift every later entry down by one to close the gap."""
    db.execute("DELETE FROM audit_log WHERE seq = 2")
    for (seq,) in db.execute("SELECT seq FROM audit_log WHERE seq > 2 ORDER BY seq").fetchall():
        db.execute("UPDATE audit_log SET seq = ? WHERE seq = ?", (seq - 1, seq))
    return 2  # the old entry 3, now numbered 2, does not link to entry 1


def truncate_past_the_middle_checkpoint(db: sqlite3.Connection, trail: Trail) -> int:
    """Cut off every entry after the mid-way checkpoint (the shutdown checkpoint remains)."""
    db.execute("DELETE FROM audit_log WHERE seq > ?", (trail.middle,))
    return trail.middle + 1


def truncate_the_newest_entry(db: sqlite3.Connection, trail: Trail) -> int:
    """Cut off only the newest entry."""
    db.execute("DELETE FROM audit_log WHERE seq = ?", (trail.last,))
    return trail.last


def _stored_event(row: tuple[int, str, str, str, str, str]) -> AuditEvent:
    _, at, actor, action, targets, details = row
    return AuditEvent(
        at=datetime.fromisoformat(at).replace(tzinfo=UTC),
        actor=actor,
        action=action,
        targets=tuple(json.loads(targets)),
        details=json.loads(details),
    )


def _rehash_chain(db: sqlite3.Connection) -> None:
    """Recompute every prev_hash and hash, as an intruder who knows the formula would."""
    prev = GENESIS_HASH
    rows = db.execute(
        "SELECT seq, at, actor, action, targets, details FROM audit_log ORDER BY seq"
    ).fetchall()
    for row in rows:
        entry_hash = chain_hash(prev, row[0], _stored_event(row))
        db.execute(
            "UPDATE audit_log SET prev_hash = ?, hash = ? WHERE seq = ?", (prev, entry_hash, row[0])
        )
        prev = entry_hash


def rewrite_and_rehash(db: sqlite3.Connection, trail: Trail) -> int:
    """Edit an early entry and recompute the whole chain: only the signature can tell."""
    db.execute("UPDATE audit_log SET actor = 'account:someone-else' WHERE seq = 2")
    _rehash_chain(db)
    return trail.middle  # the first signed checkpoint no longer matches its entry


def rewrite_rehash_and_resign(db: sqlite3.Connection, trail: Trail) -> int:
    """As above, and re-sign both checkpoints with a key of the intruder's own."""
    db.execute("UPDATE audit_log SET actor = 'account:someone-else' WHERE seq = 2")
    _rehash_chain(db)
    intruder_key = Ed25519PrivateKey.generate()
    for seq, entry_hash in db.execute(
        "SELECT seq, hash FROM audit_log WHERE seq IN (SELECT seq FROM audit_checkpoints)"
    ).fetchall():
        forged = sign_checkpoint(intruder_key, seq, entry_hash)
        db.execute(
            "UPDATE audit_checkpoints SET hash = ?, signature = ? WHERE seq = ?",
            (forged.hash, forged.signature, seq),
        )
    return trail.middle


def forge_a_checkpoint_signature(db: sqlite3.Connection, trail: Trail) -> int:
    """Flip one bit of the mid-way checkpoint's signature."""
    (signature,) = db.execute(
        "SELECT signature FROM audit_checkpoints WHERE seq = ?", (trail.middle,)
    ).fetchone()
    forged = bytes([signature[0] ^ 1]) + signature[1:]
    db.execute("UPDATE audit_checkpoints SET signature = ? WHERE seq = ?", (forged, trail.middle))
    return trail.middle


def move_a_checkpoint(db: sqlite3.Connection, trail: Trail) -> int:
    """Claim the mid-way checkpoint signed an earlier entry (its signature stays)."""
    db.execute("UPDATE audit_checkpoints SET seq = 2 WHERE seq = ?", (trail.middle,))
    return 2


Tamper = Callable[[sqlite3.Connection, Trail], int]


EDITED = "does not match its hash"
GAP = "deleted or reordered"
UNLINKED = "does not link to the entry before it"
CUT = "removed from the end"
REWRITTEN = "differs from its signed checkpoint"
BAD_SIGNATURE = "has a bad signature"


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        pytest.param(edit_actor, EDITED, id="edit-actor"),
        pytest.param(edit_details, EDITED, id="edit-details"),
        pytest.param(edit_action, EDITED, id="edit-action"),
        pytest.param(edit_time, EDITED, id="edit-time"),
        pytest.param(edit_targets, EDITED, id="edit-targets"),
        pytest.param(delete_middle_entry, GAP, id="delete-middle-entry"),
        pytest.param(swap_two_entries, UNLINKED, id="reorder-two-entries"),
        pytest.param(renumber_after_deleting, UNLINKED, id="delete-and-renumber"),
        pytest.param(truncate_past_the_middle_checkpoint, CUT, id="truncate-past-checkpoint"),
        pytest.param(truncate_the_newest_entry, CUT, id="truncate-newest-entry"),
        pytest.param(rewrite_and_rehash, REWRITTEN, id="rewrite-and-rehash"),
        pytest.param(rewrite_rehash_and_resign, BAD_SIGNATURE, id="rewrite-rehash-resign"),
        pytest.param(forge_a_checkpoint_signature, BAD_SIGNATURE, id="forge-signature"),
        pytest.param(move_a_checkpoint, BAD_SIGNATURE, id="move-checkpoint"),
    ],
)
def test_verify_names_the_first_bad_entry(
    capsys: pytest.CaptureFixture[str], trail: Trail, copy: Path, tamper: Tamper, reason: str
) -> None:
    with database(copy) as db:
        first_bad = tamper(db, trail)
    code, out, err = verify(capsys, copy)
    assert code == 1, out
    assert f"BROKEN at sequence number {first_bad}:" in err
    assert reason in err and "Traceback" not in err


def test_untouched_copy_verifies(
    capsys: pytest.CaptureFixture[str], trail: Trail, copy: Path
) -> None:
    code, out, err = verify(capsys, copy)
    assert (code, err) == (0, "")
    assert f"{trail.last} entries verified" in out


def test_a_different_signing_key_fails_at_the_first_checkpoint(
    capsys: pytest.CaptureFixture[str], trail: Trail, copy: Path
) -> None:
    (copy / AUDIT_SIGNING_KEY_FILE).unlink()
    load_or_create_signing_key(copy / AUDIT_SIGNING_KEY_FILE)  # a fresh, unrelated key
    code, _, err = verify(capsys, copy)
    assert code == 1 and f"sequence number {trail.middle}:" in err and BAD_SIGNATURE in err


# --- the documented limits: what checkpoints cannot catch ----------------------------------------


def test_deleting_a_checkpoint_alone_goes_unnoticed(
    capsys: pytest.CaptureFixture[str], trail: Trail, copy: Path
) -> None:
    # The entries still link up; the lost signature only widens the window in which the
    # newest entries could later be cut off unnoticed (the next test).
    with database(copy) as db:
        db.execute("DELETE FROM audit_checkpoints WHERE seq = ?", (trail.last,))
    code, out, _ = verify(capsys, copy)
    assert code == 0 and f"{trail.last} entries verified" in out


def test_truncating_after_the_last_surviving_checkpoint_goes_unnoticed(
    capsys: pytest.CaptureFixture[str], trail: Trail, copy: Path
) -> None:
    with database(copy) as db:
        db.execute("DELETE FROM audit_checkpoints WHERE seq = ?", (trail.last,))
        db.execute("DELETE FROM audit_log WHERE seq > ?", (trail.middle,))
    code, out, _ = verify(capsys, copy)
    assert code == 0 and f"{trail.middle} entries verified" in out


def test_a_malformed_key_file_is_a_clear_error_not_a_broken_trail(
    capsys: pytest.CaptureFixture[str], copy: Path
) -> None:
    (copy / AUDIT_SIGNING_KEY_FILE).write_text("not a key\n")
    code, _, err = verify(capsys, copy)
    assert code == 2 and "signing key file" in err

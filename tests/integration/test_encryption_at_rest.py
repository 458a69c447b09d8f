"""Clinical text is stored only as ciphertext; erasing a client shreds its key; keys rotate."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import stat
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from privacy.vault import FieldContext, KeyShredded
from server.app import create_app
from server.cli import main
from server.runtime import StartupError, keyring_path, open_database, open_vault
from server.settings import Settings
from tests.conftest import FakeClock, add_account, sign_in

MARKER = "MARKER-4f1c-panic-attacks-on-the-night-bus"


async def _therapist_with_client(client: TestClient) -> tuple[str, str]:
    await add_account(client.app, "t@example.org")
    csrf = await sign_in(client, "t@example.org")
    created = await client.post(
        "/api/v1/clients", json={"alias": "J.M."}, headers={"X-CSRF-Token": csrf}
    )
    return csrf, (await created.json())["id"]


def _raw_bytes(data_dir: Path) -> bytes:
    """Every byte Attune keeps on disk: the database, its WAL and shared memory, key files."""
    return b"".join(p.read_bytes() for p in sorted(data_dir.iterdir()) if p.is_file())


async def test_a_note_is_readable_through_the_app_but_absent_from_the_raw_files(
    client: TestClient, data_dir: Path
) -> None:
    csrf, client_id = await _therapist_with_client(client)
    created = await client.post(
        f"/api/v1/clients/{client_id}/notes",
        json={"text": f"Talked about {MARKER}."},
        headers={"X-CSRF-Token": csrf},
    )
    assert created.status == 201
    notes = await (await client.get(f"/api/v1/clients/{client_id}/notes")).json()
    assert MARKER in notes["items"][0]["text"]
    assert MARKER.encode() not in _raw_bytes(data_dir)
    assert MARKER.encode("utf-16-le") not in _raw_bytes(data_dir)


async def test_reading_notes_is_audited_without_their_content(
    client: TestClient, data_dir: Path
) -> None:
    csrf, client_id = await _therapist_with_client(client)
    await client.post(
        f"/api/v1/clients/{client_id}/notes", json={"text": MARKER}, headers={"X-CSRF-Token": csrf}
    )
    await client.get(f"/api/v1/clients/{client_id}/notes")
    with sqlite3.connect(data_dir / "attune.db") as conn:
        rows = conn.execute("SELECT action, targets, details FROM audit_log").fetchall()
    reads = [r for r in rows if r[0] == "clinical.read"]
    assert len(reads) == 1 and json.loads(reads[0][1]) == [f"client:{client_id}"]
    assert json.loads(reads[0][2]) == {"count": 1, "what": "notes"}
    assert all(MARKER not in "".join(map(str, r)) for r in rows)


async def test_a_ciphertext_moved_to_another_row_does_not_decrypt(
    client: TestClient, data_dir: Path
) -> None:
    csrf, client_id = await _therapist_with_client(client)
    for text in ("first note", "second note"):
        await client.post(
            f"/api/v1/clients/{client_id}/notes",
            json={"text": text},
            headers={"X-CSRF-Token": csrf},
        )
    with sqlite3.connect(data_dir / "attune.db") as conn:
        rows = conn.execute("SELECT id, body_ciphertext FROM client_notes").fetchall()
        (_, first_blob), (second_id, _) = rows
        conn.execute(
            "UPDATE client_notes SET body_ciphertext = ? WHERE id = ?", (first_blob, second_id)
        )
    response = await client.get(f"/api/v1/clients/{client_id}/notes")
    assert response.status == 500
    body = await response.json()
    assert body["error"]["code"] == "integrity_error"
    assert "first note" not in await response.text()


async def test_other_therapists_cannot_read_or_write_notes(client: TestClient) -> None:
    csrf, client_id = await _therapist_with_client(client)
    await client.post(
        f"/api/v1/clients/{client_id}/notes", json={"text": MARKER}, headers={"X-CSRF-Token": csrf}
    )
    await add_account(client.app, "other@example.org")
    other = await sign_in(client, "other@example.org")
    assert (await client.get(f"/api/v1/clients/{client_id}/notes")).status == 404
    write = await client.post(
        f"/api/v1/clients/{client_id}/notes", json={"text": "x"}, headers={"X-CSRF-Token": other}
    )
    assert write.status == 404
    erase = await client.delete(f"/api/v1/clients/{client_id}", headers={"X-CSRF-Token": other})
    assert erase.status == 404


async def test_erasing_a_client_destroys_its_key_so_old_copies_stay_unreadable(
    client: TestClient, data_dir: Path
) -> None:
    from server.keys import DB, VAULT

    csrf, client_id = await _therapist_with_client(client)
    await client.post(
        f"/api/v1/clients/{client_id}/notes", json={"text": MARKER}, headers={"X-CSRF-Token": csrf}
    )
    with sqlite3.connect(data_dir / "attune.db") as conn:
        note_id, old_copy = conn.execute("SELECT id, body_ciphertext FROM client_notes").fetchone()
    erased = await client.delete(f"/api/v1/clients/{client_id}", headers={"X-CSRF-Token": csrf})
    assert erased.status == 204
    with sqlite3.connect(data_dir / "attune.db") as conn:
        for table in ("data_keys", "client_notes", "clients", "therapy_sessions"):
            count = conn.execute(
                f"SELECT count(*) FROM {table} WHERE "
                + ("id" if table == "clients" else "client_id")
                + " = ?",
                (client_id,),
            ).fetchone()[0]
            assert count == 0, table
    ctx = FieldContext("client_notes", note_id, "body", client_id)
    async with client.app[DB].read() as conn:
        with pytest.raises(KeyShredded):
            await client.app[VAULT].decrypt_text(conn, ctx, old_copy)
    assert (await client.get(f"/api/v1/clients/{client_id}/notes")).status == 404


async def test_first_start_creates_a_private_keyring_file(
    client: TestClient, settings: Settings
) -> None:
    path = keyring_path(settings)
    assert path.exists()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) & 0o077 == 0


async def _encrypted_data_in(data_dir: Path, aiohttp_client: Any) -> None:
    client = await aiohttp_client(create_app(Settings(data_dir=data_dir), clock=FakeClock.now_()))
    csrf, client_id = await _therapist_with_client(client)
    await client.post(
        f"/api/v1/clients/{client_id}/notes", json={"text": MARKER}, headers={"X-CSRF-Token": csrf}
    )
    await client.close()


async def test_missing_keyring_with_encrypted_data_refuses_to_start(
    tmp_path: Path, aiohttp_client: Any
) -> None:
    data_dir = tmp_path / "data"
    await _encrypted_data_in(data_dir, aiohttp_client)
    (data_dir / "master-keys.json").unlink()
    db = await open_database(Settings(data_dir=data_dir))
    try:
        with pytest.raises(StartupError, match="missing"):
            await open_vault(Settings(data_dir=data_dir), db)
    finally:
        await db.dispose()
    assert not (data_dir / "master-keys.json").exists()  # no silent new key


async def test_wrong_master_key_refuses_to_start(tmp_path: Path, aiohttp_client: Any) -> None:
    data_dir = tmp_path / "data"
    await _encrypted_data_in(data_dir, aiohttp_client)
    wrong = Settings(data_dir=data_dir, master_key="A" * 43 + "=")
    db = await open_database(wrong)
    try:
        with pytest.raises(StartupError, match="does not match"):
            await open_vault(wrong, db)
    finally:
        await db.dispose()


async def test_malformed_master_key_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", master_key="not base64!")
    db = await open_database(settings)
    try:
        with pytest.raises(StartupError, match="Master key problem") as caught:
            await open_vault(settings, db)
        assert "not base64!" not in str(caught.value)
    finally:
        await db.dispose()


async def test_rotation_rewraps_data_keys_and_old_versions_can_be_retired(
    tmp_path: Path, aiohttp_client: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "data"
    await _encrypted_data_in(data_dir, aiohttp_client)
    args = ["--data-dir", str(data_dir)]
    assert await asyncio.to_thread(main, ["keys", "retire", "1", *args]) == 2  # current one
    assert await asyncio.to_thread(main, ["keys", "rotate", *args]) == 0
    assert "re-wrapped 1 data keys" in capsys.readouterr().out
    with sqlite3.connect(data_dir / "attune.db") as conn:
        assert conn.execute("SELECT master_version FROM data_keys").fetchall() == [(2,)]
    assert await asyncio.to_thread(main, ["keys", "retire", "1", *args]) == 0
    ring = json.loads((data_dir / "master-keys.json").read_text())
    assert ring["current"] == 2 and set(ring["keys"]) == {"2"}

    client = await aiohttp_client(create_app(Settings(data_dir=data_dir)))
    csrf = await sign_in(client, "t@example.org")
    assert csrf
    client_id = (await (await client.get("/api/v1/clients")).json())["items"][0]["id"]
    notes = await (await client.get(f"/api/v1/clients/{client_id}/notes")).json()
    assert notes["items"][0]["text"] == MARKER
    assert await asyncio.to_thread(main, ["audit", "verify", *args]) == 0


async def test_the_client_page_adds_and_shows_notes_and_erases_after_typed_confirmation(
    client: TestClient, data_dir: Path
) -> None:
    import re

    _, client_id = await _therapist_with_client(client)
    page = await (await client.get(f"/dashboard/clients/{client_id}")).text()
    form_token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert form_token
    token = form_token.group(1)
    added = await client.post(
        f"/dashboard/clients/{client_id}/notes",
        data={"csrf_token": token, "text": MARKER},
        allow_redirects=False,
    )
    assert added.status == 303
    shown = await (await client.get(f"/dashboard/clients/{client_id}")).text()
    assert "<title>J.M. · Attune</title>" in shown
    assert shown.count(MARKER) == 1 and shown.count('id="notes-heading"') == 1
    assert MARKER.encode() not in _raw_bytes(data_dir)
    wrong = await client.post(
        f"/dashboard/clients/{client_id}/erase",
        data={"csrf_token": token, "confirm_alias": "nope"},
        allow_redirects=False,
    )
    assert "confirm" in wrong.headers["Location"]
    assert (await client.get(f"/dashboard/clients/{client_id}")).status == 200
    erased = await client.post(
        f"/dashboard/clients/{client_id}/erase",
        data={"csrf_token": token, "confirm_alias": "J.M."},
        allow_redirects=False,
    )
    assert erased.status == 303 and erased.headers["Location"] == "/dashboard"
    assert (await client.get(f"/dashboard/clients/{client_id}")).status == 404

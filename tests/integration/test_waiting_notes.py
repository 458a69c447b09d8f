"""Before admission the therapist can send the waiting client a short note through the server:
relayed to whoever waits, never stored, never logged, and rate-limited."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.integration.test_signaling import _setup

NOTE = "Running five minutes late, marker-7f3a"


def _raw_bytes(data_dir: Path) -> bytes:
    """Every file under the data dir (database, WAL, keys), read whole."""
    return b"".join(p.read_bytes() for p in sorted(data_dir.rglob("*")) if p.is_file())


async def test_a_waiting_client_reads_the_therapists_note_and_nothing_keeps_it(
    client: TestClient, aiohttp_client: Any, data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    therapist, visitor, _ = await _setup(client, aiohttp_client)
    await therapist.connect()
    await visitor.connect()
    lobby = await therapist.expect("lobby")
    while not lobby["waiting"]:
        lobby = await therapist.expect("lobby")
    await therapist.send({"type": "waiting-note", "text": NOTE})
    assert await visitor.expect("therapist-note") == {"type": "therapist-note", "text": NOTE}

    await therapist.send({"type": "ping", "id": "after"})  # the note was handled before this
    await therapist.expect("pong")
    assert "marker-7f3a" not in caplog.text
    assert b"marker-7f3a" not in _raw_bytes(data_dir)


async def test_a_client_cannot_send_notes_and_the_therapist_only_a_few_a_minute(
    client: TestClient, aiohttp_client: Any
) -> None:
    therapist, visitor, _ = await _setup(client, aiohttp_client)
    await therapist.connect()
    await visitor.connect()
    await visitor.send({"type": "waiting-note", "text": "Let me in"})
    assert (await visitor.expect("error"))["code"] == "forbidden"
    for n in range(5):
        await therapist.send({"type": "waiting-note", "text": f"Note {n}"})
        await visitor.expect("therapist-note")
    await therapist.send({"type": "waiting-note", "text": "One too many", "id": "n6"})
    error = await therapist.expect("error")
    assert (error["code"], error["ref"]) == ("rate-limited", "n6")

"""Submitting a PHQ-9 or GAD-7: scored, safety alert raised, stored once, encrypted, consented."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from server.core.measures import load_builtin_measures
from server.core.models import TherapySession
from server.db.scheduling import session_by_id
from server.errors import InvalidInput
from server.keys import AUDIT, DB, SETTINGS, VAULT
from server.services.measures import Measures
from tests.integration.test_checkins import _grant
from tests.integration.test_signaling import _setup

NOW = datetime.now(UTC)  # consents are granted at the real time, so submit after them
CODES = ("LA6568-5", "LA6569-3", "LA6570-1", "LA6571-9")


def phq9(*scores: int) -> dict[str, str]:
    return {f"phq9-{n}": CODES[value] for n, value in enumerate(scores, start=1)}


async def _session(client: TestClient, aiohttp_client: Any, *, storage: bool) -> TherapySession:
    therapist, visitor, _ = await _setup(client, aiohttp_client)
    if storage:
        await _grant(visitor, "checkin_storage")
    async with client.app[DB].read() as conn:
        session = await session_by_id(conn, therapist.session_id)
    assert session is not None
    return session


def _service(client: TestClient) -> Measures:
    return Measures(load_builtin_measures(), db=client.app[DB], vault=client.app[VAULT])


def _rows(client: TestClient) -> list[tuple[Any, ...]]:
    with sqlite3.connect(client.app[SETTINGS].data_dir / "attune.db") as conn:
        return conn.execute("SELECT measure_id, idempotency_key FROM measure_responses").fetchall()


def _alert_rows(client: TestClient) -> list[tuple[Any, ...]]:
    with sqlite3.connect(client.app[SETTINGS].data_dir / "attune.db") as conn:
        return conn.execute("SELECT measure_id, seen_at FROM measure_alerts").fetchall()


def _audit_actions(client: TestClient) -> list[str]:
    with sqlite3.connect(client.app[SETTINGS].data_dir / "attune.db") as conn:
        return [row[0] for row in conn.execute("SELECT action FROM audit_log").fetchall()]


def _raw_bytes(data_dir: Path) -> bytes:
    return b"".join(p.read_bytes() for p in data_dir.iterdir() if p.is_file())


async def test_a_phq9_with_item_9_above_not_at_all_raises_a_safety_alert_and_is_stored_once(
    client: TestClient, aiohttp_client: Any
) -> None:
    session = await _session(client, aiohttp_client, storage=True)
    measures = _service(client)
    answers = phq9(2, 2, 1, 1, 1, 1, 1, 1, 1)
    first, duplicate = await measures.submit(
        session=session,
        measure_id="phq9",
        answers=answers,
        idempotency_key="key-one-0123456789",
        now=NOW,
        audit=client.app[AUDIT],
    )
    assert not duplicate and first.stored
    assert (first.score.total, first.score.severity) == (11, "moderate")
    assert first.alert is not None and first.alert.category == "safety"
    # A retry after a restart (a fresh service, nothing in memory) is the same submission.
    again, duplicate = await _service(client).submit(
        session=session,
        measure_id="phq9",
        answers=answers,
        idempotency_key="key-one-0123456789",
        now=NOW,
        audit=client.app[AUDIT],
    )
    assert duplicate and again.id == first.id and again.alert == first.alert
    assert _rows(client) == [("phq9", "key-one-0123456789")]
    assert _alert_rows(client) == [("phq9", None)]
    assert _audit_actions(client).count("measure.submit") == 1
    assert b"LA6569-3" not in _raw_bytes(client.app[SETTINGS].data_dir)


async def test_measures_are_kept_as_clinical_record_without_the_optional_storage_consent(
    client: TestClient, aiohttp_client: Any
) -> None:
    session = await _session(client, aiohttp_client, storage=False)
    result, _ = await _service(client).submit(
        session=session,
        measure_id="phq9",
        answers=phq9(0, 0, 0, 0, 0, 0, 0, 0, 3),
        idempotency_key="key-two-0123456789",
        now=NOW,
        audit=client.app[AUDIT],
    )
    assert result.stored
    assert result.alert is not None and result.alert.category == "safety"
    assert _rows(client) == [("phq9", "key-two-0123456789")]
    assert _alert_rows(client) == [("phq9", None)]
    assert "measure.submit" in _audit_actions(client)


@pytest.mark.parametrize(
    ("measure_id", "answers"),
    [("phq9", {"phq9-1": "3"}), ("phq9", {"gad7-1": CODES[0]}), ("bdi", {})],
    ids=["not-an-option", "another-measures-item", "unknown-measure"],
)
async def test_answers_that_do_not_fit_are_refused_and_nothing_is_stored(
    client: TestClient, aiohttp_client: Any, measure_id: str, answers: dict[str, object]
) -> None:
    session = await _session(client, aiohttp_client, storage=True)
    with pytest.raises(InvalidInput):
        await _service(client).submit(
            session=session,
            measure_id=measure_id,
            answers=answers,
            idempotency_key="key-three-012345678",
            now=NOW,
        )
    assert _rows(client) == []
    assert _alert_rows(client) == []


async def test_history_lists_a_clients_measures_oldest_first_with_their_session_number(
    client: TestClient, aiohttp_client: Any
) -> None:
    session = await _session(client, aiohttp_client, storage=False)
    measures = _service(client)
    for n, item in enumerate((1, 2, 3)):
        await measures.submit(
            session=session,
            measure_id="phq9",
            answers=phq9(item, item, item, 0, 0, 0, 0, 0, 0),
            idempotency_key=f"history-key-{n:08d}",
            now=NOW + timedelta(seconds=n),
        )
    await measures.submit(
        session=session,
        measure_id="gad7",
        answers={f"gad7-{n}": CODES[1] for n in range(1, 8)},
        idempotency_key="history-key-gad7-0",
        now=NOW + timedelta(seconds=5),
    )
    history = await _service(client).history(session.client_id)
    assert [(r.measure.id, r.score.total, r.session_number) for r in history] == [
        ("phq9", 3, 1),
        ("phq9", 6, 1),
        ("phq9", 9, 1),
        ("gad7", 7, 1),
    ]
    assert all(r.stored and r.client_id == session.client_id for r in history)

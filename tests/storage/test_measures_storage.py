"""Outcome measures behave the same on SQLite and PostgreSQL: plans, answers, history, flags
and the safety alert's record."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from server.app import create_app
from server.core.measures.schedule import Frequency, Plan
from server.db.scheduling import session_by_id
from server.keys import AUDIT, DB, MEASURES
from server.services import scheduling
from server.settings import Settings
from tests.conftest import FakeClock, add_account

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
CODES = ("LA6568-5", "LA6569-3", "LA6570-1", "LA6571-9")


async def test_plans_answers_history_flags_and_alerts_on_this_backend(
    database_url: str, tmp_path: Path, aiohttp_client: Any
) -> None:
    settings = Settings(data_dir=tmp_path / "data", database_url=database_url)
    client = await aiohttp_client(create_app(settings, clock=FakeClock(NOW)))
    app = client.app
    db, audit, measures = app[DB], app[AUDIT], app[MEASURES]
    therapist = await add_account(app, "t@example.org")
    person = await scheduling.create_client(db, audit, therapist, "J.M.", NOW)
    await measures.set_plan(
        therapist_id=therapist.id,
        client_id=person.id,
        plan=Plan(("phq9",), Frequency.EVERY_2ND_SESSION),
        now=NOW,
        audit=audit,
    )
    assert await measures.plan(person.id) == Plan(("phq9",), Frequency.EVERY_2ND_SESSION)

    sessions = []
    for week in range(3):
        created, _ = await scheduling.create_session(
            db,
            audit,
            therapist,
            client_id=person.id,
            starts_at=NOW + timedelta(weeks=week, minutes=5),
            minutes=50,
            now=NOW,
        )
        async with db.read() as conn:
            found = await session_by_id(conn, created.id)
        assert found is not None
        sessions.append(found)
    assert [m.id for m in await measures.due(sessions[0])] == ["phq9"]

    for number, (session, item) in enumerate(zip(sessions, (0, 2, 3), strict=True)):
        answers = {f"phq9-{n}": CODES[item] for n in range(1, 9)} | {"phq9-9": CODES[number % 2]}
        await measures.submit(
            session=session,
            measure_id="phq9",
            answers=answers,
            idempotency_key=f"storage-key-{number:06d}",
            now=session.starts_at,
            audit=audit,
        )
    assert [m.id for m in await measures.due(sessions[1])] == []  # answered in it

    history = await measures.history(person.id)
    assert [(r.score.total, r.session_number) for r in history] == [(0, 1), (17, 2), (24, 3)]
    flags = await measures.flags(person.id)
    assert [f.reason for f in flags["phq9"]] == ["reliably-worse"]

    [alert] = await measures.unseen_alerts(therapist.id)
    assert (alert.client_alias, alert.measure_title, alert.session_id) == (
        "J.M.",
        "PHQ-9",
        sessions[1].id,
    )
    await measures.mark_alert_seen(
        therapist_id=therapist.id, alert_id=alert.id, now=NOW, audit=audit
    )
    assert await measures.unseen_alerts(therapist.id) == []
    assert len(await measures.alerts_of_session(sessions[1].id)) == 1

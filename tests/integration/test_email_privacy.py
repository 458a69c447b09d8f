"""No clinical content in any email: with marker strings planted in the alias, a therapist
note, a check-in comment, a shared goal, outcome-measure answers and the safety check, a
whole practice's emails (invitation, reschedule, reminders, cancellation, the therapist's
alert and safety notices) reach a real SMTP server, and not one marker is in any of them.
Subjects are neutral; client messages never name the therapist."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email import message_from_bytes, policy
from typing import Any

from aiohttp.test_utils import TestClient

from server.keys import DB, LIVE
from server.services import accounts
from tests.conftest import FakeClock, sign_in
from tests.integration import test_email
from tests.integration.test_checkins import _grant
from tests.integration.test_email import CLIENT_EMAIL, Mailbox, _round
from tests.integration.test_email_links import assert_links_absolute
from tests.integration.test_measures_flow import _answer, phq9
from tests.integration.test_safety_check import ANSWERS, answer
from tests.integration.test_signaling import Party, _admitted, _setup

app, mailbox = test_email.app, test_email.mailbox  # the same fixtures: SMTP on loopback

THERAPIST = "t@example.org"  # `_setup`'s therapist; the client's alias there is "J.M."
THERAPIST_ADDRESS = re.compile(r"(?<![\w.+-])t@example\.org")  # not in client@example.org
NOTE = "NOTE-MARKER-3c1f-panic-on-the-train"
CHECKIN_COMMENT = "CHECKIN-MARKER-77aa-felt-judged"
GOAL = "GOAL-MARKER-b0d9-stop-drinking"
SAFETY = [str(v) for v in ANSWERS.values() if isinstance(v, str)]
# What a measure or an alert could give away: its name, its codes, its wording.
CLINICAL_WORDS = ("PHQ", "phq9", "LA6570", "Nearly every day", "rupture", "hurting", "J.M.")
MARKERS = (NOTE, CHECKIN_COMMENT, GOAL, *SAFETY, *CLINICAL_WORDS)
NEUTRAL_SUBJECT = re.compile(
    r"^(Your appointment on \w+ \d+ \w+( is cancelled)?"
    r"|Reminder: your appointment on \w+ \d+ \w+"
    r"|Your appointment has moved to \w+ \d+ \w+"
    r"|You have a new alert in Attune"
    r"|A client's questionnaire needs your attention)$"
)


def _every_text(raw: bytes) -> list[str]:
    """The raw message and every decoded part, as text (base64 and quoted-printable undone)."""
    texts = [raw.decode("ascii", "replace")]
    for part in message_from_bytes(raw, policy=policy.default).walk():
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            texts.append(payload.decode("utf-8", "replace"))
    return texts


async def _csrf_of(visitor: Party, path: str, pattern: str) -> str:
    found = re.search(pattern, await (await visitor.http.get(path)).text())
    assert found, path
    return found.group(1)


async def _plant_everything(
    client: TestClient, therapist: Party, visitor: Party, csrf: str
) -> None:
    """A first session in which every kind of clinical content is written, and the client
    saves an address for emails."""
    headers = {"X-CSRF-Token": csrf}
    noted = await client.post(
        f"/api/v1/clients/{await _client_id(client, therapist)}/notes",
        json={"text": NOTE},
        headers=headers,
    )
    assert noted.status == 201, await noted.text()
    opted = await client.post(
        "/dashboard/email-alerts", data={"csrf_token": csrf, "alerts": "on"}, allow_redirects=False
    )
    assert opted.status == 303

    await _grant(visitor, "checkin_storage")
    token = await _csrf_of(visitor, "/visit/contact", r'name="csrf_token" value="([^"]+)"')
    saved = await visitor.http.post(
        "/visit/contact",
        data={"csrf_token": token, "notice_version": "1", "email": CLIENT_EMAIL, "consent": "yes"},
        allow_redirects=False,
    )
    assert saved.status == 303
    assert (await answer(visitor)).status in (200, 201)  # the safety check, with its marker
    measured = await _answer(visitor, phq9(3, 3, 3, 3, 3, 3, 3, 3, 3), "privacy-measure-0001")
    assert measured.status == 201  # item 9 above zero: a safety alert and its email

    await _admitted(therapist, visitor)
    await visitor.send({"type": "goal-add", "text": GOAL})
    goals = (await therapist.expect("goals"))["goals"]
    while not goals:
        goals = (await therapist.expect("goals"))["goals"]

    account = await accounts.account_by_email(client.app[DB], THERAPIST)
    await client.app[LIVE].end_session(account, therapist.session_id)
    token = await _csrf_of(visitor, "/visit/after", r'name="csrf-token" content="([^"]+)"')
    after = {
        "bond": 6,
        "goals": 6,
        "approach": 6,
        "technology": 9,
        "overall": 6,
        "rupture": "quite-a-bit",
        "note": CHECKIN_COMMENT,
        f"goal-{goals[0]['id']}": 2,
    }
    checked = await visitor.http.post(
        "/api/v1/visit/checkins",
        headers={"X-CSRF-Token": token},
        json={"instrument_id": "after", "answers": after, "idempotency_key": "privacy-after-01"},
    )
    assert checked.status == 201, await checked.text()


async def test_no_marker_of_clinical_content_reaches_any_email(
    client: TestClient, aiohttp_client: Any, clock: FakeClock, mailbox: tuple[Mailbox, int]
) -> None:
    box, _ = mailbox
    therapist, visitor, csrf = await _setup(client, aiohttp_client)
    await _plant_everything(client, therapist, visitor, csrf)
    headers = {"X-CSRF-Token": csrf}

    async def book(starts_at: str) -> str:
        booked = await client.post(
            "/api/v1/sessions",
            json={"client_id": (await _client_id(client, therapist)), "starts_at": starts_at},
            headers=headers,
        )
        assert booked.status == 201
        return str((await booked.json())["session"]["id"])

    moved_id = await book("2026-11-25T10:00:00Z")
    await book("2026-11-27T10:00:00Z")
    await _round(client, clock)  # the two invitations (and the therapist's two notices)
    moved = await client.post(
        f"/dashboard/sessions/{moved_id}/edit",
        data={
            "csrf_token": csrf,
            "starts_at": "2026-11-26T10:00",
            "tz_offset_minutes": "0",
            "minutes": "50",
            "link": "keep",
        },
        allow_redirects=False,
    )
    assert moved.status == 303
    await _round(client, clock)
    clock.now = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)  # a day before the moved session
    await _round(client, clock)
    headers = {"X-CSRF-Token": await sign_in(client, THERAPIST)}  # two days on: signed out
    cancelled = await client.post(f"/api/v1/sessions/{moved_id}/cancel", headers=headers)
    assert cancelled.status == 200
    for moment in (datetime(2026, 11, 26, 10, 0), datetime(2026, 11, 27, 9, 50)):
        clock.now = moment.replace(tzinfo=UTC)
        await _round(client, clock)

    subjects = [str(m["Subject"]) for m in box.parsed()]
    assert sorted(subjects) == sorted(
        [
            "A client's questionnaire needs your attention",
            "You have a new alert in Attune",
            "Your appointment on Wednesday 25 November",  # the moved one, first booked
            "Your appointment on Friday 27 November",
            "Your appointment has moved to Thursday 26 November",
            "Reminder: your appointment on Thursday 26 November",
            "Your appointment on Thursday 26 November is cancelled",
            "Reminder: your appointment on Friday 27 November",  # a day before
            "Reminder: your appointment on Friday 27 November",  # ten minutes before
        ]
    )
    for (recipients, raw), subject in zip(box.messages, subjects, strict=True):
        assert NEUTRAL_SUBJECT.fullmatch(subject), subject
        to_therapist = recipients == [THERAPIST]
        assert to_therapist or recipients == [CLIENT_EMAIL]
        for text in _every_text(raw):
            for marker in MARKERS:
                assert marker not in text, f"{marker!r} in {subject!r}"
            if not to_therapist:
                assert not THERAPIST_ADDRESS.search(text), subject
    assert_links_absolute(box)


async def _client_id(client: TestClient, therapist: Party) -> str:
    session = await (await client.get(f"/api/v1/sessions/{therapist.session_id}")).json()
    return str(session["client_id"])

"""Consent: the one gate, the consent page's view, the receipt, live events and the notices."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privacy.consent import (
    OFFERED_PURPOSES,
    OPTIONAL_PURPOSES,
    REQUIRED_PURPOSES,
    WITHDRAWAL_EFFECTS,
    Channel,
    ConsentChanged,
    ConsentDecision,
    ConsentEvents,
    ConsentRecord,
    ConsentState,
    Notice,
    NoticeCatalog,
    NoticeNotFound,
    Purpose,
    Subject,
    consent_state,
    load_notices,
    may_process,
    receipt,
)

NOW = datetime(2025, 6, 2, 14, 0, tzinfo=UTC)
GRANTED, WITHDRAWN = ConsentDecision.GRANTED, ConsentDecision.WITHDRAWN
CUE, CHECKINS, VIDEO = Purpose.CUE_ANALYSIS, Purpose.CHECKIN_STORAGE, Purpose.TELEHEALTH
SHA = "ab" * 32


def _record(
    decision: ConsentDecision,
    minutes_ago: float,
    *,
    purpose: Purpose = CUE,
    version: int = 1,
) -> ConsentRecord:
    return ConsentRecord(
        client_id="client-1",
        purpose=purpose,
        notice_version=version,
        notice_sha256=SHA,
        decision=decision,
        at=NOW - timedelta(minutes=minutes_ago),
        channel=Channel.PAGE,
        triggered=WITHDRAWAL_EFFECTS[purpose] if decision is WITHDRAWN else (),
    )


# --- the gate ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("purpose", "records", "current_version", "allowed"),
    [
        pytest.param(CUE, [], 1, False, id="never-asked"),
        pytest.param(CUE, [_record(GRANTED, 10)], 1, True, id="granted"),
        pytest.param(CUE, [_record(GRANTED, 0)], 1, True, id="granted-exactly-now"),
        pytest.param(
            CUE, [_record(GRANTED, 10), _record(WITHDRAWN, 5)], 1, False, id="withdrawn-after-grant"
        ),
        pytest.param(
            CUE,
            [_record(GRANTED, 10), _record(WITHDRAWN, 5), _record(GRANTED, 1)],
            1,
            True,
            id="re-granted",
        ),
        pytest.param(
            CUE,
            [_record(WITHDRAWN, 5), _record(GRANTED, 10)],
            1,
            False,
            id="stored-out-of-order-latest-time-wins",
        ),
        pytest.param(CUE, [_record(GRANTED, 10, version=1)], 2, False, id="grant-for-old-notice"),
        pytest.param(
            CUE,
            [_record(GRANTED, 10, version=1), _record(GRANTED, 1, version=2)],
            2,
            True,
            id="re-granted-for-new-notice",
        ),
        pytest.param(CUE, [_record(GRANTED, -5)], 1, False, id="grant-in-the-future"),
        pytest.param(
            CUE, [_record(GRANTED, 10), _record(WITHDRAWN, -5)], 1, True, id="withdrawal-in-future"
        ),
        pytest.param(
            CUE, [_record(GRANTED, 5), _record(WITHDRAWN, 5)], 1, False, id="tie-later-record-wins"
        ),
        pytest.param(
            CUE, [_record(WITHDRAWN, 5), _record(GRANTED, 5)], 1, True, id="tie-later-grant-wins"
        ),
        pytest.param(
            CUE, [_record(GRANTED, 10, purpose=CHECKINS)], 1, False, id="other-purpose-grant"
        ),
        pytest.param(
            CUE,
            [_record(GRANTED, 10), _record(WITHDRAWN, 1, purpose=CHECKINS)],
            1,
            True,
            id="other-purpose-withdrawal",
        ),
        pytest.param(VIDEO, [], 1, False, id="required-purpose-never-asked"),
        pytest.param(VIDEO, [_record(GRANTED, 3, purpose=VIDEO)], 1, True, id="required-granted"),
        pytest.param(
            VIDEO,
            [_record(GRANTED, 3, purpose=VIDEO), _record(WITHDRAWN, 1, purpose=VIDEO)],
            1,
            False,
            id="required-withdrawn",
        ),
    ],
)
def test_may_process(
    purpose: Purpose, records: list[ConsentRecord], current_version: int, allowed: bool
) -> None:
    assert may_process(purpose, records, NOW, current_version) is allowed


@pytest.mark.parametrize(
    ("records", "now"),
    [
        pytest.param(None, NOW, id="records-none"),
        pytest.param([object()], NOW, id="foreign-object"),
        pytest.param([_record(GRANTED, 1)], NOW.replace(tzinfo=None), id="naive-now"),
        pytest.param([_record(GRANTED, 1)], "2025-06-02", id="now-not-a-time"),
    ],
)
def test_gate_fails_closed_and_never_raises(records: object, now: object) -> None:
    assert may_process(CUE, records, now, 1) is False  # type: ignore[arg-type]


def test_required_and_optional_purposes() -> None:
    assert set(REQUIRED_PURPOSES) == {Purpose.TELEHEALTH}
    assert set(OPTIONAL_PURPOSES) == {
        Purpose.CHECKIN_STORAGE,
        Purpose.CUE_ANALYSIS,
        Purpose.CONTACT,
    }
    assert Purpose.RESEARCH not in OFFERED_PURPOSES
    assert set(OFFERED_PURPOSES) == REQUIRED_PURPOSES | OPTIONAL_PURPOSES


# --- the gate against a reference model ------------------------------------------------------

_times = st.integers(min_value=0, max_value=20).map(lambda m: NOW + timedelta(minutes=m - 10))
_records = st.builds(
    lambda purpose, decision, at, version: ConsentRecord(
        client_id="client-1",
        purpose=purpose,
        notice_version=version,
        notice_sha256=SHA,
        decision=decision,
        at=at,
        channel=Channel.API,
    ),
    st.sampled_from([CUE, CHECKINS]),
    st.sampled_from(list(ConsentDecision)),
    _times,
    st.integers(min_value=1, max_value=3),
)


def _reference(purpose: Purpose, records: list[ConsentRecord], now: datetime, version: int) -> bool:
    applicable = [r for r in records if r.purpose == purpose and r.at <= now]
    ordered = sorted(applicable, key=lambda r: r.at)  # stable: ties keep sequence order
    return (
        bool(ordered) and ordered[-1].decision == GRANTED and ordered[-1].notice_version == version
    )


@settings(max_examples=200, deadline=None)
@given(
    records=st.lists(_records, max_size=12),
    later=st.lists(_records, max_size=4),
    now=_times,
    version=st.integers(min_value=1, max_value=3),
)
def test_gate_matches_reference_and_ignores_future_and_other_purposes(
    records: list[ConsentRecord], later: list[ConsentRecord], now: datetime, version: int
) -> None:
    expected = _reference(CUE, records, now, version)
    assert may_process(CUE, records, now, version) is expected

    after_now = [r for r in later if r.at > now]
    other_purpose = [r for r in later if r.purpose != CUE]
    assert may_process(CUE, records + after_now, now, version) is expected
    assert may_process(CUE, other_purpose + records + other_purpose, now, version) is expected

    catalog = NoticeCatalog()
    for v in range(1, version + 1):
        catalog = catalog.with_notice(Notice.from_markdown(CUE, v, f"# Cues v{v}\n\nText {v}."))
    shown = consent_state(records, catalog, now)[CUE].state
    assert (shown is ConsentState.GRANTED) is expected


# --- the consent page's view -----------------------------------------------------------------


def _catalog(cue_versions: int = 1) -> NoticeCatalog:
    catalog = load_notices()
    for version in range(2, cue_versions + 1):
        document = f"# Conversation cues\n\nRevised text, version {version}."
        catalog = catalog.with_notice(Notice.from_markdown(CUE, version, document))
    return catalog


@pytest.mark.parametrize(
    ("records", "cue_versions", "state"),
    [
        pytest.param([], 1, ConsentState.NEVER_ASKED, id="never-asked"),
        pytest.param([_record(GRANTED, 5)], 1, ConsentState.GRANTED, id="granted"),
        pytest.param(
            [_record(GRANTED, 5), _record(WITHDRAWN, 1)], 1, ConsentState.WITHDRAWN, id="withdrawn"
        ),
        pytest.param([_record(GRANTED, 5)], 2, ConsentState.NEEDS_RECONSENT, id="older-notice"),
        pytest.param([_record(GRANTED, -5)], 1, ConsentState.NEVER_ASKED, id="future-ignored"),
    ],
)
def test_consent_state(
    records: list[ConsentRecord], cue_versions: int, state: ConsentState
) -> None:
    statuses = consent_state(records, _catalog(cue_versions), NOW)
    assert statuses[CUE].state is state
    assert statuses[CUE].current_notice.version == cue_versions
    assert set(statuses) == set(OFFERED_PURPOSES)
    assert statuses[CHECKINS].state is ConsentState.NEVER_ASKED


# --- records -------------------------------------------------------------------------------


def test_records_take_stored_strings_as_enums() -> None:
    record = ConsentRecord(
        client_id="client-1",
        purpose="cue_analysis",  # type: ignore[arg-type]
        notice_version=1,
        notice_sha256=SHA,
        decision="withdrawn",  # type: ignore[arg-type]
        at=NOW,
        channel="api",  # type: ignore[arg-type]
        subject="guardian",  # type: ignore[arg-type]
        triggered=["stop-feature-stream"],  # type: ignore[arg-type]
    )
    assert (record.purpose, record.decision, record.subject) == (CUE, WITHDRAWN, Subject.GUARDIAN)
    assert record.triggered == ("stop-feature-stream",)


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"at": NOW.replace(tzinfo=None)}, id="naive-time"),
        pytest.param({"notice_version": 0}, id="version-zero"),
        pytest.param({"notice_sha256": "AB" * 32}, id="uppercase-hash"),
        pytest.param({"notice_sha256": "ab"}, id="short-hash"),
        pytest.param({"triggered": ("delete-checkins",)}, id="grant-with-triggers"),
        pytest.param({"purpose": "marketing"}, id="unknown-purpose"),
        pytest.param({"channel": "email"}, id="unknown-channel"),
    ],
)
def test_invalid_records_are_refused(changes: dict[str, object]) -> None:
    fields: dict[str, object] = {
        "client_id": "client-1",
        "purpose": CUE,
        "notice_version": 1,
        "notice_sha256": SHA,
        "decision": GRANTED,
        "at": NOW,
        "channel": Channel.PAGE,
    }
    with pytest.raises(ValueError):
        ConsentRecord(**{**fields, **changes})  # type: ignore[arg-type]


def test_every_purpose_says_what_withdrawal_starts() -> None:
    assert set(WITHDRAWAL_EFFECTS) == set(Purpose)
    assert "stop-feature-stream" in WITHDRAWAL_EFFECTS[CUE]
    assert "delete-checkins" in WITHDRAWAL_EFFECTS[CHECKINS]


# --- receipt -------------------------------------------------------------------------------


def test_receipt_lists_every_decision_oldest_first_as_json() -> None:
    catalog = load_notices()
    cue_notice = catalog.current(CUE)
    granted = _record(GRANTED, 30)
    withdrawn = _record(WITHDRAWN, 10)
    generated_at = NOW + timedelta(minutes=1)

    document = receipt("J.M.", [withdrawn, granted], catalog, generated_at)

    assert json.loads(json.dumps(document)) == document
    assert document["client"] == "J.M."
    assert document["generated_at"] == "2025-06-02T14:01:00Z"
    assert [r["decision"] for r in document["records"]] == ["granted", "withdrawn"]
    assert document["records"][1] == {
        "purpose": "cue_analysis",
        "notice_version": 1,
        "notice_sha256": SHA,
        "notice_language": "en",
        "notice_title": cue_notice.title,
        "decision": "withdrawn",
        "at": "2025-06-02T13:50:00Z",
        "channel": "page",
        "subject": "client",
        "triggered": ["stop-feature-stream", "delete-cue-data"],
    }


# --- live events ---------------------------------------------------------------------------

EVENT = ConsentChanged("client-1", CUE, WITHDRAWN, NOW)


def test_subscribers_hear_every_change_until_they_unsubscribe() -> None:
    events = ConsentEvents()
    heard: list[ConsentChanged] = []
    unsubscribe = events.subscribe(heard.append)

    events.publish(EVENT)
    unsubscribe()
    unsubscribe()  # idempotent
    events.publish(EVENT)

    assert heard == [EVENT]


def test_a_failing_subscriber_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    events = ConsentEvents()
    heard: list[str] = []

    def broken(_: ConsentChanged) -> None:
        raise RuntimeError("socket gone")

    events.subscribe(lambda e: heard.append("first"))
    events.subscribe(broken)
    events.subscribe(lambda e: heard.append("third"))

    errors = events.publish(EVENT)

    assert heard == ["first", "third"]
    assert [str(e) for e in errors] == ["socket gone"]
    assert "consent listener failed" in caplog.text


def test_unsubscribing_during_publish_is_safe() -> None:
    events = ConsentEvents()
    heard: list[str] = []
    handles: list[Callable[[], None]] = []

    def first(_: ConsentChanged) -> None:
        heard.append("first")
        for handle in handles:
            handle()

    events.subscribe(first)
    handles.append(events.subscribe(lambda e: heard.append("second")))

    events.publish(EVENT)
    events.publish(EVENT)

    assert heard == ["first", "second", "first"]


def test_event_from_a_stored_record() -> None:
    record = _record(WITHDRAWN, 0)
    assert ConsentChanged.from_record(record) == ConsentChanged("client-1", CUE, WITHDRAWN, NOW)


# --- notices -------------------------------------------------------------------------------


@pytest.mark.parametrize("purpose", OFFERED_PURPOSES, ids=str)
def test_each_offered_purpose_ships_a_v1_notice(purpose: Purpose) -> None:
    notice = load_notices().get(purpose, 1)
    assert notice.purpose is purpose
    assert notice.title and not notice.title.startswith("#")
    assert notice.text.startswith(f"# {notice.title}\n")
    assert notice.sha256 == hashlib.sha256(notice.text.encode("utf-8")).hexdigest()
    assert "from the consent page, at any time, in one step" in " ".join(notice.body.split())
    assert "changes nothing about your care" in " ".join(notice.body.split())


@pytest.mark.parametrize("purpose", sorted(OPTIONAL_PURPOSES), ids=str)
def test_optional_notices_say_they_are_optional(purpose: Purpose) -> None:
    assert "optional" in load_notices().current(purpose).body


def test_shipped_notice_hashes_match_the_files_byte_for_byte() -> None:
    root = Path(__file__).resolve().parents[2] / "privacy" / "notices"
    for purpose in OFFERED_PURPOSES:
        raw = (root / purpose.value / "v1.md").read_bytes()
        assert load_notices().get(purpose, 1).sha256 == hashlib.sha256(raw).hexdigest()


def test_research_is_reserved_and_has_no_notice() -> None:
    catalog = load_notices()
    assert catalog.versions(Purpose.RESEARCH) == ()
    with pytest.raises(NoticeNotFound):
        catalog.current(Purpose.RESEARCH)


def test_publishing_a_new_version_makes_it_current_and_keeps_the_old() -> None:
    catalog = load_notices()
    v2 = Notice.from_markdown(CHECKINS, 2, "# Keeping your check-in answers\n\nUpdated.\n")
    updated = catalog.with_notice(v2)
    assert updated.current(CHECKINS) == v2
    assert updated.get(CHECKINS, 1) == catalog.current(CHECKINS)
    assert catalog.current(CHECKINS).version == 1  # the old catalog is untouched


def test_a_published_version_cannot_change_its_text() -> None:
    catalog = load_notices()
    with pytest.raises(ValueError, match="already published"):
        catalog.with_notice(Notice.from_markdown(CUE, 1, "# Something else\n\nDifferent."))
    assert catalog.with_notice(catalog.get(CUE, 1)) == catalog  # re-adding the same is fine


def test_notice_hash_must_match_its_text() -> None:
    with pytest.raises(ValueError, match="sha256"):
        Notice(CUE, 1, "Title", "# Title\n\nBody", "0" * 64)


def test_load_notices_from_a_directory(tmp_path: Path) -> None:
    (tmp_path / "cue_analysis").mkdir()
    (tmp_path / "cue_analysis" / "v1.md").write_bytes(b"# Cues\r\n\r\nBody with CRLF.\r\n")
    (tmp_path / "cue_analysis" / "v2.md").write_text("# Cues, revised\n\nBody.\n")
    (tmp_path / "cue_analysis" / "notes.txt").write_text("not a notice")

    catalog = load_notices(tmp_path)

    assert catalog.versions(CUE) == (1, 2)
    assert catalog.current(CUE).title == "Cues, revised"
    assert catalog.get(CUE, 1).title == "Cues"
    assert (
        catalog.get(CUE, 1).sha256
        == hashlib.sha256(b"# Cues\r\n\r\nBody with CRLF.\r\n").hexdigest()
    )


@pytest.mark.parametrize(
    ("directory", "filename", "content"),
    [
        pytest.param("cue_analysys", "v1.md", "# Title\n\nBody", id="misspelt-purpose"),
        pytest.param("cue_analysis", "v1.md", "Title\n\nBody", id="no-title-line"),
    ],
)
def test_malformed_notice_directories_are_refused(
    tmp_path: Path, directory: str, filename: str, content: str
) -> None:
    (tmp_path / directory).mkdir()
    (tmp_path / directory / filename).write_text(content)
    with pytest.raises(ValueError):
        load_notices(tmp_path)

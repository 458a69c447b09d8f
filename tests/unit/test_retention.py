"""Retention decisions: when a record is due, what happens to it, and what stops it."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privacy.retention import (
    ALLOWED_ACTIONS,
    DEFAULT_POLICIES,
    DEFAULT_REASONS,
    FLOORS,
    Action,
    Category,
    Hold,
    Policy,
    PolicyError,
    PurgeDecision,
    Record,
    due_for_purge,
    expiry_cutoff,
    summarize,
    validate_policy,
)

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
MICROSECOND = timedelta(microseconds=1)
FLOOR_DAYS = 2192

CUE_30_DAYS = {Category.CUE: Policy(Category.CUE, 30, Action.DELETE)}
AUDIT_AT_FLOOR = {Category.AUDIT: Policy(Category.AUDIT, FLOOR_DAYS, Action.DELETE)}


def record(
    category: Category,
    age: timedelta,
    *,
    record_id: str = "r1",
    client_id: str | None = "client-1",
    anonymized: bool = False,
) -> Record:
    """A record whose retention clock started `age` before NOW."""
    return Record(category, record_id, client_id, NOW - age, anonymized)


def hold(
    placed_at: datetime, released_at: datetime | None = None, client_id: str = "client-1"
) -> Hold:
    return Hold(client_id, "admin-1", "litigation notice 2025-17", placed_at, released_at)


def purged_ids(decisions: list[PurgeDecision]) -> list[str]:
    return [decision.record_id for decision in decisions]


# --- when a record is due -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("age", "keep_days", "is_due"),
    [
        pytest.param(30 * DAY - MICROSECOND, 30, False, id="one microsecond before expiry"),
        pytest.param(30 * DAY, 30, True, id="exactly at expiry"),
        pytest.param(30 * DAY + MICROSECOND, 30, True, id="just after expiry"),
        pytest.param(400 * DAY, 30, True, id="long past expiry"),
        pytest.param(timedelta(0), 30, False, id="brand new"),
        pytest.param(timedelta(0), 0, True, id="keep 0 days: due as soon as it exists"),
        pytest.param(-MICROSECOND, 0, False, id="keep 0 days: stamped in the future"),
    ],
)
def test_a_record_is_due_once_created_at_plus_keep_days_has_passed(
    age: timedelta, keep_days: int, is_due: bool
) -> None:
    policies = {Category.CUE: Policy(Category.CUE, keep_days, Action.DELETE)}
    decisions = due_for_purge([record(Category.CUE, age)], policies, [], NOW)
    assert purged_ids(decisions) == (["r1"] if is_due else [])


def test_the_storage_cutoff_is_now_minus_keep_days() -> None:
    assert expiry_cutoff(CUE_30_DAYS[Category.CUE], NOW) == datetime(2025, 1, 30, 12, tzinfo=UTC)


# --- legal holds -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("holds", "is_purged"),
    [
        pytest.param([], True, id="no hold"),
        pytest.param([hold(NOW - DAY)], False, id="active hold"),
        pytest.param([hold(NOW - 9 * DAY, NOW - DAY)], True, id="hold released before the run"),
        pytest.param([hold(NOW - DAY, NOW)], True, id="hold released exactly at the run"),
        pytest.param([hold(NOW - DAY, NOW + DAY)], False, id="hold released after the run"),
        pytest.param([hold(NOW)], False, id="hold placed exactly at the run"),
        pytest.param([hold(NOW + DAY)], True, id="hold placed after the run"),
        pytest.param([hold(NOW - DAY, client_id="client-2")], True, id="hold on another client"),
        pytest.param(
            [hold(NOW - 9 * DAY, NOW - DAY), hold(NOW - DAY)], False, id="released then re-placed"
        ),
    ],
)
def test_an_active_hold_keeps_every_record_of_its_client(
    holds: list[Hold], is_purged: bool
) -> None:
    decisions = due_for_purge([record(Category.CUE, 90 * DAY)], CUE_30_DAYS, holds, NOW)
    assert purged_ids(decisions) == (["r1"] if is_purged else [])


def test_records_without_a_client_are_never_held() -> None:
    session = record(Category.SESSION_META, 90 * DAY, client_id=None, record_id="s1")
    policies = {Category.SESSION_META: Policy(Category.SESSION_META, 30, Action.DELETE)}
    assert purged_ids(due_for_purge([session], policies, [hold(NOW - DAY)], NOW)) == ["s1"]


# --- policies per category ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("category", "age_days", "expected_action"),
    [
        pytest.param(Category.CUE, 29, None, id="cue, 29 days"),
        pytest.param(Category.CUE, 30, Action.DELETE, id="cue, 30 days"),
        pytest.param(Category.SIGNAL, 89, None, id="signal, 89 days"),
        pytest.param(Category.SIGNAL, 90, Action.DELETE, id="signal, 90 days"),
        pytest.param(Category.CHECKIN, 3652, None, id="checkin, just under 10 years"),
        pytest.param(Category.CHECKIN, 3653, Action.DELETE, id="checkin, 10 years"),
        pytest.param(Category.SESSION_META, 3652, None, id="session_meta, just under 10 years"),
        pytest.param(Category.SESSION_META, 3653, Action.ANONYMIZE, id="session_meta, 10 years"),
        pytest.param(Category.CONSENT, 2191, None, id="consent, just under 6 years"),
        pytest.param(Category.CONSENT, 2192, Action.DELETE, id="consent, 6 years"),
        pytest.param(Category.AUDIT, 2191, None, id="audit, just under 6 years"),
        pytest.param(Category.AUDIT, 2192, Action.DELETE, id="audit, 6 years"),
        pytest.param(Category.ACCOUNT, 2191, None, id="account, just under 6 years"),
        pytest.param(Category.ACCOUNT, 2192, Action.ANONYMIZE, id="account, 6 years"),
    ],
)
def test_default_policies_per_category(
    category: Category, age_days: int, expected_action: Action | None
) -> None:
    decisions = due_for_purge([record(category, age_days * DAY)], DEFAULT_POLICIES, [], NOW)
    assert [decision.action for decision in decisions] == (
        [expected_action] if expected_action else []
    )


def test_each_category_follows_its_own_policy() -> None:
    records = [
        record(Category.CUE, 45 * DAY, record_id="cue-45"),
        record(Category.SIGNAL, 45 * DAY, record_id="signal-45"),
        record(Category.SIGNAL, 75 * DAY, record_id="signal-75"),
        record(Category.CHECKIN, 9999 * DAY, record_id="checkin-without-policy"),
    ]
    policies = {
        Category.CUE: Policy(Category.CUE, 30, Action.DELETE),
        Category.SIGNAL: Policy(Category.SIGNAL, 60, Action.DELETE),
    }
    assert purged_ids(due_for_purge(records, policies, [], NOW)) == ["cue-45", "signal-75"]


def test_decisions_name_the_record_the_action_and_the_reason() -> None:
    old_session = record(Category.SESSION_META, 40 * DAY, record_id="s1")
    policies = {Category.SESSION_META: Policy(Category.SESSION_META, 30, Action.ANONYMIZE)}
    assert due_for_purge([old_session], policies, [], NOW) == [
        PurgeDecision(
            record_id="s1",
            category=Category.SESSION_META,
            action=Action.ANONYMIZE,
            client_id="client-1",
            reason=(
                "session_meta kept 30 days: created 2025-01-20T12:00:00+00:00, "
                "due since 2025-02-19T12:00:00+00:00"
            ),
        )
    ]


@pytest.mark.parametrize(
    ("action", "anonymized", "expected"),
    [
        pytest.param(Action.ANONYMIZE, False, [Action.ANONYMIZE], id="anonymize a linked record"),
        pytest.param(Action.ANONYMIZE, True, [], id="an anonymized record is not redone"),
        pytest.param(Action.DELETE, False, [Action.DELETE], id="delete a linked record"),
        pytest.param(Action.DELETE, True, [Action.DELETE], id="delete an anonymized record"),
    ],
)
def test_anonymize_versus_delete(action: Action, anonymized: bool, expected: list[Action]) -> None:
    session = record(Category.SESSION_META, 40 * DAY, client_id=None, anonymized=anonymized)
    policies = {Category.SESSION_META: Policy(Category.SESSION_META, 30, action)}
    decisions = due_for_purge([session], policies, [], NOW)
    assert [decision.action for decision in decisions] == expected


def test_only_session_meta_and_account_records_can_be_marked_anonymized() -> None:
    with pytest.raises(ValueError, match="checkin records cannot be anonymized"):
        record(Category.CHECKIN, DAY, anonymized=True)


# --- the audit chain: only whole prefixes -----------------------------------------------------


AUDIT_CHAIN = [
    record(Category.AUDIT, 3000 * DAY, record_id="a1", client_id=None),
    record(Category.AUDIT, 2900 * DAY, record_id="a2", client_id="client-1"),
    record(Category.AUDIT, 2800 * DAY, record_id="a3", client_id=None),
    record(Category.AUDIT, 100 * DAY, record_id="a4", client_id=None),
]


@pytest.mark.parametrize(
    ("entries", "holds", "expected"),
    [
        pytest.param(AUDIT_CHAIN, [], ["a1", "a2", "a3"], id="every due entry"),
        pytest.param(AUDIT_CHAIN[::-1], [], ["a1", "a2", "a3"], id="returned in chain order"),
        pytest.param(AUDIT_CHAIN, [hold(NOW - DAY)], ["a1"], id="a held entry keeps the rest"),
        pytest.param(AUDIT_CHAIN[2:], [hold(NOW - DAY)], ["a3"], id="after the held entry went"),
    ],
)
def test_audit_entries_are_purged_only_as_a_prefix_of_the_chain(
    entries: list[Record], holds: list[Hold], expected: list[str]
) -> None:
    assert purged_ids(due_for_purge(entries, AUDIT_AT_FLOOR, holds, NOW)) == expected


# --- policies: allowed actions and floors ---------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        pytest.param(
            Policy(Category.CONSENT, 2191, Action.DELETE),
            "consent records must be kept at least 2192 days (6 years, HIPAA §164.316(b)(2)(i) "
            "documentation rule); pass an override with a reason to depart from it",
            id="consent below its floor",
        ),
        pytest.param(
            Policy(Category.AUDIT, 0, Action.DELETE),
            "audit records must be kept at least 2192 days (6 years, HIPAA §164.316(b)(2)(i) "
            "documentation rule); pass an override with a reason to depart from it",
            id="audit below its floor",
        ),
        pytest.param(
            Policy(Category.CHECKIN, 30, Action.ANONYMIZE),
            "checkin records cannot be handled with anonymize (allowed: delete)",
            id="anonymize check-ins",
        ),
        pytest.param(
            Policy(Category.AUDIT, 3000, Action.ANONYMIZE),
            "audit records cannot be handled with anonymize (allowed: delete)",
            id="anonymize audit entries",
        ),
        pytest.param(
            Policy(Category.CONSENT, 100, Action.ANONYMIZE, "regulator agreed"),
            "consent records cannot be handled with anonymize (allowed: delete)",
            id="an override does not allow a disallowed action",
        ),
    ],
)
def test_policies_that_are_refused(policy: Policy, message: str) -> None:
    with pytest.raises(PolicyError) as refused:
        validate_policy(policy)
    assert str(refused.value) == message


@pytest.mark.parametrize(
    ("policy", "warnings"),
    [
        pytest.param(Policy(Category.CONSENT, 2192, Action.DELETE), [], id="consent at its floor"),
        pytest.param(Policy(Category.CUE, 0, Action.DELETE), [], id="cue with no floor"),
        pytest.param(
            Policy(Category.CONSENT, 365, Action.DELETE, "research consents, ethics board 2025-4"),
            [
                "consent records kept 365 days, below the floor of 2192 days (6 years, HIPAA "
                "§164.316(b)(2)(i) documentation rule); overridden because: research consents, "
                "ethics board 2025-4"
            ],
            id="consent below its floor with an override",
        ),
        pytest.param(
            Policy(Category.AUDIT, 1000, Action.DELETE, "  storage limits  "),
            [
                "audit records kept 1000 days, below the floor of 2192 days (6 years, HIPAA "
                "§164.316(b)(2)(i) documentation rule); overridden because: storage limits"
            ],
            id="audit below its floor with an override",
        ),
        pytest.param(
            Policy(Category.AUDIT, 3000, Action.DELETE, "just in case"),
            ["floor override reason ignored: audit policy already meets its floor"],
            id="override that is not needed",
        ),
        pytest.param(
            Policy(Category.CUE, 30, Action.DELETE, "just in case"),
            ["floor override reason ignored: cue policy has no floor"],
            id="override on a category without a floor",
        ),
        pytest.param(
            Policy(Category.ACCOUNT, 2192, Action.DELETE),
            [
                "deleting accounts leaves audit entries naming actors that no longer resolve; "
                "anonymize keeps a tombstone"
            ],
            id="deleting accounts",
        ),
    ],
)
def test_policies_that_are_accepted_with_their_warnings(
    policy: Policy, warnings: list[str]
) -> None:
    assert validate_policy(policy) == warnings


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        pytest.param({"keep_days": -1}, "between 0 and 36500", id="negative days"),
        pytest.param({"keep_days": 36_501}, "between 0 and 36500", id="more than 100 years"),
        pytest.param({"keep_days": True}, "must be an integer", id="a boolean"),
        pytest.param({"keep_days": 1.5}, "must be an integer", id="a fraction"),
        pytest.param({"floor_override_reason": " "}, "must not be blank", id="blank override"),
        pytest.param({"category": "cue"}, "unknown category", id="category as a plain string"),
        pytest.param({"action": "shred"}, "unknown action", id="unknown action"),
    ],
)
def test_malformed_policies_cannot_be_built(fields: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {
        "category": Category.CUE,
        "keep_days": 30,
        "action": Action.DELETE,
        "floor_override_reason": None,
    }
    with pytest.raises(PolicyError, match=message):
        Policy(**{**arguments, **fields})  # type: ignore[arg-type]


def test_the_purge_refuses_a_policy_below_its_floor() -> None:
    policies = {Category.CONSENT: Policy(Category.CONSENT, 30, Action.DELETE)}
    with pytest.raises(PolicyError, match="consent records must be kept at least 2192 days"):
        due_for_purge([record(Category.CONSENT, 40 * DAY)], policies, [], NOW)


def test_the_purge_follows_an_overridden_floor() -> None:
    policies = {Category.CONSENT: Policy(Category.CONSENT, 30, Action.DELETE, "ethics board")}
    assert purged_ids(due_for_purge([record(Category.CONSENT, 40 * DAY)], policies, [], NOW)) == [
        "r1"
    ]


def test_the_purge_refuses_a_policy_filed_under_another_category() -> None:
    policies = {Category.SIGNAL: Policy(Category.CUE, 30, Action.DELETE)}
    with pytest.raises(PolicyError, match="policy for cue is filed under signal"):
        due_for_purge([], policies, [], NOW)


def test_every_category_has_a_valid_default_policy_with_a_reason() -> None:
    assert set(DEFAULT_POLICIES) == set(Category) == set(DEFAULT_REASONS) == set(ALLOWED_ACTIONS)
    for category, policy in DEFAULT_POLICIES.items():
        assert policy.category is category
        assert validate_policy(policy) == []
        assert len(DEFAULT_REASONS[category]) > 40


def test_floors_protect_consent_and_audit_for_six_years() -> None:
    assert {category: floor.keep_days for category, floor in FLOORS.items()} == {
        Category.CONSENT: FLOOR_DAYS,
        Category.AUDIT: FLOOR_DAYS,
    }


# --- time must be UTC -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "moment",
    [
        pytest.param(datetime(2025, 1, 1), id="naive"),
        pytest.param(datetime(2025, 1, 1, tzinfo=timezone(timedelta(hours=2))), id="UTC+2"),
    ],
)
def test_only_utc_times_are_accepted(moment: datetime) -> None:
    with pytest.raises(ValueError, match="timezone-aware UTC"):
        Record(Category.CUE, "r1", None, moment)
    with pytest.raises(ValueError, match="timezone-aware UTC"):
        hold(moment)
    with pytest.raises(ValueError, match="timezone-aware UTC"):
        due_for_purge([], CUE_30_DAYS, [], moment)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        pytest.param({"reason": ""}, "needs a reason", id="no reason"),
        pytest.param({"released_at": NOW - 2 * DAY}, "released before", id="released too early"),
    ],
)
def test_malformed_holds_cannot_be_built(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(hold(NOW - DAY), **fields)


# --- the dry-run preview --------------------------------------------------------------------


def test_summarize_counts_decisions_per_category_and_action() -> None:
    records = [
        *(record(Category.CUE, 40 * DAY, record_id=f"cue-{i}") for i in range(3)),
        record(Category.SESSION_META, 4000 * DAY, record_id="session-1"),
        record(Category.CHECKIN, 5 * DAY, record_id="checkin-recent"),
    ]
    assert summarize(due_for_purge(records, DEFAULT_POLICIES, [], NOW)) == {
        (Category.SESSION_META, Action.ANONYMIZE): 1,
        (Category.CUE, Action.DELETE): 3,
    }


def test_summarize_of_nothing_is_empty() -> None:
    assert summarize([]) == {}


# --- properties -------------------------------------------------------------------------------

T0 = datetime(2030, 1, 1, tzinfo=UTC)
CLIENTS = ("client-1", "client-2", "client-3", None)


@st.composite
def policies_at_or_above_floors(draw: st.DrawFn) -> dict[Category, Policy]:
    policies = {}
    for category in Category:
        floor = FLOORS[category].keep_days if category in FLOORS else 0
        keep_days = floor + draw(st.integers(0, 20))
        action = draw(st.sampled_from(sorted(ALLOWED_ACTIONS[category])))
        policies[category] = Policy(category, keep_days, action)
    return policies


@st.composite
def records_around_expiry(
    draw: st.DrawFn, policies: dict[Category, Policy], window: timedelta
) -> list[Record]:
    """Records whose due time falls shortly before T0 or anywhere up to T0 + window."""
    records = []
    for index in range(draw(st.integers(0, 25))):
        category = draw(st.sampled_from(list(Category)))
        offset_hours = draw(st.integers(-72, int(window / timedelta(hours=1))))
        created_at = T0 - timedelta(days=policies[category].keep_days, hours=-offset_hours)
        records.append(Record(category, f"r{index}", draw(st.sampled_from(CLIENTS)), created_at))
    return records


@st.composite
def holds_in(draw: st.DrawFn, window: timedelta) -> list[Hold]:
    holds = []
    hours = int(window / timedelta(hours=1))
    for _ in range(draw(st.integers(0, 4))):
        placed_at = T0 + timedelta(hours=draw(st.integers(-hours, hours)))
        duration = draw(st.none() | st.integers(0, hours))
        released_at = None if duration is None else placed_at + timedelta(hours=duration)
        client_id = draw(st.sampled_from(CLIENTS[:-1]))
        holds.append(Hold(client_id, "admin-1", "hold", placed_at, released_at))
    return holds


@given(data=st.data(), now_offset_hours=st.integers(-1000, 1000))
@settings(max_examples=100, deadline=None)
def test_the_storage_cutoff_selects_exactly_the_due_records(
    data: st.DataObject, now_offset_hours: int
) -> None:
    policies = data.draw(policies_at_or_above_floors())
    records = data.draw(records_around_expiry(policies, timedelta(days=40)))
    now = T0 + timedelta(hours=now_offset_hours)
    # what `SELECT ... WHERE created_at <= :cutoff` returns, evaluated in Python
    selected_by_storage = {
        r.record_id for r in records if r.created_at <= expiry_cutoff(policies[r.category], now)
    }
    assert set(purged_ids(due_for_purge(records, policies, [], now))) == selected_by_storage


@given(
    data=st.data(),
    interval_hours=st.integers(1, 48),
    runs=st.integers(1, 60),
)
@settings(max_examples=150, deadline=None)
def test_a_periodic_purge_is_never_early_never_touches_held_records_and_never_late(
    data: st.DataObject, interval_hours: int, runs: int
) -> None:
    interval = timedelta(hours=interval_hours)
    window = interval * runs
    policies = data.draw(policies_at_or_above_floors())
    records = data.draw(records_around_expiry(policies, window))
    holds = data.draw(holds_in(window))

    def due_at(r: Record) -> datetime:
        return r.created_at + timedelta(days=policies[r.category].keep_days)

    def held_at(r: Record, moment: datetime) -> bool:
        return any(
            h.client_id == r.client_id
            and h.placed_at <= moment
            and (h.released_at is None or h.released_at > moment)
            for h in holds
        )

    def chain(entries: list[Record]) -> list[str]:
        audit = [r for r in entries if r.category is Category.AUDIT]
        return [r.record_id for r in sorted(audit, key=lambda r: (r.created_at, r.record_id))]

    stored = {r.record_id: r for r in records}
    purged_at: dict[str, datetime] = {}
    for run in range(runs + 1):
        run_at = T0 + run * interval
        before = list(stored.values())
        decisions = due_for_purge(before, policies, holds, run_at)
        decided = {decision.record_id for decision in decisions}
        stored_chain = chain(before)
        purged_chain = [r for r in stored_chain if r in decided]
        assert purged_chain == stored_chain[: len(purged_chain)], "a gap in the audit chain"

        for decision in decisions:
            target = stored[decision.record_id]
            assert due_at(target) <= run_at, "purged before its retention period ended"
            assert not held_at(target, run_at), "purged while on hold"
            assert decision.record_id not in purged_at, "purged twice"
            purged_at[decision.record_id] = run_at
            if decision.action is Action.DELETE:
                del stored[decision.record_id]
            else:  # what the storage adapter does when anonymizing
                stored[decision.record_id] = dataclasses.replace(
                    target, client_id=None, anonymized=True
                )

        held_audit_entries = [
            r for r in before if r.category is Category.AUDIT and held_at(r, run_at)
        ]
        for r in before:
            already_done = r.anonymized and policies[r.category].action is Action.ANONYMIZE
            behind_a_held_audit_entry = r.category is Category.AUDIT and any(
                (h.created_at, h.record_id) <= (r.created_at, r.record_id)
                for h in held_audit_entries
            )
            exempt = already_done or held_at(r, run_at) or behind_a_held_audit_entry
            if due_at(r) <= run_at and not exempt:
                assert r.record_id in decided, "due, not on hold, yet not purged"

    # Stated directly: records that no hold ever touched go within one interval of being due.
    held_clients = {h.client_id for h in holds}
    audit_ever_held = any(
        r.category is Category.AUDIT and r.client_id in held_clients for r in records
    )
    last_run_at = T0 + runs * interval
    for r in records:
        never_held = r.client_id not in held_clients and not (
            r.category is Category.AUDIT and audit_ever_held
        )
        if never_held and due_at(r) <= last_run_at:
            assert purged_at[r.record_id] - max(due_at(r), T0) < interval

"""When outcome measures are asked (the therapist's plan), flags from a client's history, and
the client's measures as a FHIR Bundle."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fhir.resources.R4B.bundle import Bundle
from hypothesis import given
from hypothesis import strategies as st

from server.core.measures import load_builtin_measures, measures_bundle
from server.core.measures.schedule import (
    Frequency,
    Plan,
    PlanError,
    between_sessions_due,
    due_measures,
    parse_plan,
    session_number,
)
from server.services.measures import MeasureResult, flags_from_history

MEASURES = load_builtin_measures()
KNOWN = ("gad7", "phq9")
CODES = ("LA6568-5", "LA6569-3", "LA6570-1", "LA6571-9")
WEEK = timedelta(days=7)
FIRST = datetime(2026, 9, 7, 9, 0, tzinfo=UTC)


def weekly(count: int) -> list[datetime]:
    return [FIRST + n * WEEK for n in range(count)]


DAY = timedelta(days=1)


@pytest.mark.parametrize(
    ("frequency", "sessions", "answered", "last_link", "due"),
    [
        # a month after the only session, no session booked: both measures by link
        (Frequency.MONTHLY, [-30], {}, None, ("gad7", "phq9")),
        (Frequency.MONTHLY, [-30], {"phq9": -10}, None, ("gad7",)),  # phq9 answered 10 days ago
        (Frequency.MONTHLY, [-30], {"phq9": -28, "gad7": -40}, None, ("gad7", "phq9")),
        (Frequency.MONTHLY, [-30, 6], {}, None, ()),  # a session in 6 days asks on its page
        (Frequency.MONTHLY, [-6], {}, None, ()),  # a session 6 days ago asked on its page
        (Frequency.MONTHLY, [-30, 8], {}, None, ("gad7", "phq9")),  # 8 days: still far
        (Frequency.MONTHLY, [], {}, None, ()),  # the course has not begun
        (Frequency.MONTHLY, [10], {}, None, ()),  # only a future session
        (Frequency.MONTHLY, [-30], {}, -20, ()),  # a link went out 20 days ago
        (Frequency.MONTHLY, [-60], {}, -28, ("gad7", "phq9")),  # and 28 days ago: again
        (Frequency.EVERY_SESSION, [-30], {}, None, ()),  # counted in sessions, not time
        (Frequency.EVERY_2ND_SESSION, [-30], {}, None, ()),
    ],
)
def test_measures_go_by_emailed_link_only_for_monthly_plans_far_from_any_session(
    frequency: Frequency,
    sessions: list[int],
    answered: dict[str, int],
    last_link: int | None,
    due: tuple[str, ...],
) -> None:
    now = FIRST + 100 * DAY
    found = between_sessions_due(
        Plan(KNOWN, frequency),
        now,
        [now + n * DAY for n in sessions],
        {m: now + n * DAY for m, n in answered.items()},
        None if last_link is None else now + last_link * DAY,
    )
    assert found == due


def test_a_monthly_measure_answered_by_link_is_not_asked_again_within_28_days() -> None:
    starts = weekly(6)
    plan = Plan(("phq9",), Frequency.MONTHLY)
    by_link = {"phq9": [starts[4] - 3 * DAY]}
    assert due_measures(plan, starts[4], starts, {"phq9": [starts[0]]}, by_link) == ()
    assert due_measures(plan, starts[4], starts, {"phq9": [starts[0]]}) == ("phq9",)
    later = starts[0] + 60 * DAY
    assert due_measures(plan, later, [*starts, later], {"phq9": [starts[0]]}, by_link) == ("phq9",)


@pytest.mark.parametrize(
    ("frequency", "answered_in_sessions", "asked_in_session", "due"),
    [
        (Frequency.EVERY_SESSION, [], 1, True),
        (Frequency.EVERY_SESSION, [1], 2, True),
        (Frequency.EVERY_SESSION, [2], 2, False),  # already answered in this session
        (Frequency.EVERY_2ND_SESSION, [], 1, True),
        (Frequency.EVERY_2ND_SESSION, [1], 2, False),
        (Frequency.EVERY_2ND_SESSION, [1], 3, True),
        (Frequency.EVERY_2ND_SESSION, [], 2, True),  # never answered: ask now
        (Frequency.MONTHLY, [1], 4, False),  # 21 days later
        (Frequency.MONTHLY, [1], 5, True),  # 28 days later
        (Frequency.MONTHLY, [], 3, True),
    ],
)
def test_a_measure_is_due_by_the_plans_frequency(
    frequency: Frequency, answered_in_sessions: list[int], asked_in_session: int, due: bool
) -> None:
    starts = weekly(6)
    answered = {"phq9": [starts[n - 1] for n in answered_in_sessions]}
    found = due_measures(Plan(("phq9",), frequency), starts[asked_in_session - 1], starts, answered)
    assert found == (("phq9",) if due else ())


def test_without_a_plan_nothing_is_due() -> None:
    assert due_measures(Plan((), Frequency.EVERY_SESSION), FIRST, weekly(3), {}) == ()


def test_a_plan_keeps_the_offered_order_and_refuses_what_is_not_offered() -> None:
    assert parse_plan(["phq9", "gad7"], "monthly", KNOWN) == Plan(KNOWN, Frequency.MONTHLY)
    assert parse_plan([], "every-session", KNOWN) == Plan((), Frequency.EVERY_SESSION)
    with pytest.raises(PlanError, match="Unknown measure: bdi"):
        parse_plan(["bdi"], "monthly", KNOWN)
    with pytest.raises(PlanError, match="Choose how often"):
        parse_plan(["phq9"], "weekly", KNOWN)


def test_session_numbers_count_the_clients_sessions_from_one() -> None:
    starts = weekly(4)
    assert [session_number(s, starts) for s in starts] == [1, 2, 3, 4]


@given(
    frequency=st.sampled_from(list(Frequency)),
    answered=st.lists(st.integers(min_value=0, max_value=11), max_size=6, unique=True),
    asked=st.integers(min_value=0, max_value=11),
)
def test_a_measure_answered_in_this_session_is_never_due_again_and_every_session_is_otherwise(
    frequency: Frequency, answered: list[int], asked: int
) -> None:
    starts = weekly(12)
    plan = Plan(("phq9",), frequency)
    found = due_measures(plan, starts[asked], starts, {"phq9": [starts[n] for n in answered]})
    assert set(found) <= set(plan.measures)
    if asked in answered:
        assert found == ()
    elif frequency is Frequency.EVERY_SESSION:
        assert found == ("phq9",)
    if frequency is Frequency.MONTHLY and any(0 < asked - n < 4 for n in answered):
        assert found == ()


def _result(measure_id: str, session: int, scores: list[int | None]) -> MeasureResult:
    from server.core.measures import safety_alert, score_measure, validate_measure_answers

    measure = MEASURES[measure_id]
    answers = {
        item.link_id: None if s is None else CODES[s]
        for item, s in zip(measure.items, scores, strict=True)
    }
    score = score_measure(measure, validate_measure_answers(measure, answers))
    return MeasureResult(
        id=f"r{measure_id}{session}{len(scores)}",
        session_id=f"s{session}",
        client_id="c",
        measure=measure,
        answers=answers,
        score=score,
        alert=safety_alert(measure, score),
        submitted_at=FIRST + session * WEEK,
        stored=True,
        session_number=session,
    )


def test_flags_come_from_the_last_complete_total_of_each_session() -> None:
    history = [
        _result("phq9", 1, [1, 1, 1, 0, 0, 0, 0, 0, 0]),  # 3
        _result("phq9", 2, [2, 2, 2, 0, 0, 0, 0, 0, 0]),  # 6
        _result("phq9", 3, [3, 3, 3, 1, 0, 0, 0, 0, 0]),  # 10: reliably worse than 3
        _result("phq9", 3, [3, 3, 3, 1, None, 0, 0, 0, 0]),  # incomplete: no total, ignored
        _result("gad7", 1, [1, 1, 1, 1, 1, 1, 1]),  # 7
        _result("gad7", 2, [1, 1, 1, 1, 1, 1, 1]),  # 7: no change
    ]
    flags = flags_from_history(history, review_by_session=6)
    assert list(flags) == ["phq9"]
    assert [f.reason for f in flags["phq9"]] == ["reliably-worse"]
    assert "rose from 3 to 10" in flags["phq9"][0].text


def test_no_reliable_improvement_by_the_configured_session_is_flagged() -> None:
    history = [_result("gad7", n, [2, 2, 2, 2, 1, 1, 1]) for n in range(1, 5)]  # 11 each time
    assert flags_from_history(history, review_by_session=5) == {}
    flags = flags_from_history(history, review_by_session=4)
    assert [f.reason for f in flags["gad7"]] == ["not-improved-by-review"]


def test_a_clients_measures_export_as_a_valid_fhir_bundle_with_loinc_codes() -> None:
    answers = {f"phq9-{n}": CODES[1] for n in range(1, 10)} | {"phq9-9": None}
    bundle = measures_bundle(
        MEASURES,
        [
            ("resp-1", "phq9", FIRST, answers),
            ("resp-2", "gad7", FIRST, {f"gad7-{n}": CODES[2] for n in range(1, 8)}),
            ("resp-3", "retired-measure", FIRST, {}),
        ],
        subject_ref="Patient/c1",
        bundle_id="measures-c1",
        timestamp=FIRST,
    )
    Bundle.model_validate(bundle)
    kinds = [(e["resource"]["resourceType"], e["resource"]["id"]) for e in bundle["entry"]]
    assert kinds == [
        ("Questionnaire", "phq9"),
        ("Questionnaire", "gad7"),
        ("QuestionnaireResponse", "resp-1"),
        ("QuestionnaireResponse", "resp-2"),
    ]
    phq9 = bundle["entry"][0]["resource"]
    assert phq9["code"][0] == {"system": "http://loinc.org", "code": "44249-1"} | (
        {"display": phq9["code"][0]["display"]} if "display" in phq9["code"][0] else {}
    )
    first_answer = bundle["entry"][2]["resource"]["item"][0]["answer"][0]["valueCoding"]
    assert (first_answer["system"], first_answer["code"]) == ("http://loinc.org", "LA6569-3")
    gad_total = bundle["entry"][3]["resource"]["item"][-1]
    assert gad_total == {"linkId": "total", "text": "Total score", "answer": [{"valueInteger": 14}]}


def _phq9_with_total(session: int, total: int) -> MeasureResult:
    """A complete PHQ-9 with this total (0–24), item 9 at "Not at all"."""
    scores: list[int | None] = [min(3, max(0, total - 3 * n)) for n in range(8)] + [0]
    return _result("phq9", session, scores)


@given(
    totals=st.lists(st.integers(min_value=0, max_value=24), min_size=2, max_size=10),
    review=st.integers(min_value=2, max_value=12),
)
def test_a_reliable_rise_is_always_flagged_and_a_reliable_fall_never_is(
    totals: list[int], review: int
) -> None:
    history = [_phq9_with_total(n, t) for n, t in enumerate(totals, start=1)]
    flags = flags_from_history(history, review_by_session=review)
    reasons = [f.reason for f in flags.get("phq9", ())]
    first, latest = totals[0], totals[-1]
    if latest - first >= MEASURES["phq9"].reliable_change_at_least:
        assert reasons == ["reliably-worse"]
    if first - latest >= MEASURES["phq9"].reliable_change_at_least:
        assert reasons == []

"""Alert rules of DESIGN §6: each fires at its threshold and stays quiet just past it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import pytest

from server.core.checkins import (
    Alert,
    Instrument,
    Scores,
    evaluate_after,
    evaluate_before,
    evaluate_pulse,
    evaluate_session_split,
    evaluate_split,
    load_builtin_instruments,
    load_instrument,
    score,
    validate_answers,
)
from server.core.checkins.fhir import questionnaire_resource

BUILTINS = load_builtin_instruments()
AFTER, BEFORE, PULSE = BUILTINS["after"], BUILTINS["before"], BUILTINS["pulse"]

# Answers that trip no rule: every alliance item 9 (total 36), connection 7, no rupture.
QUIET = {"bond": 9, "goals": 9, "approach": 9, "technology": 7, "overall": 9, "rupture": "no"}
REPAIR_MOVES = (
    "Invite feedback",
    "Metacommunicate",
    "Name the moment",
    "Adjust the task",
    "Fix the connection",
)


def with_rules(instrument: Instrument, **rules: int) -> Instrument:
    """A copy of the instrument whose alert-rules extension is changed."""
    data = questionnaire_resource(instrument)
    merged = {**asdict(instrument.rules), **rules}
    for extension in data["extension"]:
        if extension["url"].endswith("/alert-rules"):
            extension["extension"] = [{"url": k, "valueInteger": v} for k, v in merged.items()]
    return load_instrument(data)


def after_scores(instrument: Instrument = AFTER, **changes: Any) -> Scores:
    raw = {**QUIET, **{k.replace("_", "-"): v for k, v in changes.items()}}
    return score(instrument, validate_answers(instrument, raw))


def earlier(total: int | None, instrument: Instrument = AFTER) -> Scores:
    """After-session scores with the given alliance total (None: one item skipped)."""
    if total is None:
        return after_scores(instrument, bond=None)
    rest = total - 30
    return after_scores(instrument, bond=10, goals=10, approach=10, overall=rest)


def codes(alerts: list[Alert]) -> list[str]:
    return [alert.code for alert in alerts]


def test_quiet_answers_raise_no_alert() -> None:
    assert evaluate_after(AFTER, after_scores(), [earlier(37)], session_number=5) == []


def rule(
    row_id: str,
    code: str,
    fires: bool,
    *,
    history: Sequence[Scores] = (),
    session: int = 5,
    **changes: Any,
) -> Any:
    """One table row: these answer changes (on top of QUIET) do or do not raise ``code``."""
    return pytest.param(changes, list(history), session, code, fires, id=row_id)


PERFECT: dict[str, Any] = {"bond": 10, "goals": 10, "approach": 10, "overall": 10}
AFTER_RULES = [
    # alliance total below 36/40
    rule("total-35-fires", "alliance-total-low", True, overall=8),
    rule("total-36-quiet", "alliance-total-low", False),
    rule("total-incomplete-quiet", "alliance-total-low", False, overall=None, bond=1),
    # any alliance item <= 8
    rule("item-8-fires", "alliance-item-low", True, goals=8),
    rule("item-9-quiet", "alliance-item-low", False, goals=9),
    # a drop of >= 2 from the previous session
    rule("drop-2-fires", "alliance-drop", True, history=[earlier(38)]),
    rule("drop-1-quiet", "alliance-drop", False, history=[earlier(37)]),
    rule("drop-measured-from-latest", "alliance-drop", False, history=[earlier(40), earlier(37)]),
    rule(
        "drop-skips-incomplete-previous",
        "alliance-drop",
        True,
        history=[earlier(38), earlier(None)],
    ),
    rule("drop-needs-history", "alliance-drop", False),
    # rupture "quite a bit", or "a little" and not talked through
    rule(
        "quite-a-bit-fires",
        "rupture-quite-a-bit",
        True,
        rupture="quite-a-bit",
        rupture_talked_through="yes",
    ),
    rule(
        "a-little-not-talked-fires",
        "rupture-not-talked-through",
        True,
        rupture="a-little",
        rupture_talked_through="no",
    ),
    rule(
        "a-little-partly-fires",
        "rupture-not-talked-through",
        True,
        rupture="a-little",
        rupture_talked_through="partly",
    ),
    rule("a-little-unanswered-fires", "rupture-not-talked-through", True, rupture="a-little"),
    rule(
        "a-little-talked-quiet",
        "rupture-not-talked-through",
        False,
        rupture="a-little",
        rupture_talked_through="yes",
    ),
    rule("rupture-skipped-quiet", "rupture-not-talked-through", False, rupture=None),
    # technology <= 6: a connection problem
    rule("technology-6-fires", "technology-low", True, technology=6),
    rule("technology-7-quiet", "technology-low", False, technology=7),
    # a perfect score in sessions 1-3: ceiling effect
    rule("perfect-session-3-fires", "ceiling-early-perfect", True, session=3, **PERFECT),
    rule("perfect-session-4-quiet", "ceiling-early-perfect", False, session=4, **PERFECT),
    rule(
        "nearly-perfect-quiet",
        "ceiling-early-perfect",
        False,
        session=1,
        **{**PERFECT, "overall": 9},
    ),
]


@pytest.mark.parametrize(("changes", "history", "session", "code", "fires"), AFTER_RULES)
def test_after_session_rule(
    changes: dict[str, Any], history: list[Scores], session: int, code: str, fires: bool
) -> None:
    alerts = evaluate_after(AFTER, after_scores(**changes), history, session_number=session)
    assert (code in codes(alerts)) is fires


def test_a_bad_connection_is_not_an_alliance_problem() -> None:
    perfect_but_frozen = after_scores(bond=10, goals=10, approach=10, overall=10, technology=0)
    alerts = evaluate_after(AFTER, perfect_but_frozen, [], session_number=7)
    assert [(a.code, a.category) for a in alerts] == [("technology-low", "technology")]
    assert "connection problem, not an alliance one" in alerts[0].reason


def test_low_items_are_named_and_the_lowest_chooses_the_repair_move() -> None:
    (alert,) = [
        a
        for a in evaluate_after(AFTER, after_scores(goals=8, approach=5), [], 5)
        if a.code == "alliance-item-low"
    ]
    assert alert.items == ("goals", "approach")
    assert "(goals) at 8 of 10" in alert.reason and "(approach) at 5 of 10" in alert.reason
    assert alert.repair == AFTER.item("approach").repair_hint


CONFIGURED = [
    pytest.param(
        {"alliance_total_below": 35},
        {"overall": 8},
        [],
        5,
        "alliance-total-low",
        id="total-threshold",
    ),
    pytest.param(
        {"alliance_item_at_or_below": 7},
        {"goals": 8},
        [],
        5,
        "alliance-item-low",
        id="item-threshold",
    ),
    pytest.param(
        {"drop_from_previous_at_least": 3},
        {},
        [earlier(38)],
        5,
        "alliance-drop",
        id="drop-threshold",
    ),
    pytest.param(
        {"technology_at_or_below": 5},
        {"technology": 6},
        [],
        5,
        "technology-low",
        id="technology-threshold",
    ),
    pytest.param(
        {"perfect_score_sessions_up_to": 0},
        PERFECT,
        [],
        1,
        "ceiling-early-perfect",
        id="ceiling-sessions",
    ),
]


@pytest.mark.parametrize(("rules", "changes", "history", "session", "code"), CONFIGURED)
def test_thresholds_come_from_the_instrument(
    rules: dict[str, int],
    changes: dict[str, Any],
    history: list[Scores],
    session: int,
    code: str,
) -> None:
    stricter = with_rules(AFTER, **rules)
    shipped = evaluate_after(AFTER, after_scores(**changes), history, session)
    configured = evaluate_after(stricter, after_scores(stricter, **changes), history, session)
    assert code in codes(shipped)
    assert code not in codes(configured)


PULSE_RULES = [
    pytest.param([2], "pulse-low", id="tap-2-low"),
    pytest.param([1], "pulse-low", id="tap-1-low"),
    pytest.param([3], None, id="tap-3-quiet"),
    pytest.param([5, 3], "pulse-fall", id="fall-2"),
    pytest.param([5, 4], None, id="fall-1-quiet"),
    pytest.param([5, 4, 3], "pulse-fall", id="slide-from-session-peak"),
    pytest.param([3, 5, 4], None, id="fall-1-from-peak-quiet"),
    pytest.param([5, 3, 5], None, id="recovered-quiet"),
    pytest.param([4, 2], "pulse-low", id="low-wins-over-fall"),
    pytest.param([], None, id="no-taps"),
]


@pytest.mark.parametrize(("taps", "code"), PULSE_RULES)
def test_pulse_rule(taps: list[int], code: str | None) -> None:
    assert codes(evaluate_pulse(PULSE, taps)) == ([code] if code else [])


def test_a_low_tap_after_a_fall_mentions_both() -> None:
    (alert,) = evaluate_pulse(PULSE, [4, 2])
    assert alert.reason == "The latest pulse was 2 of 5, down from 4 earlier in the session."


@pytest.mark.parametrize(
    ("rules", "taps", "code"),
    [
        pytest.param({"pulse_at_or_below": 3}, [3], "pulse-low", id="low-threshold"),
        pytest.param({"pulse_fall_at_least": 1}, [5, 4], "pulse-fall", id="fall-threshold"),
    ],
)
def test_pulse_thresholds_come_from_the_instrument(
    rules: dict[str, int], taps: list[int], code: str
) -> None:
    assert evaluate_pulse(PULSE, taps) == []
    assert codes(evaluate_pulse(with_rules(PULSE, **rules), taps)) == [code]


def test_a_pulse_outside_the_scale_is_refused() -> None:
    with pytest.raises(ValueError, match=r"outside 1\.\.5"):
        evaluate_pulse(PULSE, [3, 6])


@pytest.mark.parametrize(
    ("week", "fires"),
    [
        pytest.param([6, 6, 6, 6], True, id="total-24-noted"),
        pytest.param([7, 6, 6, 6], False, id="total-25-quiet"),
        pytest.param([0, 0, 0, None], False, id="incomplete-quiet"),
    ],
)
def test_before_session_note_is_informational(week: list[int | None], fires: bool) -> None:
    raw = dict(zip([item.link_id for item in BEFORE.items], week, strict=True))
    alerts = evaluate_before(BEFORE, score(BEFORE, validate_answers(BEFORE, raw)))
    assert [(a.code, a.severity, a.category) for a in alerts] == (
        [("wellbeing-low", "info", "wellbeing")] if fires else []
    )


def test_rules_refuse_the_wrong_kind_of_instrument() -> None:
    with pytest.raises(ValueError, match="of kind 'after'"):
        evaluate_pulse(AFTER, [3])
    with pytest.raises(ValueError, match="scores are for after"):
        evaluate_before(BEFORE, after_scores())
    with pytest.raises(ValueError, match="counts from 1"):
        evaluate_after(AFTER, after_scores(), [], session_number=0)


def every_alert() -> list[Alert]:
    worst = after_scores(
        bond=0, goals=0, approach=0, overall=0, technology=0, rupture="quite-a-bit"
    )
    little = after_scores(rupture="a-little")
    perfect = after_scores(bond=10, goals=10, approach=10, overall=10)
    before = score(BEFORE, validate_answers(BEFORE, {i.link_id: 0 for i in BEFORE.items}))
    return [
        *evaluate_after(AFTER, worst, [earlier(40)], 2),
        *evaluate_after(AFTER, little, [], 2),
        *evaluate_after(AFTER, perfect, [], 1),
        *evaluate_pulse(PULSE, [1]),
        *evaluate_pulse(PULSE, [5, 3]),
        *evaluate_before(BEFORE, before),
        *[a for a in [evaluate_split(AFTER, [earlier(40), earlier(30)])] if a is not None],
    ]


def test_every_rule_is_reachable_and_offers_one_named_repair_move() -> None:
    alerts = every_alert()
    assert sorted(codes(alerts)) == sorted(
        [
            "alliance-total-low",
            "alliance-item-low",
            "alliance-drop",
            "rupture-quite-a-bit",
            "rupture-not-talked-through",
            "technology-low",
            "ceiling-early-perfect",
            "pulse-low",
            "pulse-fall",
            "wellbeing-low",
            "split-alliance",
        ]
    )
    for alert in alerts:
        assert alert.repair.startswith(REPAIR_MOVES), alert.code
        assert alert.reason.endswith("."), alert.code


@pytest.mark.parametrize(
    ("totals", "fires"),
    [
        ([40, 32], True),  # 8 apart: the default threshold
        ([40, 33], False),
        ([31, 39, 35], True),  # three clients: the highest against the lowest
        ([36, 36], False),
        ([40, None], False),  # a skipped alliance item: no total to compare
        ([40], False),  # one client alone cannot split
        ([], False),
    ],
)
def test_split_alliance_rule(totals: list[int | None], fires: bool) -> None:
    alert = evaluate_split(AFTER, [earlier(total) for total in totals])
    assert (alert is not None) == fires
    if alert is not None:
        assert (alert.code, alert.category, alert.severity) == (
            "split-alliance",
            "alliance",
            "attention",
        )
        present = [t for t in totals if t is not None]
        assert f"{max(present) - min(present)} points apart" in alert.reason


def test_split_alliance_threshold_comes_from_the_instrument() -> None:
    strict = with_rules(AFTER, split_alliance_at_least=3)
    partners = [earlier(40, strict), earlier(36, strict)]
    assert evaluate_split(strict, partners) is not None
    assert evaluate_split(AFTER, [earlier(40), earlier(36)]) is None


def test_split_alliance_never_says_whose_total_is_whose() -> None:
    alert = evaluate_split(AFTER, [earlier(31), earlier(40)])
    assert alert is not None
    assert "31 and 40" in alert.reason  # lowest first, whatever order the partners came in
    assert evaluate_split(AFTER, [earlier(40), earlier(31)]) == alert


def test_split_alliance_refuses_answers_to_another_form() -> None:
    with pytest.raises(ValueError, match="kind"):
        evaluate_split(PULSE, [])
    before = score(BEFORE, validate_answers(BEFORE, {i.link_id: 0 for i in BEFORE.items}))
    with pytest.raises(ValueError, match="scores are for"):
        evaluate_split(AFTER, [earlier(40), before])


@pytest.mark.parametrize(
    ("responses", "gap"),
    [
        ([("a", 40), ("b", 32)], 8),  # both partners answered, 8 apart
        ([("a", 40), ("b", 33)], None),
        ([("a", 30), ("b", 38), ("a", 37)], None),  # A's resubmission replaces A's first
        ([("a", 37), ("b", 38), ("a", 30)], 8),  # ... either way round
        ([("a", 30), ("a", 40)], None),  # one client twice is no couple
        ([("a", 40), ("b", None)], None),  # a skipped item leaves no total to compare
        ([("a", 40), ("b", 35), ("c", 31)], 9),  # three clients: highest against lowest
        ([], None),
    ],
)
def test_split_alliance_of_a_session_counts_each_clients_latest_answers(
    responses: list[tuple[str, int | None]], gap: int | None
) -> None:
    alert = evaluate_session_split(AFTER, [(client, earlier(t)) for client, t in responses])
    assert (alert is not None) == (gap is not None)
    if alert is not None:
        assert f"{gap} points apart" in alert.reason
        assert alert.repair.startswith("Invite feedback from each partner")

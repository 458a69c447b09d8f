"""Alert rules for the therapist (pure): one function per DESIGN §6 rule.

Thresholds come from the instrument's alert rules; nothing here hard-codes a number.
Alerts go to the therapist only: each says what was answered, in plain words, and offers one
repair move. They describe answers, never the client.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal, TypeAlias, TypeVar

from server.core.checkins.instruments import (
    AfterRules,
    AlertRules,
    BeforeRules,
    Instrument,
    PulseRules,
)
from server.core.checkins.scoring import Scores, alliance_values

Severity: TypeAlias = Literal["info", "attention"]
Category: TypeAlias = Literal[
    "alliance", "technology", "ceiling", "pulse", "rupture", "wellbeing", "safety"
]

ALLIANCE_TOTAL_LOW: Final = "alliance-total-low"
ALLIANCE_ITEM_LOW: Final = "alliance-item-low"
ALLIANCE_DROP: Final = "alliance-drop"
RUPTURE_QUITE_A_BIT: Final = "rupture-quite-a-bit"
RUPTURE_NOT_TALKED_THROUGH: Final = "rupture-not-talked-through"
TECHNOLOGY_LOW: Final = "technology-low"
CEILING_EARLY_PERFECT: Final = "ceiling-early-perfect"
PULSE_LOW: Final = "pulse-low"
PULSE_FALL: Final = "pulse-fall"
WELLBEING_LOW: Final = "wellbeing-low"
SPLIT_ALLIANCE: Final = "split-alliance"

# Repair moves (Eubanks, Muran & Safran): invite feedback, metacommunicate, adjust the task;
# plus fixing the connection, which is not an alliance move at all.
INVITE_FEEDBACK: Final = (
    "Invite feedback: ask openly what would make the sessions more useful, "
    "and thank them for anything critical."
)
METACOMMUNICATE_CHANGE: Final = (
    "Metacommunicate: name the change gently, e.g. “Today seemed different from last time; "
    "how was it for you?”"
)
NAME_THE_MOMENT: Final = (
    "Name the moment: ask what happened for them, listen without defending, "
    "and own your part in it."
)
FIX_CONNECTION: Final = (
    "Fix the connection: run the connection check together before the next session, "
    "or switch to audio only when the picture stalls."
)
INVITE_HONEST_FEEDBACK: Final = (
    "Invite feedback gently: say that honest ratings, low ones included, help you shape "
    "the sessions and will never count against them."
)
PULSE_CHECK_IN: Final = (
    "Metacommunicate: pause and ask how this part of the session is going for them; "
    "be ready to adjust the task."
)
WELLBEING_CONTEXT: Final = (
    "Adjust the task: ask how the week has been before turning to the plan for today."
)

# Split alliances (Friedlander et al.): hold both partners' goals openly, not one side's.
ASK_EACH_PARTNER: Final = (
    "Invite feedback from each partner: ask what each wants from today, "
    "and name a goal you can all share before going on."
)

_R = TypeVar("_R", AfterRules, PulseRules, BeforeRules)


@dataclass(frozen=True)
class Alert:
    """One alert for the therapist: a stable code, the reason and one repair move."""

    code: str
    category: Category
    severity: Severity
    reason: str
    repair: str
    items: tuple[str, ...] = ()


def evaluate_after(
    instrument: Instrument,
    scores: Scores,
    history: Sequence[Scores],
    session_number: int,
) -> list[Alert]:
    """Alerts for an after-session check-in.

    ``history`` holds this client's earlier after-session scores, oldest first; the drop
    rule compares with the latest of them that has a complete alliance total on the same
    instrument. ``session_number`` counts this client's sessions from 1.
    """
    rules = _rules(instrument, scores, AfterRules)
    if session_number < 1:
        raise ValueError("session_number counts from 1")
    found = [
        _alliance_total_low(scores, rules),
        _alliance_item_low(instrument, scores, rules),
        _alliance_drop(scores, history, rules),
        _rupture(instrument, scores),
        _technology_low(instrument, scores, rules),
        _early_perfect_score(instrument, scores, rules, session_number),
    ]
    return [alert for alert in found if alert is not None]


def evaluate_split(instrument: Instrument, partners: Sequence[Scores]) -> Alert | None:
    """The split-alliance alert for a session with several clients: the highest and the
    lowest complete alliance totals (one after-session response per client, same
    instrument) differ by at least the instrument's `split_alliance_at_least`.

    It says how far apart the totals are, never whose is whose: the therapist sees each
    partner's answers side by side, and the alert must read the same to any later viewer.
    """
    rules = _rules(instrument, None, AfterRules)
    for scores in partners:
        _rules(instrument, scores, AfterRules)
    complete = [s for s in partners if s.alliance_total is not None]
    totals = [s.alliance_total for s in complete if s.alliance_total is not None]
    if len(totals) < 2:
        return None
    gap = max(totals) - min(totals)
    if gap < rules.split_alliance_at_least:
        return None
    return Alert(
        code=SPLIT_ALLIANCE,
        category="alliance",
        severity="attention",
        reason=(
            f"The partners' alliance ratings are {gap} points apart "
            f"({min(totals)} and {max(totals)} of {complete[0].alliance_max}); "
            f"this form flags {rules.split_alliance_at_least} or more."
        ),
        repair=ASK_EACH_PARTNER,
    )


def evaluate_session_split(
    instrument: Instrument, responses: Sequence[tuple[str, Scores]]
) -> Alert | None:
    """The split-alliance alert of one session from its after-session responses on
    `instrument`, in submission order, each with the client who answered: each client's
    latest response counts (a resubmission replaces the earlier one), and `evaluate_split`
    decides. None with fewer than two clients."""
    latest: dict[str, Scores] = {}
    for client_id, scores in responses:
        latest[client_id] = scores
    if len(latest) < 2:
        return None
    return evaluate_split(instrument, list(latest.values()))


def evaluate_pulse(instrument: Instrument, pulse_values_this_session: Sequence[int]) -> list[Alert]:
    """Alerts for the latest pulse tap, given all taps of this session in order.

    A low tap wins over a fall (one alert per tap). A fall is measured from the highest
    earlier tap of the session, so a slide 5 → 4 → 3 counts as a fall of 2.
    """
    rules = _rules(instrument, None, PulseRules)
    (item,) = instrument.items_with_role("pulse")
    for value in pulse_values_this_session:
        assert item.min_value is not None and item.max_value is not None
        if not item.min_value <= value <= item.max_value:
            raise ValueError(f"pulse {value} is outside {item.min_value}..{item.max_value}")
    if not pulse_values_this_session:
        return []
    *earlier, latest = pulse_values_this_session
    peak = max(earlier, default=latest)
    fall = peak - latest
    fell = bool(earlier) and fall >= rules.pulse_fall_at_least
    since = f", down from {peak} earlier in the session" if fell else ""
    if latest <= rules.pulse_at_or_below:
        return [
            Alert(
                code=PULSE_LOW,
                category="pulse",
                severity="attention",
                reason=f"The latest pulse was {latest} of {item.max_value}{since}.",
                repair=PULSE_CHECK_IN,
                items=(item.link_id,),
            )
        ]
    if fell:
        return [
            Alert(
                code=PULSE_FALL,
                category="pulse",
                severity="attention",
                reason=f"The pulse fell by {fall}: {latest} of {item.max_value}{since}.",
                repair=PULSE_CHECK_IN,
                items=(item.link_id,),
            )
        ]
    return []


def evaluate_before(instrument: Instrument, scores: Scores) -> list[Alert]:
    """Informational note for a before-session check-in: context, not an alliance alert."""
    rules = _rules(instrument, scores, BeforeRules)
    total = scores.wellbeing_total
    if total is None or total >= rules.wellbeing_total_below:
        return []
    return [
        Alert(
            code=WELLBEING_LOW,
            category="wellbeing",
            severity="info",
            reason=(
                f"The past-week ratings add up to {total} of {scores.wellbeing_max} "
                f"(noted below {rules.wellbeing_total_below}); context for today, "
                "not a sign about your work together."
            ),
            repair=WELLBEING_CONTEXT,
            items=tuple(item.link_id for item in instrument.items_with_role("wellbeing")),
        )
    ]


def _rules(instrument: Instrument, scores: Scores | None, expected: type[_R]) -> _R:
    if scores is not None and scores.instrument_id != instrument.id:
        raise ValueError(f"scores are for {scores.instrument_id}, not {instrument.id}")
    rules: AlertRules = instrument.rules
    if not isinstance(rules, expected):
        raise ValueError(f"instrument {instrument.id!r} is of kind {instrument.kind!r}")
    return rules


def _alliance_items(instrument: Instrument) -> tuple[str, ...]:
    return tuple(item.link_id for item in instrument.items_with_role("alliance"))


def _alliance_total_low(scores: Scores, rules: AfterRules) -> Alert | None:
    total = scores.alliance_total
    if total is None or total >= rules.alliance_total_below:
        return None
    return Alert(
        code=ALLIANCE_TOTAL_LOW,
        category="alliance",
        severity="attention",
        reason=(
            f"The alliance ratings add up to {total} of {scores.alliance_max}, "
            f"below the {rules.alliance_total_below} this form flags."
        ),
        repair=INVITE_FEEDBACK,
    )


def _alliance_item_low(instrument: Instrument, scores: Scores, rules: AfterRules) -> Alert | None:
    low = [
        pair
        for pair in alliance_values(instrument, scores)
        if pair[1] <= rules.alliance_item_at_or_below
    ]
    if not low:
        return None
    # The lowest-rated item chooses the repair move (the first of equals, in form order).
    lowest_item, _ = min(low, key=lambda pair: pair[1])
    listed = "; ".join(f"{item.label} at {value} of {item.max_value}" for item, value in low)
    return Alert(
        code=ALLIANCE_ITEM_LOW,
        category="alliance",
        severity="info",
        reason=f"Rated {rules.alliance_item_at_or_below} or lower: {listed}.",
        repair=lowest_item.repair_hint or INVITE_FEEDBACK,
        items=tuple(item.link_id for item, _ in low),
    )


def _alliance_drop(scores: Scores, history: Sequence[Scores], rules: AfterRules) -> Alert | None:
    current = scores.alliance_total
    previous = next(
        (
            earlier.alliance_total
            for earlier in reversed(history)
            if earlier.instrument_id == scores.instrument_id and earlier.alliance_total is not None
        ),
        None,
    )
    if (
        current is None
        or previous is None
        or previous - current < rules.drop_from_previous_at_least
    ):
        return None
    return Alert(
        code=ALLIANCE_DROP,
        category="alliance",
        severity="attention",
        reason=(
            f"The alliance total went from {previous} to {current} of {scores.alliance_max} "
            f"since the previous session (down {previous - current})."
        ),
        repair=METACOMMUNICATE_CHANGE,
    )


def _rupture(instrument: Instrument, scores: Scores) -> Alert | None:
    items = tuple(
        item.link_id for item in instrument.items if item.role in ("rupture", "rupture-repair")
    )
    talked = {
        "yes": "it was talked through",
        "partly": "it was partly talked through",
        "no": "it was not talked through",
        None: "they did not say whether it was talked through",
    }[scores.repair]
    if scores.rupture == "quite-a-bit":
        return Alert(
            code=RUPTURE_QUITE_A_BIT,
            category="rupture",
            severity="attention",
            reason=(
                "The client marked “quite a bit” for feeling uneasy, misread or at odds "
                f"during the session; {talked}."
            ),
            repair=NAME_THE_MOMENT,
            items=items,
        )
    # "Not talked through" means anything short of a plain yes, including no answer.
    if scores.rupture == "a-little" and scores.repair != "yes":
        return Alert(
            code=RUPTURE_NOT_TALKED_THROUGH,
            category="rupture",
            severity="attention",
            reason=(
                "The client marked “a little” for feeling uneasy, misread or at odds "
                f"during the session; {talked}."
            ),
            repair=NAME_THE_MOMENT,
            items=items,
        )
    return None


def _technology_low(instrument: Instrument, scores: Scores, rules: AfterRules) -> Alert | None:
    value = scores.technology
    if value is None or value > rules.technology_at_or_below:
        return None
    (item,) = instrument.items_with_role("technology")
    return Alert(
        code=TECHNOLOGY_LOW,
        category="technology",
        severity="info",
        reason=(
            f"The video connection was rated {value} of {item.max_value}: "
            "a connection problem, not an alliance one."
        ),
        repair=FIX_CONNECTION,
        items=(item.link_id,),
    )


def _early_perfect_score(
    instrument: Instrument, scores: Scores, rules: AfterRules, session_number: int
) -> Alert | None:
    if session_number > rules.perfect_score_sessions_up_to:
        return None
    if scores.alliance_total is None or scores.alliance_total != scores.alliance_max:
        return None
    return Alert(
        code=CEILING_EARLY_PERFECT,
        category="ceiling",
        severity="info",
        reason=(
            f"Every alliance item is at the top of the scale in session {session_number}; "
            "early full marks often leave little room to say what could be better."
        ),
        repair=INVITE_HONEST_FEEDBACK,
        items=_alliance_items(instrument),
    )

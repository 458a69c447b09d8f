"""Alliance check-ins (DESIGN §6): instruments as data, scoring, alert rules, FHIR export."""

from server.core.checkins.alerts import (
    Alert,
    evaluate_after,
    evaluate_before,
    evaluate_pulse,
    evaluate_session_split,
    evaluate_split,
)
from server.core.checkins.fhir import bundle, questionnaire_resource, questionnaire_response
from server.core.checkins.instruments import (
    AfterRules,
    Answer,
    AnswerError,
    BeforeRules,
    Instrument,
    InstrumentError,
    Item,
    PulseRules,
    Response,
    load_builtin_instruments,
    load_instrument,
    load_instruments_dir,
    validate_answers,
)
from server.core.checkins.scoring import Scores, score

__all__ = [
    "AfterRules",
    "Alert",
    "Answer",
    "AnswerError",
    "BeforeRules",
    "Instrument",
    "InstrumentError",
    "Item",
    "PulseRules",
    "Response",
    "Scores",
    "bundle",
    "evaluate_after",
    "evaluate_before",
    "evaluate_pulse",
    "evaluate_session_split",
    "evaluate_split",
    "load_builtin_instruments",
    "load_instrument",
    "load_instruments_dir",
    "questionnaire_resource",
    "questionnaire_response",
    "score",
    "validate_answers",
]

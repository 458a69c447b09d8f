"""Standard outcome measures (PHQ-9, GAD-7): Questionnaires as data, scoring, change, FHIR."""

from server.core.measures.fhir import measure_questionnaire, measure_response, measures_bundle
from server.core.measures.questionnaires import (
    Measure,
    MeasureAnswerError,
    MeasureError,
    MeasureItem,
    MeasureResponse,
    SeverityBand,
    load_builtin_measures,
    load_measure,
    validate_measure_answers,
)
from server.core.measures.scoring import (
    Change,
    Flag,
    MeasureScore,
    ScorePoint,
    change,
    not_on_track,
    reliable_change_index,
    reliable_change_threshold,
    safety_alert,
    score_measure,
    severity,
)

__all__ = [
    "Change",
    "Flag",
    "Measure",
    "MeasureAnswerError",
    "MeasureError",
    "MeasureItem",
    "MeasureResponse",
    "MeasureScore",
    "ScorePoint",
    "SeverityBand",
    "change",
    "load_builtin_measures",
    "load_measure",
    "measure_questionnaire",
    "measure_response",
    "measures_bundle",
    "not_on_track",
    "reliable_change_index",
    "reliable_change_threshold",
    "safety_alert",
    "score_measure",
    "severity",
    "validate_measure_answers",
]

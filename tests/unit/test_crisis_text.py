"""Where a client is told to get help right now, after a safety answer."""

from __future__ import annotations

import pytest

from server.settings import Settings, SettingsError
from server.web.measure_views import DEFAULT_CRISIS_TEXT, crisis_help_text


@pytest.mark.parametrize(
    ("settings", "text"),
    [
        (Settings(), DEFAULT_CRISIS_TEXT),
        (
            Settings(clinic_emergency_number="+44 20 7946 0000"),
            f"{DEFAULT_CRISIS_TEXT} You can also call the clinic on +44 20 7946 0000.",
        ),
        (
            Settings(crisis_line_text="  Call 988 (Suicide & Crisis Lifeline), any time. "),
            "Call 988 (Suicide & Crisis Lifeline), any time.",
        ),
    ],
    ids=["default", "with-the-clinics-number", "the-clinics-own-text"],
)
def test_the_help_text_is_the_clinics_or_the_default_with_its_number(
    settings: Settings, text: str
) -> None:
    assert crisis_help_text(settings) == text


def test_the_default_points_to_local_emergency_services() -> None:
    assert "local emergency number" in DEFAULT_CRISIS_TEXT
    assert "emergency department" in DEFAULT_CRISIS_TEXT


@pytest.mark.parametrize(
    "changes",
    [
        {"crisis_line_text": "<b>Call</b>"},
        {"crisis_line_text": "x" * 501},
        {"measures_review_session": 1},
        {"measures_review_session": 101},
    ],
    ids=["markup", "too-long", "review-too-early", "review-too-late"],
)
def test_settings_that_do_not_fit_stop_the_start(changes: dict[str, object]) -> None:
    with pytest.raises(SettingsError):
        Settings(**changes)  # type: ignore[arg-type]

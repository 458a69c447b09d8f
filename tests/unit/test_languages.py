"""Which language a client page is shown in: the client's choice, then the browser's
Accept-Language, then the clinic's default_language."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.core.languages import LANGUAGE_CODES, accept_language_ranges, negotiate
from server.settings import Settings, SettingsError


@pytest.mark.parametrize(
    ("choice", "accept_language", "default", "shown"),
    [
        # the client's own choice wins over everything
        ("es", "de-DE,de;q=0.9", "en", "es"),
        ("de", None, "es", "de"),
        # without a choice: the first offered language the browser asks for
        (None, "de-AT,de;q=0.9,en;q=0.8", "en", "de"),
        (None, "fr-FR,fr;q=0.9,es;q=0.5,de;q=0.4", "en", "es"),
        (None, "en;q=0.3, de;q=0.7", "es", "de"),  # by quality, not by position
        (None, "ES-mx", "en", "es"),  # case and region do not matter
        # a choice that is not offered counts as no choice
        ("fr", "de", "en", "de"),
        ("", "es", "en", "es"),
        # nothing the browser asks for is offered, or it asks for nothing: the clinic's default
        (None, "fr-FR,fr;q=0.9", "de", "de"),
        (None, None, "es", "es"),
        (None, "*", "de", "de"),
        (None, "de;q=0, fr", "es", "es"),  # q=0 means "not this one"
        # malformed headers are ignored, never an error
        (None, "de;q=abc, es;q=2", "en", "en"),
        (None, ";;;,,,", "de", "de"),
        (None, "x" * 2000, "es", "es"),
        # an unknown default falls back to English, the source language
        (None, None, "fr", "en"),
    ],
)
def test_the_choice_beats_accept_language_which_beats_the_clinic_default(
    choice: str | None, accept_language: str | None, default: str, shown: str
) -> None:
    assert negotiate(choice, accept_language, default) == shown


def test_accept_language_ranges_are_ordered_by_quality_keeping_the_header_order_on_ties() -> None:
    assert accept_language_ranges("fr;q=0.5, de, es;q=0.5, en;q=0") == [
        ("de", 1.0),
        ("fr", 0.5),
        ("es", 0.5),
    ]


@given(
    choice=st.none() | st.text(max_size=20),
    header=st.none() | st.text(max_size=200),
    default=st.text(max_size=5),
)
def test_negotiation_always_answers_an_offered_language(
    choice: str | None, header: str | None, default: str
) -> None:
    assert negotiate(choice, header, default) in LANGUAGE_CODES


def test_the_clinic_default_must_be_an_offered_language() -> None:
    assert Settings(default_language="de").default_language == "de"
    with pytest.raises(SettingsError, match="default_language"):
        Settings(default_language="fr")

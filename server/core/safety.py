"""The client's safety check before the waiting room (pure): the answers and their rules.

Every session the client says where they are right now, whether they can talk freely there,
whom to call in an emergency, and, if they want, a code word agreed with their therapist.
This module only checks and shapes those answers; storing (through the vault), auditing and
showing them to the session's therapist are the service's (`server/services/safety.py`).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from server.core.languages import N_

MAX_LOCATION_CHARS: Final = 200
MAX_CONTACT_NAME_CHARS: Final = 100
MAX_PHONE_CHARS: Final = 40
MIN_PHONE_DIGITS: Final = 3
MAX_CODE_WORD_CHARS: Final = 40
PHONE_CHARS: Final = frozenset("0123456789+-() ")


class SafetyAnswerError(ValueError):
    """An answer the client must correct; the message names the field in plain words."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def is_phone_number(text: str) -> bool:
    """Digits, spaces and `+ - ( )` only, at most 40 characters (empty passes: callers that
    need a number check `MIN_PHONE_DIGITS` too). The `clinic_emergency_number` rule."""
    return len(text) <= MAX_PHONE_CHARS and set(text) <= PHONE_CHARS


# Format characters that real text needs: joiners in emoji sequences (a family, a skin tone
# on some phones) and in Indic and Persian scripts, the marks right-to-left typists use, the
# soft hyphen, and the tag characters of subdivision flags. Overrides and isolates (which can
# reorder what the therapist reads) and the other format characters stay refused.
_TEXT_FORMAT_CHARS = frozenset("\u00ad\u061c\u200c\u200d\u200e\u200f") | frozenset(
    chr(c) for c in range(0xE0020, 0xE0080)
)


def _has_control_characters(text: str) -> bool:
    for c in text:
        category = unicodedata.category(c)
        if category in {"Cc", "Cs", "Co"}:
            return True
        if category == "Cf" and c not in _TEXT_FORMAT_CHARS:
            return True
        # Unassigned in this Python's Unicode tables: often an emoji newer than them, so only
        # the noncharacters (U+FDD0..FDEF and the last two of every plane) are refused.
        if category == "Cn" and (0xFDD0 <= ord(c) <= 0xFDEF or ord(c) & 0xFFFE == 0xFFFE):
            return True
    return False


# Whole sentences, each marked for the catalogues: the client's API answers a refusal in the
# client's language, and only a whole marked message can be looked up (docs/languages.md). The
# limits in them are the constants above (tests/unit/test_safety_answers.py keeps them so).
_REFUSALS: Final[Mapping[str, Mapping[str, str]]] = {
    "location": {
        "text": N_("Where you are must be text."),
        "empty": N_("Please fill in where you are."),
        "long": N_("Where you are can be at most 200 characters."),
        "plain": N_("Where you are contains characters that are not plain text."),
    },
    "contact_name": {
        "text": N_("Your emergency contact's name must be text."),
        "empty": N_("Please fill in your emergency contact's name."),
        "long": N_("Your emergency contact's name can be at most 100 characters."),
        "plain": N_("Your emergency contact's name contains characters that are not plain text."),
    },
    "contact_phone": {
        "text": N_("Your emergency contact's phone must be text."),
        "empty": N_("Please fill in your emergency contact's phone."),
        "long": N_("Your emergency contact's phone can be at most 40 characters."),
        "plain": N_("Your emergency contact's phone contains characters that are not plain text."),
        "digits": N_("Write the phone number with digits only (spaces and + - ( ) are fine)."),
    },
    "code_word": {
        "text": N_("The code word must be text."),
        "long": N_("The code word can be at most 40 characters."),
        "plain": N_("The code word contains characters that are not plain text."),
    },
    "private": {"missing": N_("Please say whether you can talk freely where you are.")},
}


def _refuse(field: str, problem: str) -> SafetyAnswerError:
    return SafetyAnswerError(field, _REFUSALS[field][problem])


def _text(raw: Mapping[str, Any], field: str, max_chars: int, *, required: bool) -> str:
    value = raw.get(field, "")
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise _refuse(field, "text")
    value = " ".join(value.split())  # one line: newlines and runs of spaces become one space
    if required and not value:
        raise _refuse(field, "empty")
    if len(value) > max_chars:
        raise _refuse(field, "long")
    if _has_control_characters(value):
        raise _refuse(field, "plain")
    return value


@dataclass(frozen=True, slots=True)
class SafetyAnswers:
    """One safety check as the client confirmed it."""

    location: str  # free text: only what the client typed or confirmed, never coordinates we took
    private: bool  # "Are you somewhere private where you can talk freely?" yes / not really
    contact_name: str
    contact_phone: str
    code_word: str = ""  # optional, agreed with the therapist; "" when none

    def to_json(self) -> dict[str, Any]:
        """The answers as stored (encrypted) and as the therapist's page receives them."""
        return {
            "location": self.location,
            "private": self.private,
            "contact_name": self.contact_name,
            "contact_phone": self.contact_phone,
            "code_word": self.code_word,
        }


def check_answers(raw: Mapping[str, Any]) -> SafetyAnswers:
    """The answers, tidied (one line each, trimmed) and checked; SafetyAnswerError names the
    first one to correct."""
    location = _text(raw, "location", MAX_LOCATION_CHARS, required=True)
    private = raw.get("private")
    if not isinstance(private, bool):
        raise _refuse("private", "missing")
    name = _text(raw, "contact_name", MAX_CONTACT_NAME_CHARS, required=True)
    phone = _text(raw, "contact_phone", MAX_PHONE_CHARS, required=True)
    if not is_phone_number(phone) or sum(c.isdigit() for c in phone) < MIN_PHONE_DIGITS:
        raise _refuse("contact_phone", "digits")
    code_word = _text(raw, "code_word", MAX_CODE_WORD_CHARS, required=False)
    return SafetyAnswers(location, private, name, phone, code_word)

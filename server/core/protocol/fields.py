"""The field reader: one place that checks a JSON object's fields, in either direction."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any, Final, NoReturn, TypeVar

from server.core.protocol.codes import ErrorCode, ProtocolError

MESSAGE_ID: Final = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
TOKEN: Final = re.compile(r"[A-Za-z0-9_-]{16,128}")
KNOCK_ID: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")
PEER_ID: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")  # "therapist", or a participant id
IDEMPOTENCY_KEY: Final = re.compile(r"[A-Za-z0-9_-]{16,64}")
# a MediaStream id as the SDP's msid carries it (Chromium: a UUID; Firefox: one in braces)
STREAM_ID: Final = re.compile(r"[A-Za-z0-9_.{}-]{1,64}")
LANGUAGE_CODE: Final = re.compile(r"[a-z]{2,3}(-[A-Za-z0-9]{1,8}){0,3}")  # BCP 47, e.g. "es"
INSTRUMENT_ID: Final = re.compile(r"[A-Za-z0-9\-.]{1,64}")  # a FHIR id


def invalid(message: str) -> NoReturn:
    """Refuse a message as `invalid`, saying which field is wrong."""
    raise ProtocolError(ErrorCode.INVALID, message)


def describe(value: Any) -> str:
    """A short, safe description of a JSON value for an error message."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, str | int | float):
        return repr(value)[:40]
    return type(value).__name__


def utf8_len(text: str) -> int:
    """The size of `text` on the wire."""
    return len(text.encode("utf-8"))


_E = TypeVar("_E", bound=StrEnum)


class Fields:
    """Reads a message's fields one by one; `done()` refuses any field nobody read."""

    def __init__(
        self, obj: Mapping[str, Any], where: str, *, implicit: tuple[str, ...] = ("type", "id")
    ) -> None:
        self._obj = obj
        self.where = where
        self._read: set[str] = set(implicit)

    def _take(self, name: str) -> Any:
        self._read.add(name)
        return self._obj.get(name)

    def _missing(self, name: str) -> NoReturn:
        invalid(f"{self.where}: missing field {name!r}")

    def _wrong(self, name: str, expected: str, value: Any) -> NoReturn:
        invalid(f"{self.where}.{name}: expected {expected}, got {describe(value)}")

    def raw(self, name: str) -> Any:
        """A field of any shape (or None), for a caller that checks it itself."""
        return self._take(name)

    def text(self, name: str, pattern: re.Pattern[str] | None = None, max_chars: int = 64) -> str:
        """A required string, optionally matching `pattern`, at most `max_chars` long."""
        value = self._take(name)
        if value is None:
            self._missing(name)
        return self._check_text(name, value, pattern, max_chars)

    def optional_text(
        self, name: str, pattern: re.Pattern[str] | None = None, max_chars: int = 64
    ) -> str | None:
        """A string that may be omitted or null."""
        value = self._take(name)
        return None if value is None else self._check_text(name, value, pattern, max_chars)

    def _check_text(
        self, name: str, value: Any, pattern: re.Pattern[str] | None, max_chars: int
    ) -> str:
        if not isinstance(value, str):
            self._wrong(name, "a string", value)
        if len(value) > max_chars:
            invalid(f"{self.where}.{name}: at most {max_chars} characters")
        if pattern is not None and not pattern.fullmatch(value):
            invalid(f"{self.where}.{name}: does not match {pattern.pattern}")
        return value

    def integer(self, name: str, low: int, high: int) -> int:
        """A required integer in [low, high] (booleans and floats are refused)."""
        value = self._take(name)
        if value is None:
            self._missing(name)
        return self._check_integer(name, value, low, high)

    def optional_integer(self, name: str, low: int, high: int) -> int | None:
        """An integer that may be omitted or null."""
        value = self._take(name)
        return None if value is None else self._check_integer(name, value, low, high)

    def _check_integer(self, name: str, value: Any, low: int, high: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            self._wrong(name, "an integer", value)
        if not low <= value <= high:
            invalid(f"{self.where}.{name}: expected {low}..{high}, got {value}")
        return value

    def boolean(self, name: str) -> bool:
        """A required true or false."""
        value = self._take(name)
        if value is None:
            self._missing(name)
        if not isinstance(value, bool):
            self._wrong(name, "true or false", value)
        return value

    def choice(self, name: str, allowed: Sequence[_E]) -> _E:
        """A required string that must be one of `allowed` (returned as its enum member)."""
        value = self._take(name)
        if value is None:
            self._missing(name)
        for member in allowed:
            if value == member.value:
                return member
        self._wrong(name, "one of " + ", ".join(m.value for m in allowed), value)

    def mapping(self, name: str) -> Mapping[str, Any]:
        """A required JSON object."""
        value = self._take(name)
        if value is None:
            self._missing(name)
        if not isinstance(value, Mapping):
            self._wrong(name, "an object", value)
        return value

    def optional_mapping(self, name: str) -> Mapping[str, Any] | None:
        """A JSON object that may be omitted or null."""
        value = self._take(name)
        if value is not None and not isinstance(value, Mapping):
            self._wrong(name, "an object", value)
        return value

    def array(self, name: str, max_items: int) -> Sequence[Any]:
        """A required JSON array of at most `max_items` entries."""
        value = self._take(name)
        if value is None:
            self._missing(name)
        if not isinstance(value, list | tuple):
            self._wrong(name, "an array", value)
        if len(value) > max_items:
            invalid(f"{self.where}.{name}: at most {max_items} entries")
        return value

    def done(self) -> None:
        """Refuse fields the schema does not name."""
        extra = set(self._obj) - self._read
        if extra:
            invalid(f"{self.where}: unknown field(s) {', '.join(sorted(map(str, extra)))}")

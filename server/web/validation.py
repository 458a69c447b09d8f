"""Request validation against a small JSON-Schema subset; the same schemas feed OpenAPI."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from server.errors import AttuneError, InvalidInput, PayloadTooLarge
from server.security.json_depth import MAX_JSON_DEPTH, json_depth_exceeds

Schema = Mapping[str, Any]
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})$")


def is_valid_unicode(text: str) -> bool:
    """False for strings holding lone surrogates (JSON allows them; UTF-8 cannot store them)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def parse_datetime(value: str, field: str) -> datetime:
    """An ISO-8601 date-time with an explicit offset, as an aware datetime."""
    if not _DATE_TIME.match(value):
        raise InvalidInput(f"{field}: use ISO 8601 with a time zone, e.g. 2026-11-23T14:00:00Z.")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        parsed.astimezone(UTC)  # years 1 and 9999 can overflow once shifted to UTC
    except (ValueError, OverflowError):
        raise InvalidInput(f"{field}: not a real date and time.") from None
    return parsed


def _check_free_form(value: Any, path: str, depth: int = 0) -> None:
    """Free-form JSON: bounded nesting and valid text throughout."""
    if depth > 8:
        raise InvalidInput(f"{path}: nested too deeply.")
    if isinstance(value, str) and not is_valid_unicode(value):
        raise InvalidInput(f"{path}: contains characters that are not valid text.")
    if isinstance(value, dict):
        for key, item in value.items():
            _check_free_form(key, path, depth + 1)
            _check_free_form(item, f"{path}.{key}", depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_free_form(item, path, depth + 1)


def validate(value: Any, schema: Schema, path: str = "body") -> Any:
    """Check `value` against `schema`; InvalidInput names the first offending field."""
    kind = schema.get("type")
    if kind == "object":
        if not isinstance(value, dict):
            raise InvalidInput(f"{path}: expected an object.")
        if "properties" not in schema:  # a free-form object, checked by its own validator
            _check_free_form(value, path)
            return value
        properties: Mapping[str, Schema] = schema["properties"]
        for name in schema.get("required", ()):
            if name not in value:
                raise InvalidInput(f"{path}.{name}: this field is required.")
        if schema.get("additionalProperties") is False:
            extra = sorted(set(value) - set(properties))
            if extra:
                raise InvalidInput(f"{path}: unknown field {extra[0]!r}.")
        return {
            name: validate(item, properties[name], f"{path}.{name}")
            for name, item in value.items()
            if name in properties
        }
    if kind == "string":
        if not isinstance(value, str):
            raise InvalidInput(f"{path}: expected a string.")
        if not is_valid_unicode(value):
            raise InvalidInput(f"{path}: contains characters that are not valid text.")
        if len(value) < schema.get("minLength", 0):
            raise InvalidInput(f"{path}: too short.")
        if len(value) > schema.get("maxLength", 10_000):
            raise InvalidInput(f"{path}: too long.")
        if "enum" in schema and value not in schema["enum"]:
            raise InvalidInput(f"{path}: must be one of {', '.join(schema['enum'])}.")
        if schema.get("format") == "date-time":
            parse_datetime(value, path)
        return value
    if kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidInput(f"{path}: expected a whole number.")
        if value < schema.get("minimum", -(2**53)) or value > schema.get("maximum", 2**53):
            raise InvalidInput(f"{path}: out of range.")
        return value
    if kind == "boolean":
        if not isinstance(value, bool):
            raise InvalidInput(f"{path}: expected true or false.")
        return value
    raise TypeError(f"schema type {kind!r} is not supported")


async def read_json(request: web.Request, schema: Schema) -> dict[str, Any]:
    """The request's JSON body, size-bounded and validated against `schema`."""
    if request.content_type != "application/json":
        raise InvalidInput("Send the body as application/json.")
    try:
        raw = await request.read()  # bounded by the application's client_max_size
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge("The request body is too large.") from None
    if json_depth_exceeds(raw, MAX_JSON_DEPTH):
        raise AttuneError(f"The body nests deeper than {MAX_JSON_DEPTH} levels.", code="invalid")
    try:
        body = json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("The body is not valid JSON.") from None
    result: dict[str, Any] = validate(body, schema)
    return result

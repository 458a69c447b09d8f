"""HTML form input for the console pages: every field a bounded, valid string."""

from __future__ import annotations

from typing import Final

from aiohttp import web

from server.errors import InvalidInput
from server.web.validation import is_valid_unicode

FORM_FIELD_LIMIT: Final = 4096
NOTICE_BODY_LIMIT: Final = 20_000


async def read_form(request: web.Request, *, long_fields: tuple[str, ...] = ()) -> dict[str, str]:
    """Form fields as strings, each bounded (longer for the named fields)."""
    form = await request.post()
    fields: dict[str, str] = {}
    for key, value in form.items():
        if not isinstance(value, str):
            raise InvalidInput("File uploads are not accepted here.")
        limit = NOTICE_BODY_LIMIT if key in long_fields else FORM_FIELD_LIMIT
        if len(value) > limit or not is_valid_unicode(value):
            raise InvalidInput(f"{key}: too long or not valid text.")
        fields[key] = value
    return fields

"""API: consent notice versions (admins only)."""

from __future__ import annotations

from typing import Final

from aiohttp import web

from privacy.consent import OFFERED_PURPOSES
from server.web.admin.common import admin_operation, notices_json, publish_notice
from server.web.forms import NOTICE_BODY_LIMIT
from server.web.guard import SIGNED_IN
from server.web.openapi import Operation
from server.web.shapes import NOTICE_SCHEMA, list_of
from server.web.validation import read_json

NOTICE_INPUT_SCHEMA: Final = {
    "type": "object",
    "required": ["purpose", "title", "text"],
    "additionalProperties": False,
    "properties": {
        "purpose": {"type": "string", "enum": [p.value for p in OFFERED_PURPOSES]},
        "title": {"type": "string", "minLength": 1, "maxLength": 200},
        "text": {"type": "string", "minLength": 1, "maxLength": NOTICE_BODY_LIMIT},
    },
}


async def api_list_notices(request: web.Request) -> web.StreamResponse:
    return web.json_response({"items": notices_json(request)})


async def api_publish_notice(request: web.Request) -> web.StreamResponse:
    current = request[SIGNED_IN]
    body = await read_json(request, NOTICE_INPUT_SCHEMA)
    notice = await publish_notice(request, current, body["purpose"], body["title"], body["text"])
    return web.json_response(
        {"purpose": notice.purpose.value, "version": notice.version, "sha256": notice.sha256},
        status=201,
    )


OPERATIONS: Final[tuple[Operation, ...]] = (
    admin_operation(
        "GET",
        "/api/v1/notices",
        api_list_notices,
        "Consent notices: the version each purpose uses, and every published version",
        "listNotices",
        {200: ("Notices", list_of(NOTICE_SCHEMA))},
    ),
    admin_operation(
        "POST",
        "/api/v1/notices",
        api_publish_notice,
        "Publish the next version of a purpose's notice (clients are asked again)",
        "publishNotice",
        {201: ("Published", {"type": "object"})},
        NOTICE_INPUT_SCHEMA,
    ),
)

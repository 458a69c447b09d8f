"""The client's safety check over HTTP (the visit page's step before the waiting room).

`GET /api/v1/visit/safety` says whether the step is on and gives the client's previous
answers to prefill it; `POST /api/v1/visit/safety` stores this session's answers (through
`LiveSessions`, which also shows them live in the therapist's panel). Both act only with the
client's cookie for a session that is still open.
"""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from server.core.safety import (
    MAX_CODE_WORD_CHARS,
    MAX_CONTACT_NAME_CHARS,
    MAX_LOCATION_CHARS,
    MAX_PHONE_CHARS,
)
from server.errors import Forbidden, NotFound
from server.keys import DB, LIVE, SAFETY, SETTINGS
from server.services.scheduling import ClientVisit
from server.web.guard import VISIT
from server.web.openapi import Operation
from server.web.shapes import ERR
from server.web.validation import read_json

SAFETY_SUBMIT_SCHEMA: Final = {
    "type": "object",
    "required": ["location", "private", "contact_name", "contact_phone"],
    "additionalProperties": False,
    "properties": {
        "location": {"type": "string", "maxLength": MAX_LOCATION_CHARS * 2},
        "private": {"type": "boolean"},
        "contact_name": {"type": "string", "maxLength": MAX_CONTACT_NAME_CHARS * 2},
        "contact_phone": {"type": "string", "maxLength": MAX_PHONE_CHARS * 2},
        "code_word": {"type": "string", "maxLength": MAX_CODE_WORD_CHARS * 2},
    },
}
"""The body's shape (the lengths allow for spaces the server trims; the answers' own limits
are the pure core's, `server/core/safety.py`, which names the field to correct)."""

ANSWERS_SCHEMA: Final = {
    "type": "object",
    "properties": {
        "location": {"type": "string"},
        "private": {"type": "boolean"},
        "contact_name": {"type": "string"},
        "contact_phone": {"type": "string"},
        "code_word": {"type": "string"},
    },
}
STEP_SCHEMA: Final = {
    "type": "object",
    "properties": {
        "enabled": {"type": "boolean"},
        "previous": {"oneOf": [ANSWERS_SCHEMA, {"type": "null"}]},
    },
}


def _asked(visit: ClientVisit) -> bool:
    """Whether this person is asked the safety check: the session's own client. A session
    keeps one safety check (of its client); a second client's or a guest's answers would
    replace it under the wrong record, so they are not asked until checks are per person."""
    return visit.is_session_client


def _off() -> NotFound:
    return NotFound("This clinic does not ask the safety check here.", code="safety-check-off")


async def client_step(request: web.Request) -> web.StreamResponse:
    """Whether to show the step, and the answers to prefill it with (the client's newest,
    from this session or the one before; never to a second device the therapist has not
    admitted, since they show where the client was and whom they would call)."""
    visit = request[VISIT]
    app = request.app
    if not app[SETTINGS].safety_check or not _asked(visit):
        return web.json_response({"enabled": False, "previous": None})
    previous = None
    if not visit.another_device:
        check = await app[SAFETY].previous_for_client(app[DB], visit.client_id)
        previous = check.answers.to_json() if check is not None else None
    return web.json_response({"enabled": True, "previous": previous})


async def client_submit(request: web.Request) -> web.StreamResponse:
    """Store this session's safety check (replacing an earlier answer of the same session)."""
    visit = request[VISIT]
    app = request.app
    if not app[SETTINGS].safety_check:
        raise _off()
    if not _asked(visit):
        raise Forbidden(
            "The safety check is asked of the session's own client only.", code="safety-not-asked"
        )
    body: dict[str, Any] = await read_json(request, SAFETY_SUBMIT_SCHEMA)
    await app[LIVE].submit_safety_check(visit.session.id, body)
    return web.json_response({"stored": True}, status=201)


SAFETY_OPERATIONS: Final[tuple[Operation, ...]] = (
    Operation(
        "GET",
        "/api/v1/visit/safety",
        client_step,
        "Whether the safety check is asked, and the client's previous answers to prefill it",
        "clientSafetyStep",
        auth="client",
        responses={200: ("The step", STEP_SCHEMA)},
        tags=["client"],
    ),
    Operation(
        "POST",
        "/api/v1/visit/safety",
        client_submit,
        "Answer the safety check before the waiting room (stored encrypted; therapist only)",
        "clientSubmitSafety",
        auth="client",
        request_schema=SAFETY_SUBMIT_SCHEMA,
        responses={
            201: ("Stored", {"type": "object"}),
            404: ("The safety check is off", ERR),
            422: ("An answer to correct", ERR),
        },
        tags=["client"],
    ),
)

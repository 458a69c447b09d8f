"""API: the people in a therapist's session besides the therapist, and their own links."""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from server.core.participant_rules import MAX_GUEST_LABEL_CHARS, Participant
from server.core.participants import PersonKind
from server.errors import InvalidInput
from server.keys import AUDIT, CLOCK, DB, LIVE, MAILER, SETTINGS, VAULT
from server.services import participants
from server.web.guard import SIGNED_IN
from server.web.identity import path_id
from server.web.openapi import Operation
from server.web.shapes import ERR, join_url, list_of
from server.web.validation import read_json

PARTICIPANT_SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "description": "The person's peer id in the room"},
        "kind": {"type": "string", "enum": [PersonKind.CLIENT.value, PersonKind.GUEST.value]},
        "client_id": {"type": ["string", "null"]},
        "label": {"type": "string", "description": "The client's alias or the guest's label"},
        "position": {"type": "integer", "minimum": 1, "maximum": 3},
        "link_active": {"type": "boolean"},
        "link_opened": {"type": "boolean"},
    },
}
PARTICIPANT_LINK_SCHEMA = {
    "type": "object",
    "properties": {"join_url": {"type": "string"}, "participant": PARTICIPANT_SCHEMA},
}
PARTICIPANT_ADD_SCHEMA = {
    "type": "object",
    "required": ["kind"],
    "additionalProperties": False,
    "properties": {
        "kind": {"type": "string", "enum": [PersonKind.CLIENT.value, PersonKind.GUEST.value]},
        "client_id": {
            "type": "string",
            "minLength": 32,
            "maxLength": 32,
            "description": "With kind client: one of my clients",
        },
        "label": {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_GUEST_LABEL_CHARS,
            "description": "With kind guest: how the room names them (e.g. Interpreter)",
        },
    },
}


def participant_json(person: Participant) -> dict[str, Any]:
    """A participant as the API shows it to their therapist."""
    return {
        "id": person.id,
        "kind": person.kind.value,
        "client_id": person.client_id,
        "label": person.label,
        "position": person.position,
        "link_active": person.link_active,
        "link_opened": person.link_opened,
    }


async def list_participants(request: web.Request) -> web.StreamResponse:
    therapist = request[SIGNED_IN].account
    people = await participants.list_participants(
        request.app[DB], request.app[VAULT], therapist, path_id(request, "session_id")
    )
    return web.json_response({"items": [participant_json(p) for p in people]})


async def add_participant(request: web.Request) -> web.StreamResponse:
    therapist = request[SIGNED_IN].account
    session_id = path_id(request, "session_id")
    body = await read_json(request, PARTICIPANT_ADD_SCHEMA)
    app, now = request.app, request.app[CLOCK]()
    max_people = app[SETTINGS].max_people_per_session
    if body["kind"] == PersonKind.CLIENT.value:
        if "client_id" not in body or "label" in body:
            raise InvalidInput("A client is added by client_id (and no label).")
        person, invite = await participants.add_client(
            app[DB],
            app[AUDIT],
            app[VAULT],
            therapist,
            session_id,
            client_id=body["client_id"],
            max_people=max_people,
            now=now,
            mail=app[MAILER],
        )
    else:
        if "label" not in body or "client_id" in body:
            raise InvalidInput("A guest is added by label (and no client_id).")
        person, invite = await participants.add_guest(
            app[DB],
            app[AUDIT],
            app[VAULT],
            therapist,
            session_id,
            label=body["label"],
            max_people=max_people,
            now=now,
        )
    payload = {"join_url": join_url(request, invite.token), "participant": participant_json(person)}
    return web.json_response(payload, status=201)


async def remove_participant(request: web.Request) -> web.StreamResponse:
    therapist = request[SIGNED_IN].account
    await participants.remove(
        request.app[DB],
        request.app[AUDIT],
        request.app[LIVE],
        therapist,
        path_id(request, "session_id"),
        path_id(request, "participant_id"),
        request.app[CLOCK](),
    )
    return web.Response(status=204)


async def reissue_link(request: web.Request) -> web.StreamResponse:
    therapist = request[SIGNED_IN].account
    session_id = path_id(request, "session_id")
    participant_id = path_id(request, "participant_id")
    app = request.app
    invite = await participants.reissue(
        app[DB],
        app[AUDIT],
        app[LIVE],
        therapist,
        session_id,
        participant_id,
        app[CLOCK](),
        mail=app[MAILER],
    )
    people = await participants.list_participants(app[DB], app[VAULT], therapist, session_id)
    person = next(p for p in people if p.id == participant_id)
    payload = {"join_url": join_url(request, invite.token), "participant": participant_json(person)}
    return web.json_response(payload, status=201)


_PATH = "/api/v1/sessions/{session_id}/participants"

OPERATIONS: Final[tuple[Operation, ...]] = (
    Operation(
        "GET",
        _PATH,
        list_participants,
        "The people in one of my sessions besides me, with their link's status",
        "listParticipants",
        auth="therapist",
        responses={200: ("Participants", list_of(PARTICIPANT_SCHEMA)), 404: ("Not found", ERR)},
        tags=["sessions"],
    ),
    Operation(
        "POST",
        _PATH,
        add_participant,
        "Add one of my clients or a guest to a session, with their own link (shown once)",
        "addParticipant",
        auth="therapist",
        request_schema=PARTICIPANT_ADD_SCHEMA,
        responses={
            201: ("Added, with their join link (shown once)", PARTICIPANT_LINK_SCHEMA),
            404: ("Unknown session or client", ERR),
            409: ("Full, already in it, or the session is closed", ERR),
            422: ("Invalid", ERR),
        },
        tags=["sessions"],
    ),
    Operation(
        "DELETE",
        _PATH + "/{participant_id}",
        remove_participant,
        "Take a person out of a session: their link and cookies end at once",
        "removeParticipant",
        auth="therapist",
        responses={
            204: ("Removed", None),
            404: ("Not found", ERR),
            409: ("The session's own client, or the session is closed", ERR),
        },
        tags=["sessions"],
    ),
    Operation(
        "POST",
        _PATH + "/{participant_id}/invite",
        reissue_link,
        "Replace one person's link with a new one (the old one and its cookies end)",
        "reissueParticipantInvite",
        auth="therapist",
        responses={
            201: ("New link (shown once)", PARTICIPANT_LINK_SCHEMA),
            404: ("Not found", ERR),
            409: ("Session closed", ERR),
        },
        tags=["sessions"],
    ),
)

"""API: a therapist's clients, their notes, and erasing a client."""

from __future__ import annotations

from typing import Final

from aiohttp import web

from server.keys import AUDIT, CLOCK, DB, VAULT
from server.services import erasure, scheduling
from server.services import notes as note_service
from server.web.guard import SIGNED_IN
from server.web.identity import path_id
from server.web.openapi import Operation
from server.web.shapes import CLIENT_SCHEMA, ERR, NOTE_SCHEMA, client_json, list_of, note_json
from server.web.validation import read_json

CLIENT_CREATE_SCHEMA = {
    "type": "object",
    "required": ["alias"],
    "additionalProperties": False,
    "properties": {"alias": {"type": "string", "minLength": 1, "maxLength": 64}},
}


NOTE_CREATE_SCHEMA = {
    "type": "object",
    "required": ["text"],
    "additionalProperties": False,
    "properties": {"text": {"type": "string", "minLength": 1, "maxLength": 20_000}},
}


async def list_clients(request: web.Request) -> web.StreamResponse:
    therapist = request[SIGNED_IN].account
    items = await scheduling.list_clients(request.app[DB], therapist)
    return web.json_response({"items": [client_json(c) for c in items]})


async def create_client(request: web.Request) -> web.StreamResponse:
    therapist = request[SIGNED_IN].account
    body = await read_json(request, CLIENT_CREATE_SCHEMA)
    client = await scheduling.create_client(
        request.app[DB], request.app[AUDIT], therapist, body["alias"], request.app[CLOCK]()
    )
    return web.json_response(client_json(client), status=201)


async def get_client(request: web.Request) -> web.StreamResponse:
    therapist = request[SIGNED_IN].account
    client = await scheduling.get_client(request.app[DB], therapist, path_id(request, "client_id"))
    return web.json_response(client_json(client))


async def list_notes(request: web.Request) -> web.StreamResponse:
    therapist = request[SIGNED_IN].account
    app = request.app
    notes = await note_service.list_notes(
        app[DB], app[VAULT], app[AUDIT], therapist, path_id(request, "client_id"), app[CLOCK]()
    )
    return web.json_response({"items": [note_json(n) for n in notes]})


async def add_note(request: web.Request) -> web.StreamResponse:
    therapist = request[SIGNED_IN].account
    body = await read_json(request, NOTE_CREATE_SCHEMA)
    app = request.app
    note = await note_service.add_note(
        app[DB],
        app[VAULT],
        app[AUDIT],
        therapist,
        path_id(request, "client_id"),
        body["text"],
        app[CLOCK](),
    )
    return web.json_response(note_json(note), status=201)


async def erase_client(request: web.Request) -> web.StreamResponse:
    therapist = request[SIGNED_IN].account
    app = request.app
    await erasure.erase_client(
        app[DB], app[VAULT], app[AUDIT], therapist, path_id(request, "client_id"), app[CLOCK]()
    )
    return web.Response(status=204)


OPERATIONS: Final[tuple[Operation, ...]] = (
    Operation(
        "GET",
        "/api/v1/clients",
        list_clients,
        "List my clients",
        "listClients",
        auth="therapist",
        responses={200: ("Clients", list_of(CLIENT_SCHEMA))},
        tags=["clients"],
    ),
    Operation(
        "POST",
        "/api/v1/clients",
        create_client,
        "Add a client (alias only)",
        "createClient",
        auth="therapist",
        request_schema=CLIENT_CREATE_SCHEMA,
        responses={201: ("Created", CLIENT_SCHEMA), 409: ("Alias in use", ERR)},
        tags=["clients"],
    ),
    Operation(
        "GET",
        "/api/v1/clients/{client_id}",
        get_client,
        "One of my clients",
        "getClient",
        auth="therapist",
        responses={200: ("Client", CLIENT_SCHEMA), 404: ("Not found", ERR)},
        tags=["clients"],
    ),
    Operation(
        "DELETE",
        "/api/v1/clients/{client_id}",
        erase_client,
        "Erase a client: destroy its data key, then delete its rows",
        "eraseClient",
        auth="therapist",
        responses={204: ("Erased", None), 404: ("Not found", ERR)},
        tags=["clients"],
    ),
    Operation(
        "GET",
        "/api/v1/clients/{client_id}/notes",
        list_notes,
        "My notes about a client (decrypted; the read is audited)",
        "listNotes",
        auth="therapist",
        responses={200: ("Notes, newest first", list_of(NOTE_SCHEMA)), 404: ("Not found", ERR)},
        tags=["clients"],
    ),
    Operation(
        "POST",
        "/api/v1/clients/{client_id}/notes",
        add_note,
        "Add a note about a client (stored encrypted)",
        "addNote",
        auth="therapist",
        request_schema=NOTE_CREATE_SCHEMA,
        responses={201: ("Created", NOTE_SCHEMA), 404: ("Not found", ERR)},
        tags=["clients"],
    ),
)

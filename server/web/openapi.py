"""Operations declared once: they register the routes and generate the OpenAPI 3.1 document."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, get_args

from aiohttp import web

ApiHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Who may call an operation: nobody in particular, any signed-in account, a therapist, an
# admin, a client through the session link while the session is open ("client"), only from
# the link's admitted device ("client_device"), also after the end within the grace period
# ("client_after_session": the after-session check-in), or either an account or a client;
# "client_measure_link": the page cookie of an emailed link to answer measures between sessions.
Auth = Literal[
    "none",
    "account",
    "therapist",
    "admin",
    "client",
    "client_device",
    "client_after_session",
    "account_or_client",
    "client_measure_link",
]
AUTH_LEVELS: Final[tuple[Auth, ...]] = get_args(Auth)

ERROR_SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "request_id": {"type": "string"},
            },
        }
    },
}


_COOKIES: Final[dict[Auth, tuple[str, ...]]] = {
    "none": (),
    "account": ("sessionCookie",),
    "therapist": ("sessionCookie",),
    "admin": ("sessionCookie",),
    "client": ("clientCookie",),
    "client_device": ("clientCookie",),
    "client_after_session": ("clientCookie",),
    "account_or_client": ("sessionCookie", "clientCookie"),
    "client_measure_link": ("measureLinkCookie",),
}


@dataclass(frozen=True)
class Operation:
    """One endpoint: route, handler, schemas and who may call it."""

    method: str
    path: str
    handler: ApiHandler
    summary: str
    operation_id: str
    auth: Auth = "account"  # enforced by server.web.guard before the handler runs
    request_schema: Mapping[str, Any] | None = None
    responses: Mapping[int, tuple[str, Mapping[str, Any] | None]] = field(default_factory=dict)
    tags: Sequence[str] = ()
    query: Sequence[Mapping[str, Any]] = ()  # OpenAPI query parameter objects
    media_types: Sequence[str] = ("application/json",)  # of its successful responses


def _parameters(path: str) -> list[dict[str, Any]]:
    names = [part[1:-1] for part in path.split("/") if part.startswith("{")]
    return [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
        }
        for name in names
    ]


def openapi_document(operations: Sequence[Operation], *, version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 description of every operation."""
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        responses: dict[str, Any] = {}
        for status, (description, schema) in sorted(op.responses.items()):
            entry: dict[str, Any] = {"description": description}
            if schema is not None:
                types = op.media_types if status < 400 else ("application/json",)
                entry["content"] = {media: {"schema": schema} for media in types}
            responses[str(status)] = entry
        defaults = (
            (401, "Not signed in"),
            (403, "Wrong role, missing CSRF token, or cross-site request"),
            (422, "Invalid input"),
        )
        for status, description in defaults:
            if op.auth != "none" or status == 422 or (status == 403 and op.method != "GET"):
                responses.setdefault(
                    str(status),
                    {
                        "description": description,
                        "content": {"application/json": {"schema": ERROR_SCHEMA}},
                    },
                )
        item: dict[str, Any] = {
            "operationId": op.operation_id,
            "summary": op.summary,
            "tags": list(op.tags),
            "responses": responses,
        }
        if op.auth != "none":
            # Safe methods need only the cookie; state-changing ones also the CSRF token.
            needs_token = op.method not in ("GET", "HEAD")
            item["security"] = [
                {cookie: [], "csrfHeader": []} if needs_token else {cookie: []}
                for cookie in _COOKIES[op.auth]
            ]
        parameters = _parameters(op.path) + [dict(q) for q in op.query]
        if parameters:
            item["parameters"] = parameters
        if op.request_schema is not None:
            item["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": op.request_schema}},
            }
        paths.setdefault(op.path, {})[op.method.lower()] = item
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Attune API",
            "version": version,
            "description": (
                "Therapists' and admins' API. Sign in with POST /api/v1/auth/login; send the "
                "returned csrf_token as X-CSRF-Token on every state-changing request."
            ),
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "sessionCookie": {"type": "apiKey", "in": "cookie", "name": "attune"},
                "clientCookie": {"type": "apiKey", "in": "cookie", "name": "attune-client"},
                "measureLinkCookie": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": "attune-measures",
                },
                "csrfHeader": {"type": "apiKey", "in": "header", "name": "X-CSRF-Token"},
            }
        },
    }

"""API: the OpenAPI document, the liveness probe and the readiness probe."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Final

from aiohttp import web

from server.health import readiness
from server.keys import API_OPERATIONS, DB, DRAINING, SETTINGS
from server.web.openapi import Operation, openapi_document


def package_version() -> str:
    """The installed distribution's version."""
    try:
        return version("attune-telehealth")
    except PackageNotFoundError:
        return "0.0.0"


async def openapi(request: web.Request) -> web.StreamResponse:
    document = openapi_document(request.app[API_OPERATIONS], version=package_version())
    return web.json_response(document)


async def healthz(request: web.Request) -> web.StreamResponse:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.StreamResponse:
    """200 when the database (and Redis, if configured) answer; 503 with the reason if not."""
    if request.app[DRAINING].is_set():
        return web.json_response({"status": "unavailable", "reason": "shutting down"}, status=503)
    state = await readiness(request.app[DB], request.app[SETTINGS].redis_url)
    if not state.ready:
        return web.json_response({"status": "unavailable", "reason": state.reason}, status=503)
    return web.json_response({"status": "ready"})


OPERATIONS: Final[tuple[Operation, ...]] = (
    Operation(
        "GET",
        "/api/v1/openapi.json",
        openapi,
        "This document",
        "openapi",
        auth="none",
        responses={200: ("OpenAPI 3.1", {"type": "object"})},
        tags=["meta"],
    ),
    Operation(
        "GET",
        "/healthz",
        healthz,
        "Liveness",
        "healthz",
        auth="none",
        responses={200: ("Alive", {"type": "object"})},
        tags=["meta"],
    ),
    Operation(
        "GET",
        "/readyz",
        readyz,
        "Readiness: the database (and Redis, when configured) answer",
        "readyz",
        auth="none",
        responses={
            200: ("Ready", {"type": "object"}),
            503: ("Not ready, with a short reason", {"type": "object"}),
        },
        tags=["meta"],
    ),
)

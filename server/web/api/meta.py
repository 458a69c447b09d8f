"""API: the OpenAPI document and the liveness probe."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Final

from aiohttp import web

from server.keys import API_OPERATIONS
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
)

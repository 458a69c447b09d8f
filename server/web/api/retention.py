"""API: retention policies, legal holds, purge runs and reports (admins only)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from aiohttp import web

from privacy.retention import Action, Category, Policy, validate_policy
from server.keys import CLOCK
from server.services.retention import hold_json, parse_policy, policy_json, report_json
from server.web.admin.common import (
    actor,
    admin_operation,
    preview_message,
    retention_service,
)
from server.web.guard import SIGNED_IN
from server.web.identity import path_id
from server.web.openapi import Operation
from server.web.shapes import (
    ERR,
    HOLD_SCHEMA,
    POLICY_SAVED_SCHEMA,
    POLICY_SCHEMA,
    PREVIEW_SCHEMA,
    REPORT_SCHEMA,
    list_of,
)
from server.web.validation import read_json

POLICY_INPUT_SCHEMA: Final = {
    "type": "object",
    "required": ["category", "keep_days"],
    "additionalProperties": False,
    "properties": {
        "category": {"type": "string", "enum": [c.value for c in Category]},
        "keep_days": {"type": "integer", "minimum": 0, "maximum": 36_500},
        "action": {"type": "string", "enum": [a.value for a in Action]},
        "floor_override_reason": {"type": "string", "minLength": 1, "maxLength": 500},
    },
}


HOLD_INPUT_SCHEMA: Final = {
    "type": "object",
    "required": ["client_id", "reason"],
    "additionalProperties": False,
    "properties": {
        "client_id": {"type": "string", "minLength": 32, "maxLength": 32},
        "reason": {"type": "string", "minLength": 1, "maxLength": 500},
    },
}


RELEASE_SCHEMA: Final = {
    "type": "object",
    "required": ["reason"],
    "additionalProperties": False,
    "properties": {"reason": {"type": "string", "minLength": 1, "maxLength": 500}},
}


PURGE_INPUT_SCHEMA: Final = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"dry_run": {"type": "boolean"}},
}


async def api_list_policies(request: web.Request) -> web.StreamResponse:
    policies = await retention_service(request).policies()
    return web.json_response({"items": [policy_json(p) for p in policies.values()]})


def _policy_from_body(body: Mapping[str, Any]) -> Policy:
    return parse_policy(
        body["category"], body["keep_days"], body.get("action"), body.get("floor_override_reason")
    )


async def api_set_policy(request: web.Request) -> web.StreamResponse:
    current = request[SIGNED_IN]
    policy = _policy_from_body(await read_json(request, POLICY_INPUT_SCHEMA))
    retention = retention_service(request)
    warnings = await retention.set_policy(policy, actor=actor(current), now=request.app[CLOCK]())
    saved = (await retention.policies())[policy.category]
    return web.json_response({"policy": policy_json(saved), "warnings": warnings})


async def api_preview_policy(request: web.Request) -> web.StreamResponse:
    policy = _policy_from_body(await read_json(request, POLICY_INPUT_SCHEMA))
    retention = retention_service(request)
    warnings = validate_policy(policy)
    counts = await retention.preview(policy, request.app[CLOCK]())
    stored = retention.registry.stores(policy.category)
    return web.json_response(
        {
            "category": policy.category.value,
            "action": policy.action.value,
            "count": sum(counts.values()),
            "stored": stored,
            "message": preview_message(policy, counts, stored),
            "warnings": warnings,
        }
    )


async def api_list_holds(request: web.Request) -> web.StreamResponse:
    now = request.app[CLOCK]()
    holds = await retention_service(request).holds()
    return web.json_response({"items": [hold_json(h, now) for h in holds]})


async def api_add_hold(request: web.Request) -> web.StreamResponse:
    current = request[SIGNED_IN]
    body = await read_json(request, HOLD_INPUT_SCHEMA)
    now = request.app[CLOCK]()
    hold = await retention_service(request).add_hold(
        body["client_id"], body["reason"], actor=actor(current), now=now
    )
    return web.json_response(hold_json(hold, now), status=201)


async def api_release_hold(request: web.Request) -> web.StreamResponse:
    current = request[SIGNED_IN]
    client_id = path_id(request, "client_id")
    body = await read_json(request, RELEASE_SCHEMA)
    now = request.app[CLOCK]()
    hold = await retention_service(request).remove_hold(
        client_id, body["reason"], actor=actor(current), now=now
    )
    return web.json_response(hold_json(hold, now))


async def api_run_purge(request: web.Request) -> web.StreamResponse:
    current = request[SIGNED_IN]
    body = await read_json(request, PURGE_INPUT_SCHEMA)
    report = await retention_service(request).purge(
        request.app[CLOCK](),
        trigger="api",
        actor=actor(current),
        dry_run=body.get("dry_run", False),
    )
    return web.json_response(report_json(report))


async def api_list_reports(request: web.Request) -> web.StreamResponse:
    reports = await retention_service(request).reports()
    return web.json_response({"items": [report_json(r) for r in reports]})


OPERATIONS: Final[tuple[Operation, ...]] = (
    admin_operation(
        "GET",
        "/api/v1/retention/policies",
        api_list_policies,
        "Retention policy of every category, with defaults, reasons and floors",
        "listRetentionPolicies",
        {200: ("Policies", list_of(POLICY_SCHEMA))},
    ),
    admin_operation(
        "PUT",
        "/api/v1/retention/policies",
        api_set_policy,
        "Save one category's policy (below a floor only with floor_override_reason)",
        "setRetentionPolicy",
        {200: ("Saved, with warnings", POLICY_SAVED_SCHEMA)},
        POLICY_INPUT_SCHEMA,
    ),
    admin_operation(
        "POST",
        "/api/v1/retention/preview",
        api_preview_policy,
        "Dry run of a proposed policy: how many records it would change now",
        "previewRetentionPolicy",
        {200: ("What saving would do now", PREVIEW_SCHEMA)},
        POLICY_INPUT_SCHEMA,
    ),
    admin_operation(
        "GET",
        "/api/v1/retention/holds",
        api_list_holds,
        "Legal holds, standing ones first",
        "listHolds",
        {200: ("Holds", list_of(HOLD_SCHEMA))},
    ),
    admin_operation(
        "POST",
        "/api/v1/retention/holds",
        api_add_hold,
        "Place a legal hold on a client's data",
        "addHold",
        {
            201: ("Placed", HOLD_SCHEMA),
            404: ("Unknown client", ERR),
            409: ("Already on hold", ERR),
        },
        HOLD_INPUT_SCHEMA,
    ),
    admin_operation(
        "POST",
        "/api/v1/retention/holds/{client_id}/release",
        api_release_hold,
        "Lift the standing legal hold on a client's data",
        "releaseHold",
        {200: ("Lifted", HOLD_SCHEMA), 404: ("No standing hold", ERR)},
        RELEASE_SCHEMA,
    ),
    admin_operation(
        "POST",
        "/api/v1/retention/purge",
        api_run_purge,
        "Run the purge now (dry_run: count only)",
        "runPurge",
        {200: ("The run's report", REPORT_SCHEMA)},
        PURGE_INPUT_SCHEMA,
    ),
    admin_operation(
        "GET",
        "/api/v1/retention/reports",
        api_list_reports,
        "Purge reports, newest first",
        "listPurgeReports",
        {200: ("Reports", list_of(REPORT_SCHEMA))},
    ),
)

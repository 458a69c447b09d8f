"""API: accounts, listed, created and managed by admins."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Final

from aiohttp import web

from server.audit import AuditTrail
from server.core.models import Account, Role
from server.db.engine import Database
from server.keys import AUDIT, CLOCK, DB, LIVE
from server.services import accounts as account_service
from server.services import admin_accounts
from server.web.admin.common import admin_operation
from server.web.guard import SIGNED_IN
from server.web.identity import path_id
from server.web.openapi import Operation
from server.web.shapes import ACCOUNT_SCHEMA, ERR, account_json, list_of
from server.web.validation import read_json

ACCOUNT_CREATE_SCHEMA = {
    "type": "object",
    "required": ["email", "password", "role"],
    "additionalProperties": False,
    "properties": {
        "email": {"type": "string", "minLength": 3, "maxLength": 254},
        "password": {"type": "string", "minLength": 1, "maxLength": 1024},
        "role": {"type": "string", "enum": [role.value for role in Role]},
    },
}
PASSWORD_SCHEMA: Final = {
    "type": "object",
    "required": ["password"],
    "additionalProperties": False,
    "properties": {"password": {"type": "string", "minLength": 1, "maxLength": 1024}},
}


async def list_accounts(request: web.Request) -> web.StreamResponse:
    items = await account_service.list_accounts(request.app[DB])
    return web.json_response({"items": [account_json(a) for a in items]})


async def create_account(request: web.Request) -> web.StreamResponse:
    admin = request[SIGNED_IN].account
    body = await read_json(request, ACCOUNT_CREATE_SCHEMA)
    account = await account_service.create_account(
        request.app[DB],
        request.app[AUDIT],
        email=body["email"],
        password=body["password"],
        role=Role(body["role"]),
        actor=f"account:{admin.id}",
        now=request.app[CLOCK](),
    )
    return web.json_response(account_json(account), status=201)


AccountChange = Callable[[Database, AuditTrail, Account, str, datetime], Awaitable[Account]]


async def _change_account(request: web.Request, change: AccountChange) -> web.StreamResponse:
    """Apply one admin change to the account named in the path; answer with the account."""
    current = request[SIGNED_IN]
    account = await change(
        request.app[DB],
        request.app[AUDIT],
        current.account,
        path_id(request, "account_id"),
        request.app[CLOCK](),
    )
    return web.json_response(account_json(account))


async def api_disable_account(request: web.Request) -> web.StreamResponse:
    live = request.app[LIVE]  # a disabled account's open sockets close at once

    async def disable(
        db: Database, audit: AuditTrail, admin: Account, account_id: str, now: datetime
    ) -> Account:
        return await admin_accounts.disable_account(db, audit, live, admin, account_id, now)

    return await _change_account(request, disable)


async def api_enable_account(request: web.Request) -> web.StreamResponse:
    return await _change_account(request, admin_accounts.enable_account)


async def api_reset_password(request: web.Request) -> web.StreamResponse:
    current = request[SIGNED_IN]
    account_id = path_id(request, "account_id")
    body = await read_json(request, PASSWORD_SCHEMA)
    await admin_accounts.reset_password(
        request.app[DB],
        request.app[AUDIT],
        request.app[LIVE],
        current.account,
        account_id,
        body["password"],
        request.app[CLOCK](),
    )
    return web.Response(status=204)


OPERATIONS: Final[tuple[Operation, ...]] = (
    Operation(
        "GET",
        "/api/v1/accounts",
        list_accounts,
        "List accounts",
        "listAccounts",
        auth="admin",
        responses={200: ("Accounts", list_of(ACCOUNT_SCHEMA))},
        tags=["admin"],
    ),
    Operation(
        "POST",
        "/api/v1/accounts",
        create_account,
        "Add an account",
        "createAccount",
        auth="admin",
        request_schema=ACCOUNT_CREATE_SCHEMA,
        responses={201: ("Created", ACCOUNT_SCHEMA), 409: ("Email in use", ERR)},
        tags=["admin"],
    ),
    admin_operation(
        "POST",
        "/api/v1/accounts/{account_id}/disable",
        api_disable_account,
        "Disable an account: its sign-ins end now",
        "disableAccount",
        {200: ("Disabled", ACCOUNT_SCHEMA), 404: ("Not found", ERR), 409: ("Refused", ERR)},
    ),
    admin_operation(
        "POST",
        "/api/v1/accounts/{account_id}/enable",
        api_enable_account,
        "Re-enable a disabled account",
        "enableAccount",
        {200: ("Enabled", ACCOUNT_SCHEMA), 404: ("Not found", ERR), 409: ("Refused", ERR)},
    ),
    admin_operation(
        "POST",
        "/api/v1/accounts/{account_id}/password",
        api_reset_password,
        "Reset an account's password (signs it out everywhere)",
        "resetPassword",
        {204: ("Reset", None), 404: ("Not found", ERR), 409: ("Refused", ERR)},
        PASSWORD_SCHEMA,
    ),
)

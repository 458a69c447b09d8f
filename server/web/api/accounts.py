"""API: accounts, listed, created and managed by admins."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Final

from aiohttp import web

from server.audit import AuditTrail
from server.core.models import Account, Role
from server.db.engine import Database
from server.keys import AUDIT, CLOCK, DB, LIVE, MAILER
from server.services import accounts as account_service
from server.services import admin_accounts
from server.web.account_links import LinkDelivery, deliver_account_link
from server.web.admin.common import admin_operation
from server.web.guard import SIGNED_IN
from server.web.identity import path_id
from server.web.openapi import Operation
from server.web.shapes import ACCOUNT_SCHEMA, ERR, account_json, list_of
from server.web.validation import read_json

ACCOUNT_CREATE_SCHEMA = {
    "type": "object",
    "required": ["email", "role"],
    "additionalProperties": False,
    "properties": {
        "email": {"type": "string", "minLength": 3, "maxLength": 254},
        "password": {"type": "string", "minLength": 1, "maxLength": 1024},
        "role": {"type": "string", "enum": [role.value for role in Role]},
    },
}

RESET_DELIVERY_SCHEMA = {
    "type": "object",
    "required": ["delivery", "expires_at"],
    "properties": {
        "delivery": {"type": "string", "enum": ["shown", "emailed", "failed"]},
        "reset_url": {"type": "string"},
        "delivery_error": {"type": "string"},
        "expires_at": {"type": "string", "format": "date-time"},
    },
}


async def list_accounts(request: web.Request) -> web.StreamResponse:
    items = await account_service.list_accounts(request.app[DB])
    return web.json_response({"items": [account_json(a) for a in items]})


async def create_account(request: web.Request) -> web.StreamResponse:
    admin = request[SIGNED_IN].account
    body = await read_json(request, ACCOUNT_CREATE_SCHEMA)
    app = request.app
    if "password" in body:
        account = await account_service.create_account(
            app[DB],
            app[AUDIT],
            email=body["email"],
            password=body["password"],
            role=Role(body["role"]),
            actor=f"account:{admin.id}",
            now=app[CLOCK](),
        )
        return web.json_response(account_json(account), status=201)
    account, token, expires_at = await admin_accounts.add_account_with_link(
        app[DB],
        app[AUDIT],
        admin,
        email=body["email"],
        role=Role(body["role"]),
        now=app[CLOCK](),
        by_email=app[MAILER].enabled,
    )
    delivery = await deliver_account_link(request, account, token, expires_at, first_password=True)
    response = web.json_response(
        {
            **account_json(account),
            **_delivery_json(delivery, "setup_url"),
            "setup_url_expires_at": expires_at.isoformat(),
        },
        status=201,
    )
    response.headers["Cache-Control"] = "no-store"
    return response


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


def _delivery_json(delivery: LinkDelivery, url_field: str) -> dict[str, str]:
    """How the one-time link went: `delivery` is `shown` (the URL is in `url_field`, for hand
    delivery), `emailed` (to the account's own address; no URL here) or `failed` (with
    `delivery_error`; the change stands, and a reset sends a new link)."""
    if delivery.url is not None:
        return {"delivery": "shown", url_field: delivery.url}
    if delivery.emailed:
        return {"delivery": "emailed"}
    return {"delivery": "failed", "delivery_error": delivery.error or "not sent"}


async def api_reset_account(request: web.Request) -> web.StreamResponse:
    current = request[SIGNED_IN]
    account, token, expires_at = await admin_accounts.issue_reset_link(
        request.app[DB],
        request.app[AUDIT],
        request.app[LIVE],
        current.account,
        path_id(request, "account_id"),
        request.app[CLOCK](),
        by_email=request.app[MAILER].enabled,
    )
    delivery = await deliver_account_link(request, account, token, expires_at, first_password=False)
    response = web.json_response(
        {**_delivery_json(delivery, "reset_url"), "expires_at": expires_at.isoformat()}
    )
    response.headers["Cache-Control"] = "no-store"
    return response


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
        "Add an account. Without `password` (preferred: the admin never knows it) a one-time"
        " set-up link lets the holder choose one: emailed to the account's address when SMTP"
        " is configured (`delivery: emailed`), else returned once as `setup_url` (`delivery:"
        " shown`); a `password` is accepted for scripted provisioning",
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
        "/api/v1/accounts/{account_id}/reset",
        api_reset_account,
        "Reset an account: its password stops working, its sign-ins end, its two-factor setup"
        " is removed, and a one-time link (valid 24 h) lets its holder choose a new password;"
        " emailed to the holder when SMTP is configured, otherwise shown once here",
        "resetAccount",
        {
            200: (
                "How the one-time reset link went: emailed to the holder (SMTP configured),"
                " or shown here once for hand delivery",
                RESET_DELIVERY_SCHEMA,
            ),
            404: ("Not found", ERR),
            409: ("Refused (own account, anonymised)", ERR),
        },
    ),
)

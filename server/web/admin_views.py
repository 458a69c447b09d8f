"""The admin console beyond the account list: account actions, retention policies (with a
dry-run preview before saving), legal holds, consent notice versions and purge reports; the
same operations as REST API (`ADMIN_OPERATIONS`).

Admins see metadata only: ids, times, counts, policy settings and notice texts, never check-in
answers, cue details, signal events, notes or client aliases. Nothing here decrypts.

Like audit_views, this module imports neither ``server.web.api`` nor ``server.web.pages``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import aiohttp_jinja2
from aiohttp import web

from privacy.consent import OFFERED_PURPOSES, Notice, Purpose
from privacy.retention import (
    DEFAULT_POLICIES,
    Action,
    Category,
    Policy,
    validate_policy,
)
from server.core.models import Account, Role
from server.errors import AttuneError, InvalidInput, NotFound
from server.keys import AUDIT, CLOCK, CONSENTS, DB, VAULT
from server.services import admin_accounts
from server.services.accounts import SignedIn
from server.services.retention import (
    CATEGORY_NOUNS,
    PolicyInForce,
    PurgeReport,
    Retention,
    below_floor,
    hold_json,
    parse_policy,
    policy_json,
    report_json,
)
from server.web.identity import page_account, path_id, require_account
from server.web.openapi import Operation
from server.web.validation import is_valid_unicode, read_json

_FORM_FIELD_LIMIT: Final = 4096
_NOTICE_BODY_LIMIT: Final = 20_000
_ERR: Final[Mapping[str, Any]] = {"type": "object"}


def _admin(request: web.Request) -> SignedIn:
    return require_account(request, Role.ADMIN)


def _actor(current: SignedIn) -> str:
    return f"account:{current.account.id}"


def _retention(request: web.Request) -> Retention:
    app = request.app
    return Retention(app[DB], app[AUDIT], app[VAULT])


async def _form(request: web.Request, *, long_fields: tuple[str, ...] = ()) -> dict[str, str]:
    """Form fields as strings, each bounded (longer for the named fields)."""
    form = await request.post()
    fields: dict[str, str] = {}
    for key, value in form.items():
        if not isinstance(value, str):
            raise InvalidInput("File uploads are not accepted here.")
        limit = _NOTICE_BODY_LIMIT if key in long_fields else _FORM_FIELD_LIMIT
        if len(value) > limit or not is_valid_unicode(value):
            raise InvalidInput(f"{key}: too long or not valid text.")
        fields[key] = value
    return fields


# --- shapes ----------------------------------------------------------------------------------


def account_json(account: Account) -> dict[str, Any]:
    """Account metadata (never the password hash)."""
    return {
        "id": account.id,
        "email": account.email,
        "role": account.role.value,
        "disabled": account.disabled,
        "created_at": account.created_at.isoformat(),
    }


def _years(days: int) -> str:
    years = days / 365.25
    return f"{years:.0f}" if abs(years - round(years)) < 0.05 else f"{years:.1f}"


def preview_message(policy: Policy, counts: Mapping[Action, int], stored: bool) -> str:
    """What saving would do now, in words: "This would delete 1,204 cue records now."""
    noun = CATEGORY_NOUNS[policy.category]
    if not stored:
        return f"No {noun} are stored yet (no data kind stored yet), so nothing would change now."
    verb = "anonymise" if policy.action is Action.ANONYMIZE else "delete"
    total = sum(counts.values())
    if total == 0:
        return f"This would {verb} no {noun} now."
    return f"This would {verb} {total:,} {noun} now."


def notices_json(request: web.Request) -> list[dict[str, Any]]:
    """For each offered purpose: the version in force, and every published version."""
    catalog = request.app[CONSENTS].catalog
    items = []
    for purpose in OFFERED_PURPOSES:
        versions = catalog.versions(purpose)
        if not versions:
            continue
        current = catalog.current(purpose)
        items.append(
            {
                "purpose": purpose.value,
                "current_version": current.version,
                "title": current.title,
                "sha256": current.sha256,
                "text": current.text,
                "versions": [
                    {"version": v, "title": catalog.get(purpose, v).title} for v in versions
                ],
            }
        )
    return items


async def publish_notice(
    request: web.Request, current: SignedIn, purpose_raw: str, title: str, body: str
) -> Notice:
    """Publish the next version of a purpose's notice: clients are asked again."""
    try:
        purpose = Purpose(purpose_raw)
    except ValueError:
        raise InvalidInput("purpose: one of the offered purposes.") from None
    if purpose not in OFFERED_PURPOSES:
        raise InvalidInput("purpose: one of the offered purposes.")
    title = " ".join(title.split())
    body = body.replace("\r\n", "\n").strip()
    if not title or len(title) > 200:
        raise InvalidInput("title: one line, at most 200 characters.")
    if not body:
        raise InvalidInput("text: write the notice first.")
    consents = request.app[CONSENTS]
    version = max(consents.catalog.versions(purpose), default=0) + 1
    notice = Notice.from_markdown(purpose, version, f"# {title}\n\n{body}\n")
    await consents.publish_notice(
        request.app[DB],
        request.app[AUDIT],
        notice,
        published_by=_actor(current),
        now=request.app[CLOCK](),
    )
    return notice


# --- API ---------------------------------------------------------------------------------------

PASSWORD_SCHEMA: Final = {
    "type": "object",
    "required": ["password"],
    "additionalProperties": False,
    "properties": {"password": {"type": "string", "minLength": 1, "maxLength": 1024}},
}
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
NOTICE_INPUT_SCHEMA: Final = {
    "type": "object",
    "required": ["purpose", "title", "text"],
    "additionalProperties": False,
    "properties": {
        "purpose": {"type": "string", "enum": [p.value for p in OFFERED_PURPOSES]},
        "title": {"type": "string", "minLength": 1, "maxLength": 200},
        "text": {"type": "string", "minLength": 1, "maxLength": _NOTICE_BODY_LIMIT},
    },
}

ACCOUNT_SCHEMA: Final = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "email": {"type": "string"},
        "role": {"type": "string", "enum": [role.value for role in Role]},
        "disabled": {"type": "boolean"},
        "created_at": {"type": "string", "format": "date-time"},
    },
}
_NULLABLE_TEXT: Final = {"type": ["string", "null"]}
POLICY_SCHEMA: Final = {
    "type": "object",
    "properties": {
        "category": {"type": "string", "enum": [c.value for c in Category]},
        "keep_days": {"type": "integer"},
        "action": {"type": "string", "enum": [a.value for a in Action]},
        "allowed_actions": {"type": "array", "items": {"type": "string"}},
        "floor_days": {"type": ["integer", "null"]},
        "floor_rule": _NULLABLE_TEXT,
        "floor_override_reason": _NULLABLE_TEXT,
        "is_default": {"type": "boolean"},
        "default": {"type": "object"},
        "default_reason": {"type": "string"},
        "stored": {"type": "boolean"},
        "updated_at": _NULLABLE_TEXT,
        "updated_by": _NULLABLE_TEXT,
    },
}
POLICY_SAVED_SCHEMA: Final = {
    "type": "object",
    "properties": {"policy": POLICY_SCHEMA, "warnings": {"type": "array"}},
}
PREVIEW_SCHEMA: Final = {
    "type": "object",
    "properties": {
        "category": {"type": "string"},
        "action": {"type": "string"},
        "count": {"type": "integer"},
        "stored": {"type": "boolean"},
        "message": {"type": "string"},
        "warnings": {"type": "array", "items": {"type": "string"}},
    },
}
HOLD_SCHEMA: Final = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "client_id": {"type": "string"},
        "placed_by": {"type": "string"},
        "reason": {"type": "string"},
        "placed_at": {"type": "string", "format": "date-time"},
        "active": {"type": "boolean"},
        "released_at": _NULLABLE_TEXT,
        "released_by": _NULLABLE_TEXT,
        "release_reason": _NULLABLE_TEXT,
    },
}
REPORT_SCHEMA: Final = {
    "type": "object",
    "properties": {
        "id": _NULLABLE_TEXT,
        "dry_run": {"type": "boolean"},
        "trigger": {"type": "string"},
        "actor": {"type": "string"},
        "started_at": {"type": "string"},
        "finished_at": _NULLABLE_TEXT,
        "finished": {"type": "boolean"},
        "duration_ms": {"type": ["integer", "null"]},
        "counts": {"type": "object"},
        "total": {"type": "integer"},
        "keys_destroyed": {"type": "integer"},
        "problems": {"type": "array", "items": {"type": "string"}},
    },
}
NOTICE_SCHEMA: Final = {
    "type": "object",
    "properties": {
        "purpose": {"type": "string"},
        "current_version": {"type": "integer"},
        "title": {"type": "string"},
        "sha256": {"type": "string"},
        "text": {"type": "string"},
        "versions": {"type": "array"},
    },
}


def _list_of(schema: Mapping[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": {"items": {"type": "array", "items": schema}}}


async def api_disable_account(request: web.Request) -> web.StreamResponse:
    current = _admin(request)
    account = await admin_accounts.disable_account(
        request.app[DB],
        request.app[AUDIT],
        current.account,
        path_id(request, "account_id"),
        request.app[CLOCK](),
    )
    return web.json_response(account_json(account))


async def api_enable_account(request: web.Request) -> web.StreamResponse:
    current = _admin(request)
    account = await admin_accounts.enable_account(
        request.app[DB],
        request.app[AUDIT],
        current.account,
        path_id(request, "account_id"),
        request.app[CLOCK](),
    )
    return web.json_response(account_json(account))


async def api_reset_password(request: web.Request) -> web.StreamResponse:
    current = _admin(request)
    account_id = path_id(request, "account_id")
    body = await read_json(request, PASSWORD_SCHEMA)
    await admin_accounts.reset_password(
        request.app[DB],
        request.app[AUDIT],
        current.account,
        account_id,
        body["password"],
        request.app[CLOCK](),
    )
    return web.Response(status=204)


async def api_list_policies(request: web.Request) -> web.StreamResponse:
    _admin(request)
    policies = await _retention(request).policies()
    return web.json_response({"items": [policy_json(p) for p in policies.values()]})


def _policy_from_body(body: Mapping[str, Any]) -> Policy:
    return parse_policy(
        body["category"], body["keep_days"], body.get("action"), body.get("floor_override_reason")
    )


async def api_set_policy(request: web.Request) -> web.StreamResponse:
    current = _admin(request)
    policy = _policy_from_body(await read_json(request, POLICY_INPUT_SCHEMA))
    retention = _retention(request)
    warnings = await retention.set_policy(policy, actor=_actor(current), now=request.app[CLOCK]())
    saved = (await retention.policies())[policy.category]
    return web.json_response({"policy": policy_json(saved), "warnings": warnings})


async def api_preview_policy(request: web.Request) -> web.StreamResponse:
    _admin(request)
    policy = _policy_from_body(await read_json(request, POLICY_INPUT_SCHEMA))
    retention = _retention(request)
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
    _admin(request)
    now = request.app[CLOCK]()
    holds = await _retention(request).holds()
    return web.json_response({"items": [hold_json(h, now) for h in holds]})


async def api_add_hold(request: web.Request) -> web.StreamResponse:
    current = _admin(request)
    body = await read_json(request, HOLD_INPUT_SCHEMA)
    now = request.app[CLOCK]()
    hold = await _retention(request).add_hold(
        body["client_id"], body["reason"], actor=_actor(current), now=now
    )
    return web.json_response(hold_json(hold, now), status=201)


async def api_release_hold(request: web.Request) -> web.StreamResponse:
    current = _admin(request)
    client_id = path_id(request, "client_id")
    body = await read_json(request, RELEASE_SCHEMA)
    now = request.app[CLOCK]()
    hold = await _retention(request).remove_hold(
        client_id, body["reason"], actor=_actor(current), now=now
    )
    return web.json_response(hold_json(hold, now))


async def api_run_purge(request: web.Request) -> web.StreamResponse:
    current = _admin(request)
    body = await read_json(request, PURGE_INPUT_SCHEMA)
    report = await _retention(request).purge(
        request.app[CLOCK](),
        trigger="api",
        actor=_actor(current),
        dry_run=body.get("dry_run", False),
    )
    return web.json_response(report_json(report))


async def api_list_reports(request: web.Request) -> web.StreamResponse:
    _admin(request)
    reports = await _retention(request).reports()
    return web.json_response({"items": [report_json(r) for r in reports]})


async def api_list_notices(request: web.Request) -> web.StreamResponse:
    _admin(request)
    return web.json_response({"items": notices_json(request)})


async def api_publish_notice(request: web.Request) -> web.StreamResponse:
    current = _admin(request)
    body = await read_json(request, NOTICE_INPUT_SCHEMA)
    notice = await publish_notice(request, current, body["purpose"], body["title"], body["text"])
    return web.json_response(
        {"purpose": notice.purpose.value, "version": notice.version, "sha256": notice.sha256},
        status=201,
    )


def _admin_op(
    method: str,
    path: str,
    handler: Any,
    summary: str,
    operation_id: str,
    responses: Mapping[int, tuple[str, Mapping[str, Any] | None]],
    request_schema: Mapping[str, Any] | None = None,
) -> Operation:
    return Operation(
        method,
        path,
        handler,
        summary,
        operation_id,
        auth="admin",
        request_schema=request_schema,
        responses={**responses, 403: ("Not an admin", _ERR)},
        tags=["admin"],
    )


ADMIN_OPERATIONS: Final[tuple[Operation, ...]] = (
    _admin_op(
        "POST",
        "/api/v1/accounts/{account_id}/disable",
        api_disable_account,
        "Disable an account: its sign-ins end now",
        "disableAccount",
        {200: ("Disabled", ACCOUNT_SCHEMA), 404: ("Not found", _ERR), 409: ("Refused", _ERR)},
    ),
    _admin_op(
        "POST",
        "/api/v1/accounts/{account_id}/enable",
        api_enable_account,
        "Re-enable a disabled account",
        "enableAccount",
        {200: ("Enabled", ACCOUNT_SCHEMA), 404: ("Not found", _ERR), 409: ("Refused", _ERR)},
    ),
    _admin_op(
        "POST",
        "/api/v1/accounts/{account_id}/password",
        api_reset_password,
        "Reset an account's password (signs it out everywhere)",
        "resetPassword",
        {204: ("Reset", None), 404: ("Not found", _ERR), 409: ("Refused", _ERR)},
        PASSWORD_SCHEMA,
    ),
    _admin_op(
        "GET",
        "/api/v1/retention/policies",
        api_list_policies,
        "Retention policy of every category, with defaults, reasons and floors",
        "listRetentionPolicies",
        {200: ("Policies", _list_of(POLICY_SCHEMA))},
    ),
    _admin_op(
        "PUT",
        "/api/v1/retention/policies",
        api_set_policy,
        "Save one category's policy (below a floor only with floor_override_reason)",
        "setRetentionPolicy",
        {200: ("Saved, with warnings", POLICY_SAVED_SCHEMA)},
        POLICY_INPUT_SCHEMA,
    ),
    _admin_op(
        "POST",
        "/api/v1/retention/preview",
        api_preview_policy,
        "Dry run of a proposed policy: how many records it would change now",
        "previewRetentionPolicy",
        {200: ("What saving would do now", PREVIEW_SCHEMA)},
        POLICY_INPUT_SCHEMA,
    ),
    _admin_op(
        "GET",
        "/api/v1/retention/holds",
        api_list_holds,
        "Legal holds, standing ones first",
        "listHolds",
        {200: ("Holds", _list_of(HOLD_SCHEMA))},
    ),
    _admin_op(
        "POST",
        "/api/v1/retention/holds",
        api_add_hold,
        "Place a legal hold on a client's data",
        "addHold",
        {
            201: ("Placed", HOLD_SCHEMA),
            404: ("Unknown client", _ERR),
            409: ("Already on hold", _ERR),
        },
        HOLD_INPUT_SCHEMA,
    ),
    _admin_op(
        "POST",
        "/api/v1/retention/holds/{client_id}/release",
        api_release_hold,
        "Lift the standing legal hold on a client's data",
        "releaseHold",
        {200: ("Lifted", HOLD_SCHEMA), 404: ("No standing hold", _ERR)},
        RELEASE_SCHEMA,
    ),
    _admin_op(
        "POST",
        "/api/v1/retention/purge",
        api_run_purge,
        "Run the purge now (dry_run: count only)",
        "runPurge",
        {200: ("The run's report", REPORT_SCHEMA)},
        PURGE_INPUT_SCHEMA,
    ),
    _admin_op(
        "GET",
        "/api/v1/retention/reports",
        api_list_reports,
        "Purge reports, newest first",
        "listPurgeReports",
        {200: ("Reports", _list_of(REPORT_SCHEMA))},
    ),
    _admin_op(
        "GET",
        "/api/v1/notices",
        api_list_notices,
        "Consent notices: the version each purpose uses, and every published version",
        "listNotices",
        {200: ("Notices", _list_of(NOTICE_SCHEMA))},
    ),
    _admin_op(
        "POST",
        "/api/v1/notices",
        api_publish_notice,
        "Publish the next version of a purpose's notice (clients are asked again)",
        "publishNotice",
        {201: ("Published", {"type": "object"})},
        NOTICE_INPUT_SCHEMA,
    ),
)


# --- pages -------------------------------------------------------------------------------------


def _context(current: SignedIn, **values: Any) -> dict[str, Any]:
    return {"account": current.account, "csrf_token": current.csrf_token, **values}


async def account_page(
    request: web.Request, *, error: str | None = None, notice: str | None = None, status: int = 200
) -> web.StreamResponse:
    current = page_account(request, Role.ADMIN)
    account_id = path_id(request, "account_id")
    target, anonymized_at = await admin_accounts.account_detail(request.app[DB], account_id)
    closed = await admin_accounts.closed_at(request.app[DB], account_id)
    return aiohttp_jinja2.render_template(
        "admin_account.html",
        request,
        _context(
            current,
            target=target,
            anonymized_at=anonymized_at,
            closed_at=closed,
            is_self=target.id == current.account.id,
            error=error,
            notice=notice,
        ),
        status=status,
    )


async def account_action(request: web.Request) -> web.StreamResponse:
    current = page_account(request, Role.ADMIN)
    account_id = path_id(request, "account_id")
    action = request.match_info["action"]
    app = request.app
    now = app[CLOCK]()
    try:
        if action == "disable":
            await admin_accounts.disable_account(
                app[DB], app[AUDIT], current.account, account_id, now
            )
            done = "Disabled: its sign-ins have ended."
        elif action == "enable":
            await admin_accounts.enable_account(
                app[DB], app[AUDIT], current.account, account_id, now
            )
            done = "Enabled again."
        elif action == "password":
            form = await _form(request)
            if form.get("password") != form.get("password_again"):
                raise InvalidInput("The two passwords differ.")
            await admin_accounts.reset_password(
                app[DB], app[AUDIT], current.account, account_id, form.get("password", ""), now
            )
            done = "Password reset: the account was signed out everywhere."
        else:
            raise NotFound("Not found.")
    except AttuneError as exc:
        if isinstance(exc, NotFound):
            raise
        return await account_page(request, error=exc.message, status=exc.status)
    return await account_page(request, notice=done)


def _policy_rows(policies: Mapping[Category, PolicyInForce]) -> list[dict[str, Any]]:
    rows = []
    for category, entry in policies.items():
        row = policy_json(entry)
        row["noun"] = CATEGORY_NOUNS[category]
        row["years"] = _years(entry.policy.keep_days)
        row["default_years"] = _years(DEFAULT_POLICIES[category].keep_days)
        rows.append(row)
    return rows


async def retention_page(
    request: web.Request,
    *,
    error: str | None = None,
    dry_run: PurgeReport | None = None,
    status: int = 200,
) -> web.StreamResponse:
    current = page_account(request, Role.ADMIN)
    policies = await _retention(request).policies()
    saved = request.query.get("saved")
    return aiohttp_jinja2.render_template(
        "admin_retention.html",
        request,
        _context(
            current,
            policies=_policy_rows(policies),
            error=error,
            saved=saved if saved in {c.value for c in Category} else None,
            dry_run=report_json(dry_run) if dry_run else None,
            nouns={c.value: n for c, n in CATEGORY_NOUNS.items()},
        ),
        status=status,
    )


def _policy_from_form(form: Mapping[str, str]) -> Policy:
    return parse_policy(
        form.get("category", ""),
        form.get("keep_days", ""),
        form.get("action") or None,
        form.get("floor_override_reason") or None,
    )


async def retention_preview(request: web.Request) -> web.StreamResponse:
    """The first step of saving a policy: what it would do now, then a confirmation."""
    current = page_account(request, Role.ADMIN)
    form = await _form(request)
    try:
        policy = _policy_from_form(form)
        warnings = validate_policy(policy)
        retention = _retention(request)
        counts = await retention.preview(policy, request.app[CLOCK]())
    except AttuneError as exc:
        return await retention_page(request, error=exc.message, status=exc.status)
    stored = retention.registry.stores(policy.category)
    return aiohttp_jinja2.render_template(
        "admin_retention_preview.html",
        request,
        _context(
            current,
            policy=policy,
            years=_years(policy.keep_days),
            noun=CATEGORY_NOUNS[policy.category],
            message=preview_message(policy, counts, stored),
            warnings=warnings,
            overridden=below_floor(policy),
        ),
    )


async def retention_save(request: web.Request) -> web.StreamResponse:
    """The second step: save only with the confirmation the preview page asks for."""
    current = page_account(request, Role.ADMIN)
    form = await _form(request)
    if form.get("confirm") != "yes":
        return await retention_page(
            request, error="Preview the policy and confirm it before saving.", status=422
        )
    try:
        policy = _policy_from_form(form)
        await _retention(request).set_policy(
            policy, actor=_actor(current), now=request.app[CLOCK]()
        )
    except AttuneError as exc:
        return await retention_page(request, error=exc.message, status=exc.status)
    raise web.HTTPSeeOther(f"/admin/retention?saved={policy.category.value}")


async def retention_purge(request: web.Request) -> web.StreamResponse:
    """Preview the whole purge (dry run) or run it now."""
    current = page_account(request, Role.ADMIN)
    form = await _form(request)
    dry_run = form.get("mode") != "run"
    report = await _retention(request).purge(
        request.app[CLOCK](), trigger="page", actor=_actor(current), dry_run=dry_run
    )
    if dry_run:
        return await retention_page(request, dry_run=report)
    raise web.HTTPSeeOther("/admin/purge-reports")


async def holds_page(
    request: web.Request, *, error: str | None = None, notice: str | None = None, status: int = 200
) -> web.StreamResponse:
    current = page_account(request, Role.ADMIN)
    now = request.app[CLOCK]()
    holds = await _retention(request).holds()
    return aiohttp_jinja2.render_template(
        "admin_holds.html",
        request,
        _context(
            current,
            holds=[hold_json(h, now) for h in holds],
            error=error,
            notice=notice,
        ),
        status=status,
    )


async def holds_add(request: web.Request) -> web.StreamResponse:
    current = page_account(request, Role.ADMIN)
    form = await _form(request)
    try:
        hold = await _retention(request).add_hold(
            form.get("client_id", ""),
            form.get("reason", ""),
            actor=_actor(current),
            now=request.app[CLOCK](),
        )
    except AttuneError as exc:
        return await holds_page(request, error=exc.message, status=exc.status)
    return await holds_page(request, notice=f"Hold placed on client {hold.client_id}.")


async def holds_release(request: web.Request) -> web.StreamResponse:
    current = page_account(request, Role.ADMIN)
    client_id = path_id(request, "client_id")
    form = await _form(request)
    try:
        await _retention(request).remove_hold(
            client_id, form.get("reason", ""), actor=_actor(current), now=request.app[CLOCK]()
        )
    except AttuneError as exc:
        return await holds_page(request, error=exc.message, status=exc.status)
    return await holds_page(request, notice=f"Hold on client {client_id} lifted.")


async def notices_page(
    request: web.Request, *, error: str | None = None, notice: str | None = None, status: int = 200
) -> web.StreamResponse:
    current = page_account(request, Role.ADMIN)
    return aiohttp_jinja2.render_template(
        "admin_notices.html",
        request,
        _context(
            current,
            notices=notices_json(request),
            purposes=[p.value for p in OFFERED_PURPOSES],
            error=error,
            notice=notice,
        ),
        status=status,
    )


async def notices_publish(request: web.Request) -> web.StreamResponse:
    current = page_account(request, Role.ADMIN)
    form = await _form(request, long_fields=("text",))
    try:
        published = await publish_notice(
            request, current, form.get("purpose", ""), form.get("title", ""), form.get("text", "")
        )
    except AttuneError as exc:
        return await notices_page(request, error=exc.message, status=exc.status)
    return await notices_page(
        request,
        notice=f"Published version {published.version} of {published.purpose.value}: "
        "clients will be asked again.",
    )


async def reports_page(request: web.Request) -> web.StreamResponse:
    current = page_account(request, Role.ADMIN)
    reports = await _retention(request).reports()
    return aiohttp_jinja2.render_template(
        "admin_purge_reports.html",
        request,
        _context(
            current,
            reports=[report_json(r) for r in reports],
            nouns={c.value: n for c, n in CATEGORY_NOUNS.items()},
        ),
    )


def add_admin_pages(app: web.Application) -> None:
    """Register the admin console's pages (the account list at /admin lives in pages.py)."""
    r = app.router
    r.add_get("/admin/accounts/{account_id}", account_page, name="adminAccount")
    r.add_post("/admin/accounts/{account_id}/{action}", account_action)
    r.add_get("/admin/retention", retention_page, name="adminRetention")
    r.add_post("/admin/retention/preview", retention_preview)
    r.add_post("/admin/retention/save", retention_save)
    r.add_post("/admin/retention/purge", retention_purge)
    r.add_get("/admin/holds", holds_page, name="adminHolds")
    r.add_post("/admin/holds", holds_add)
    r.add_post("/admin/holds/{client_id}/release", holds_release)
    r.add_get("/admin/notices", notices_page, name="adminNotices")
    r.add_post("/admin/notices", notices_publish)
    r.add_get("/admin/purge-reports", reports_page, name="adminPurgeReports")

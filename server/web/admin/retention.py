"""Admin console: retention policies (a dry-run preview before saving), purge runs and reports."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from privacy.retention import DEFAULT_POLICIES, Category, Policy, validate_policy
from server.errors import AttuneError
from server.keys import CLOCK
from server.services.retention import (
    CATEGORY_NOUNS,
    PolicyInForce,
    PurgeReport,
    below_floor,
    parse_policy,
    policy_json,
    report_json,
)
from server.web.admin.common import actor, page_context, preview_message, retention_service, years
from server.web.forms import read_form
from server.web.guard import SIGNED_IN


def _policy_rows(policies: Mapping[Category, PolicyInForce]) -> list[dict[str, Any]]:
    rows = []
    for category, entry in policies.items():
        row = policy_json(entry)
        row["noun"] = CATEGORY_NOUNS[category]
        row["years"] = years(entry.policy.keep_days)
        row["default_years"] = years(DEFAULT_POLICIES[category].keep_days)
        rows.append(row)
    return rows


async def retention_page(
    request: web.Request,
    *,
    error: str | None = None,
    dry_run: PurgeReport | None = None,
    status: int = 200,
) -> web.StreamResponse:
    current = request[SIGNED_IN]
    policies = await retention_service(request).policies()
    saved = request.query.get("saved")
    return aiohttp_jinja2.render_template(
        "admin_retention.html",
        request,
        page_context(
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
    current = request[SIGNED_IN]
    form = await read_form(request)
    try:
        policy = _policy_from_form(form)
        warnings = validate_policy(policy)
        retention = retention_service(request)
        counts = await retention.preview(policy, request.app[CLOCK]())
    except AttuneError as exc:
        return await retention_page(request, error=exc.message, status=exc.status)
    stored = retention.registry.stores(policy.category)
    return aiohttp_jinja2.render_template(
        "admin_retention_preview.html",
        request,
        page_context(
            current,
            policy=policy,
            years=years(policy.keep_days),
            noun=CATEGORY_NOUNS[policy.category],
            message=preview_message(policy, counts, stored),
            warnings=warnings,
            overridden=below_floor(policy),
        ),
    )


async def retention_save(request: web.Request) -> web.StreamResponse:
    """The second step: save only with the confirmation the preview page asks for."""
    current = request[SIGNED_IN]
    form = await read_form(request)
    if form.get("confirm") != "yes":
        return await retention_page(
            request, error="Preview the policy and confirm it before saving.", status=422
        )
    try:
        policy = _policy_from_form(form)
        await retention_service(request).set_policy(
            policy, actor=actor(current), now=request.app[CLOCK]()
        )
    except AttuneError as exc:
        return await retention_page(request, error=exc.message, status=exc.status)
    raise web.HTTPSeeOther(f"/admin/retention?saved={policy.category.value}")


async def retention_purge(request: web.Request) -> web.StreamResponse:
    """Preview the whole purge (dry run) or run it now."""
    current = request[SIGNED_IN]
    form = await read_form(request)
    dry_run = form.get("mode") != "run"
    report = await retention_service(request).purge(
        request.app[CLOCK](), trigger="page", actor=actor(current), dry_run=dry_run
    )
    if dry_run:
        return await retention_page(request, dry_run=report)
    raise web.HTTPSeeOther("/admin/purge-reports")


async def reports_page(request: web.Request) -> web.StreamResponse:
    current = request[SIGNED_IN]
    reports = await retention_service(request).reports()
    return aiohttp_jinja2.render_template(
        "admin_purge_reports.html",
        request,
        page_context(
            current,
            reports=[report_json(r) for r in reports],
            nouns={c.value: n for c, n in CATEGORY_NOUNS.items()},
        ),
    )

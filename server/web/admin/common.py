"""What the admin pages and the admin API share: who acts, the retention service, notices.

Admins see metadata only: ids, times, counts, policy settings and notice texts, never check-in
answers, cue details, signal events, notes or client aliases. Nothing here decrypts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from privacy.consent import OFFERED_PURPOSES, Notice, Purpose
from privacy.retention import Action, Policy
from server.errors import InvalidInput
from server.keys import AUDIT, CLOCK, CONSENTS, DB, VAULT
from server.services.accounts import SignedIn
from server.services.retention import CATEGORY_NOUNS, Retention
from server.web.openapi import Operation
from server.web.shapes import ERR
from server.web.times import duration_words


def actor(current: SignedIn) -> str:
    """The audit principal for an admin's action."""
    return f"account:{current.account.id}"


def retention_service(request: web.Request) -> Retention:
    """The retention service over this app's database, audit trail and vault."""
    app = request.app
    return Retention(app[DB], app[AUDIT], app[VAULT])


def page_context(current: SignedIn, **values: Any) -> dict[str, Any]:
    """Template values every console page needs: who is signed in and the CSRF token."""
    return {"account": current.account, "csrf_token": current.csrf_token, **values}


def years(days: int) -> str:
    """A retention period in words ("7 days", "about 6 years")."""
    return duration_words(days)


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
        published_by=actor(current),
        now=request.app[CLOCK](),
    )
    return notice


def admin_operation(
    method: str,
    path: str,
    handler: Any,
    summary: str,
    operation_id: str,
    responses: Mapping[int, tuple[str, Mapping[str, Any] | None]],
    request_schema: Mapping[str, Any] | None = None,
) -> Operation:
    """An admin-only API operation: every one also documents its 403."""
    return Operation(
        method,
        path,
        handler,
        summary,
        operation_id,
        auth="admin",
        request_schema=request_schema,
        responses={**responses, 403: ("Not an admin", ERR)},
        tags=["admin"],
    )

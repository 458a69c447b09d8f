"""Audit trail reads for the admin's browser: filtered, newest first, keyset-paginated."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from privacy.audit import DetailValue
from server.db.tables import AnyRow, audit_log


@dataclass(frozen=True)
class AuditFilter:
    """Which entries to list; an action ending in '.' matches every action under it."""

    action: str | None = None
    actor: str | None = None
    target: str | None = None
    before_seq: int | None = None
    limit: int = 50

    @property
    def action_is_prefix(self) -> bool:
        """True when ``action`` names a family such as ``auth.``, not one action."""
        return self.action is not None and self.action.endswith(".")


@dataclass(frozen=True)
class AuditListing:
    """One row of the audit trail as an admin sees it (hashes left out)."""

    seq: int
    at: datetime
    actor: str
    action: str
    targets: tuple[str, ...]
    details: dict[str, DetailValue]


@dataclass(frozen=True)
class AuditPage:
    """Entries newest first, and the cursor for the next (older) page, if there is one."""

    items: tuple[AuditListing, ...]
    next_before_seq: int | None


def _listing(row: AnyRow) -> AuditListing:
    m = row._mapping
    return AuditListing(
        seq=m["seq"],
        at=m["at"],
        actor=m["actor"],
        action=m["action"],
        targets=tuple(json.loads(m["targets"])),
        details=json.loads(m["details"]),
    )


def _conditions(audit_filter: AuditFilter) -> list[sa.ColumnElement[bool]]:
    c = audit_log.c
    conditions: list[sa.ColumnElement[bool]] = []
    if audit_filter.action is not None:
        conditions.append(
            c.action.startswith(audit_filter.action, autoescape=True)
            if audit_filter.action_is_prefix
            else c.action == audit_filter.action
        )
    if audit_filter.actor is not None:
        conditions.append(c.actor == audit_filter.actor)
    if audit_filter.target is not None:
        # Targets are stored as a JSON array written by json.dumps: match one whole element.
        conditions.append(c.targets.contains(json.dumps(audit_filter.target), autoescape=True))
    if audit_filter.before_seq is not None:
        conditions.append(c.seq < audit_filter.before_seq)
    return conditions


async def list_audit_entries(conn: AsyncConnection, audit_filter: AuditFilter) -> AuditPage:
    """Entries matching the filter, newest first; fetches one extra row to know if more exist."""
    query = (
        sa.select(
            audit_log.c.seq,
            audit_log.c.at,
            audit_log.c.actor,
            audit_log.c.action,
            audit_log.c.targets,
            audit_log.c.details,
        )
        .where(*_conditions(audit_filter))
        .order_by(audit_log.c.seq.desc())
        .limit(audit_filter.limit + 1)
    )
    rows = (await conn.execute(query)).all()
    items = tuple(_listing(row) for row in rows[: audit_filter.limit])
    more = len(rows) > audit_filter.limit
    return AuditPage(items=items, next_before_seq=items[-1].seq if more and items else None)

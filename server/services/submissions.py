"""A client's answers stored once per idempotency key: the shape check-ins and outcome
measures share.

A page or socket may send the same answers again (a retry after a lost acknowledgement, the
outbox after a reconnect). Each submission carries a key; the first one is written — row,
ciphertext and audit entry in one transaction — and every retry gets that first result back,
from memory while the session is live and from the database after a restart. What is written
and how it is validated stay with each service; only the once-per-key frame lives here.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection

from privacy.audit import DetailValue
from server.audit import AuditTrail
from server.db.engine import Database

R = TypeVar("R")


class SessionResults(Generic[R]):
    """Results of live sessions by idempotency key, oldest first, at most `per_session` each."""

    def __init__(self, per_session: int) -> None:
        self._per_session = per_session
        self._by_session: dict[str, OrderedDict[str, R]] = {}

    def get(self, session_id: str, key: str) -> R | None:
        """The result already given for this key in this session, if it is still kept."""
        kept = self._by_session.get(session_id)
        return None if kept is None else kept.get(key)

    def keep(self, session_id: str, key: str, result: R) -> None:
        """Remember a result; the oldest of the session goes when there are too many."""
        kept = self._by_session.setdefault(session_id, OrderedDict())
        kept[key] = result
        while len(kept) > self._per_session:
            kept.popitem(last=False)

    def of_session(self, session_id: str) -> list[R]:
        """The session's kept results, oldest first."""
        kept = self._by_session.get(session_id)
        return [] if kept is None else list(kept.values())

    def forget(self, session_id: str) -> None:
        """Drop a finished session's results."""
        self._by_session.pop(session_id, None)


@dataclass(frozen=True)
class Written(Generic[R]):
    """What a first submission wrote: its result, and the audit entry's details (metadata)."""

    result: R
    details: Mapping[str, DetailValue]


async def write_once(
    db: Database,
    kept: SessionResults[R],
    *,
    session_id: str,
    key: str,
    earlier: Callable[[AsyncConnection], Awaitable[R | None]],
    write: Callable[[AsyncConnection], Awaitable[Written[R]]],
    audit: AuditTrail | None,
    action: str,
    now: datetime,
) -> tuple[R, bool]:
    """(result, was_duplicate): the result kept for `key`, else the one stored under it
    (`earlier`), else `write` it with its `action` audit entry in the same transaction.

    Returns only after the transaction committed, so an acknowledgement sent after this call
    means the answers are durable.
    """
    found = kept.get(session_id, key)
    if found is not None:
        return found, True
    async with db.write() as conn:
        stored = await earlier(conn)
        if stored is not None:
            kept.keep(session_id, key, stored)
            return stored, True
        written = await write(conn)
        if audit is not None:  # in the same transaction: no write without its entry
            await audit.record(
                conn,
                at=now,
                actor="client",
                action=action,
                targets=(f"session:{session_id}",),
                details=written.details,
            )
    kept.keep(session_id, key, written.result)
    return written.result, False

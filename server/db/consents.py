"""Consent records and published notice versions."""

from __future__ import annotations

import json
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from privacy.consent import ConsentRecord, Notice, Purpose
from server.db.tables import consent_records, notices


async def records_for(conn: AsyncConnection, client_id: str) -> list[ConsentRecord]:
    """A client's consent records in the order they were made."""
    rows = await conn.execute(
        sa.select(consent_records)
        .where(consent_records.c.client_id == client_id)
        .order_by(consent_records.c.id)
    )
    return [
        ConsentRecord(
            client_id=row.client_id,
            purpose=row.purpose,
            notice_version=row.notice_version,
            notice_sha256=row.notice_sha256,
            decision=row.decision,
            at=row.at,
            channel=row.channel,
            subject=row.subject,
            triggered=tuple(json.loads(row.triggered)),
            notice_language=row.notice_language,
        )
        for row in rows
    ]


async def insert_record(conn: AsyncConnection, record: ConsentRecord) -> None:
    """Append a consent record (records are never updated)."""
    await conn.execute(
        consent_records.insert().values(
            client_id=record.client_id,
            purpose=record.purpose.value,
            notice_version=record.notice_version,
            notice_sha256=record.notice_sha256,
            decision=record.decision.value,
            at=record.at,
            channel=record.channel.value,
            subject=record.subject.value,
            triggered=json.dumps(list(record.triggered)),
            notice_language=record.notice_language,
        )
    )


async def published_notices(conn: AsyncConnection) -> list[Notice]:
    """Notice versions published by admins (beyond the ones shipped in the package)."""
    rows = await conn.execute(sa.select(notices).order_by(notices.c.purpose, notices.c.version))
    return [
        Notice(
            purpose=Purpose(row.purpose),
            version=row.version,
            title=row.title,
            text=row.text,
            sha256=row.sha256,
        )
        for row in rows
    ]


async def insert_notice(
    conn: AsyncConnection, notice: Notice, *, published_by: str, now: datetime
) -> None:
    """Store a newly published notice version."""
    await conn.execute(
        notices.insert().values(
            purpose=notice.purpose.value,
            version=notice.version,
            title=notice.title,
            text=notice.text,
            sha256=notice.sha256,
            published_at=now,
            published_by=published_by,
        )
    )

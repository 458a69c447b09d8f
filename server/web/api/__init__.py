"""The REST API under /api/v1 (JSON in, JSON out; errors via the error middleware).

One module per resource; each declares its `OPERATIONS`, which register the routes and
generate the OpenAPI document.
"""

from __future__ import annotations

from typing import Final

from server.web.api import (
    accounts,
    auth,
    clients,
    ice,
    meta,
    notices,
    participants,
    retention,
    sessions,
)
from server.web.openapi import Operation

OPERATIONS: Final[tuple[Operation, ...]] = (
    auth.OPERATIONS
    + clients.OPERATIONS
    + sessions.OPERATIONS
    + participants.OPERATIONS
    + ice.OPERATIONS
    + accounts.OPERATIONS
    + retention.OPERATIONS
    + notices.OPERATIONS
    + meta.OPERATIONS
)

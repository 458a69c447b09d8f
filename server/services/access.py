"""Ending access: what the account and link services ask of live sessions, and the ids they use.

An event that ends someone's access (sign-out, a disabled account, a new password, a revoked or
re-issued link, a second device admitted) is written by its service first; then the service
calls `LiveAccess`, which `LiveSessions` implements, so the sockets opened with that access close
at once. The ids here name a sign-in or a client cookie without being either token: they can
travel between processes and appear in logs.
"""

from __future__ import annotations

import hashlib
from typing import Protocol

from server.core.protocol import AccessEnd


def access_ref(token_hash: str) -> str:
    """A stable id for a sign-in or client cookie row, derived from its stored token hash; it
    cannot be turned back into the hash (the row's lookup key), let alone the token."""
    return hashlib.sha256(b"attune-access-ref-v1:" + token_hash.encode()).hexdigest()[:32]


class LiveAccess(Protocol):
    """What access-ending services need of live sessions (implemented by `LiveSessions`)."""

    def end_account_access(
        self,
        account_id: str,
        reason: AccessEnd,
        *,
        sign_in_id: str | None = None,
        except_sign_in_id: str | None = None,
    ) -> None:
        """Close the account's sockets: only those of `sign_in_id` when given, and never those
        of `except_sign_in_id` (the caller's own sign-in)."""

    def end_client_access(
        self,
        reason: AccessEnd,
        *,
        session_id: str | None = None,
        client_access_id: str | None = None,
    ) -> None:
        """Close the client sockets of a session, or of one client cookie."""

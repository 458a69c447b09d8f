"""Which live sockets to close when access ends, as plain data (pure).

Ending a sign-in, all of an account's sign-ins, a client's link or cookie, or a client's part
in a session closes the matching sockets of every process. The request is one value, so the
live operations name it once, the hub matches its own sockets against it and a bus carries
the very same value to the other processes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from server.core.models import SessionRole
from server.core.protocol.codes import CloseCode


@dataclass(frozen=True, kw_only=True)
class Closing:
    """Close with `code` and `reason` every socket that matches all the given filters; at
    least one of account, sign-in, client cookie or session is required, so a mistake can
    never close everything."""

    code: CloseCode
    reason: str
    account_id: str | None = None
    sign_in_id: str | None = None
    except_sign_in_id: str | None = None
    client_access_id: str | None = None
    session_id: str | None = None
    role: SessionRole | None = None

    def __post_init__(self) -> None:
        scopes = (self.account_id, self.sign_in_id, self.client_access_id, self.session_id)
        if all(scope is None for scope in scopes):
            raise ValueError("closing needs an account, sign-in, client or session")

    def matches(
        self,
        *,
        account_id: str | None,
        sign_in_id: str | None,
        client_access_id: str | None,
        session_id: str,
        role: SessionRole,
    ) -> bool:
        """Whether a socket opened with these (by this account and sign-in, or this client
        cookie, in this session and role) is one to close."""
        return (
            (self.account_id is None or account_id == self.account_id)
            and (self.sign_in_id is None or sign_in_id == self.sign_in_id)
            and (self.except_sign_in_id is None or sign_in_id != self.except_sign_in_id)
            and (self.client_access_id is None or client_access_id == self.client_access_id)
            and (self.session_id is None or session_id == self.session_id)
            and (self.role is None or role is self.role)
        )

    def to_json(self) -> dict[str, Any]:
        """Plain JSON for the bus's control channel."""
        data = asdict(self)
        data["code"] = int(self.code)
        data["role"] = self.role.value if self.role is not None else None
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Closing:
        """The value `to_json` wrote (other keys, such as the sender, are ignored)."""
        role = data.get("role")
        return cls(
            code=CloseCode(int(data["code"])),
            reason=str(data["reason"]),
            account_id=data.get("account_id"),
            sign_in_id=data.get("sign_in_id"),
            except_sign_in_id=data.get("except_sign_in_id"),
            client_access_id=data.get("client_access_id"),
            session_id=data.get("session_id"),
            role=SessionRole(role) if role else None,
        )

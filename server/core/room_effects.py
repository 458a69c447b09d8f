"""What a room answers with (pure): effects for the edge to carry out, its refusals, and who
in a room a shared message is for. `server.core.rooms` re-exports every name here."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from server.core.protocol import CloseCode, ProtocolError


@dataclass(frozen=True, slots=True)
class Send:
    """Deliver `message` (a server→client message) on connection `conn_id`."""

    conn_id: str
    message: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Close:
    """Close connection `conn_id` with a WebSocket close code and a reason for the user."""

    conn_id: str
    code: CloseCode
    reason: str


Effect = Send | Close


class RoomError(ProtocolError):
    """An action the room refuses (wrong role, nobody to relay to, call full, ...)."""


class Audience(StrEnum):
    """Who in a room a shared message is for (see `Room.deliver`). Guests are in the call but
    never in an audience of clients: clinical messages (check-ins, goals) cannot reach them."""

    THERAPIST = "therapist"
    ADMITTED_CLIENT = "admitted-client"  # every client in the call (never a guest)
    CLIENTS = "clients"  # every connected client, in the call or waiting (never a guest)
    CALL = "call"  # the therapist and the clients in the call (never a guest)
    IN_CALL = "in-call"  # everyone in the call, guests included (roster, call mechanics)
    EVERYONE = "everyone"  # every connection of the room, waiting ones and guests included

"""Who takes part in a session (pure): the kinds of people and the room's size."""

from __future__ import annotations

from enum import StrEnum


class PersonKind(StrEnum):
    """What a person in a session is: the therapist, a client (a client record), or a guest
    (interpreter, guardian, support person: a label and a link, no client record)."""

    THERAPIST = "therapist"
    CLIENT = "client"
    GUEST = "guest"


THERAPIST_PEER_ID = "therapist"
DEFAULT_MAX_PEOPLE = 4

"""Who takes part in a session (pure): the kinds of people and the room's size.

A session's people besides the therapist are its *participants*: a client (a client record
of the therapist; a couple is two clients sharing sessions) or a guest (an interpreter, a
guardian, a support person: a label and a link, never a client record, check-ins or cue
analysis). In the live protocol each person is named by a `peer_id`: the therapist's is
`THERAPIST_PEER_ID`, a participant's is its participant id.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class PersonKind(StrEnum):
    """What a person in a session is: the therapist, a client (a client record), or a guest
    (interpreter, guardian, support person: a label and a link, no client record)."""

    THERAPIST = "therapist"
    CLIENT = "client"
    GUEST = "guest"


THERAPIST_PEER_ID: Final = "therapist"
"""The therapist's `peer_id` in the protocol (a participant's is its participant id)."""

DEFAULT_MAX_PEOPLE: Final = 4
"""People in one call by default, the therapist included (settings: 2..4)."""

MIN_PEOPLE: Final = 2
MAX_PEOPLE: Final = 4

"""Who may be added to a session (pure): guest labels, room size, positions."""

from __future__ import annotations

import unicodedata
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from server.core.participants import PersonKind

MAX_GUEST_LABEL_CHARS = 60


class ParticipantRefused(ValueError):
    """Adding this person is not allowed; the message says why, for the therapist."""


@dataclass(frozen=True)
class Participant:
    """A person other than the therapist in one session: a client (`client_id` set) or a guest
    (`label` is their label). `label` is the name shown in the room: a client's alias or the
    guest's label. `peer_id` in the protocol is `id`."""

    id: str
    session_id: str
    kind: PersonKind
    client_id: str | None
    label: str
    position: int
    created_at: datetime
    link_active: bool = False
    link_opened: bool = False

    @property
    def is_guest(self) -> bool:
        """A guest has no client record: no check-ins, measures, goals or cue analysis."""
        return self.kind is PersonKind.GUEST


def clean_guest_label(raw: str) -> str:
    """A guest's label ("Interpreter", "Mother"): 1 to 60 printable characters, whitespace
    collapsed."""
    label = " ".join(raw.split())
    if not label:
        raise ParticipantRefused("Enter a label for the guest, such as Interpreter.")
    if len(label) > MAX_GUEST_LABEL_CHARS:
        raise ParticipantRefused(f"Keep the guest's label to {MAX_GUEST_LABEL_CHARS} characters.")
    if any(unicodedata.category(ch).startswith("C") for ch in label):
        raise ParticipantRefused("The label contains characters that cannot be shown.")
    return label


def next_position(taken: Collection[int], max_people: int) -> int:
    """The first free position (1..max_people - 1) for one more participant, or refused when
    the session is full (the therapist counts as one of `max_people`)."""
    for position in range(1, max_people):
        if position not in taken:
            return position
    raise ParticipantRefused(f"This session is full: at most {max_people} people including you.")


def check_new_client(client_id: str, present_client_ids: Collection[str]) -> None:
    """A client takes part at most once per session."""
    if client_id in present_client_ids:
        raise ParticipantRefused("This client already takes part in the session.")

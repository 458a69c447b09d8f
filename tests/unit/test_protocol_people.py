"""The protocol for several people (issue #15): addressed relays, naming whom to send back,
and what a guest may send."""

from __future__ import annotations

import json
from typing import Any

import pytest

from server.core.participants import PersonKind
from server.core.protocol import (
    GUEST_ALLOWED,
    ROLE_ALLOWED,
    ErrorCode,
    ProtocolError,
    Relay,
    SendBack,
    SessionRole,
    check_kind,
    parse_client_message,
)

CANDIDATE = {"kind": "candidate", "candidate": {"candidate": ""}}


def parse(**fields: Any) -> Any:
    return parse_client_message(json.dumps(fields))


def test_a_relay_may_name_its_receiver_and_may_leave_it_out() -> None:
    addressed = parse(type="relay", to="3f9c0d1e", payload=CANDIDATE)
    assert isinstance(addressed, Relay) and addressed.to == "3f9c0d1e"
    assert parse(type="relay", payload=CANDIDATE).to is None


@pytest.mark.parametrize("to", ["", "a b", "x" * 65, 7, ["therapist"]])
def test_a_relay_to_something_that_is_not_a_peer_id_is_invalid(to: object) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse(type="relay", to=to, payload=CANDIDATE)
    assert caught.value.code is ErrorCode.INVALID


def test_send_back_may_name_whom() -> None:
    message = parse(type="send-back", peer_id="p-alex")
    assert isinstance(message, SendBack) and message.peer_id == "p-alex"
    assert parse(type="send-back").peer_id is None
    with pytest.raises(ProtocolError):
        parse(type="send-back", peer_id="no spaces")


@pytest.mark.parametrize(
    "type_name", sorted(ROLE_ALLOWED[SessionRole.CLIENT] - GUEST_ALLOWED), ids=str
)
def test_a_guest_may_not_send_what_only_a_client_may(type_name: str) -> None:
    message = type("M", (), {"TYPE": type_name, "id": "m-1"})()
    with pytest.raises(ProtocolError) as caught:
        check_kind(PersonKind.GUEST, message)
    assert (caught.value.code, caught.value.ref) == (ErrorCode.FORBIDDEN, "m-1")
    check_kind(PersonKind.CLIENT, message)  # a client may


def test_a_guest_joins_the_call_and_nothing_else() -> None:
    assert sorted(GUEST_ALLOWED) == ["hello", "leave", "ping", "relay"]
    assert {
        "checkin-answer",
        "features",
        "signal",
        "consent",
        "goal-add",
        "screen-share",
    }.isdisjoint(GUEST_ALLOWED)

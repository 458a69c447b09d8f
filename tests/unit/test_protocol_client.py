"""The browser's side of the session WebSocket (`client_web/static/js/protocol.js`), run with
node against a scripted fake WebSocket: handshake, resume, reconnect rules, the outbox.

The scenarios live in `protocol_client_check.mjs`; each must report "ok".
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.node_scenarios import run_node_scenarios

HERE = Path(__file__).parent
CHECK_SCRIPT = HERE / "protocol_client_check.mjs"

SCENARIOS = [
    "hello is the first message, with version 1 and no resume token",
    "welcome opens the connection and is passed to subscribers",
    "a dropped socket reconnects and resumes with the stored token",
    "a reload in the same tab resumes with the token kept in storage",
    "server restart, idle drop and network loss all reconnect",
    "replaced, resumed elsewhere, denied and ended stay closed with their reason",
    "access that ended stays closed, forgets the resume token and says why in words",
    "denied and ended forget the resume token",
    "failed attempts back off exponentially up to the cap",
    "jitter spreads the wait between a quarter of the ceiling and all of it",
    "a socket refused before opening stops when the probe says access is gone",
    "close() from the page stops for good and does not reconnect",
    "send() works only while open and queues nothing",
    "sendReliable sends at once and resolves with the ack naming its key",
    "an unacked message is resent after the reconnect, after the hello",
    "a message given while disconnected waits for the next welcome",
    "the same key twice is one message and one ack for both callers",
    "a refusal for good rejects; a server failure is retried",
    "sendReliable refuses a message without an idempotency key",
    "unacked messages survive a reload in storage and are resent, then acked",
    "an idle connection pings, and one that never answers is replaced",
    "an answered ping keeps the connection",
    "after a network change an unanswered socket is replaced within the short deadline",
    "after a network change an answering socket stays, and a waiting one tries at once",
    "frames that are not JSON objects with a type are ignored",
    "a subscriber that throws does not stop the others",
]


@pytest.fixture(scope="module")
def results() -> dict[str, str]:
    return run_node_scenarios(CHECK_SCRIPT, "the browser protocol client")


def test_every_scenario_in_the_script_is_listed_here(results: dict[str, str]) -> None:
    assert sorted(results) == sorted(SCENARIOS)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=SCENARIOS)
def test_protocol_client(results: dict[str, str], scenario: str) -> None:
    assert results[scenario] == "ok"

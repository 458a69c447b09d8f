"""The protocol's vocabulary: version, limits, roles, presence, codes and the refusal error."""

from __future__ import annotations

from enum import IntEnum, StrEnum
from typing import Any, Final

from server.core.models import SessionRole as SessionRole  # the session roles' one type

PROTOCOL_VERSION: Final = 1
MAX_FRAME_BYTES: Final = 64 * 1024  # larger frames get a `too-large` error
HARD_FRAME_LIMIT_BYTES: Final = 128 * 1024  # the edge's read limit: larger frames close (1009)
MAX_SDP_BYTES: Final = 32 * 1024
MAX_CANDIDATE_BYTES: Final = 1024
MAX_FEATURES_BYTES: Final = 8 * 1024  # a features frame arrives ~1/s; a summary is < 2 KiB
MAX_ANSWERS: Final = 100
MAX_ANSWER_TEXT_CHARS: Final = 10_000
MAX_ANSWER_INT: Final = 1_000_000
MAX_ERROR_MESSAGE_CHARS: Final = 500
MAX_ICE_TTL_SECONDS: Final = 7 * 24 * 3600
MAX_CLOSE_REASON_BYTES: Final = 123  # RFC 6455: a close frame's reason fits in 123 bytes
RATE_LIMIT_PER_SECOND: Final = 20
RATE_LIMIT_BURST: Final = 40
# A connection over the rate limit has its messages dropped; each drop spends from a second
# bucket (FLOOD_CLOSE_AFTER_DROPPED at once, FLOOD_FORGIVE_PER_SECOND back per second), and
# when that is empty the connection is closed with 4429: a burst is forgiven, a flood is not.
FLOOD_CLOSE_AFTER_DROPPED: Final = 100
FLOOD_FORGIVE_PER_SECOND: Final = 5
MAX_KNOCKS_PER_CLIENT_ACCESS: Final = 3  # concurrent sockets of one client cookie
HELLO_TIMEOUT_S: Final = 10
PING_AFTER_IDLE_S: Final = 20
DROP_AFTER_IDLE_S: Final = 45
SNOOZE_MINUTES_RANGE: Final = (1, 60)
MAX_WAITING_NOTE_CHARS: Final = 200  # "Running five minutes late", not a conversation
MAX_GOAL_TEXT_CHARS: Final = 200  # a shared goal, in the client's own words (server.core.goals)
MAX_GOALS_LISTED: Final = 50  # active, reached and dropped goals in one `goals` message
WAITING_NOTES_PER_MINUTE: Final = 5  # per room; a note is never stored
# Screen sharing: starts and stops relayed per room a minute (live only, like the notes' count)
SCREEN_SHARE_CHANGES_PER_MINUTE: Final = 20


class IceTransportPolicy(StrEnum):
    """Which ICE candidates a browser may use: all, or only TURN relays (hides its address)."""

    ALL = "all"
    RELAY = "relay"


class Presence(StrEnum):
    """Where a party stands relative to the call, as `welcome` reports it."""

    ABSENT = "absent"
    WAITING = "waiting"  # a client knock in the lobby
    IN_CALL = "in-call"  # the therapist, or the admitted client
    RECONNECTING = "reconnecting"  # the admitted client dropped; its slot is held for resume


class ClientSignal(StrEnum):
    """The client's discreet nonverbal signal buttons."""

    NEED_A_MOMENT = "need-a-moment"
    THAT_LANDED = "that-landed"
    CONFUSED = "confused"
    SLOW_DOWN = "slow-down"
    HARD_TO_HEAR_SEE = "hard-to-hear-see"


class PromptFeedback(StrEnum):
    """The therapist's answer to a cue prompt."""

    HELPFUL = "helpful"
    NOT_NOW = "not-now"
    MUTE_CATEGORY = "mute-category"
    SNOOZE_CATEGORY = "snooze-category"


class EndReason(StrEnum):
    """Why a session ended, as `session-ended` reports it."""

    THERAPIST_ENDED = "therapist-ended"
    CONSENT_WITHDRAWN = "consent-withdrawn"  # the client withdrew telehealth consent
    LINK_EXPIRED = "link-expired"  # the session's time window and grace period are over


class LeaveReason(StrEnum):
    """Why a client says goodbye with `leave` (a plain leave just closes the socket)."""

    QUICK_EXIT = "quick-exit"  # the client left in a hurry: the therapist sees a safety notice


class AccessEnd(StrEnum):
    """Why access ended, sent as the close reason with 4401, 4403 or 4429 (pages word it)."""

    SIGNED_OUT = "signed-out"
    ACCOUNT_DISABLED = "account-disabled"
    PASSWORD_CHANGED = "password-changed"  # noqa: S105 - a reason, not a secret
    LINK_REVOKED = "link-revoked"
    LINK_REPLACED = "link-replaced"
    ANOTHER_DEVICE = "another-device"  # the link was opened and admitted on another device
    CONSENT_WITHDRAWN = "consent-withdrawn"
    TOO_MANY_MESSAGES = "too-many-messages"
    TOO_MANY_KNOCKS = "too-many-knocks"


class ErrorCode(StrEnum):
    """The `code` of an `error` message; only a failed handshake also closes the connection."""

    TOO_LARGE = "too-large"
    BAD_JSON = "bad-json"
    UNKNOWN_TYPE = "unknown-type"
    INVALID = "invalid"
    HELLO_REQUIRED = "hello-required"
    UNSUPPORTED_VERSION = "unsupported-version"
    FORBIDDEN = "forbidden"
    NOT_ADMITTED = "not-admitted"
    NO_PEER = "no-peer"
    NO_SUCH_KNOCK = "no-such-knock"
    CALL_FULL = "call-full"
    CONSENT_REQUIRED = "consent-required"
    RATE_LIMITED = "rate-limited"
    TOO_MANY_KNOCKS = "too-many-knocks"
    SCREEN_SHARE_NOT_ALLOWED = "screen-share-not-allowed"  # a client shares without leave
    INTERNAL = "internal"


class CloseCode(IntEnum):
    """WebSocket close codes the server uses; clients do not reconnect after the final ones
    (NO_RECONNECT_CLOSE_CODES). 44xx mirror HTTP statuses: a refused upgrade is accepted and
    closed at once with one of them and a reason in words, so the page can explain."""

    NORMAL = 1000  # the page closed its own connection; the server does not send it
    GOING_AWAY = 1001  # server shutdown or restart: reconnect and resume
    MESSAGE_TOO_BIG = 1009  # a frame above HARD_FRAME_LIMIT_BYTES
    TRY_AGAIN_LATER = 1013  # live sessions cannot be routed now (Redis away): back off, retry
    REPLACED = 4001  # the therapist opened the session in another tab
    RESUMED_ELSEWHERE = 4002  # a newer connection resumed this client's slot
    DENIED = 4003  # the therapist did not admit this knock
    SESSION_ENDED = 4004
    HANDSHAKE_FAILED = 4400  # no `hello` in time, or an unsupported version
    UNAUTHORIZED = (
        4401  # the sign-in or the link (or this device's cookie) is not, or no longer, valid
    )
    FORBIDDEN = 4403  # still known, no longer allowed: the client withdrew telehealth consent
    NOT_FOUND = 4404  # no such session, or not one this sign-in or link may open
    IDLE_TIMEOUT = 4408  # nothing heard for DROP_AFTER_IDLE_S: reconnect and resume
    CONSENT_REQUIRED = 4412  # the client has not (or no longer) agreed to telehealth
    TOO_MANY_MESSAGES = 4429  # kept over the rate limit, or too many waiting knocks


NO_RECONNECT_CLOSE_CODES: Final = frozenset(
    {
        CloseCode.REPLACED,
        CloseCode.RESUMED_ELSEWHERE,
        CloseCode.DENIED,
        CloseCode.SESSION_ENDED,
        CloseCode.HANDSHAKE_FAILED,  # reconnecting cannot fix these either
        CloseCode.UNAUTHORIZED,
        CloseCode.NOT_FOUND,
        CloseCode.CONSENT_REQUIRED,
        CloseCode.FORBIDDEN,
        CloseCode.TOO_MANY_MESSAGES,  # reconnecting would only flood again
    }
)
"""After these a client shows the reason and stays closed; after any other it reconnects."""


class ProtocolError(Exception):
    """A message the server refuses; it answers with an `error` and keeps the connection."""

    def __init__(self, code: ErrorCode, message: str, *, ref: str | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.ref = ref

    def to_message(self, ref: str | None = None) -> dict[str, Any]:
        """The `error` message for this refusal, echoing the offending message's id."""
        # Imported here: the server messages are built on these codes, not the other way round.
        from server.core.protocol.server_messages import ErrorMessage

        return ErrorMessage(
            code=self.code, message=self.message[:MAX_ERROR_MESSAGE_CHARS], ref=ref or self.ref
        ).to_json()

"""Domain errors, typed by who sees them; one middleware maps them to HTTP."""

from __future__ import annotations

from server.core.languages import N_


class AttuneError(Exception):
    """An error whose message is safe to show to the person who caused it."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class InvalidInput(AttuneError):
    """The request body or parameters do not match what the endpoint accepts."""

    status = 422
    code = "invalid_input"


class Unauthenticated(AttuneError):
    """No valid sign-in for a request that needs one."""

    status = 401
    code = "unauthenticated"


class Forbidden(AttuneError):
    """Signed in, but this role may not do this (or the CSRF check failed)."""

    status = 403
    code = "forbidden"


class NotFound(AttuneError):
    """Unknown id, or an id that belongs to someone else (never say which)."""

    status = 404
    code = "not_found"


class Conflict(AttuneError):
    """The request clashes with the current state (duplicate alias, ended session)."""

    status = 409
    code = "conflict"


class PayloadTooLarge(AttuneError):
    """The body is larger than the endpoint accepts."""

    status = 413
    code = "payload_too_large"


class RateLimited(AttuneError):
    """Too many attempts; try again after `retry_after` seconds."""

    status = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = max(1, retry_after)


LIVE_UNAVAILABLE_MESSAGE = N_(
    "Live sessions are temporarily unavailable. Please try again in a minute. "
    "A call already in progress keeps its picture and sound."
)


class LiveUnavailable(AttuneError):
    """Live sessions cannot start now (the bus between processes is away); try again later."""

    status = 503
    code = "live_unavailable"

    def __init__(self, message: str = LIVE_UNAVAILABLE_MESSAGE, *, retry_after: int = 30) -> None:
        super().__init__(message)
        self.retry_after = retry_after

"""Logs never carry tokens, passwords or client addresses."""

from __future__ import annotations

import logging

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from server.logs import AccessLogger, JsonFormatter, redact_path


@pytest.mark.parametrize(
    ("path", "logged"),
    [
        ("/join/abcDEF123_-xyz", "/join/[redacted]"),
        ("/setup/abcDEF123_-xyz", "/setup/[redacted]"),
        ("/email/unsubscribe/abcDEF123_-xyz", "/email/unsubscribe/[redacted]"),
        ("/join/abc?utm=1", "/join/[redacted]"),
        ("/dashboard?next=/x", "/dashboard"),
        ("/api/v1/clients", "/api/v1/clients"),
    ],
)
def test_bearer_tokens_and_queries_are_redacted_from_paths(path: str, logged: str) -> None:
    assert redact_path(path) == logged


def test_access_log_line_has_no_address_agent_or_token(caplog: pytest.LogCaptureFixture) -> None:
    token = "Zx9" * 14
    request = make_mocked_request(
        "GET",
        f"/join/{token}",
        headers={"User-Agent": "Secret-Agent/1.0", "X-Forwarded-For": "203.0.113.9"},
    )
    response = web.Response(status=303, headers={"X-Request-Id": "abc"})
    logger = logging.getLogger("test.access")
    with caplog.at_level(logging.INFO, logger="test.access"):
        AccessLogger(logger, "").log(request, response, 0.01)
    line = JsonFormatter().format(caplog.records[0])
    assert token not in line
    assert "203.0.113.9" not in line and "127.0.0.1" not in line
    assert "Secret-Agent" not in line
    assert '"path": "/join/[redacted]"' in line

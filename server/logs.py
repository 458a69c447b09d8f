"""Structured JSON logs that never carry tokens, passwords, clinical text or client IPs."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

# Paths whose last segment is a bearer token.
_TOKEN_PATH = re.compile(r"^/(join|setup|email/unsubscribe)/[^/?]+")


def redact_path(path: str) -> str:
    """The request path with bearer tokens replaced and the query string dropped."""
    path = path.split("?", 1)[0]
    return _TOKEN_PATH.sub(lambda m: f"/{m.group(1)}/[redacted]", path)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and whitelisted extras."""

    EXTRAS = ("request_id", "method", "path", "status", "duration_ms")

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in self.EXTRAS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(level: str) -> None:
    """Send JSON lines to stderr at `level`."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


class AccessLogger(AbstractAccessLogger):
    """Method, redacted path, status and duration; no address, no user agent, no query."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            "request",
            extra={
                "request_id": response.headers.get("X-Request-Id"),
                "method": request.method,
                "path": redact_path(request.path),
                "status": response.status,
                "duration_ms": round(time * 1000, 1),
            },
        )

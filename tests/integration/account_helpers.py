"""Shared steps for the account-security tests: enrol a second factor, make codes."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import pyotp
from aiohttp import web
from aiohttp.test_utils import TestClient

from server.core.models import Account
from server.keys import AUDIT, DB, VAULT
from server.services import two_factor


def code_at(secret: str, when: datetime) -> str:
    """What an authenticator app shows at `when`."""
    return pyotp.TOTP(secret).at(when)


async def enrol(app: web.Application, account: Account, now: datetime) -> tuple[str, list[str]]:
    """Turn two-factor on for an account through the service; (secret, recovery codes)."""
    enrolment = await two_factor.begin_enrolment(app[DB], app[VAULT].ring, account)
    codes = await two_factor.confirm_enrolment(
        app[DB], app[AUDIT], app[VAULT].ring, account, code_at(enrolment.secret, now), now
    )
    return enrolment.secret, codes


async def form_csrf(client: TestClient[Any, Any], path: str) -> str:
    """The CSRF token a page's forms carry."""
    match = re.search(r'name="csrf_token" value="([^"]+)"', await (await client.get(path)).text())
    assert match, path
    return match.group(1)

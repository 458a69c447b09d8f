"""Passwords are stored as Argon2id hashes at or above the OWASP minimum (m=19 MiB, t=2, p=1).

The rest of the suite hashes at a test cost (tests/conftest.py); these tests opt out of it.
"""

from __future__ import annotations

import pytest
from argon2 import extract_parameters

from server.security.passwords import hash_password, verify_password

pytestmark = pytest.mark.production_password_cost

PASSWORD = "a calm and long passphrase"


async def test_a_password_is_stored_as_argon2id_at_the_owasp_minimum_cost() -> None:
    stored = await hash_password(PASSWORD)
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    parameters = extract_parameters(stored)
    assert (parameters.memory_cost, parameters.time_cost, parameters.parallelism) == (
        19 * 1024,
        2,
        1,
    )


async def test_only_the_same_password_verifies_against_its_hash() -> None:
    stored = await hash_password(PASSWORD)
    assert await verify_password(stored, PASSWORD)
    assert not await verify_password(stored, PASSWORD + " ")
    assert not await verify_password(stored, "another long passphrase")


async def test_a_missing_account_never_verifies_yet_costs_a_verification() -> None:
    assert not await verify_password(None, PASSWORD)
    assert not await verify_password(None, "attune-dummy-password-for-timing")

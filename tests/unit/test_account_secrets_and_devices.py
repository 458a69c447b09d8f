"""Sealed account secrets open only for their own account and column and survive a master
key rotation; device descriptions name browser and system families only."""

from __future__ import annotations

import os

import pytest

from privacy.vault import MasterKeyring
from server.security.account_secrets import SealedSecretError, open_sealed, seal
from server.security.user_agents import describe_device

RING = MasterKeyring.from_single(os.urandom(32))


def test_a_sealed_secret_opens_for_its_account_and_column_only() -> None:
    sealed = seal(RING, "a" * 32, "totp", b"JBSWY3DPEHPK3PXP")
    assert open_sealed(RING, "a" * 32, "totp", sealed) == b"JBSWY3DPEHPK3PXP"
    for account, column in (("b" * 32, "totp"), ("a" * 32, "other")):
        with pytest.raises(SealedSecretError):
            open_sealed(RING, account, column, sealed)


def test_a_tampered_sealed_secret_does_not_open() -> None:
    sealed = bytearray(seal(RING, "a" * 32, "totp", b"secret"))
    sealed[-1] ^= 1
    with pytest.raises(SealedSecretError):
        open_sealed(RING, "a" * 32, "totp", bytes(sealed))


def test_secrets_sealed_before_a_rotation_still_open_after_it() -> None:
    sealed = seal(RING, "a" * 32, "totp", b"secret")
    rotated = RING.with_new_version(os.urandom(32))
    assert open_sealed(rotated, "a" * 32, "totp", sealed) == b"secret"
    assert seal(rotated, "a" * 32, "totp", b"x")[2:6] == b"\x00\x00\x00\x02"


@pytest.mark.parametrize(
    ("agent", "described"),
    [
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
            " Chrome/131.0 Safari/537.36 Edg/131.0",
            "Edge on Windows",
        ),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15"
            " (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
            "Safari on iOS",
        ),
        (
            "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko)"
            " Chrome/131.0 Mobile Safari/537.36",
            "Chrome on Android",
        ),
        (None, "Unknown browser on unknown system"),
        ("curl/8.5.0", "Unknown browser on unknown system"),
    ],
)
def test_a_device_is_described_by_browser_and_system_family_only(
    agent: str | None, described: str
) -> None:
    assert describe_device(agent) == described

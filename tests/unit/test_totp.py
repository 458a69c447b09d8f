"""One-time codes: a code counts once per window, drifts one step at most, and recovery codes
are long, unambiguous and stored only as hashes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyotp
import pytest

from server.security import totp

SECRET = totp.new_secret()
T0 = datetime(2026, 11, 23, 9, 0, 10, tzinfo=UTC)


def test_the_current_code_matches_its_own_step() -> None:
    code = pyotp.TOTP(SECRET).at(T0)
    assert totp.matching_step(SECRET, code, T0, None) == totp.step_of(T0)


def test_a_code_already_used_is_refused_for_the_rest_of_its_window() -> None:
    code = pyotp.TOTP(SECRET).at(T0)
    used = totp.matching_step(SECRET, code, T0, None)
    assert totp.matching_step(SECRET, code, T0 + timedelta(seconds=15), used) is None


def test_an_older_code_cannot_follow_a_newer_one() -> None:
    old = pyotp.TOTP(SECRET).at(T0 - timedelta(seconds=30))
    current_step = totp.step_of(T0)
    assert totp.matching_step(SECRET, old, T0, current_step) is None


@pytest.mark.parametrize(("offset", "ok"), [(-30, True), (30, True), (-60, False), (90, False)])
def test_one_step_of_clock_drift_is_tolerated(offset: int, ok: bool) -> None:
    code = pyotp.TOTP(SECRET).at(T0 + timedelta(seconds=offset))
    assert (totp.matching_step(SECRET, code, T0, None) is not None) is ok


@pytest.mark.parametrize("typed", ["12345", "1234567", "abcdef", "１２３４５６", ""])
def test_malformed_codes_never_match(typed: str) -> None:
    assert totp.matching_step(SECRET, typed, T0, None) is None


def test_spaces_typed_inside_a_code_are_ignored() -> None:
    code = pyotp.TOTP(SECRET).at(T0)
    assert totp.matching_step(SECRET, f"{code[:3]} {code[3:]}", T0, None) is not None


def test_recovery_codes_are_ten_distinct_and_hash_the_same_however_typed() -> None:
    codes = totp.new_recovery_codes()
    assert len(set(codes)) == 10
    assert all(totp.looks_like_recovery_code(code) for code in codes)
    code = codes[0]
    assert totp.recovery_code_hash(code.upper().replace("-", " ")) == totp.recovery_code_hash(code)
    assert code not in totp.recovery_code_hash(code)


def test_the_enrolment_uri_names_the_issuer_and_account() -> None:
    uri = totp.provisioning_uri(SECRET, "ana@example.org", "Attune")
    assert uri.startswith("otpauth://totp/Attune:ana%40example.org?")
    assert f"secret={SECRET}" in uri

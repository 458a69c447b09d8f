"""Purged audit prefixes: a signed anchor lets `verify` start after them, and nothing else does."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from privacy.audit import (
    Anchor,
    AuditEntry,
    AuditEvent,
    Checkpoint,
    append,
    sign_anchor,
    sign_checkpoint,
    verify_anchor,
    verify_chain,
)

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
OTHER_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


def _chain(length: int) -> list[AuditEntry]:
    entries: list[AuditEntry] = []
    for i in range(length):
        event = AuditEvent(
            at=T0 + timedelta(seconds=i),
            actor=f"account:a{i % 2}",
            action="auth.login.success",
            targets=(f"client:c{i % 3}",),
        )
        entries.append(append(entries[-1] if entries else None, event))
    return entries


CHAIN = _chain(10)
K = 4  # entries 1..4 purged


def after_purge(through: int = K) -> list[AuditEntry]:
    return CHAIN[through:]


def anchor_at(seq: int, key: Ed25519PrivateKey = KEY) -> Anchor:
    return sign_anchor(key, seq, CHAIN[seq - 1].hash)


def checkpoint_at(seq: int) -> Checkpoint:
    return sign_checkpoint(KEY, seq, CHAIN[seq - 1].hash)


def test_a_purged_prefix_behind_its_anchor_verifies_from_the_entry_after_it() -> None:
    result = verify_chain(after_purge(), [checkpoint_at(8)], KEY.public_key(), anchor_at(K))

    assert result.ok, result.reason
    assert result.count == len(CHAIN) - K
    assert f"after the anchor at entry {K}" in result.reason


def test_without_an_anchor_the_chain_still_starts_at_genesis() -> None:
    result = verify_chain(CHAIN, [checkpoint_at(8)], KEY.public_key())

    assert result.ok and result.count == len(CHAIN)


def test_checkpoints_up_to_the_anchor_are_not_held_against_the_purged_entries() -> None:
    stale = [checkpoint_at(2), checkpoint_at(K), checkpoint_at(8)]

    result = verify_chain(after_purge(), stale, KEY.public_key(), anchor_at(K))

    assert result.ok, result.reason


def _forged_from_checkpoint() -> Anchor:
    checkpoint = checkpoint_at(K)
    return Anchor(seq=checkpoint.seq, hash=checkpoint.hash, signature=checkpoint.signature)


def _anchor_with_hash_of(seq: int) -> Anchor:
    """Signed correctly, but over an entry the next one does not link to."""
    return sign_anchor(KEY, K, CHAIN[seq - 1].hash)


@pytest.mark.parametrize(
    ("entries", "anchor", "first_bad_seq", "reason_part"),
    [
        pytest.param(
            after_purge(), None, 1, "expected entry 1 but found entry 5", id="prefix-without-anchor"
        ),
        pytest.param(
            after_purge(),
            _forged_from_checkpoint(),
            1,
            "bad signature",
            id="checkpoint-passed-off-as-anchor",
        ),
        pytest.param(
            after_purge(), anchor_at(K, OTHER_KEY), 1, "bad signature", id="anchor-by-another-key"
        ),
        pytest.param(
            after_purge(K + 2),
            anchor_at(K),
            K + 1,
            f"expected entry {K + 1} but found entry {K + 3}",
            id="entries-removed-past-the-anchor",
        ),
        pytest.param(
            after_purge(),
            _anchor_with_hash_of(K - 1),
            K + 1,
            "does not link",
            id="anchor-over-the-wrong-hash",
        ),
        pytest.param(
            [dataclasses.replace(CHAIN[K], actor="account:mallory"), *CHAIN[K + 1 :]],
            anchor_at(K),
            K + 1,
            "edited",
            id="first-entry-after-anchor-edited",
        ),
    ],
)
def test_what_an_anchor_does_not_excuse(
    entries: list[AuditEntry], anchor: Anchor | None, first_bad_seq: int, reason_part: str
) -> None:
    result = verify_chain(entries, [], KEY.public_key(), anchor)

    assert not result.ok
    assert result.first_bad_seq == first_bad_seq
    assert reason_part in result.reason


def test_a_checkpoint_after_the_anchor_still_catches_a_truncated_tail() -> None:
    result = verify_chain(after_purge()[:-3], [checkpoint_at(9)], KEY.public_key(), anchor_at(K))

    assert not result.ok and "removed from the end" in result.reason


def test_an_anchor_with_nothing_after_it_is_an_intact_empty_chain() -> None:
    result = verify_chain([], [], KEY.public_key(), anchor_at(len(CHAIN)))

    assert result.ok and result.count == 0


@pytest.mark.parametrize(
    ("seq", "entry_hash"),
    [pytest.param(0, bytes(32), id="seq-0"), pytest.param(1, b"short", id="short-hash")],
)
def test_sign_anchor_refuses_impossible_positions(seq: int, entry_hash: bytes) -> None:
    with pytest.raises(ValueError):
        sign_anchor(KEY, seq, entry_hash)


def test_verify_anchor_accepts_only_its_own_signature() -> None:
    anchor = anchor_at(K)

    assert verify_anchor(KEY.public_key(), anchor)
    assert not verify_anchor(KEY.public_key(), dataclasses.replace(anchor, seq=K + 1))

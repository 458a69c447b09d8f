"""The audit chain: what tampering it detects, where it says the damage starts, and its limits."""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta, timezone

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from privacy.audit import (
    AUDIT_ACTIONS,
    GENESIS_HASH,
    AuditEntry,
    AuditEvent,
    Checkpoint,
    append,
    canonical_json,
    chain_hash,
    checkpoint_message,
    sign_checkpoint,
    verify_chain,
    verify_checkpoint,
)

SIGNING_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
PUBLIC_KEY = SIGNING_KEY.public_key()
OTHER_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
ACTIONS = ("auth.login.success", "clinical.read", "session.create", "consent.grant")


def _event(i: int) -> AuditEvent:
    return AuditEvent(
        at=T0 + timedelta(seconds=i),
        actor=f"account:therapist-{i % 3}",
        action=ACTIONS[i % len(ACTIONS)],
        targets=(f"client:c{i % 5}",),
        details={"n": i, "ok": i % 2 == 0, "via": "page", "note": None},
    )


def _chain(length: int) -> list[AuditEntry]:
    entries: list[AuditEntry] = []
    for i in range(length):
        entries.append(append(entries[-1] if entries else None, _event(i)))
    return entries


def _checkpoint(entries: Sequence[AuditEntry], seq: int) -> Checkpoint:
    return sign_checkpoint(SIGNING_KEY, seq, entries[seq - 1].hash)


CHAIN = _chain(10)
CHECKPOINTS = (_checkpoint(CHAIN, 5), _checkpoint(CHAIN, 8))  # entries 9 and 10 come after

Tamper = Callable[[list[AuditEntry], list[Checkpoint]], None]


def _edit(seq: int, **changes: object) -> Tamper:
    def tamper(entries: list[AuditEntry], _: list[Checkpoint]) -> None:
        entries[seq - 1] = dataclasses.replace(entries[seq - 1], **changes)  # type: ignore[arg-type]

    return tamper


def _delete(seq: int) -> Tamper:
    def tamper(entries: list[AuditEntry], _: list[Checkpoint]) -> None:
        del entries[seq - 1]

    return tamper


def _swap(seq: int) -> Tamper:
    def tamper(entries: list[AuditEntry], _: list[Checkpoint]) -> None:
        entries[seq - 1], entries[seq] = entries[seq], entries[seq - 1]

    return tamper


def _keep_first(count: int) -> Tamper:
    def tamper(entries: list[AuditEntry], _: list[Checkpoint]) -> None:
        del entries[count:]

    return tamper


def _duplicate(seq: int) -> Tamper:
    def tamper(entries: list[AuditEntry], _: list[Checkpoint]) -> None:
        entries.insert(seq, entries[seq - 1])

    return tamper


def _rewrite_from(seq: int) -> Tamper:
    """Edit an entry and recompute every hash after it: only a checkpoint can catch this."""

    def tamper(entries: list[AuditEntry], _: list[Checkpoint]) -> None:
        rewritten = entries[: seq - 1]
        for i in range(seq - 1, len(entries)):
            event = _event(i)
            if i == seq - 1:
                event = dataclasses.replace(event, actor="account:someone-else")
            rewritten.append(append(rewritten[-1] if rewritten else None, event))
        entries[:] = rewritten

    return tamper


def _forge_signature(index: int) -> Tamper:
    def tamper(_: list[AuditEntry], checkpoints: list[Checkpoint]) -> None:
        signature = bytearray(checkpoints[index].signature)
        signature[0] ^= 1
        checkpoints[index] = dataclasses.replace(checkpoints[index], signature=bytes(signature))

    return tamper


def _sign_with_other_key(index: int) -> Tamper:
    def tamper(_: list[AuditEntry], checkpoints: list[Checkpoint]) -> None:
        original = checkpoints[index]
        checkpoints[index] = sign_checkpoint(OTHER_KEY, original.seq, original.hash)

    return tamper


def _move_checkpoint(index: int, seq: int) -> Tamper:
    def tamper(_: list[AuditEntry], checkpoints: list[Checkpoint]) -> None:
        checkpoints[index] = dataclasses.replace(checkpoints[index], seq=seq)

    return tamper


@pytest.mark.parametrize(
    ("tamper", "first_bad_seq"),
    [
        pytest.param(_edit(3, actor="account:admin"), 3, id="edit-actor"),
        pytest.param(_edit(3, action="export.client"), 3, id="edit-action"),
        pytest.param(_edit(3, targets=("client:c9",)), 3, id="edit-targets"),
        pytest.param(_edit(3, details={"n": 3}), 3, id="edit-details"),
        pytest.param(_edit(3, at=CHAIN[2].at + timedelta(microseconds=1)), 3, id="edit-time"),
        pytest.param(_edit(9, actor="system"), 9, id="edit-after-last-checkpoint"),
        pytest.param(_edit(4, prev_hash=bytes(32)), 4, id="edit-link"),
        pytest.param(_delete(4), 4, id="delete-middle"),
        pytest.param(_delete(1), 1, id="delete-first"),
        pytest.param(_swap(6), 6, id="swap-two"),
        pytest.param(_duplicate(4), 5, id="duplicate-entry"),
        pytest.param(_keep_first(6), 7, id="truncate-tail-past-checkpoint"),
        pytest.param(_keep_first(0), 1, id="truncate-everything"),
        pytest.param(_rewrite_from(3), 5, id="rewrite-with-recomputed-hashes"),
        pytest.param(_forge_signature(0), 5, id="forged-signature"),
        pytest.param(_forge_signature(1), 8, id="forged-signature-later"),
        pytest.param(_sign_with_other_key(0), 5, id="checkpoint-by-another-key"),
        pytest.param(_move_checkpoint(0, 6), 6, id="checkpoint-seq-altered"),
    ],
)
def test_tampering_is_detected_at_the_first_bad_entry(tamper: Tamper, first_bad_seq: int) -> None:
    entries, checkpoints = list(CHAIN), list(CHECKPOINTS)
    tamper(entries, checkpoints)

    result = verify_chain(entries, checkpoints, PUBLIC_KEY)

    assert not result.ok
    assert result.first_bad_seq == first_bad_seq, result.reason
    assert result.count == first_bad_seq - 1  # entries verified before the damage


def test_truncating_the_tail_after_the_last_checkpoint_goes_unnoticed() -> None:
    # A documented limit, not a wish: entries after the newest checkpoint are protected only by
    # later checkpoints, so cutting off entries 9 and 10 leaves a chain that verifies.
    result = verify_chain(CHAIN[:8], CHECKPOINTS, PUBLIC_KEY)
    assert result.ok
    assert result.count == 8


def test_without_any_checkpoint_a_truncated_chain_still_verifies() -> None:
    result = verify_chain(CHAIN[:3], [], PUBLIC_KEY)
    assert result.ok
    assert result.count == 3


def test_intact_chain_of_1000_entries_verifies_streaming() -> None:
    entries = _chain(1000)
    checkpoints = [_checkpoint(entries, seq) for seq in range(100, 1001, 100)]

    def stream() -> Iterator[AuditEntry]:
        yield from entries  # a one-pass iterable, as a database cursor would give

    result = verify_chain(stream(), checkpoints, PUBLIC_KEY)

    assert result.ok, result.reason
    assert result.count == 1000
    assert result.first_bad_seq is None


def test_empty_log_without_checkpoints_is_intact() -> None:
    assert verify_chain([], [], PUBLIC_KEY).ok


def test_chain_links_each_entry_to_the_one_before() -> None:
    first, second = CHAIN[0], CHAIN[1]
    assert (first.seq, first.prev_hash) == (1, GENESIS_HASH)
    assert (second.seq, second.prev_hash) == (2, first.hash)
    assert second.hash == hashlib.sha256(first.hash + canonical_json(2, _event(1))).digest()
    assert second.hash == chain_hash(first.hash, 2, _event(1))


def test_canonical_json_is_sorted_compact_utc_with_microseconds() -> None:
    event = AuditEvent(
        at=datetime(2025, 3, 1, 10, 0, 0, tzinfo=timezone(timedelta(hours=1))),
        actor="client:p-42",
        action="consent.withdraw",
        targets=("client:p-42",),
        details={"purpose": "cue_analysis", "version": 1, "live": True, "note": None},
    )
    assert canonical_json(7, event) == (
        b'{"action":"consent.withdraw","actor":"client:p-42","at":"2025-03-01T09:00:00.000000Z",'
        b'"details":{"live":true,"note":null,"purpose":"cue_analysis","version":1},'
        b'"seq":7,"targets":["client:p-42"]}'
    )


def test_database_rows_with_naive_utc_times_hash_the_same() -> None:
    # SQLite hands back naive datetimes; they are read as the UTC they were written as.
    entry = CHAIN[0]
    row = dataclasses.replace(entry, at=entry.at.replace(tzinfo=None))
    assert verify_chain([row], [], PUBLIC_KEY).ok


def test_checkpoint_signature_covers_a_domain_separated_message() -> None:
    checkpoint = _checkpoint(CHAIN, 5)
    assert checkpoint_message(5, CHAIN[4].hash) == (
        b"attune-audit-checkpoint-v1" + (5).to_bytes(8, "big") + CHAIN[4].hash
    )
    assert verify_checkpoint(PUBLIC_KEY, checkpoint)
    assert not verify_checkpoint(PUBLIC_KEY, dataclasses.replace(checkpoint, hash=CHAIN[3].hash))
    assert not verify_checkpoint(PUBLIC_KEY, dataclasses.replace(checkpoint, seq=-1))


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"action": "clinical.export"}, id="unregistered-action"),
        pytest.param({"at": datetime(2025, 3, 1, 9, 0)}, id="naive-time"),
        pytest.param({"actor": ""}, id="empty-actor"),
        pytest.param({"targets": "client:c1"}, id="targets-as-one-string"),
        pytest.param({"details": {"score": 3.5}}, id="float-detail"),
        pytest.param({"details": {"nested": {"a": 1}}}, id="nested-detail"),
    ],
)
def test_audit_events_refuse_what_does_not_belong(changes: dict[str, object]) -> None:
    fields: dict[str, object] = {
        "at": T0,
        "actor": "system",
        "action": "retention.purge",
        "targets": (),
        "details": {},
    }
    with pytest.raises(ValueError):
        AuditEvent(**{**fields, **changes})  # type: ignore[arg-type]


def test_audit_event_details_are_frozen_copies() -> None:
    details: dict[str, str | int | bool | None] = {"count": 3}
    event = AuditEvent(T0, "system", "retention.purge", ["client:c1"], details)  # type: ignore[arg-type]
    details["count"] = 4
    assert event.details == {"count": 3}
    assert event.targets == ("client:c1",)


REQUIRED_ACTIONS = [
    "auth.login.success",
    "auth.login.failure",
    "auth.logout",
    "account.create",
    "account.disable",
    "account.enable",
    "account.password_reset",
    "account.setup",
    "client.create",
    "client.erase",
    "session.create",
    "session.cancel",
    "session.end",
    "invite.issue",
    "invite.revoke",
    "invite.redeem",
    "clinical.read",
    "export.client",
    "consent.grant",
    "consent.withdraw",
    "notice.publish",
    "retention.policy_change",
    "retention.hold_add",
    "retention.hold_remove",
    "retention.purge",
    "keys.rotate",
    "audit.checkpoint",
]


def test_action_registry_documents_every_recorded_action() -> None:
    assert set(REQUIRED_ACTIONS) <= set(AUDIT_ACTIONS)
    for action, meaning in AUDIT_ACTIONS.items():
        assert re.fullmatch(r"[a-z]+(\.[a-z_]+)+", action), action
        assert meaning.strip() and "\n" not in meaning, action

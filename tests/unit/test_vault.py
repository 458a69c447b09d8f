"""Envelope encryption and key files: what the vault promises about confidentiality."""

from __future__ import annotations

import base64
import json
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from privacy.keyfiles import (
    KeyFileError,
    encode_public_key,
    load_keyring,
    load_or_create_keyring,
    load_or_create_signing_key,
    parse_master_key,
    parse_public_key,
    save_keyring,
)
from privacy.vault import (
    DataKeySet,
    DecryptionError,
    FieldContext,
    KeyShredded,
    MasterKeyring,
    UnknownKeyVersion,
    VaultError,
    WrappedDataKey,
    decrypt_field,
    decrypt_json,
    decrypt_text,
    encrypt_field,
    encrypt_json,
    encrypt_text,
    field_key_version,
    generate_data_key,
    rewrap,
    unwrap_data_key,
    wrap_data_key,
)

CLIENT = "client-7f3a"
OTHER_CLIENT = "client-91bc"
CTX = FieldContext(table="checkin", row_id="row-1", column="answers", client_id=CLIENT)
DATA_KEY = bytes(range(32))
KEYS = DataKeySet().with_key(CLIENT, 1, DATA_KEY)
PLAINTEXT = b"I felt unheard when we talked about my sister."

# Layout of a field ciphertext: tag (1) | key version (4) | nonce (12) | body | GCM tag (16).
HEADER, NONCE_END, GCM_TAG = 5, 17, 16


def _sealed() -> bytes:
    return encrypt_field(DATA_KEY, 1, PLAINTEXT, CTX)


# --- fields -------------------------------------------------------------------------------


def test_field_round_trip() -> None:
    assert decrypt_field(KEYS, _sealed(), CTX) == PLAINTEXT


def test_text_and_json_helpers_round_trip() -> None:
    answers = {"bond": 9, "note": "ça va", "items": [1, 2, None]}
    assert decrypt_text(KEYS, encrypt_text(DATA_KEY, 1, "ça va 🙂", CTX), CTX) == "ça va 🙂"
    assert decrypt_json(KEYS, encrypt_json(DATA_KEY, 1, answers, CTX), CTX) == answers


def test_json_is_canonical_so_equal_values_encrypt_equal_plaintexts() -> None:
    first = decrypt_field(KEYS, encrypt_json(DATA_KEY, 1, {"b": 1, "a": 2}, CTX), CTX)
    second = decrypt_field(KEYS, encrypt_json(DATA_KEY, 1, {"a": 2, "b": 1}, CTX), CTX)
    assert first == second == b'{"a":2,"b":1}'


def test_empty_plaintext_round_trips() -> None:
    assert decrypt_field(KEYS, encrypt_field(DATA_KEY, 1, b"", CTX), CTX) == b""


def test_ciphertext_names_its_key_version() -> None:
    keys = KEYS.with_key(CLIENT, 7, generate_data_key())
    sealed = encrypt_field(keys(CLIENT, 7), 7, PLAINTEXT, CTX)
    assert field_key_version(sealed) == 7
    assert decrypt_field(keys, sealed, CTX) == PLAINTEXT


@pytest.mark.parametrize(
    "moved_to",
    [
        pytest.param(FieldContext("checkin", "row-2", "answers", CLIENT), id="row-swap"),
        pytest.param(FieldContext("checkin", "row-1", "scores", CLIENT), id="column-swap"),
        pytest.param(FieldContext("cue", "row-1", "answers", CLIENT), id="table-swap"),
        pytest.param(FieldContext("checkin", "row-1", "answers", OTHER_CLIENT), id="client-swap"),
    ],
)
def test_ciphertext_moved_to_another_context_is_rejected(moved_to: FieldContext) -> None:
    # Even if the other client held the very same key, the context binding refuses it.
    keys = KEYS.with_key(OTHER_CLIENT, 1, DATA_KEY)
    with pytest.raises(DecryptionError):
        decrypt_field(keys, _sealed(), moved_to)


def test_context_encoding_is_unambiguous() -> None:
    assert FieldContext("ab", "c", "d", "e").encode() != FieldContext("a", "bc", "d", "e").encode()
    assert FieldContext("a", "", "b", "c").encode() != FieldContext("a", "b", "", "c").encode()


_LENGTH = len(_sealed())


@pytest.mark.parametrize(
    "byte_index",
    [
        pytest.param(0, id="format-tag"),
        pytest.param(1, id="key-version-high"),
        pytest.param(4, id="key-version-low"),
        pytest.param(HEADER, id="nonce-first"),
        pytest.param(NONCE_END - 1, id="nonce-last"),
        pytest.param(NONCE_END, id="body-first"),
        pytest.param(NONCE_END + 20, id="body-middle"),
        pytest.param(_LENGTH - GCM_TAG - 1, id="body-last"),
        pytest.param(_LENGTH - GCM_TAG, id="gcm-tag-first"),
        pytest.param(_LENGTH - 1, id="gcm-tag-last"),
    ],
)
@pytest.mark.parametrize("bit", [0, 7])
def test_any_flipped_bit_is_rejected(byte_index: int, bit: int) -> None:
    tampered = bytearray(_sealed())
    tampered[byte_index] ^= 1 << bit
    with pytest.raises(DecryptionError) as caught:
        decrypt_field(KEYS, bytes(tampered), CTX)
    assert "sister" not in str(caught.value)


def test_relabelled_key_version_is_rejected_even_when_that_key_would_fit() -> None:
    # The header is part of the associated data: the version cannot be rewritten, even if a
    # storage mix-up left the same key under two versions.
    keys = KEYS.with_key(CLIENT, 2, DATA_KEY)
    relabelled = bytearray(_sealed())
    relabelled[4] = 2
    assert field_key_version(bytes(relabelled)) == 2
    with pytest.raises(DecryptionError):
        decrypt_field(keys, bytes(relabelled), CTX)


@pytest.mark.parametrize(
    "keep", [0, 1, HEADER, NONCE_END, NONCE_END + GCM_TAG - 1, _LENGTH - 1], ids=str
)
def test_truncated_ciphertext_is_rejected(keep: int) -> None:
    with pytest.raises(DecryptionError):
        decrypt_field(KEYS, _sealed()[:keep], CTX)


def test_appended_bytes_are_rejected() -> None:
    with pytest.raises(DecryptionError):
        decrypt_field(KEYS, _sealed() + b"\x00", CTX)


def test_no_nonce_repeats_across_100k_encryptions() -> None:
    count = 100_000
    nonces = {encrypt_field(DATA_KEY, 1, b"x", CTX)[HEADER:NONCE_END] for _ in range(count)}
    assert len(nonces) == count


@pytest.mark.parametrize(
    ("data_key", "version"),
    [
        pytest.param(bytes(31), 1, id="short-key"),
        pytest.param(bytes(33), 1, id="long-key"),
        pytest.param(bytes(32), 0, id="version-zero"),
        pytest.param(bytes(32), 2**32, id="version-over-uint32"),
    ],
)
def test_encrypt_refuses_bad_keys_and_versions(data_key: bytes, version: int) -> None:
    with pytest.raises(ValueError):
        encrypt_field(data_key, version, PLAINTEXT, CTX)


# --- master keyring, wrapping and rotation ---------------------------------------------------


def test_master_keys_must_be_32_bytes() -> None:
    with pytest.raises(ValueError):
        MasterKeyring.from_single(bytes(16))
    with pytest.raises(ValueError):
        MasterKeyring.from_single(os.urandom(32)).with_new_version(bytes(64))


def test_keyring_is_immutable_and_never_shows_keys() -> None:
    key = os.urandom(32)
    ring = MasterKeyring.from_single(key)
    with pytest.raises(AttributeError):
        ring._current = 5
    assert key.hex() not in repr(ring) and repr(key) not in repr(ring)
    assert ring.with_new_version(os.urandom(32)).versions == (1, 2)
    assert ring.versions == (1,)


def test_wrapped_data_key_round_trips() -> None:
    ring = MasterKeyring.from_single(os.urandom(32))
    wrapped = wrap_data_key(ring, CLIENT, DATA_KEY)
    assert wrapped.master_version == 1
    assert unwrap_data_key(ring, wrapped) == DATA_KEY


@pytest.mark.parametrize(
    "relabel",
    [
        pytest.param(lambda w: WrappedDataKey(OTHER_CLIENT, w.master_version, w.blob), id="client"),
        pytest.param(
            lambda w: WrappedDataKey(w.client_id, w.master_version, w.blob[:-1]), id="truncated"
        ),
        pytest.param(
            lambda w: WrappedDataKey(
                w.client_id, w.master_version, w.blob[:20] + bytes([w.blob[20] ^ 1]) + w.blob[21:]
            ),
            id="flipped-bit",
        ),
    ],
)
def test_wrapped_key_is_bound_to_its_client_and_intact(
    relabel: Callable[[WrappedDataKey], WrappedDataKey],
) -> None:
    ring = MasterKeyring.from_single(os.urandom(32))
    wrapped = wrap_data_key(ring, CLIENT, DATA_KEY)
    with pytest.raises(DecryptionError):
        unwrap_data_key(ring, relabel(wrapped))


def test_wrapped_key_relabelled_to_another_master_version_is_rejected() -> None:
    ring = MasterKeyring.from_single(os.urandom(32)).with_new_version(os.urandom(32))
    wrapped = wrap_data_key(ring, CLIENT, DATA_KEY)
    with pytest.raises(DecryptionError):
        unwrap_data_key(ring, WrappedDataKey(CLIENT, 1, wrapped.blob))


def test_rotation_rewraps_keys_and_leaves_data_readable() -> None:
    ring_v1 = MasterKeyring.from_single(os.urandom(32))
    wrapped_v1 = wrap_data_key(ring_v1, CLIENT, DATA_KEY)
    sealed_before_rotation = _sealed()

    ring_v2 = ring_v1.with_new_version(os.urandom(32))
    assert ring_v2.current_version == 2
    wrapped_v2 = rewrap(ring_v2, wrapped_v1)
    assert wrapped_v2.master_version == 2

    retired = ring_v2.without_version(1)
    data_key = unwrap_data_key(retired, wrapped_v2)
    keys = DataKeySet().with_key(CLIENT, 1, data_key)
    assert decrypt_field(keys, sealed_before_rotation, CTX) == PLAINTEXT
    with pytest.raises(UnknownKeyVersion):
        unwrap_data_key(retired, wrapped_v1)


def test_retiring_the_current_master_version_is_refused() -> None:
    ring = MasterKeyring.from_single(os.urandom(32)).with_new_version(os.urandom(32))
    with pytest.raises(ValueError, match="current"):
        ring.without_version(2)
    with pytest.raises(UnknownKeyVersion):
        ring.without_version(3)


def test_the_same_key_cannot_hold_two_versions() -> None:
    key = os.urandom(32)
    with pytest.raises(ValueError):
        MasterKeyring.from_single(key).with_new_version(key)


# --- crypto-shredding --------------------------------------------------------------------


def test_shredded_client_data_can_no_longer_be_read() -> None:
    sealed = _sealed()
    keys = KEYS.with_key(OTHER_CLIENT, 1, generate_data_key())
    other_ctx = FieldContext("checkin", "row-9", "answers", OTHER_CLIENT)
    other_sealed = encrypt_field(keys(OTHER_CLIENT, 1), 1, b"kept", other_ctx)

    after = keys.shred(CLIENT)

    with pytest.raises(KeyShredded):
        decrypt_field(after, sealed, CTX)
    with pytest.raises(KeyShredded):
        decrypt_text(after, sealed, CTX)
    assert decrypt_field(after, other_sealed, other_ctx) == b"kept"
    with pytest.raises(ValueError):
        after.with_key(CLIENT, 2, generate_data_key())


def test_every_vault_error_shares_one_base() -> None:
    assert all(
        issubclass(error, VaultError)
        for error in (DecryptionError, KeyShredded, UnknownKeyVersion, KeyFileError)
    )


# --- key files -----------------------------------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_keyring_file_is_created_private_and_loaded_back(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "master-keys.json"
    ring, created = load_or_create_keyring(path)
    assert created
    assert ring.versions == (1,) and ring.current_version == 1
    assert _mode(path) == 0o600
    assert _mode(path.parent) == 0o700

    again, created_again = load_or_create_keyring(path)
    assert not created_again
    assert again == ring
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left


def test_keyring_file_format(tmp_path: Path) -> None:
    path = tmp_path / "master-keys.json"
    ring, _ = load_or_create_keyring(path)
    document = json.loads(path.read_text())
    assert document["current"] == 1
    assert base64.b64decode(document["keys"]["1"]) == ring.key(1)


def test_rotated_keyring_saves_atomically_and_privately(tmp_path: Path) -> None:
    path = tmp_path / "master-keys.json"
    ring, _ = load_or_create_keyring(path)
    rotated = ring.with_new_version(os.urandom(32))
    save_keyring(path, rotated)
    assert load_keyring(path) == rotated
    assert load_keyring(path).current_version == 2
    assert _mode(path) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


_GOOD = base64.b64encode(bytes(range(32))).decode()
_SHORT = base64.b64encode(b"secret-short-key").decode()


@pytest.mark.parametrize(
    "content",
    [
        pytest.param("", id="empty"),
        pytest.param("not json", id="not-json"),
        pytest.param("[]", id="not-object"),
        pytest.param(json.dumps({"current": 1}), id="no-keys"),
        pytest.param(json.dumps({"current": 1, "keys": {}}), id="keys-empty"),
        pytest.param(json.dumps({"current": 2, "keys": {"1": _GOOD}}), id="current-missing"),
        pytest.param(json.dumps({"current": 1, "keys": {"1": _SHORT}}), id="short-key"),
        pytest.param(json.dumps({"current": 1, "keys": {"1": "%%%"}}), id="not-base64"),
        pytest.param(json.dumps({"current": 0, "keys": {"0": _GOOD}}), id="version-zero"),
        pytest.param(json.dumps({"current": 1, "keys": {"01": _GOOD}}), id="version-padded"),
        pytest.param(json.dumps({"current": True, "keys": {"1": _GOOD}}), id="current-bool"),
    ],
)
def test_invalid_keyring_file_is_refused_without_leaking_keys(tmp_path: Path, content: str) -> None:
    path = tmp_path / "master-keys.json"
    path.write_text(content)
    with pytest.raises(KeyFileError) as caught:
        load_keyring(path)
    assert _SHORT not in str(caught.value) and _GOOD not in str(caught.value)
    assert "secret" not in str(caught.value)


def test_missing_keyring_file_is_a_key_file_error(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="does not exist"):
        load_keyring(tmp_path / "absent.json")


@pytest.mark.parametrize(
    ("b64", "message"),
    [
        pytest.param(_SHORT, "exactly 32 bytes", id="short"),
        pytest.param(base64.b64encode(bytes(33)).decode(), "exactly 32 bytes", id="long"),
        pytest.param("!!not base64!!", "base64", id="garbage"),
        pytest.param("", "exactly 32 bytes", id="empty"),
    ],
)
def test_parse_master_key_validates(b64: str, message: str) -> None:
    with pytest.raises(KeyFileError, match=message) as caught:
        parse_master_key(b64)
    assert _SHORT not in str(caught.value)


def test_parse_master_key_accepts_32_bytes_with_surrounding_whitespace() -> None:
    assert parse_master_key(f"  {_GOOD}\n") == bytes(range(32))


def test_signing_key_file_is_created_private_and_stable(tmp_path: Path) -> None:
    path = tmp_path / "audit" / "signing.key"
    key = load_or_create_signing_key(path)
    assert isinstance(key, Ed25519PrivateKey)
    assert _mode(path) == 0o600
    assert len(base64.b64decode(path.read_text())) == 32
    again = load_or_create_signing_key(path)
    public = encode_public_key(key.public_key())
    assert encode_public_key(again.public_key()) == public
    signature = key.sign(b"checkpoint")
    parse_public_key(public).verify(signature, b"checkpoint")


def test_corrupt_signing_key_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "signing.key"
    path.write_text(_SHORT)
    with pytest.raises(KeyFileError, match="exactly 32 bytes"):
        load_or_create_signing_key(path)

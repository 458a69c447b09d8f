"""Safety code for a call (pure): commit-reveal of two nonces and the code derived from them.

DESIGN.md §3.4. Hashing the two DTLS fingerprints alone would let a signalling server in the
middle grind certificates until both codes collide, so the nonces are exchanged by
commit-reveal over the call's data channel; a middleman gets one 2^-24 guess per run.
`client_web/static/js/sas.js` is the browser twin of this module and must give the same bytes;
`tests/unit/sas_vectors.json` pins both.

Protocol (JSON over the data channel; nonces are 32 random bytes chosen by the caller)
    therapist -> client  {"t": "sas-commit", "c": b64url(commitment(nT))}
    client -> therapist  {"t": "sas-nonce",  "n": b64url(nC)}   only after the commit
    therapist -> client  {"t": "sas-reveal", "n": b64url(nT)}   only after the nonce
    The client checks commitment(nT) == c. Values are base64url without padding, in canonical
    form (43 characters for 32 bytes); messages carry exactly these two keys.

Bytes that go into the hashes
    commitment(nT) = SHA-256(b"attune-commit-v1" || nT)
    sas_bytes      = SHA-256(b"attune-sas-v1" || FP(therapist) || FP(client) || nT || nC)
    FP(x) is the ASCII text "sha-256 " followed by the certificate's SHA-256 fingerprint as
    uppercase hex pairs joined by colons: 8 + 95 = 103 bytes. Accepted input: that form with
    "sha-256" and the hex in any case, one or more spaces or tabs after "sha-256", or the hex
    pairs alone (as in RTCCertificateStats.fingerprint); blanks around it are ignored. Only
    SHA-256 fingerprints are accepted (every browser uses them for DTLS), so every part has a
    fixed length and the concatenation is unambiguous. Each side passes the fingerprints of the
    certificates in use: the therapist's own and the one it sees for the client, and the client
    likewise.

Display
    The first 24 bits of sas_bytes (big-endian) as 8 octal digits in two groups: "0123 4567".
    Every one of the 2^24 codes is equally likely (no modulo, so no bias); digits read aloud
    work in any language and survive a poor line better than words from an English list; eight
    digits are read like a phone number. Only the digits 0-7 appear.

Groups (issue #15)
    With up to four people in a full mesh, every pair runs this exchange on its own data
    channel, unchanged: the person admitted earlier (lower roster `order`) is the committer and
    takes the therapist's part (FP(therapist) is the committer's fingerprint), the other the
    client's. `group_pairs` names the pairs; docs/protocol.md "Verifying a group call".

Abort
    A message out of order, a malformed one, or a reveal that does not match the commitment
    raises SasProtocolError and leaves the state machine aborted for good: the UI then says the
    safety code could not be checked and shows no code. A new attempt needs fresh nonces on both
    sides, and each attempt is another guess for a middleman, so the UI should not retry
    silently.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping
from enum import StrEnum

NONCE_BYTES = 32
COMMIT_LABEL = b"attune-commit-v1"
SAS_LABEL = b"attune-sas-v1"
SAS_BITS = 24

MSG_COMMIT = "sas-commit"
MSG_NONCE = "sas-nonce"
MSG_REVEAL = "sas-reveal"

# ASCII only and explicit blanks, so that Python and the JavaScript twin accept the same strings
_FINGERPRINT = re.compile(
    r"(?:sha-256[ \t]+)?((?:[0-9a-f]{2}:){31}[0-9a-f]{2})", re.IGNORECASE | re.ASCII
)
_BLANKS = " \t\r\n"
_B64URL_32_BYTES = re.compile(r"[A-Za-z0-9_-]{43}")


class SasProtocolError(Exception):
    """The safety-code exchange broke its rules: abort, show no code."""


class SasState(StrEnum):
    """Where one side of the commit-reveal exchange stands."""

    IDLE = "idle"  # the therapist's side before it sends its commitment
    AWAITING_COMMIT = "awaiting-commit"  # the client's side at the start
    AWAITING_NONCE = "awaiting-nonce"
    AWAITING_REVEAL = "awaiting-reveal"
    COMPLETE = "complete"
    ABORTED = "aborted"


def _check_nonce(name: str, nonce: bytes) -> None:
    if len(nonce) != NONCE_BYTES:
        raise ValueError(f"{name} must be {NONCE_BYTES} bytes, got {len(nonce)}")


def commitment(nonce: bytes) -> bytes:
    """The therapist's commitment to its nonce: SHA-256("attune-commit-v1" || nonce)."""
    _check_nonce("nonce", nonce)
    return hashlib.sha256(COMMIT_LABEL + nonce).digest()


def canonical_fingerprint(fingerprint: str) -> str:
    """A SHA-256 fingerprint ("sha-256 ab:…" or "AB:…") as "sha-256 AB:CD:…"."""
    match = _FINGERPRINT.fullmatch(fingerprint.strip(_BLANKS))
    if match is None:
        raise ValueError(f"not a SHA-256 certificate fingerprint: {fingerprint!r}")
    return "sha-256 " + match.group(1).upper()


def normalize_fingerprint(fingerprint: str) -> bytes:
    """The exact bytes a fingerprint contributes to the safety code (ASCII, 103 bytes)."""
    return canonical_fingerprint(fingerprint).encode("ascii")


def sas_bytes(fp_therapist: str, fp_client: str, n_t: bytes, n_c: bytes) -> bytes:
    """SHA-256("attune-sas-v1" || FP(therapist) || FP(client) || nT || nC)."""
    _check_nonce("n_t", n_t)
    _check_nonce("n_c", n_c)
    parts = (normalize_fingerprint(fp_therapist), normalize_fingerprint(fp_client), n_t, n_c)
    return hashlib.sha256(SAS_LABEL + b"".join(parts)).digest()


def render_code(digest: bytes) -> str:
    """The first 24 bits of a digest as 8 octal digits, "0123 4567"."""
    digits = format(int.from_bytes(digest[: SAS_BITS // 8], "big"), "08o")
    return f"{digits[:4]} {digits[4:]}"


def sas_code(fp_therapist: str, fp_client: str, n_t: bytes, n_c: bytes) -> str:
    """The safety code both people read aloud, e.g. "0123 4567"."""
    return render_code(sas_bytes(fp_therapist, fp_client, n_t, n_c))


def group_pairs(orders: Mapping[str, int]) -> list[tuple[str, str]]:
    """Every pair of a group call as (committer, responder), by admission order.

    `orders` maps each person's peer id to their admission `order` (the therapist 0). In each
    pair the person admitted earlier commits (the therapist's part in a two-person call) and
    is the impolite side of perfect negotiation; the pairs come sorted by those two orders.
    """
    if len(set(orders.values())) != len(orders):
        raise ValueError("two people in a call never share an order")
    people = sorted(orders, key=orders.__getitem__)
    return [(a, b) for i, a in enumerate(people) for b in people[i + 1 :]]


def encode_b64url(data: bytes) -> str:
    """Base64url without padding, as on the wire."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _decode_32_bytes(value: object) -> bytes:
    """Decode a canonical unpadded base64url value of exactly 32 bytes."""
    if not isinstance(value, str) or _B64URL_32_BYTES.fullmatch(value) is None:
        raise SasProtocolError("expected 32 bytes as unpadded base64url")
    data = base64.urlsafe_b64decode(value + "=")
    if encode_b64url(data) != value:  # spare bits set: refuse, so both twins agree
        raise SasProtocolError("base64url value is not in canonical form")
    return data


_FIELD = {MSG_COMMIT: "c", MSG_NONCE: "n", MSG_REVEAL: "n"}


def _parse(message: Mapping[str, object]) -> tuple[str, bytes]:
    """A message's type and its 32-byte value, or SasProtocolError."""
    if not isinstance(message, Mapping):
        raise SasProtocolError("a message must be a JSON object")
    kind = message.get("t")
    if not isinstance(kind, str) or kind not in _FIELD:
        raise SasProtocolError(f"unknown message type {kind!r}")
    if set(message) != {"t", _FIELD[kind]}:
        raise SasProtocolError(f"{kind} must have exactly the keys t and {_FIELD[kind]}")
    return kind, _decode_32_bytes(message[_FIELD[kind]])


class _Exchange:
    """What both sides share: own nonce, state, abort-forever, and the final code."""

    def __init__(self, nonce: bytes, state: SasState, *, is_therapist: bool) -> None:
        _check_nonce("nonce", nonce)
        self._nonce = nonce
        self._peer_nonce: bytes | None = None
        self._state = state
        self._is_therapist = is_therapist

    @property
    def state(self) -> SasState:
        """Where this side of the exchange stands."""
        return self._state

    def _abort(self, reason: str) -> SasProtocolError:
        self._state = SasState.ABORTED
        return SasProtocolError(reason)

    def _expect(self, state: SasState, what: str) -> None:
        if self._state is SasState.ABORTED:
            raise SasProtocolError("the safety-code exchange was aborted")
        if self._state is not state:
            raise self._abort(f"{what} out of order (state {self._state})")

    def _receive(self, message: Mapping[str, object]) -> tuple[str, bytes]:
        if self._state is SasState.ABORTED:
            raise SasProtocolError("the safety-code exchange was aborted")
        try:
            return _parse(message)
        except SasProtocolError as error:
            raise self._abort(str(error)) from None

    def nonces(self) -> tuple[bytes, bytes]:
        """(nT, nC) once the exchange is complete."""
        if self._state is not SasState.COMPLETE or self._peer_nonce is None:
            raise SasProtocolError(f"the exchange is not complete (state {self._state})")
        if self._is_therapist:
            return self._nonce, self._peer_nonce
        return self._peer_nonce, self._nonce

    def sas_code(self, fp_therapist: str, fp_client: str) -> str:
        """The safety code to show, once the exchange is complete."""
        n_t, n_c = self.nonces()
        return sas_code(fp_therapist, fp_client, n_t, n_c)


class CommitRevealInitiator(_Exchange):
    """The therapist's side: commits to nT, receives nC, reveals nT."""

    def __init__(self, nonce: bytes) -> None:
        super().__init__(nonce, SasState.IDLE, is_therapist=True)
        self._commitment = commitment(nonce)

    def start(self) -> dict[str, str]:
        """The commitment message that opens the exchange."""
        self._expect(SasState.IDLE, "a second commit")
        self._state = SasState.AWAITING_NONCE
        return {"t": MSG_COMMIT, "c": encode_b64url(self._commitment)}

    def receive(self, message: Mapping[str, object]) -> dict[str, str]:
        """Take the client's nonce and answer with the reveal; anything else aborts."""
        kind, value = self._receive(message)
        if kind != MSG_NONCE:
            raise self._abort(f"the therapist's side never receives {kind}")
        self._expect(SasState.AWAITING_NONCE, "a nonce")
        self._peer_nonce = value
        self._state = SasState.COMPLETE
        return {"t": MSG_REVEAL, "n": encode_b64url(self._nonce)}


class CommitRevealResponder(_Exchange):
    """The client's side: receives the commitment, sends nC, checks the reveal."""

    def __init__(self, nonce: bytes) -> None:
        super().__init__(nonce, SasState.AWAITING_COMMIT, is_therapist=False)
        self._commitment: bytes | None = None

    def receive(self, message: Mapping[str, object]) -> dict[str, str] | None:
        """Answer a commit with the nonce; check a reveal (returns None when complete)."""
        kind, value = self._receive(message)
        if kind == MSG_COMMIT:
            self._expect(SasState.AWAITING_COMMIT, "a commit")
            self._commitment = value
            self._state = SasState.AWAITING_REVEAL
            return {"t": MSG_NONCE, "n": encode_b64url(self._nonce)}
        if kind == MSG_REVEAL:
            self._expect(SasState.AWAITING_REVEAL, "a reveal")
            assert self._commitment is not None
            if not hmac.compare_digest(commitment(value), self._commitment):
                raise self._abort("the revealed nonce does not match the commitment")
            self._peer_nonce = value
            self._state = SasState.COMPLETE
            return None
        raise self._abort(f"the client's side never receives {kind}")

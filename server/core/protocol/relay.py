"""WebRTC signaling payloads: the SDP descriptions and ICE candidates relayed between parties."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from server.core.protocol.codes import MAX_CANDIDATE_BYTES, MAX_SDP_BYTES
from server.core.protocol.fields import Fields, describe, invalid, utf8_len

DescriptionType = Literal["offer", "answer", "pranswer", "rollback"]
DESCRIPTION_TYPES: Final[tuple[DescriptionType, ...]] = ("offer", "answer", "pranswer", "rollback")


@dataclass(frozen=True, slots=True)
class SessionDescription:
    """An SDP offer or answer, relayed opaquely (only its size and kind are checked)."""

    type: DescriptionType
    sdp: str

    def __post_init__(self) -> None:
        if self.type not in DESCRIPTION_TYPES:
            invalid(f"description.type: expected one of {', '.join(DESCRIPTION_TYPES)}")
        if utf8_len(self.sdp) > MAX_SDP_BYTES:
            invalid(f"description.sdp: at most {MAX_SDP_BYTES} bytes")
        if not self.sdp and self.type != "rollback":
            invalid("description.sdp: empty (only a rollback has no SDP)")

    def to_json(self) -> dict[str, Any]:
        """The relay payload as the peer receives it."""
        return {"kind": "description", "description": {"type": self.type, "sdp": self.sdp}}


@dataclass(frozen=True, slots=True)
class IceCandidate:
    """A trickled ICE candidate (RTCIceCandidateInit); an empty candidate ends the trickle."""

    candidate: str
    sdp_mid: str | None = None
    sdp_mline_index: int | None = None
    username_fragment: str | None = None

    def __post_init__(self) -> None:
        if utf8_len(self.candidate) > MAX_CANDIDATE_BYTES:
            invalid(f"candidate.candidate: at most {MAX_CANDIDATE_BYTES} bytes")
        if self.candidate and self.sdp_mid is None and self.sdp_mline_index is None:
            invalid("candidate: needs sdpMid or sdpMLineIndex")

    def to_json(self) -> dict[str, Any]:
        """The relay payload as the peer receives it (null members left out)."""
        init: dict[str, Any] = {"candidate": self.candidate}
        if self.sdp_mid is not None:
            init["sdpMid"] = self.sdp_mid
        if self.sdp_mline_index is not None:
            init["sdpMLineIndex"] = self.sdp_mline_index
        if self.username_fragment is not None:
            init["usernameFragment"] = self.username_fragment
        return {"kind": "candidate", "candidate": init}


RelayPayload = SessionDescription | IceCandidate


_CANDIDATE_FIELDS: Final = frozenset({"candidate", "sdpMid", "sdpMLineIndex", "usernameFragment"})


def _well_formed_candidate(raw: Mapping[str, Any]) -> IceCandidate | None:
    """The common payload — a candidate with every field well formed — checked in one pass
    with no field reader; None for anything else, which the field reader then accepts or
    refuses naming the field (so the two agree on what is valid: tests/unit/test_protocol.py).
    A call's trickle is most of the `relay` frames a server sees."""
    init = raw.get("candidate")
    if len(raw) != 2 or raw.get("kind") != "candidate" or type(init) is not dict:
        return None
    if not init.keys() <= _CANDIDATE_FIELDS:
        return None
    candidate = init.get("candidate")
    mid = init.get("sdpMid")
    index = init.get("sdpMLineIndex")
    fragment = init.get("usernameFragment")
    if not (
        type(candidate) is str
        and len(candidate) <= MAX_CANDIDATE_BYTES
        and (mid is None or (type(mid) is str and len(mid) <= 64))
        and (index is None or (type(index) is int and 0 <= index <= 1023))
        and (fragment is None or (type(fragment) is str and len(fragment) <= 256))
    ):
        return None
    return IceCandidate(candidate, mid, index, fragment)  # checks its bytes and sdpMid/index


def parse_relay_payload(raw: Any) -> RelayPayload:
    """Validate a `relay` payload: a description or a candidate, nothing else."""
    if type(raw) is dict and (candidate := _well_formed_candidate(raw)) is not None:
        return candidate
    return read_relay_payload(raw)


def read_relay_payload(raw: Any) -> RelayPayload:
    """`parse_relay_payload` by the field reader alone: the rules, with an error per field."""
    if not isinstance(raw, Mapping):
        invalid(f"relay.payload: expected an object, got {describe(raw)}")
    outer = Fields(raw, "relay.payload", implicit=())
    kind = outer.text("kind", max_chars=16)
    if kind == "description":
        inner = Fields(outer.mapping("description"), "description", implicit=())
        description_type = inner.text("type", max_chars=16)
        sdp = inner.text("sdp", max_chars=MAX_SDP_BYTES)
        inner.done()
        outer.done()
        if description_type not in DESCRIPTION_TYPES:
            invalid(f"description.type: expected one of {', '.join(DESCRIPTION_TYPES)}")
        return SessionDescription(description_type, sdp)
    if kind == "candidate":
        inner = Fields(outer.mapping("candidate"), "candidate", implicit=())
        candidate = IceCandidate(
            candidate=inner.text("candidate", max_chars=MAX_CANDIDATE_BYTES),
            sdp_mid=inner.optional_text("sdpMid", max_chars=64),
            sdp_mline_index=inner.optional_integer("sdpMLineIndex", 0, 1023),
            username_fragment=inner.optional_text("usernameFragment", max_chars=256),
        )
        inner.done()
        outer.done()
        return candidate
    invalid("relay.payload.kind: expected 'description' or 'candidate'")

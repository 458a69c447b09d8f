"""The `features` message: one browser's summary of the last window, validated strictly."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from server.core.protocol import SessionRole

MIN_WINDOW_MS: Final = 200
MAX_WINDOW_MS: Final = 5000
MAX_SEGMENTS: Final = 50
# Session time is milliseconds since the session started; a week is far beyond any session.
MAX_T_MS: Final = 7 * 24 * 3600 * 1000
MIN_LEVEL_DBFS: Final = -160.0  # browsers clamp digital silence (-inf) to this floor
MAX_MOTION: Final = 100.0  # percent of pixels that changed
MAX_RTT_MS: Final = 60_000.0
MAX_FRAMES_PER_WINDOW: Final = 1000

THERAPIST: Final = 0  # role indexes used by the engine's per-role arrays
CLIENT: Final = 1


class CueError(Exception):
    """Base class of the cue engine's errors."""


class FeatureError(CueError, ValueError):
    """A features message that breaks the documented format."""


@dataclass(frozen=True, slots=True)
class NetStats:
    """Connection stats as this browser measures the stream it receives from its peer."""

    rtt_ms: float | None = None  # round-trip time of the selected candidate pair
    jitter_ms: float | None = None  # inbound audio jitter
    loss: float | None = None  # inbound packet loss in the window, 0..1
    frames_decoded: int | None = None  # inbound video frames decoded in the window
    frames_frozen: int | None = None  # inbound video freezes that started in the window

    def __post_init__(self) -> None:
        for name, value, high in (
            ("rtt_ms", self.rtt_ms, MAX_RTT_MS),
            ("jitter_ms", self.jitter_ms, MAX_RTT_MS),
            ("loss", self.loss, 1.0),
            ("frames_decoded", self.frames_decoded, MAX_FRAMES_PER_WINDOW),
            ("frames_frozen", self.frames_frozen, MAX_FRAMES_PER_WINDOW),
        ):
            if value is not None and not 0 <= value <= high:
                raise FeatureError(f"net.{name}: {value!r} is outside [0, {high}]")


@dataclass(frozen=True, slots=True)
class FeatureFrame:
    """One role's speech, voice level, motion, presence and connection over one window."""

    role: SessionRole
    t_ms: int  # window end, session time
    window_ms: int
    voiced: tuple[tuple[int, int], ...]  # [start, end) in session ms, ordered, inside the window
    level_dbfs: float
    motion: float  # percent of pixels changed, smoothed over 0.5 s
    frame_present: bool | None = None  # None: the browser cannot tell
    frozen: bool = False  # this browser's own camera track is frozen or stalled
    net: NetStats | None = None
    video_off: bool = False  # video is off by choice: audio only (either side) or camera off

    def __post_init__(self) -> None:
        if type(self.role) is not SessionRole:
            raise FeatureError(f"role: expected one of {_roles()}, got {self.role!r}")
        if not MIN_WINDOW_MS <= self.window_ms <= MAX_WINDOW_MS:
            _check_range("window_ms", self.window_ms, MIN_WINDOW_MS, MAX_WINDOW_MS)
        if not self.window_ms <= self.t_ms <= MAX_T_MS:
            _check_range("t_ms", self.t_ms, self.window_ms, MAX_T_MS)
        if len(self.voiced) > MAX_SEGMENTS:
            raise FeatureError(f"voiced: at most {MAX_SEGMENTS} segments, got {len(self.voiced)}")
        earliest = self.t_ms - self.window_ms
        for i, (start, end) in enumerate(self.voiced):
            if not earliest <= start < end <= self.t_ms:
                raise FeatureError(
                    f"voiced[{i}]: segment [{start}, {end}] must satisfy "
                    f"{earliest} <= start < end <= {self.t_ms} (inside the window)"
                )
            earliest = end  # the next segment may not start before this one ends
        if not MIN_LEVEL_DBFS <= self.level_dbfs <= 0.0:
            _check_range("level_dbfs", self.level_dbfs, MIN_LEVEL_DBFS, 0.0)
        if not 0.0 <= self.motion <= MAX_MOTION:
            _check_range("motion", self.motion, 0.0, MAX_MOTION)

    @property
    def voiced_ms(self) -> int:
        """Milliseconds of speech in the window."""
        return sum(end - start for start, end in self.voiced)

    def to_message(self) -> dict[str, Any]:
        """The wire form (a JSON-ready dict), the inverse of `parse_features`."""
        message: dict[str, Any] = {
            "type": "features",
            "role": self.role.value,
            "t_ms": self.t_ms,
            "window_ms": self.window_ms,
            "voiced": [[start, end] for start, end in self.voiced],
            "level_dbfs": self.level_dbfs,
            "motion": self.motion,
            "frame_present": self.frame_present,
            "frozen": self.frozen,
        }
        if self.video_off:
            message["video_off"] = True
        if self.net is not None:
            message["net"] = {
                name: getattr(self.net, name)
                for name in _NET_FIELDS
                if getattr(self.net, name) is not None
            }
        return message


_REQUIRED: Final = frozenset(
    {"type", "role", "t_ms", "window_ms", "voiced", "level_dbfs", "motion"}
)
MESSAGE_FIELDS: Final = (
    "type",
    "role",
    "t_ms",
    "window_ms",
    "voiced",
    "level_dbfs",
    "motion",
    "frame_present",
    "frozen",
    "video_off",
    "net",
)  # every top-level field of the message, in documentation order
_ALLOWED: Final = frozenset(MESSAGE_FIELDS)
_NET_FIELDS: Final = ("rtt_ms", "jitter_ms", "loss", "frames_decoded", "frames_frozen")
_NET_ALLOWED: Final = frozenset(_NET_FIELDS)
_ROLE_BY_NAME: Final = {role.value: role for role in SessionRole}

# The checks below test `type(x) is int` rather than isinstance: JSON yields plain ints,
# and a bool (an int subclass) is never a valid time or count. This is the hot path of
# every features message, so field names for errors are only built on failure.


def parse_features(obj: Mapping[str, Any]) -> FeatureFrame:
    """Validate a decoded `features` message and return its frame; raise FeatureError."""
    if type(obj) is not dict and not isinstance(obj, Mapping):
        raise FeatureError(f"features: expected a JSON object, got {type(obj).__name__}")
    keys = obj.keys()
    if not keys >= _REQUIRED:
        missing = ", ".join(sorted(_REQUIRED - keys))
        raise FeatureError(f"features: missing field(s) {missing}")
    if not keys <= _ALLOWED:
        unknown = ", ".join(sorted(map(str, keys - _ALLOWED)))
        raise FeatureError(f"features: unknown field(s) {unknown}")
    if obj["type"] != "features":
        raise FeatureError(f"type: expected 'features', got {obj['type']!r}")
    role_name = obj["role"]
    role = _ROLE_BY_NAME.get(role_name) if type(role_name) is str else None
    if role is None:
        raise FeatureError(f"role: expected one of {_roles()}, got {role_name!r}")
    frame_present = obj.get("frame_present")
    if frame_present is not None and type(frame_present) is not bool:
        raise FeatureError(f"frame_present: expected true, false or null, got {frame_present!r}")
    frozen = obj.get("frozen", False)
    if type(frozen) is not bool:
        raise FeatureError(f"frozen: expected true or false, got {frozen!r}")
    video_off = obj.get("video_off", False)
    if type(video_off) is not bool:
        raise FeatureError(f"video_off: expected true or false, got {video_off!r}")
    return FeatureFrame(
        role,
        _integer("t_ms", obj["t_ms"]),
        _integer("window_ms", obj["window_ms"]),
        _segments(obj["voiced"]),
        _number("level_dbfs", obj["level_dbfs"]),
        _number("motion", obj["motion"]),
        frame_present,
        frozen,
        _net(obj.get("net")),
        video_off,
    )


def _segments(raw: Any) -> tuple[tuple[int, int], ...]:
    if type(raw) is not list:
        raise FeatureError(f"voiced: expected a list of [start, end] pairs, got {raw!r}")
    if len(raw) > MAX_SEGMENTS:
        raise FeatureError(f"voiced: at most {MAX_SEGMENTS} segments, got {len(raw)}")
    segments: list[tuple[int, int]] = []
    for pair in raw:
        if type(pair) is not list or len(pair) != 2:
            raise FeatureError(f"voiced[{len(segments)}]: expected [start, end], got {pair!r}")
        start, end = pair
        if type(start) is not int or type(end) is not int:
            index = len(segments)
            _integer(f"voiced[{index}][0]", start)
            _integer(f"voiced[{index}][1]", end)
        segments.append((start, end))
    return tuple(segments)


def _net(raw: Any) -> NetStats | None:
    if raw is None:
        return None
    if type(raw) is not dict and not isinstance(raw, Mapping):
        raise FeatureError(f"net: expected an object or null, got {raw!r}")
    if not raw.keys() <= _NET_ALLOWED:
        unknown = ", ".join(sorted(map(str, raw.keys() - _NET_ALLOWED)))
        raise FeatureError(f"net: unknown field(s) {unknown}")
    rtt, jitter, loss = raw.get("rtt_ms"), raw.get("jitter_ms"), raw.get("loss")
    decoded, frozen = raw.get("frames_decoded"), raw.get("frames_frozen")
    return NetStats(
        None if rtt is None else _number("net.rtt_ms", rtt),
        None if jitter is None else _number("net.jitter_ms", jitter),
        None if loss is None else _number("net.loss", loss),
        None if decoded is None else _integer("net.frames_decoded", decoded),
        None if frozen is None else _integer("net.frames_frozen", frozen),
    )


def _integer(field: str, value: Any) -> int:
    if type(value) is not int:
        raise FeatureError(f"{field}: expected an integer, got {value!r}")
    return value


def _number(field: str, value: Any) -> float:
    kind = type(value)
    if kind is float:
        if value - value != 0.0:  # inf - inf and nan - nan are nan
            raise FeatureError(f"{field}: expected a finite number, got {value!r}")
        return value  # type: ignore[no-any-return]
    if kind is int:
        return float(value)
    raise FeatureError(f"{field}: expected a number, got {value!r}")


def _check_range(field: str, value: float | None, low: float, high: float) -> None:
    if value is not None and not low <= value <= high:
        raise FeatureError(f"{field}: {value!r} is outside [{low}, {high}]")


def _roles() -> tuple[str, ...]:
    return tuple(role.value for role in SessionRole)

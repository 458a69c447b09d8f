"""Carrying a cue engine's working state to another process, as plain JSON data (pure).

The engine and its parts (rules, windows, the turn tracker) keep their state in `__slots__`
of numbers, lists, tuples and bounded deques: timestamps, counters, sums and histograms of
speech, gaps and motion. `dump_slots` writes those fields as JSON-ready data; `load_slots`
writes them back into a freshly built object of the same shape, so nothing but known fields
of existing objects is ever set (no class is named by the data, nothing is evaluated). The
configuration (`_cfg`) is never carried: the receiving process uses its own.

What travels is bounded by the engine's own caps (a few kilobytes) and holds no audio,
video or words: only times, counts and levels.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any, Final

_NEVER_CARRIED: Final = frozenset({"_cfg"})
_MAX_DEPTH: Final = 8


def _slots(kind: type) -> tuple[str, ...]:
    names: list[str] = []
    for klass in kind.__mro__:
        declared = klass.__dict__.get("__slots__", ())
        names.extend((declared,) if isinstance(declared, str) else declared)
    return tuple(names)


def dump_slots(obj: object, *, skip: Iterable[str] = ()) -> dict[str, Any]:
    """The slot fields of `obj` (and of the objects in them) as plain data."""
    left_out = _NEVER_CARRIED | frozenset(skip)
    names = _slots(type(obj))
    if not names:
        raise TypeError(f"{type(obj).__name__} has no slots to carry")
    return {name: _dump(getattr(obj, name), 0) for name in names if name not in left_out}


def _dump(value: object, depth: int) -> Any:
    if depth > _MAX_DEPTH:
        raise TypeError("nested too deeply to carry")
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple | deque):
        return [_dump(item, depth + 1) for item in value]
    return dump_slots(value)


def load_slots(target: object, data: Mapping[str, Any], *, skip: Iterable[str] = ()) -> None:
    """Set `target`'s slot fields from `dump_slots` data of an object of the same shape.
    ValueError (or TypeError) when the data does not fit; `target` is then half-written, so
    load into a fresh object and keep it only when this returns."""
    if not isinstance(data, Mapping):
        raise ValueError("carried state is not a mapping")
    left_out = _NEVER_CARRIED | frozenset(skip)
    for name in _slots(type(target)):
        if name in left_out:
            continue
        if name not in data:
            raise ValueError(f"carried state lacks {name!r}")
        setattr(target, name, _load(getattr(target, name), data[name], 0))


def _load(current: object, value: Any, depth: int) -> Any:
    """`value` shaped like `current` (the fresh object's field), or ValueError."""
    if depth > _MAX_DEPTH:
        raise ValueError("nested too deeply")
    if isinstance(current, bool):
        if not isinstance(value, bool):
            raise ValueError("expected a truth value")
        return value
    if isinstance(current, int | float) or current is None:
        if value is None and (current is None or isinstance(current, float)):
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError("expected a number")
        return float(value) if isinstance(current, float) else value
    if isinstance(current, str):
        if not isinstance(value, str):
            raise ValueError("expected text")
        return value
    if isinstance(current, deque):
        if not isinstance(value, list) or (
            current.maxlen is not None and len(value) > current.maxlen
        ):
            raise ValueError("expected a bounded list")
        return deque((_plain(item, depth + 1) for item in value), maxlen=current.maxlen)
    if isinstance(current, list | tuple):
        if not isinstance(value, list):
            raise ValueError("expected a list")
        parts = bool(current) and all(_has_slots(item) for item in current)
        if parts and len(value) != len(current):
            raise ValueError("a list of parts changed its length")
        if len(current) == len(value):  # parts, per-role pairs, buckets: element by element
            items = [_load(old, new, depth + 1) for old, new in zip(current, value, strict=True)]
        else:
            items = [_plain(item, depth + 1) for item in value]
        return tuple(items) if isinstance(current, tuple) else items
    if _has_slots(current):
        load_slots(current, value)
        return current
    raise ValueError(f"cannot carry a {type(current).__name__}")


def _has_slots(value: object) -> bool:
    return not isinstance(value, bool | int | float | str | list | tuple | deque) and bool(
        _slots(type(value))
    )


def _plain(value: Any, depth: int) -> Any:
    """An item of a growing container: a number, or a (start, end)-like pair as a tuple."""
    if depth > _MAX_DEPTH:
        raise ValueError("nested too deeply")
    if isinstance(value, bool) or value is None:
        raise ValueError("expected a number")
    if isinstance(value, int | float):
        return value
    if isinstance(value, list):
        return tuple(_plain(item, depth + 1) for item in value)
    raise ValueError("expected numbers")

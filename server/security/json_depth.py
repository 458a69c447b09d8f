"""Bound JSON nesting before parsing: `json.loads` recurses once per level and a body of
thirty thousand `[` ends in RecursionError. This scanner counts brackets without recursion."""

from __future__ import annotations

MAX_JSON_DEPTH = 32


class JsonTooDeep(ValueError):
    """The document nests arrays and objects deeper than allowed.

    A ValueError, so parsers that already turn bad JSON into a client error handle it too.
    """


def json_depth_exceeds(text: str | bytes, max_depth: int) -> bool:
    """True when brackets outside strings nest deeper than `max_depth` (one pass, no recursion).

    Works on UTF-8 bytes as well as text: no multi-byte character contains `"`, `\\`, `[`,
    `{`, `]` or `}`. Malformed JSON is left to the parser; only depth is judged here.
    """
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    depth = 0
    in_string = False
    escaped = False
    for byte in data:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > max_depth:
                return True
        elif byte in (0x5D, 0x7D) and depth:  # ] } (stray closers cannot bank depth)
            depth -= 1
    return False


def check_json_depth(text: str | bytes, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Raise JsonTooDeep when `text` nests deeper than `max_depth`; call it before json.loads."""
    if json_depth_exceeds(text, max_depth):
        raise JsonTooDeep(f"JSON nested deeper than {max_depth} levels.")

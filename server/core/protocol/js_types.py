"""The protocol contract for the browser: `client_web/static/js/protocol_types.js`, generated.

`js_types()` renders, from the Python classes, the constants the browser needs and a JSDoc
`@typedef` for every message in both directions, so plain JS with `// @ts-check` can import
them. Regenerate with `python -m server.core.protocol.js_types --write`; a test fails when the
committed file differs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import types
import typing
from collections.abc import Mapping, Sequence
from enum import Enum
from pathlib import Path
from typing import Any, Final

from server.core.protocol.client_messages import CLIENT_MESSAGE_CLASSES, Features
from server.core.protocol.codes import (
    DROP_AFTER_IDLE_S,
    HELLO_TIMEOUT_S,
    MAX_ANSWER_TEXT_CHARS,
    MAX_FEATURES_BYTES,
    MAX_FRAME_BYTES,
    NO_RECONNECT_CLOSE_CODES,
    PING_AFTER_IDLE_S,
    PROTOCOL_VERSION,
    AccessEnd,
    CloseCode,
)
from server.core.protocol.relay import DESCRIPTION_TYPES, IceCandidate, SessionDescription
from server.core.protocol.server_messages import SERVER_MESSAGE_CLASSES, JsType, wire_name

COMMAND: Final = "python -m server.core.protocol.js_types --write"
TARGET: Final = Path(__file__).resolve().parents[3] / "client_web/static/js/protocol_types.js"

_RELAY_TYPEDEFS: Final = {
    SessionDescription: (
        "RelayDescription",
        "An SDP offer or answer, relayed opaquely.",
        '{kind: "description", description: {type: '
        + " | ".join(json.dumps(t) for t in DESCRIPTION_TYPES)
        + ", sdp: string}}",
    ),
    IceCandidate: (
        "RelayCandidate",
        'A trickled ICE candidate (RTCIceCandidateInit); `candidate: ""` ends the trickle.',
        '{kind: "candidate", candidate: {candidate: string, sdpMid?: string,'
        " sdpMLineIndex?: number, usernameFragment?: string}}",
    ),
}


def typedef_name(type_name: str) -> str:
    """`checkin-result` → `CheckinResultMessage`: the JSDoc name of a message type."""
    return "".join(part.capitalize() for part in type_name.split("-")) + "Message"


def _is_optional(tp: Any) -> bool:
    return type(None) in typing.get_args(tp) and _is_union(tp)


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType)


def _without_none(tp: Any) -> Any:
    rest = [arg for arg in typing.get_args(tp) if arg is not type(None)]
    return rest[0] if len(rest) == 1 else typing.Union[tuple(rest)]  # noqa: UP007


class _Renderer:
    """Turns Python field types into TypeScript-in-JSDoc types, collecting nested typedefs."""

    def __init__(self) -> None:
        self.nested: dict[str, tuple[str, str]] = {}  # name -> (summary, type text)

    def type_of(self, tp: Any) -> str:
        """The JS type of a Python annotation (as resolved by `typing.get_type_hints`)."""
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if origin is typing.Annotated:
            marks = [m for m in tp.__metadata__ if isinstance(m, JsType)]
            return marks[0].text if marks else self.type_of(args[0])
        if tp is type(None):
            return "null"
        if tp is Any or tp is object:
            return "unknown"
        if tp is bool:
            return "boolean"
        if tp in (int, float):
            return "number"
        if tp is str:
            return "string"
        if origin is typing.Literal:
            return " | ".join(_literal(arg) for arg in args)
        if isinstance(tp, type) and issubclass(tp, Enum):
            return " | ".join(_literal(member) for member in tp)
        if _is_union(tp):
            return " | ".join(self.type_of(arg) for arg in args)
        if tp in _RELAY_TYPEDEFS:
            name, summary, text = _RELAY_TYPEDEFS[tp]
            self.nested[name] = (summary, text)
            return name
        if dataclasses.is_dataclass(tp) and isinstance(tp, type):
            self.nested[tp.__name__] = (_summary(tp), self._object(tp))
            return tp.__name__
        if origin is not None and isinstance(origin, type):
            if issubclass(origin, Mapping):
                key, value = (self.type_of(arg) for arg in args)
                record = f"Record<{key}, {value}>"
                return record if key == "string" else f"Partial<{record}>"
            if issubclass(origin, Sequence) and not issubclass(origin, str):
                return f"Array<{self.type_of(args[0])}>"
        raise TypeError(f"no JavaScript type for {tp!r}")

    def _object(self, cls: type) -> str:
        hints = typing.get_type_hints(cls, include_extras=True)
        members = [self.member(f.name, hints[f.name]) for f in dataclasses.fields(cls)]
        return "{" + ", ".join(members) + "}"

    def member(self, name: str, tp: Any) -> str:
        """`name: type`, or `name?: type` for an optional field."""
        if _is_optional(tp):
            return f"{name}?: {self.type_of(_without_none(tp))}"
        return f"{name}: {self.type_of(tp)}"


def _literal(value: Any) -> str:
    return json.dumps(value.value if isinstance(value, Enum) else value)


def _summary(cls: type) -> str:
    return (cls.__doc__ or cls.__name__).strip().splitlines()[0]


def _message_typedef(renderer: _Renderer, cls: type) -> list[str]:
    """The JSDoc block of one message: a `@typedef {object}` with a `@property` per field."""
    type_name: str = getattr(cls, "TYPE")  # noqa: B009 - a ClassVar every message class has
    name = typedef_name(type_name)
    if cls is Features:  # its body is the cue engine's, checked there
        text = '{type: "features", id?: string} & Record<string, unknown>'
        return ["/**", f" * {_summary(cls)}", f" * @typedef {{{text}}} {name}", " */"]
    hints = typing.get_type_hints(cls, include_extras=True)
    lines = ["/**", f" * {_summary(cls)}", f" * @typedef {{object}} {name}"]
    lines.append(f" * @property {{{json.dumps(type_name)}}} type")
    for field in dataclasses.fields(cls):
        tp = hints[field.name]
        name = wire_name(field.name)
        if _is_optional(tp):
            rendered = renderer.type_of(_without_none(tp))
            lines.append(f" * @property {{{rendered}}} [{name}]")
        else:
            lines.append(f" * @property {{{renderer.type_of(tp)}}} {name}")
    lines.append(" */")
    return lines


def _union(name: str, summary: str, members: Sequence[str]) -> list[str]:
    return ["/**", f" * {summary}", f" * @typedef {{{' | '.join(members)}}} {name}", " */"]


def _frozen_object(name: str, entries: Mapping[str, int | str]) -> list[str]:
    body = [f"  {key}: {_literal(value)}," for key, value in entries.items()]
    return [f"export const {name} = Object.freeze({{", *body, "});"]


def js_types() -> str:
    """The whole text of `protocol_types.js`."""
    renderer = _Renderer()
    server_blocks = [_message_typedef(renderer, cls) for cls in SERVER_MESSAGE_CLASSES]
    client_blocks = [_message_typedef(renderer, cls) for cls in CLIENT_MESSAGE_CLASSES]
    out = [
        "// @ts-check",
        "// GENERATED from server/core/protocol/ by",
        f"//   {COMMAND}",
        "// Do not edit: change the Python protocol and regenerate (a test compares the two).",
        "",
        "/** The protocol version this contract describes; `hello.version` must equal it. */",
        f"export const PROTOCOL_VERSION = {PROTOCOL_VERSION};",
        "",
        "/** WebSocket close codes: the standard ones the protocol uses, and its own. */",
        *_frozen_object("CloseCode", {code.name: code.value for code in CloseCode}),
        "",
        "/** Why access ended: the close reason the server sends with 4401, 4403 and 4429. */",
        *_frozen_object("AccessEnd", {end.name: end.value for end in AccessEnd}),
        "",
        "/** After these close codes a client shows the reason and does not reconnect. */",
        "export const NO_RECONNECT_CLOSE_CODES = Object.freeze(["
        + ", ".join(str(code) for code in sorted(NO_RECONNECT_CLOSE_CODES))
        + "]);",
        "",
        "/** Limits the browser keeps to (sizes in UTF-8 bytes, times in milliseconds). */",
        f"export const MAX_FRAME_BYTES = {MAX_FRAME_BYTES};",
        f"export const MAX_FEATURES_BYTES = {MAX_FEATURES_BYTES};",
        f"export const MAX_ANSWER_TEXT_CHARS = {MAX_ANSWER_TEXT_CHARS};",
        f"export const HELLO_TIMEOUT_MS = {HELLO_TIMEOUT_S * 1000};",
        f"export const PING_AFTER_IDLE_MS = {PING_AFTER_IDLE_S * 1000};",
        f"export const DROP_AFTER_IDLE_MS = {DROP_AFTER_IDLE_S * 1000};",
        "",
        "// --- server → client messages ---",
        "",
    ]
    for block in server_blocks:
        out += [*block, ""]
    names = [typedef_name(cls.TYPE) for cls in SERVER_MESSAGE_CLASSES]
    out += [*_union("ServerMessage", "Any message the server sends.", names), ""]
    out += ["// --- client → server messages ---", ""]
    for block in client_blocks:
        out += [*block, ""]
    names = [typedef_name(cls.TYPE) for cls in CLIENT_MESSAGE_CLASSES]
    out += [*_union("ClientMessage", "Any message a browser may send.", names), ""]
    out += ["// --- parts of messages ---", ""]
    for name, (summary, text) in sorted(renderer.nested.items()):
        out += ["/**", f" * {summary}", f" * @typedef {{{text}}} {name}", " */", ""]
    out += [*_union("RelayPayload", "A `relay` payload.", ["RelayDescription", "RelayCandidate"])]
    out += [""]
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the generated file, or write it (`--write`) where the browser imports it from."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--write", action="store_true", help=f"write {TARGET.name}")
    args = parser.parse_args(argv)
    text = js_types()
    if args.write:
        TARGET.write_text(text, encoding="utf-8")
        print(f"wrote {TARGET}")
    else:
        print(text, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

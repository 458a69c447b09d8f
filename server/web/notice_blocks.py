"""Notice Markdown (headings, paragraphs, lists) as plain blocks for pages and the API.

The one place a notice's Markdown is read: the consent page renders the blocks in an
autoescaped template, the client's visit page gets them as JSON (`Block.as_json`) and places
their text with `textContent`. Nothing is ever interpreted as HTML.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

BlockKind = Literal["heading", "paragraph", "list"]

_HEADING = re.compile(r"#{1,6}(?:\s+|$)")
_BULLET = re.compile(r"[-*+]\s+")


@dataclass
class Block:
    """One heading, paragraph or bullet list."""

    kind: BlockKind
    text: str = ""
    items: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, str | list[str]]:
        """`{kind, text}` for a heading or paragraph, `{kind, items}` for a list."""
        if self.kind == "list":
            return {"kind": self.kind, "items": list(self.items)}
        return {"kind": self.kind, "text": self.text}


def notice_blocks(markdown: str) -> list[Block]:
    """Split a notice body into blocks; any other Markdown is shown as plain text.

    A blank line ends a paragraph or a list. Lines wrapped inside a paragraph join it; a line
    that follows a list item without a blank line (indented or not) continues that item.
    """
    blocks: list[Block] = []
    current: Block | None = None
    for raw in markdown.splitlines():
        line = raw.strip()
        heading = _HEADING.match(line)
        bullet = _BULLET.match(line)
        if not line:
            current = None
        elif heading:
            blocks.append(Block("heading", line[heading.end() :].strip()))
            current = None
        elif bullet:
            if current is None or current.kind != "list":
                current = Block("list")
                blocks.append(current)
            current.items.append(line[bullet.end() :])
        elif current is not None and current.kind == "list":
            current.items[-1] += " " + line
        elif current is not None and current.kind == "paragraph":
            current.text += " " + line
        else:
            current = Block("paragraph", line)
            blocks.append(current)
    return blocks

"""Notice Markdown (headings, paragraphs, lists) as plain blocks for autoescaped templates."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Block:
    """One heading, paragraph or bullet list."""

    kind: str  # "heading" | "paragraph" | "list"
    text: str = ""
    items: list[str] = field(default_factory=list)


def notice_blocks(markdown: str) -> list[Block]:
    """Split a notice body into blocks; any other Markdown is shown as plain text."""
    blocks: list[Block] = []
    current: Block | None = None
    for raw in markdown.splitlines():
        line = raw.strip()
        if not line:
            current = None
        elif line.startswith("#"):
            blocks.append(Block("heading", line.lstrip("#").strip()))
            current = None
        elif line.startswith(("- ", "* ")):
            if current is None or current.kind != "list":
                current = Block("list")
                blocks.append(current)
            current.items.append(line[2:].strip())
        elif current is not None and current.kind == "list" and raw.startswith("  "):
            current.items[-1] += " " + line
        elif current is not None and current.kind == "paragraph":
            current.text += " " + line
        else:
            current = Block("paragraph", line)
            blocks.append(current)
    return blocks

"""Notice Markdown as blocks: the one renderer behind the consent page and the visit page."""

from __future__ import annotations

from pathlib import Path

import pytest

from privacy.consent import OFFERED_PURPOSES, Notice, Purpose, load_notices
from server.web.notice_blocks import Block, notice_blocks

NOTICES = Path(__file__).parents[2] / "privacy" / "notices"


def telehealth_body() -> str:
    """The published telehealth notice v1, read from its file (its list items wrap lines)."""
    document = (NOTICES / "telehealth" / "v1.md").read_text(encoding="utf-8")
    return Notice.from_markdown(Purpose.TELEHEALTH, 1, document).body


def test_the_real_telehealth_notice_keeps_each_wrapped_list_item_whole() -> None:
    lists = [b for b in notice_blocks(telehealth_body()) if b.kind == "list"]

    assert len(lists) == 1
    items = lists[0].items
    assert len(items) == 5
    assert items[1] == (
        "the messages your browser and your therapist's browser exchange to set up the call "
        "(these describe network addresses and video settings, not what you say or show);"
    )
    assert items[3].startswith("the buttons you choose to press during the session")
    assert items[3].endswith(
        "(they are kept afterwards only if you also agree to conversation cues);"
    )


def test_the_real_telehealth_notice_has_one_paragraph_per_wrapped_paragraph() -> None:
    blocks = notice_blocks(telehealth_body())

    assert [b.kind for b in blocks] == [
        "paragraph",
        "heading",
        "paragraph",
        "list",
        "heading",
        "paragraph",
        "heading",
        "paragraph",
        "heading",
        "paragraph",
        "heading",
        "paragraph",
    ]
    assert blocks[0].text == (
        "This page explains what happens when you meet your therapist through Attune, so that "
        "you can decide whether you are comfortable with it. Please read it at your own pace."
    )
    assert blocks[-1].text.startswith("You can withdraw from the consent page, at any time")
    assert blocks[-1].text.endswith("we will show you the new version and ask you again.")


def test_every_published_notice_renders_with_no_markdown_left_in_the_text() -> None:
    catalog = load_notices()
    for purpose in OFFERED_PURPOSES:
        for block in notice_blocks(catalog.current(purpose).body):
            for text in [block.text, *block.items]:
                assert not text.startswith(("#", "- ", "* ")), (purpose, text)
                assert "\n" not in text


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        pytest.param(
            "- first item\n  wrapped with two spaces\n- second",
            [Block("list", items=["first item wrapped with two spaces", "second"])],
            id="two-space continuation",
        ),
        pytest.param(
            "* first item\n\twrapped with a tab\n* second",
            [Block("list", items=["first item wrapped with a tab", "second"])],
            id="tab continuation",
        ),
        pytest.param(
            "- first item\nwrapped without indent\n- second",
            [Block("list", items=["first item wrapped without indent", "second"])],
            id="lazy continuation",
        ),
        pytest.param(
            "- only item\n\nA paragraph after a blank line.",
            [
                Block("list", items=["only item"]),
                Block("paragraph", "A paragraph after a blank line."),
            ],
            id="blank line ends the list",
        ),
        pytest.param(
            "One paragraph\nwrapped over\nthree lines.\n\nAnother.",
            [
                Block("paragraph", "One paragraph wrapped over three lines."),
                Block("paragraph", "Another."),
            ],
            id="wrapped paragraph",
        ),
        pytest.param(
            "Intro line:\n- a\n- b",
            [Block("paragraph", "Intro line:"), Block("list", items=["a", "b"])],
            id="list right after a paragraph",
        ),
        pytest.param(
            "## Heading\nText under it\ncontinues.",
            [Block("heading", "Heading"), Block("paragraph", "Text under it continues.")],
            id="heading then wrapped paragraph",
        ),
        pytest.param(
            "#hashtag is not a heading",
            [Block("paragraph", "#hashtag is not a heading")],
            id="hash without a space",
        ),
        pytest.param(
            "<script>alert(1)</script>",
            [Block("paragraph", "<script>alert(1)</script>")],
            id="html stays text",
        ),
    ],
)
def test_markdown_becomes_blocks(markdown: str, expected: list[Block]) -> None:
    assert notice_blocks(markdown) == expected


def test_blocks_as_json_carry_text_or_items() -> None:
    blocks = notice_blocks("## Title\n\nSome text.\n\n- one\n- two")

    assert [b.as_json() for b in blocks] == [
        {"kind": "heading", "text": "Title"},
        {"kind": "paragraph", "text": "Some text."},
        {"kind": "list", "items": ["one", "two"]},
    ]

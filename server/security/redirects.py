"""Where sign-in may send a browser afterwards: only a path on this site, never another host."""

from __future__ import annotations

from urllib.parse import unquote

DEFAULT_NEXT = "/"
MAX_NEXT_CHARS = 512
# Decoding more often than this is an attack, not a link we made.
_MAX_DECODES = 3


def _plain_local_path(text: str) -> bool:
    """One leading slash, no second one, no backslash, no control character or whitespace."""
    if not text.startswith("/") or text.startswith("//"):
        return False
    return not any(ch == "\\" or ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text)


def is_same_site_path(raw: str) -> bool:
    """True for a same-site path, checked as sent and after each round of percent-decoding.

    Browsers strip tabs and newlines from URLs and treat `\\` as `/`, so `/%09/evil.example`
    or `/\\evil.example` would become the protocol-relative `//evil.example`.
    """
    if len(raw) > MAX_NEXT_CHARS:
        return False
    text = raw
    for _ in range(_MAX_DECODES):
        if not _plain_local_path(text):
            return False
        decoded = unquote(text)
        if decoded == text:
            return True
        text = decoded
    return False


def safe_next(raw: str | None, default: str = DEFAULT_NEXT) -> str:
    """`raw` when it is a same-site path, else the default page."""
    if raw and is_same_site_path(raw):
        return raw
    return default

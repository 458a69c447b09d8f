"""A coarse device description from a User-Agent: browser family and OS family only, so the
account's session list helps its owner recognise a sign-in without storing a fingerprint."""

from __future__ import annotations

from typing import Final

# Order matters: Edge and Opera say "Chrome" too, Chrome says "Safari", Android says "Linux".
_BROWSERS: Final = (
    ("Edg/", "Edge"),
    ("OPR/", "Opera"),
    ("Firefox/", "Firefox"),
    ("Chromium/", "Chromium"),
    ("Chrome/", "Chrome"),
    ("Safari/", "Safari"),
)
_SYSTEMS: Final = (
    ("Android", "Android"),
    ("iPhone", "iOS"),
    ("iPad", "iPadOS"),
    ("Windows", "Windows"),
    ("Mac OS X", "macOS"),
    ("CrOS", "ChromeOS"),
    ("Linux", "Linux"),
)


def describe_device(user_agent: str | None) -> str:
    """E.g. "Firefox on Windows"; "Unknown browser on unknown system" when nothing matches."""
    ua = (user_agent or "")[:512]
    browser = next((name for marker, name in _BROWSERS if marker in ua), "Unknown browser")
    system = next((name for marker, name in _SYSTEMS if marker in ua), "unknown system")
    return f"{browser} on {system}"

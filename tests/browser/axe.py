"""axe-core run in a page by the browser tests (never served by Attune): the findings that
block, serious and critical, under the WCAG 2.1 A and AA rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.async_api import Page

AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"
BLOCKING = ("serious", "critical")
# WCAG 2.1 A and AA rules (colour contrast included).
AXE_OPTIONS = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}}


async def axe_violations(page: Page, axe_source: str) -> list[str]:
    """axe-core's serious and critical findings on the page as it is now, one line each."""
    if not await page.evaluate("typeof window.axe === 'object'"):
        await page.evaluate(axe_source)  # evaluated by the test, never served by Attune
    results: dict[str, Any] = await page.evaluate(
        """async (options) => {
          const { violations, passes } = await axe.run(document, options);
          return { violations, passed: passes.length };
        }""",
        AXE_OPTIONS,
    )
    assert results["passed"] >= 5  # axe ran its rules on this page
    found: list[dict[str, Any]] = results["violations"]
    return [
        f"{v['impact']} {v['id']}: {v['help']} at {[n['target'] for n in v['nodes']]}"
        for v in found
        if v["impact"] in BLOCKING
    ]


async def axe_at_both_sizes(page: Page, axe_source: str) -> list[str]:
    """axe's findings on a phone (360×640) and on a laptop (1280×720)."""
    found = await axe_violations(page, axe_source)
    await page.set_viewport_size({"width": 1280, "height": 720})
    found += [f"(1280×720) {problem}" for problem in await axe_violations(page, axe_source)]
    await page.set_viewport_size({"width": 360, "height": 640})
    return found

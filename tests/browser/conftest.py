"""Browser fixtures: a real Attune server on a TCP port and Debian's headless Chromium.

The server and Playwright share the run's event loop: aiohttp serves while Playwright awaits.
Each test gets its own server and data directory; Playwright's driver and Chromium (one process
per set of flags) are started once per run, and each test's browser contexts are closed after it.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import unused_port
from aiosmtpd.controller import Controller
from playwright.async_api import (
    Browser,
    ConsoleMessage,
    Error,
    Page,
    Playwright,
    ViewportSize,
    async_playwright,
    expect,
)

from server.app import create_app
from server.core.models import Account, Role
from server.keys import AUDIT, DB
from server.services import scheduling
from server.settings import Settings
from tests.browser.axe import AXE
from tests.conftest import add_account, with_migrated_database
from tests.integration.test_email import Mailbox, _free_port

CHROMIUM = Path("/usr/bin/chromium")
# Measured on these machines (see /work/shared/TESTING.md); never `playwright install`.
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
ACTION_TIMEOUT_MS = 10_000
# Assertions wait as long as actions: Argon2 and page loads slow down on a busy 2-core machine.
expect.set_options(timeout=ACTION_TIMEOUT_MS)
THERAPIST_EMAIL = "therapist@example.org"
PHONE_WIDTH, PHONE_HEIGHT = 360, 640
LAPTOP_SIZE: ViewportSize = {"width": 1280, "height": 720}
PHONE_SIZE: ViewportSize = {"width": PHONE_WIDTH, "height": PHONE_HEIGHT}
# Context options for a laptop's window
LAPTOP: dict[str, Any] = {"viewport": LAPTOP_SIZE}
# Context options for a small phone: touch, and the page's own viewport meta tag honoured.
MOBILE: dict[str, Any] = {
    "viewport": {"width": PHONE_WIDTH, "height": PHONE_HEIGHT},
    "is_mobile": True,
    "has_touch": True,
}


@dataclass
class LiveSite:
    """A running Attune server reachable at `base_url` (real clock, SQLite in a temp dir)."""

    app: web.Application
    base_url: str

    def url(self, path: str) -> str:
        """An absolute URL on this server."""
        return f"{self.base_url}{path}"

    async def add_therapist(self, email: str = THERAPIST_EMAIL) -> Account:
        """A therapist account that can sign in with tests.conftest.PASSWORD."""
        return await add_account(self.app, email, Role.THERAPIST)

    async def issue_link(self, therapist: Account, alias: str = "J.M.") -> str:
        """A fresh client, a session starting now, and that session's invite link."""
        now = datetime.now(UTC)
        db, audit = self.app[DB], self.app[AUDIT]
        client = await scheduling.create_client(db, audit, therapist, alias, now)
        _session, invite = await scheduling.create_session(
            db, audit, therapist, client_id=client.id, starts_at=now, minutes=50, now=now
        )
        return self.url(f"/join/{invite.token}")


async def screenshots(
    page: Page, stem: Path, *, back_to: ViewportSize, full_page: bool = False
) -> None:
    """What the person sees at a phone's and a laptop's size, saved as `<stem>-360.png` and
    `<stem>-1280.png` (outside the repository, for looking at; not an assertion); then the
    page goes back to `back_to`."""
    for size in (PHONE_SIZE, LAPTOP_SIZE):
        await page.set_viewport_size(size)
        await page.screenshot(path=f"{stem}-{size['width']}.png", full_page=full_page)
    await page.set_viewport_size(back_to)


@dataclass
class BrowserHarness:
    """Opens pages in isolated contexts and records CSP violations and uncaught errors."""

    browser: Browser
    csp_violations: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    def _on_console(self, message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            self.csp_violations.append(f"{message.location.get('url', '?')}: {message.text}")

    def _on_page_error(self, error: Error) -> None:
        self.page_errors.append(str(error))

    async def new_page(self, **context_options: Any) -> Page:
        """A page in a new browser context: its own cookies, like another person's browser."""
        context = await self.browser.new_context(**context_options)
        context.set_default_timeout(ACTION_TIMEOUT_MS)
        page = await context.new_page()
        page.on("console", self._on_console)
        page.on("pageerror", self._on_page_error)
        return page

    def assert_no_policy_violations(self) -> None:
        """No page broke the Content Security Policy or threw an uncaught error."""
        assert self.csp_violations == []
        assert self.page_errors == []


async def start_site(aiohttp_server: Any, tmp_path: Path, **settings: Any) -> LiveSite:
    """The app on a fixed loopback port, so the invite links it prints are openable, with
    these settings besides its data directory (its database already migrated), host and
    port."""
    port = unused_port()
    data_dir = with_migrated_database(tmp_path / "data")
    configured = Settings(data_dir=data_dir, host="127.0.0.1", port=port, **settings)
    app = create_app(configured)
    await aiohttp_server(app, host="127.0.0.1", port=port)
    return LiveSite(app=app, base_url=configured.base_url)


@pytest.fixture
def axe_source() -> str:
    """axe-core from npm (`npm ci`, for the tests only); in CI a missing copy fails."""
    if not AXE.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{AXE} is missing; `npm ci` (make jscheck) installs it")
        pytest.skip("axe-core is not installed (npm ci)")
    return AXE.read_text()


@pytest.fixture
async def live_site(aiohttp_server: Any, tmp_path: Path) -> LiveSite:
    """The app on a fixed loopback port, so the invite links it prints are openable."""
    return await start_site(aiohttp_server, tmp_path)


@pytest.fixture
async def emergency_site(aiohttp_server: Any, tmp_path: Path) -> LiveSite:
    """The same with the clinic's emergency number set (112), as safety notices show it."""
    return await start_site(aiohttp_server, tmp_path, clinic_emergency_number="112")


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's Chromium; missing is a failure on CI and a skip elsewhere."""
    if not CHROMIUM.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} is missing; `make system-deps` installs it")
        pytest.skip(f"{CHROMIUM} is not installed")
    return CHROMIUM


class LaunchedBrowsers:
    """One headless Chromium per set of command-line flags, launched at its first use and
    kept for the run (a launch and Playwright's driver cost 1-2 s per test on these machines);
    launched again if it crashed or a test closed it."""

    def __init__(self, playwright: Playwright, chromium: Path) -> None:
        self._playwright, self._chromium = playwright, chromium
        self._browsers: dict[tuple[str, ...], Browser] = {}

    async def get(self, args: tuple[str, ...]) -> Browser:
        """The running browser with these flags, with no browser context left open."""
        launched = self._browsers.get(args)
        if launched is None or not launched.is_connected():
            launched = await self._playwright.chromium.launch(
                executable_path=self._chromium, args=list(args), headless=True
            )
            self._browsers[args] = launched
        assert launched.contexts == [], "a previous test left a browser context open"
        return launched

    async def close(self) -> None:
        for launched in self._browsers.values():
            await launched.close()


@pytest.fixture(scope="session")
async def launched_browsers(chromium: Path) -> AsyncIterator[LaunchedBrowsers]:
    """Playwright's driver and the browsers it launched, for the whole run."""
    async with async_playwright() as playwright:
        browsers = LaunchedBrowsers(playwright, chromium)
        try:
            yield browsers
        finally:
            await browsers.close()


async def close_contexts(launched: Browser) -> None:
    """Close every browser context (and so every page) the test opened."""
    for context in launched.contexts:
        await context.close()


@pytest.fixture
async def browser(launched_browsers: LaunchedBrowsers) -> AsyncIterator[Browser]:
    """A headless browser for the test alone: every page opens in a new browser context (own
    cookies, storage and cache, as separate as another browser), and the test's contexts are
    closed after it, so the next test finds none. The Chromium process is shared by the run."""
    launched = await launched_browsers.get(CHROMIUM_ARGS)
    yield launched
    await close_contexts(launched)


@pytest.fixture
async def media_browser(launched_browsers: LaunchedBrowsers) -> AsyncIterator[Browser]:
    """The same with a fake camera and microphone, for the call pages."""
    from tests.browser.video_helpers import MEDIA_ARGS  # the call tests' media flags

    launched = await launched_browsers.get((*CHROMIUM_ARGS, *MEDIA_ARGS))
    yield launched
    await close_contexts(launched)


@pytest.fixture
def harness(browser: Browser) -> BrowserHarness:
    """Page factory plus the CSP and page-error log every browser test checks at its end."""
    return BrowserHarness(browser)


@pytest.fixture
def media_harness(media_browser: Browser) -> BrowserHarness:
    """The same for the call pages: one browser with a fake camera and microphone for both
    people."""
    return BrowserHarness(media_browser)


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    """A real SMTP server on loopback (aiosmtpd) that keeps every message it receives."""
    box, port = Mailbox(), _free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port, ready_timeout=5)
    controller.start()
    yield box, port
    controller.stop()

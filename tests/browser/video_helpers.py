"""Helpers for browser tests of video sessions: a scheduled session, the therapist's room, the
client's way in, and waits on what the browsers' peer connections report (never sleeps)."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from playwright.async_api import Page, expect

from privacy.consent import Channel, ConsentDecision, Purpose
from server.core.models import Account
from server.keys import AUDIT, CONSENTS, DB
from server.services import scheduling
from tests.browser.conftest import PHONE_WIDTH, THERAPIST_EMAIL, LiveSite
from tests.conftest import PASSWORD

# Chromium flags for calls between two contexts on one machine (TESTING.md).
MEDIA_ARGS = (
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--allow-loopback-in-peer-connection",
)
MEDIA_TIMEOUT_MS = 15_000
MIN_TOUCH_TARGET_PX = 44
# What the connection check says when it ran against the server's echo peer (on loopback).
CHECK_RAN = re.compile(
    r"^(Your connection is good for video\.|Video may be choppy; audio should be fine\.)$"
)
POLL_MS = 100

# Video frames the page's call has decoded so far (0 without a peer connection).
FRAMES_DECODED = """
async () => {
  const pc = window.__attune && window.__attune.pc;
  if (!pc) return 0;
  let frames = 0;
  (await pc.getStats()).forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "video") frames += s.framesDecoded || 0;
  });
  return frames;
}
"""
# Polls in the page until more than `floor` frames were decoded. (`wait_for_function` cannot
# wait on getStats(): it takes the Promise an async predicate returns as a truthy answer.)
WAIT_FOR_FRAMES = f"""
async ({{ floor, timeoutMs, pollMs }}) => {{
  const framesDecoded = {FRAMES_DECODED};
  const deadline = performance.now() + timeoutMs;
  for (;;) {{
    const frames = await framesDecoded();
    if (frames > floor) return frames;
    if (performance.now() > deadline) {{
      throw new Error(`no more than ${{floor}} video frames decoded in ${{timeoutMs}} ms`);
    }}
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }}
}}
"""
INBOUND_MEDIA = """
async () => {
  const pc = window.__attune && window.__attune.pc;
  if (!pc) return 0;
  let streams = 0;
  (await pc.getStats()).forEach((s) => { if (s.type === "inbound-rtp") streams += 1; });
  return streams;
}
"""


@dataclass(frozen=True)
class ScheduledSession:
    """A session starting now, its client and its invite link."""

    therapist: Account
    session_id: str
    client_id: str
    alias: str
    link: str


async def schedule_session(site: LiveSite, alias: str = "J.M.") -> ScheduledSession:
    """A therapist (who can sign in), a client and a session starting now."""
    therapist = await site.add_therapist()
    now = datetime.now(UTC)
    db, audit = site.app[DB], site.app[AUDIT]
    client = await scheduling.create_client(db, audit, therapist, alias, now)
    session, invite = await scheduling.create_session(
        db, audit, therapist, client_id=client.id, starts_at=now, minutes=50, now=now
    )
    return ScheduledSession(
        therapist, session.id, client.id, alias, site.url(f"/join/{invite.token}")
    )


async def grant_telehealth(site: LiveSite, client_id: str) -> None:
    """The client's telehealth consent, recorded as the API would (the consent step then
    passes by itself)."""
    consents = site.app[CONSENTS]
    await consents.decide(
        site.app[DB],
        site.app[AUDIT],
        client_id=client_id,
        purpose=Purpose.TELEHEALTH,
        decision=ConsentDecision.GRANTED,
        notice_version=consents.catalog.current(Purpose.TELEHEALTH).version,
        channel=Channel.API,
        now=datetime.now(UTC),
    )


async def therapist_opens_room(page: Page, site: LiveSite, session_id: str) -> None:
    """Sign in through the form and land in the session's room, connected."""
    await page.goto(site.url(f"/host/{session_id}"))
    await page.get_by_label("Email").fill(THERAPIST_EMAIL)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    heading = re.compile(r"^(Session with |Group session: )")  # a group names everyone
    await expect(page.get_by_role("heading", name=heading)).to_be_visible()
    await expect(
        page.get_by_role("status").filter(has_text=re.compile("^Connected$"))
    ).to_be_visible()


StepCheck = Callable[[Page], Awaitable[None]]


async def _no_check(_page: Page) -> None:
    return None


async def client_reaches_waiting_room(
    page: Page,
    link: str,
    *,
    run_check: bool = False,
    consent: bool = True,
    safety: bool = True,
    at_each_step: StepCheck = _no_check,
) -> None:
    """Open the invite link and pass the device check, the connection check (or skip it),
    when asked for the consent step (optional purposes start unticked and stay so) and the
    safety check (on unless the clinic switched it off)."""
    await page.goto(link)
    await expect(page.get_by_role("heading", name="Welcome", level=1)).to_be_visible()
    await expect(page.get_by_role("combobox", name="Camera", exact=True)).to_be_enabled()
    await at_each_step(page)
    await page.get_by_role("button", name="Continue").click()
    await expect(page.get_by_role("heading", name="Checking your connection")).to_be_visible()
    await at_each_step(page)
    if run_check:
        next_step = page.get_by_role("button", name="Continue")
        await expect(next_step).to_be_enabled(timeout=MEDIA_TIMEOUT_MS)
        await expect(page.get_by_role("status").filter(has_text=CHECK_RAN)).to_be_visible()
        await next_step.click()
    else:
        await page.get_by_role("button", name="Skip this check").click()
    if consent:
        await expect(page.get_by_role("heading", name="Your consent")).to_be_visible()
        await at_each_step(page)
        for optional in await page.get_by_label(re.compile(r"^Yes, I agree: ")).all():
            await expect(optional).not_to_be_checked()
        await page.get_by_label(re.compile(r"^I agree to the telehealth consent")).check()
        await page.get_by_role("button", name="Save and continue").click()
    if safety:
        await expect(page.get_by_role("heading", name="Before you join", level=1)).to_be_visible()
        await at_each_step(page)
        await answer_safety_check(page)
    await expect(page.get_by_role("heading", name="Waiting room", level=1)).to_be_visible()
    await at_each_step(page)


async def answer_safety_check(
    page: Page, place: str = "At home", *, contact: tuple[str, str] = ("Anna", "+49 171 5551234")
) -> None:
    """Answer the safety step as a client would: the place, "Yes" to privacy, and the contact
    (or "Still the same" when the page remembers one)."""
    await page.get_by_label("Where are you right now?").fill(place)
    await page.get_by_label("Yes", exact=True).check()
    same = page.get_by_role("button", name="Still the same")
    if await same.is_visible():
        await same.click()
        return
    await page.get_by_label("Name", exact=True).fill(contact[0])
    await page.get_by_label("Phone", exact=True).fill(contact[1])
    await page.get_by_role("button", name="Continue", exact=True).click()


async def admit(page: Page, alias: str) -> None:
    """The therapist admits the knock labelled `alias`."""
    await page.get_by_role("button", name=f"Admit {alias}", exact=True).click()


async def wait_for_video(page: Page, more_than: int = 0, poll_ms: int = POLL_MS) -> int:
    """Until the page's call has decoded more than `more_than` remote video frames."""
    frames: int = await page.evaluate(
        WAIT_FOR_FRAMES, {"floor": more_than, "timeoutMs": MEDIA_TIMEOUT_MS, "pollMs": poll_ms}
    )
    return frames


async def frames_decoded(page: Page) -> int:
    """Remote video frames decoded so far."""
    frames: int = await page.evaluate(FRAMES_DECODED)
    return frames


async def fits_a_phone(page: Page) -> None:
    """No sideways scrolling at 360 px, and every visible button is a 44 px touch target."""
    width: int = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE_WIDTH
    for button in await page.get_by_role("button").all():
        if await button.is_visible():
            box = await button.bounding_box()
            assert box is not None and box["height"] >= MIN_TOUCH_TARGET_PX, (
                await button.text_content()
            )


async def safety_code(page: Page) -> str:
    """The safety code the page shows, once it shows one."""
    code = page.get_by_role("status", name="Safety code", exact=True)
    await expect(code).to_have_text(re.compile(r"^\d{4} \d{4}$"), timeout=MEDIA_TIMEOUT_MS)
    text = await code.text_content()
    assert text is not None
    return text

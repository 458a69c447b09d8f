"""Issue #15's demonstration: a therapist, two clients and a guest in four Chromium pages of
one browser, through the real server. Each is admitted separately; every page decodes every
other person's video; every pair's safety code is the same on both of its pages; one client
withdraws the telehealth consent and only that client leaves while the others' video goes on;
a phone-sized page shows every tile without sideways scrolling. The therapist sends one
person back to the waiting room by their own button: only they leave the call. When the
therapist sends the first client back as well, the call goes on with the guest on the pair
already running. A guest's page offers nothing a guest may not do (no signals to the
therapist), and every page says whom its messages reach.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import unused_port
from playwright.async_api import Browser, Page, expect

from server.app import create_app
from server.keys import AUDIT, DB, VAULT
from server.services import participants, scheduling
from server.settings import Settings
from tests.browser.axe import axe_violations
from tests.browser.conftest import (
    LAPTOP,
    LAPTOP_SIZE,
    MOBILE,
    PHONE_SIZE,
    PHONE_WIDTH,
    BrowserHarness,
    LiveSite,
)
from tests.browser.test_video_call import WITHDRAW_TELEHEALTH
from tests.browser.video_helpers import (
    MEDIA_TIMEOUT_MS,
    POLL_MS,
    admit,
    client_reaches_waiting_room,
    grant_telehealth,
    schedule_session,
    therapist_opens_room,
)

pytestmark = pytest.mark.browser

# Pictures of the call to look at, taken when this folder exists (not an assertion).
SHOTS = Path("/work/shots/i15group")
TAKE_SHOTS = SHOTS.is_dir()

# Every pair of this page once each has decoded more video frames than its floor and shows a
# safety code: {me, pairs: {peerId: {frames, code}}} (or what there is at the deadline).
PAIRS = """
async ({ count, floors, timeoutMs, pollMs }) => {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const pairs = {};
    for (const pair of window.__attune.pairs) {
      let frames = 0;
      if (pair.pc) {
        (await pair.pc.getStats()).forEach((s) => {
          if (s.type === "inbound-rtp" && s.kind === "video") frames += s.framesDecoded || 0;
        });
      }
      pairs[pair.peerId] = { frames, code: pair.safetyCode };
    }
    const ids = Object.keys(pairs);
    const ready = ids.length === count && ids.every(
      (id) => pairs[id].frames > (floors[id] || 0) && pairs[id].code
    );
    if (ready || performance.now() > deadline) return { me: window.__attune.myPeerId, pairs };
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
}
"""


# At 360 px, in one snapshot (tiles and buttons change as pairs come and go): the page's
# width, and every visible button smaller than a 44 px touch target.
NARROW_PROBLEMS = """
() => ({
  scrollWidth: document.documentElement.scrollWidth,
  small: [...document.querySelectorAll("button")]
    .filter((b) => b.checkVisibility() && b.getBoundingClientRect().height < 44)
    .map((b) => b.textContent),
})
"""


# The page's main video plays a picture.
PLAYING = """
() => {
  const video = document.getElementById("remote-video");
  return video.parentElement.classList.contains("stage") && video.videoWidth > 0 && !video.paused;
}
"""
# This page's peer connection with one person (by peer id).
PAIR_PC = "window.__attune.pairs.find((pair) => pair.peerId === %s).pc"


@pytest.fixture
async def site(aiohttp_server: Any, tmp_path: Path) -> LiveSite:
    """The app on a loopback port."""
    port = unused_port()
    settings = Settings(data_dir=tmp_path / "data", host="127.0.0.1", port=port)
    app = create_app(settings)
    await aiohttp_server(app, host="127.0.0.1", port=port)
    return LiveSite(app=app, base_url=settings.base_url)


@pytest.fixture
def harness(media_browser: Browser) -> BrowserHarness:
    """One headless browser with fake devices for all four people."""
    return BrowserHarness(media_browser)


async def pairs_of(page: Page, count: int, floors: dict[str, int] | None = None) -> dict[str, Any]:
    """This page's pairs once `count` of them decode video and show a code."""
    seen: dict[str, Any] = await page.evaluate(
        PAIRS,
        {"count": count, "floors": floors or {}, "timeoutMs": MEDIA_TIMEOUT_MS, "pollMs": POLL_MS},
    )
    pairs = seen["pairs"]
    assert len(pairs) == count and all(
        p["frames"] > (floors or {}).get(peer, 0) and p["code"] for peer, p in pairs.items()
    ), json.dumps(seen)
    return seen


async def test_four_people_each_admitted_see_and_verify_each_other_and_one_leaves_alone(
    site: LiveSite,
    harness: BrowserHarness,
    axe_source: str,
) -> None:
    scheduled = await schedule_session(site, alias="J.M.")
    now = datetime.now(UTC)
    db, audit, vault = site.app[DB], site.app[AUDIT], site.app[VAULT]
    second = await scheduling.create_client(db, audit, scheduled.therapist, "K.L.", now)
    _, second_invite = await participants.add_client(
        db, audit, vault, scheduled.therapist, scheduled.session_id,
        client_id=second.id, max_people=4, now=now,
    )  # fmt: skip
    _, guest_invite = await participants.add_guest(
        db, audit, vault, scheduled.therapist, scheduled.session_id,
        label="Interpreter", max_people=4, now=now,
    )  # fmt: skip
    for client_id in (scheduled.client_id, second.id):
        await grant_telehealth(site, client_id)

    therapist = await harness.new_page(**LAPTOP)
    await therapist_opens_room(therapist, site, scheduled.session_id)
    await expect(therapist).to_have_title("Group session: J.M., K.L., Interpreter · Attune")
    people = {
        "J.M.": (await harness.new_page(**LAPTOP), scheduled.link, {}),
        "K.L.": (
            await harness.new_page(**MOBILE),
            site.url(f"/join/{second_invite.token}"),
            {"safety": False},  # asked of the session's own client only (participants)
        ),
        "Interpreter": (
            await harness.new_page(**LAPTOP),
            site.url(f"/join/{guest_invite.token}"),
            {"consent": True, "safety": False},
        ),
    }
    for admitted, (label, (page, link, steps)) in enumerate(people.items(), start=1):
        await client_reaches_waiting_room(page, link, **{"consent": False, **steps})
        await admit(therapist, label)  # one at a time, each by their own name
        for someone in (therapist, *(p for p, _, _ in list(people.values())[:admitted])):
            await pairs_of(someone, admitted)

    pages = [therapist, *(page for page, _, _ in people.values())]
    # the panel's newest line said the guest was waiting: now it says they were let in
    await expect(therapist.locator("#panel-latest")).to_have_text("Interpreter was let in")
    seen = {entry["me"]: entry["pairs"] for entry in [await pairs_of(p, 3) for p in pages]}
    assert len(seen) == 4
    for me, pairs in seen.items():
        for other, pair in pairs.items():
            assert pair["code"] == seen[other][me]["code"], json.dumps(seen)
    assert len({pair["code"] for pairs in seen.values() for pair in pairs.values()}) == 6

    # every person's tile is named; on the phone all of them fit, side by side, no scrolling
    await expect(therapist.get_by_role("figure", name="Interpreter · guest")).to_be_visible()
    phone = people["K.L."][0]
    for name in ("J.M.", "Interpreter · guest", "Therapist"):
        tile = phone.get_by_role("figure", name=name)
        await expect(tile).to_be_in_viewport()
        box = await tile.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE_WIDTH
    assert await phone.evaluate(NARROW_PROBLEMS) == {"scrollWidth": PHONE_WIDTH, "small": []}
    await look_at({"phone-4-people-360": phone, "therapist-4-people-1280": therapist})
    for page in (phone, therapist):  # tiles, their names and every pair's code and button
        assert await axe_violations(page, axe_source) == []

    # a client may signal the therapist, a guest may not (the server refuses): no buttons
    guest, first = people["Interpreter"][0], people["J.M."][0]
    await expect(first.get_by_role("button", name="I need a moment")).to_be_visible()
    await expect(guest.get_by_role("button", name="I need a moment")).to_have_count(0)
    # chat stays on each page's own pair: the pages say whom messages reach
    await expect(guest.locator("#chat-note")).to_contain_text("Messages reach only your therapist")
    await expect(therapist.locator("#chat-note")).to_contain_text("Messages reach only J.M.,")
    await look_narrow({"guest-4-people": guest})

    # "Codes match" is per pair: the guest confirms theirs with K.L., K.L.'s page hears of it
    await guest.get_by_role("button", name="Codes match with K.L.").click()
    await expect(guest.locator(".pair-code", has_text="K.L.")).to_contain_text("You confirmed")
    await expect(phone.locator(".pair-code", has_text="Interpreter")).to_contain_text(
        "Interpreter · guest confirmed the codes match."
    )
    await expect(phone.locator(".pair-code", has_text="J.M.")).not_to_contain_text("confirmed")

    # the therapist sends K.L. alone back to the waiting room (asked first), and admits again
    leaving = await phone.evaluate("window.__attune.myPeerId")
    before = {entry["me"]: entry["pairs"] for entry in [await pairs_of(p, 3) for p in pages]}
    await send_back(therapist, "K.L.")
    await expect(phone.get_by_role("heading", name="Waiting room", level=1)).to_be_visible()
    await expect(phone.get_by_text("asked you to wait a moment")).to_be_visible()
    for page in (therapist, first, guest):
        me = await page.evaluate("window.__attune.myPeerId")
        floors = {other: p["frames"] for other, p in before[me].items() if other != leaving}
        after = await pairs_of(page, 2, floors)  # more frames than before, on every pair left
        assert set(after["pairs"]) == set(floors)
    await expect(first.get_by_role("figure", name="K.L.")).to_have_count(0)
    await admit(therapist, "K.L.")
    for page in pages:
        await pairs_of(page, 3)

    # K.L. withdraws the telehealth consent: K.L. leaves, nobody else's media stops
    before = {entry["me"]: entry["pairs"] for entry in [await pairs_of(p, 3) for p in pages]}
    assert await phone.evaluate(WITHDRAW_TELEHEALTH) == 201
    await expect(phone.get_by_role("heading", name="Your session has ended")).to_be_visible()
    await expect(phone.get_by_text("telehealth consent was withdrawn")).to_be_visible()
    for page in (therapist, people["J.M."][0], people["Interpreter"][0]):
        me = await page.evaluate("window.__attune.myPeerId")
        floors = {other: p["frames"] for other, p in before[me].items() if other != leaving}
        after = await pairs_of(page, 2, floors)  # more frames than before, on every pair left
        assert set(after["pairs"]) == set(floors)
        await expect(page.get_by_role("figure", name="K.L.")).to_have_count(0)
    await look_at(
        {"therapist-3-people-1280": therapist, "guest-3-people-1280": people["Interpreter"][0]}
    )

    # the therapist sends their first client back: the guest's running pair becomes the call
    guest_id = await guest.evaluate("window.__attune.myPeerId")
    frames = (await pairs_of(therapist, 2))["pairs"][guest_id]["frames"]
    await therapist.evaluate(f"window.__guestPc = {PAIR_PC % json.dumps(guest_id)}")
    await send_back(therapist, "J.M.")
    await expect(people["J.M."][0].get_by_role("heading", name="Waiting room")).to_be_visible()
    await pairs_of(therapist, 1, {guest_id: frames})
    await pairs_of(guest, 1, {"therapist": 0})
    assert await therapist.evaluate("window.__attune.pc === window.__guestPc")
    await expect(therapist.get_by_text("In the call with Interpreter", exact=True)).to_be_visible()
    await therapist.wait_for_function(PLAYING)  # shown large, as a two-person call
    await look_at({"therapist-2-people-1280": therapist})
    harness.assert_no_policy_violations()


async def send_back(therapist: Page, label: str) -> None:
    """The therapist sends one person of a group back by their own button, and confirms."""
    await look_narrow({f"therapist-send-back-{label}": therapist})
    button = therapist.get_by_role("button", name=f"Send {label} back to the waiting room")
    await button.focus()  # by keyboard
    await therapist.keyboard.press("Enter")
    dialog = therapist.get_by_role("dialog", name=f"Send {label} back to the waiting room?")
    await look_at({f"therapist-send-back-{label}-dialog-1280": therapist})
    await look_narrow({f"therapist-send-back-{label}-dialog": therapist})
    await expect(dialog.get_by_role("button", name="Yes, send back")).to_be_focused()
    await therapist.keyboard.press("Enter")
    await expect(dialog).to_be_hidden()
    await expect(button).to_have_count(0)  # they are out of the call
    # the keyboard's focus stays with the send-back buttons, not lost on the page
    focused = "document.activeElement.closest('#send-back-list, #send-back-button') !== null"
    assert await therapist.evaluate(focused)


async def look_at(pages: dict[str, Page]) -> None:
    """Save what these pages show, to look at (only when SHOTS exists)."""
    if TAKE_SHOTS:
        for name, page in pages.items():
            await page.screenshot(path=SHOTS / f"{name}.png")


async def look_narrow(pages: dict[str, Page]) -> None:
    """The same at 360 x 640 (laptop pages shrunk for the picture, then restored)."""
    if TAKE_SHOTS:
        for name, page in pages.items():
            await page.set_viewport_size(PHONE_SIZE)
            await page.screenshot(path=SHOTS / f"{name}-360.png", full_page=True)
            await page.set_viewport_size(LAPTOP_SIZE)

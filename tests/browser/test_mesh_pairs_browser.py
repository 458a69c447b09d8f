"""A group call's mesh in real Chromium, without the server's room (mesh_harness.py): three
pages, each with `mesh.js` and a `Call` per pair, their signaling carried by the test as the
server carries `relay`/`signal-relay` (`to` and `from`). Proves the browser side alone: every
pair connects with perfect negotiation from the admission order, decodes video and agrees on
its own safety code; a person who leaves the roster loses their pairs while the remaining
pair's video goes on. The demonstration through the server is test_group_call.py.
"""

from __future__ import annotations

import json

from tests.browser.conftest import BrowserHarness, LiveSite
from tests.browser.mesh_harness import SMALL_VIDEO, open_mesh
from tests.browser.video_helpers import MEDIA_TIMEOUT_MS, POLL_MS

PEOPLE = ("therapist", "client-a", "guest")


async def test_three_pages_pair_up_verify_each_pair_and_one_leaves_without_stopping_the_others(
    media_harness: BrowserHarness, live_site: LiveSite
) -> None:
    mesh = await open_mesh(media_harness, live_site.base_url, PEOPLE, SMALL_VIDEO)
    await mesh.update(PEOPLE)

    seen = {
        me: await mesh.pairs_ready(
            me, [p for p in PEOPLE if p != me], {}, MEDIA_TIMEOUT_MS * 2, POLL_MS
        )
        for me in PEOPLE
    }
    for me in PEOPLE:
        for other in (p for p in PEOPLE if p != me):
            assert seen[me][other]["frames"] > 0, json.dumps(seen)
            assert seen[me][other]["code"] == seen[other][me]["code"], json.dumps(seen)
    codes = {seen["therapist"]["client-a"]["code"], seen["therapist"]["guest"]["code"]}
    assert len(codes | {seen["client-a"]["guest"]["code"]}) == 3  # each pair its own code

    # the guest leaves: their pairs end on both other pages, the remaining pair goes on
    await mesh.leave("guest")
    await mesh.update(PEOPLE[:2])
    for me in PEOPLE[:2]:
        assert await mesh.pages[me].evaluate("() => window.__mesh.mesh.get('guest')") is None
    floor = seen["therapist"]["client-a"]["frames"]
    after = await mesh.pairs_ready(
        "therapist", ["client-a"], {"client-a": floor}, MEDIA_TIMEOUT_MS, POLL_MS
    )
    assert after["client-a"]["frames"] > floor
    media_harness.assert_no_policy_violations()

"""A group call's cost in the browser: CPU and upstream bandwidth per page with 2, 3 and 4
people in the same run, and the time from the roster to every page decoding every other
person's video for 4 people against the two-page floor.

A full mesh sends one copy of each person's video per other person, so upstream and encode
CPU grow with the group; the pages share a 1.5 Mbit/s video budget between their pairs
(pairs.js `pairVideoCap`). Each size runs in fresh pages of one headless Chromium with its
fake 640×480 camera (asked for 20 fps) and beeping microphone; `mesh.js` with a `Call` per pair
(tests/browser/mesh_harness.py), the signaling carried by this process as the server carries
`relay` — the server never sees media, so the browsers are where a group call costs.

CPU: every Chromium process's user + system time over the measuring interval (from /proc),
divided by the number of pages. Upstream: RTP bytes sent on all of a page's pairs
(`outbound-rtp` bytesSent + headerBytesSent), per second, averaged over the pages. Join:
from sending the roster to every pair decoding video and showing its safety code on every
page; the floor is the same for two pages (one pair).

Usage: .venv/bin/python benchmarks/group_call.py [--rounds 3] [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import unused_port

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from server.app import create_app
from server.settings import Settings
from tests.browser.conftest import CHROMIUM
from tests.browser.mesh_harness import BYTES_SENT, open_mesh
from tests.browser.test_features_browser import browser_playing, chromium_cores_over
from tests.browser.video_helpers import POLL_MS

SIZES = (2, 3, 4)
VIDEO = {"width": 640, "height": 480, "frameRate": 20}
JOIN_TIMEOUT_MS = 60_000


async def one_size(base_url: str, size: int, seconds: float) -> dict[str, float]:
    """Join time, CPU per page (cores) and upstream per page (kbit/s) for `size` people."""
    people = tuple(["therapist", "client-a", "guest", "client-b"][:size])
    async with browser_playing(CHROMIUM) as harness:
        mesh = await open_mesh(harness, base_url, people, VIDEO)
        began = time.monotonic()
        await mesh.update(people)
        for me in people:
            others = [p for p in people if p != me]
            seen = await mesh.pairs_ready(me, others, {}, JOIN_TIMEOUT_MS, POLL_MS)
            if not all(pair["frames"] > 0 and pair["code"] for pair in seen.values()):
                raise RuntimeError(f"{size} people: {me} did not decode everyone: {seen}")
        join_s = time.monotonic() - began
        await asyncio.sleep(2)  # the encoders' ramp-up after the first frames, not measured
        sent_before = [await page.evaluate(BYTES_SENT) for page in mesh.pages.values()]
        began = time.monotonic()
        cores = await chromium_cores_over(seconds)
        elapsed = time.monotonic() - began
        sent_after = [await page.evaluate(BYTES_SENT) for page in mesh.pages.values()]
    upstream = [
        (after - before) * 8 / 1000 / elapsed
        for before, after in zip(sent_before, sent_after, strict=True)
    ]
    return {
        "join_s": join_s,
        "cpu_per_page": cores / size,
        "upstream_kbps": statistics.mean(upstream),
    }


async def run(rounds: int, seconds: float) -> None:
    """Serve the app (for the pages' origin and modules), measure every size each round."""
    figures: dict[int, list[dict[str, float]]] = {size: [] for size in SIZES}
    with tempfile.TemporaryDirectory() as data_dir:
        port = unused_port()
        settings = Settings(data_dir=Path(data_dir), host="127.0.0.1", port=port)
        runner = web.AppRunner(create_app(settings))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            for _ in range(rounds):
                for size in SIZES:  # interleaved, so load on the machine hits every size alike
                    figures[size].append(await one_size(settings.base_url, size, seconds))
        finally:
            await runner.cleanup()
    print("| people | CPU per page (cores) | upstream per page (kbit/s) | join, all decoding (s) |")
    print("|---|---|---|---|")
    for size in SIZES:
        runs = figures[size]

        def median(key: str, runs: list[dict[str, Any]] = runs) -> float:
            return statistics.median(run[key] for run in runs)

        print(
            f"| {size} | {median('cpu_per_page'):.2f} | {median('upstream_kbps'):.0f} "
            f"| {median('join_s'):.2f} |"
        )
    floor = statistics.median(run["join_s"] for run in figures[2])
    four = statistics.median(run["join_s"] for run in figures[4])
    print(
        f"join for 4 people against the two-page floor: {four:.2f} s / {floor:.2f} s = "
        f"{four / floor:.1f}×"
    )


def main() -> None:
    """Run the benchmark and print the figures with the machine and date."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    if not CHROMIUM.exists():
        sys.exit(f"{CHROMIUM} is missing; `make system-deps` installs it")
    print(f"date     : {datetime.datetime.now(datetime.UTC).isoformat(timespec='seconds')}")
    print(f"platform : {platform.platform()}, {os.cpu_count()} cpus")
    print(f"load avg : {' '.join(f'{x:.2f}' for x in os.getloadavg())} (other work on the machine)")
    asyncio.run(run(args.rounds, args.seconds))


if __name__ == "__main__":
    main()

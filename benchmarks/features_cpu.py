"""In-browser feature extraction (`client_web/static/js/features.js`): its CPU cost.

Headless Chromium opens its fake 640×480, 20 fps camera and beeping microphone on an Attune
page, then alternates intervals without and with the feature stream. The cost is Chromium's
CPU time (user + system, every Chromium process, from /proc) with the stream running, minus
the mean of the idle intervals either side, per second of wall time: the share of one core.
The module's own main-thread time (`busyMs`) is reported beside it. The budget is 5 %.

The measurement is the one `tests/browser/test_features_browser.py` asserts on, run longer.

Usage: .venv/bin/python benchmarks/features_cpu.py [--rounds 4] [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import unused_port

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from server.app import create_app
from server.settings import Settings
from tests.browser.conftest import CHROMIUM
from tests.browser.test_features_browser import (
    CPU_BUDGET,
    browser_playing,
    measure_cpu_cost,
)


async def run(rounds: int, seconds: float) -> None:
    """Serve the app, measure, print."""
    with tempfile.TemporaryDirectory() as data_dir:
        port = unused_port()
        settings = Settings(data_dir=Path(data_dir), host="127.0.0.1", port=port)
        runner = web.AppRunner(create_app(settings))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            async with browser_playing(CHROMIUM) as harness:
                page = await harness.new_page()
                await page.goto(f"{settings.base_url}/healthz")
                cost = await measure_cpu_cost(page, rounds=rounds, seconds=seconds)
        finally:
            await runner.cleanup()
    print(cost.describe())
    verdict = "within" if cost.added < CPU_BUDGET else "OVER"
    print(f"budget   : {CPU_BUDGET:.0%} of one core: {verdict}")


def chromium_version() -> str:
    """What `chromium --version` says."""
    done = subprocess.run(
        [str(CHROMIUM), "--version"], capture_output=True, text=True, check=False, timeout=30
    )
    return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else "unknown"


def main() -> None:
    """Run the benchmark and print the figures with the machine and date."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    if not CHROMIUM.exists():
        sys.exit(f"{CHROMIUM} is missing; `make system-deps` installs it")
    print(f"date     : {datetime.datetime.now(datetime.UTC).isoformat(timespec='seconds')}")
    print(f"platform : {platform.platform()}")
    print(f"browser  : {chromium_version()}")
    print(f"cpus     : {os.cpu_count()}")
    print(f"load avg : {' '.join(f'{x:.2f}' for x in os.getloadavg())} (other work on the machine)")
    print(f"rounds   : {args.rounds} × ({args.seconds:g} s idle, {args.seconds:g} s with features)")
    asyncio.run(run(args.rounds, args.seconds))


if __name__ == "__main__":
    main()

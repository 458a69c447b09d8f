"""The video bitrate cap rule (`videoBitrateCapFor` in client_web/static/js/call.js), run with
node: when a cap starts (the network, not a low frame rate), that it follows the bandwidth
estimate once set, also while the network reads good, and when it is lifted. The browser
test (tests/browser/test_adaptive_bitrate.py) shows the same on a real narrow link."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

CALL_JS = Path(__file__).resolve().parents[2] / "client_web" / "static" / "js" / "call.js"
NODE = shutil.which("node")

# The network as the page measures it: round trip (ms) and inbound loss (%).
GOOD, FAIR, POOR = (20, 0), (400, 0), (900, 12)
# (network, frames per second, estimate in kbit/s or None, cap in force, good samples in a
# row before this one) -> the new cap
Case = tuple[tuple[int, int], int, float | None, int | None, int, int | None]
CASES: list[Case] = [
    (GOOD, 20, 300, None, 0, None),  # a good call is never capped, even on a modest estimate
    (GOOD, 2, 300, None, 0, None),  # few frames alone can be a busy device: no cap
    (FAIR, 20, 300, None, 0, 250_000),  # 80 % of 300 kbit/s, in 50 kbit/s steps
    (POOR, 20, 100, None, 0, 100_000),  # never below the floor
    (FAIR, 20, 5_000, None, 0, None),  # 80 % would be above the ceiling: the browser's own
    (POOR, 20, None, None, 0, 150_000),  # no estimate: fixed caps
    (FAIR, 20, None, None, 0, 500_000),
    (GOOD, 20, 300, 150_000, 0, 250_000),  # once capped, it follows the estimate up...
    (GOOD, 20, 200, 250_000, 3, 150_000),  # ...and down, while the network reads good
    (GOOD, 20, 200, 150_000, 4, None),  # lifted on the fifth good sample in a row
    (FAIR, 20, 200, 150_000, 0, 150_000),
    (GOOD, 20, 1_800, 600_000, 0, 1_450_000),
    (GOOD, 20, 1_900, 1_450_000, 0, None),  # lifted when 80 % of the estimate is the ceiling
    (GOOD, 20, None, 150_000, 0, 150_000),  # a sample without an estimate leaves it as it is
]


def caps_for(cases: list[Case]) -> list[int | None]:
    inputs = [
        [rtt, loss, fps, kbps, current, calm] for (rtt, loss), fps, kbps, current, calm, _ in cases
    ]
    script = f"""
      import {{ videoBitrateCapFor }} from {json.dumps(CALL_JS.as_uri())};
      const cases = {json.dumps(inputs)};
      const cap = ([rttMs, lossPercent, framesPerSecond, kbps, current, calm]) =>
        videoBitrateCapFor({{ rttMs, lossPercent, jitterMs: 2, framesDecoded: 100,
          framesPerSecond, availableOutgoingKbps: kbps, level: "unknown" }}, current, calm);
      console.log(JSON.stringify(cases.map(cap)));
    """
    assert NODE is not None
    done = subprocess.run(
        [NODE, "--no-warnings", "--input-type=module", "-e", script],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    result: list[int | None] = json.loads(done.stdout)
    return result


def test_the_cap_starts_on_a_weak_network_follows_the_estimate_and_is_lifted_when_calm() -> None:
    if NODE is None:
        if os.environ.get("CI") == "true":
            pytest.fail("node is missing (make node-deps)")
        pytest.skip("node is not installed")
    got = caps_for(CASES)
    assert got == [expected for *_, expected in CASES], list(zip(CASES, got, strict=True))

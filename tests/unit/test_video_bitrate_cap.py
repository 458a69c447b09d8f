"""The video bitrate cap rule (`videoBitrateCapFor` in client_web/static/js/call.js), run with
node: when a cap starts, that it follows the bandwidth estimate once set, also while the level
reads good, and when it is lifted. The browser test (tests/browser/test_adaptive_bitrate.py)
shows the same on a real narrow link."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

CALL_JS = Path(__file__).resolve().parents[2] / "client_web" / "static" / "js" / "call.js"
NODE = shutil.which("node")

# (level, bandwidth estimate in kbit/s or None, cap in force or None) -> the new cap
CASES: list[tuple[str, float | None, int | None, int | None]] = [
    ("good", 300, None, None),  # a good call is never capped, even on a modest estimate
    ("unknown", 300, None, None),
    ("fair", 300, None, 250_000),  # 80 % of 300 kbit/s, in 50 kbit/s steps
    ("poor", 100, None, 100_000),  # never below the floor
    ("fair", 5_000, None, None),  # 80 % would be above the ceiling: the browser's own limit
    ("poor", None, None, 150_000),  # no estimate: fixed caps
    ("fair", None, None, 500_000),
    ("good", 300, 150_000, 250_000),  # once capped, it follows the estimate up...
    ("good", 200, 250_000, 150_000),  # ...and down, while the level reads good
    ("good", 1_800, 600_000, 1_450_000),
    ("good", 1_900, 1_450_000, None),  # lifted when 80 % of the estimate reaches the ceiling
    ("good", None, 150_000, 150_000),  # a sample without an estimate leaves it as it is
]


def caps_for(cases: list[tuple[str, float | None, int | None, int | None]]) -> list[int | None]:
    script = f"""
      import {{ videoBitrateCapFor }} from {json.dumps(CALL_JS.as_uri())};
      const cases = {json.dumps([[level, kbps, current] for level, kbps, current, _ in cases])};
      const quality = (level, kbps) => ({{ rttMs: 20, lossPercent: 0, jitterMs: 2,
        framesDecoded: 100, framesPerSecond: 20, availableOutgoingKbps: kbps, level }});
      console.log(JSON.stringify(cases.map(([level, kbps, current]) =>
        videoBitrateCapFor(quality(level, kbps), current))));
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


def test_the_cap_starts_on_a_weak_call_follows_the_estimate_and_is_lifted_with_room() -> None:
    if NODE is None:
        if os.environ.get("CI") == "true":
            pytest.fail("node is missing (make node-deps)")
        pytest.skip("node is not installed")
    got = caps_for(CASES)
    assert got == [expected for *_, expected in CASES], list(zip(CASES, got, strict=True))

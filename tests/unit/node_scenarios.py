"""Browser modules checked in node: a script runs named scenarios and prints {name: "ok"|why}."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

NODE = shutil.which("node")


def run_node_scenarios(script: Path, what: str) -> dict[str, str]:
    """The outcome of every scenario in `script`; in CI a missing node fails (never skips)."""
    if NODE is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"node is missing: {what} cannot be checked")
        pytest.skip(f"node is not installed: {what} cannot be checked here")
    finished = subprocess.run(
        [NODE, str(script)], capture_output=True, text=True, timeout=60, check=False
    )
    assert finished.returncode == 0, finished.stderr
    outcome: dict[str, str] = json.loads(finished.stdout)
    return outcome

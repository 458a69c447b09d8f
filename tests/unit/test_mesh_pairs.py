"""A group call's pairs in the browser (`client_web/static/js/pairs.js` and `mesh.js`), run
with node against fake calls: who offers and commits in each pair, the video budget shared by
the pairs, the roster read strictly, pairs following the roster, signals routed by sender.

The scenarios live in `mesh_check.mjs`; each must report "ok".
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).parent
CHECK_SCRIPT = HERE / "mesh_check.mjs"
NODE = shutil.which("node")

SCENARIOS = [
    "the earlier admitted is impolite and commits; the later one is polite",
    "both ends of every pair agree, and the committer is the one sas.js names",
    "a page pairs with everyone present but itself",
    "one other person keeps today's cap; more share the budget above a floor",
    "a roster is read field by field and sorted by order",
    "a tile names a guest by label and kind, a client by label",
    "two people: the mesh holds no pair (the page's own call is the only one)",
    "four people: a pair per other person but the primary, the earlier admitted offers",
    "signals go to the sender's pair; a sender not on the roster yet waits for it",
    "someone who leaves the roster loses their pair; a held seat keeps it",
    "a page no longer on the roster ends every pair; clear() ends them too",
    "a released pair is handed over open, and resync reaches every pair",
]


@pytest.fixture(scope="module")
def results() -> dict[str, str]:
    if NODE is None:
        if os.environ.get("CI") == "true":
            pytest.fail("node is missing: the group call's pair rules cannot be checked")
        pytest.skip("node is not installed: the group call's pair rules cannot be checked here")
    finished = subprocess.run(
        [NODE, str(CHECK_SCRIPT)], capture_output=True, text=True, timeout=60, check=False
    )
    assert finished.returncode == 0, finished.stderr
    outcome: dict[str, str] = json.loads(finished.stdout)
    return outcome


def test_every_scenario_in_the_script_is_listed_here(results: dict[str, str]) -> None:
    assert sorted(results) == sorted(SCENARIOS)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=SCENARIOS)
def test_mesh_pairs(results: dict[str, str], scenario: str) -> None:
    assert results[scenario] == "ok"

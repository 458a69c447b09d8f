"""A group call's pairs in the browser (`client_web/static/js/pairs.js` and `mesh.js`), run
with node against fake calls: who offers and commits in each pair, the video budget shared by
the pairs, the roster read strictly, pairs following the roster, signals routed by sender.

The scenarios live in `mesh_check.mjs`; each must report "ok".
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.node_scenarios import run_node_scenarios

HERE = Path(__file__).parent
CHECK_SCRIPT = HERE / "mesh_check.mjs"

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
    return run_node_scenarios(CHECK_SCRIPT, "the group call's pair rules")


def test_every_scenario_in_the_script_is_listed_here(results: dict[str, str]) -> None:
    assert sorted(results) == sorted(SCENARIOS)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=SCENARIOS)
def test_mesh_pairs(results: dict[str, str], scenario: str) -> None:
    assert results[scenario] == "ok"

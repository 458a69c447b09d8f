"""Ten kill -9 cycles under check-in and consent traffic: every acknowledged answer is stored
exactly once (benchmarks/crash_soak.py; its 200-cycle figures are in benchmarks/README.md)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.multiproc.conftest import unavailable
from tests.multiproc.processes import HarnessError

pytestmark = pytest.mark.multiproc

SOAK = Path(__file__).resolve().parents[2] / "benchmarks" / "crash_soak.py"


def _soak_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("crash_soak", SOAK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_every_acknowledged_answer_survives_ten_kills_exactly_once(
    backend: str, tmp_path: Path
) -> None:
    soak = _soak_module()
    try:
        result = await soak.soak(backend, 10, tmp_path, traffic_s=0.3)
    except HarnessError as exc:
        unavailable("a service", exc)
    assert result.acknowledged > 10 and result.retries > 0  # real traffic, real lost acks
    assert result.missing == 0
    assert result.duplicates == 0
    assert result.found == result.acknowledged
    assert result.unacknowledged_rows == 0
    assert result.consent_rows >= result.consent_acknowledged > 0

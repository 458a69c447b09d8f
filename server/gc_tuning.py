"""Keep the garbage collector's full collections short in a serving process.

A full (oldest-generation) collection walks every tracked object while holding the GIL, so
for its whole length nothing else runs: not the event loop, not the bus's lease keeper
thread. In `attune serve` with 1,000 live sessions about 440,000 objects were tracked, a
third of them from imports and start-up (modules, the app, templates, the database engine)
that live as long as the process; one full collection took 3.3 s of wall time on a loaded
2-core machine (benchmarks/README.md), long enough for a 3 s room lease to lapse.

`freeze_after_startup` collects once and then moves every object alive at that point to the
permanent generation (`gc.freeze()`), so later collections skip them. Garbage made later is
collected as before; the frozen objects are the ones that would live for the whole process
anyway (what they free when dropped by reference counting is still freed).
"""

from __future__ import annotations

import gc
from typing import Any


async def freeze_after_startup(_app: Any) -> None:
    """An `on_startup` hook: append it after every other one, so what they built is frozen."""
    gc.collect()
    gc.freeze()

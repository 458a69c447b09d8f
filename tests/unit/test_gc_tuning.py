"""The serving process's collector: what start-up built is left out of later collections."""

from __future__ import annotations

import gc

from server.gc_tuning import freeze_after_startup


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the collector frees it


async def test_objects_alive_after_startup_are_frozen_and_later_garbage_is_still_collected() -> (
    None
):
    kept = [_Node() for _ in range(100)]
    try:
        await freeze_after_startup(None)
        frozen = gc.get_freeze_count()
        assert frozen >= len(kept)
        _Node()  # garbage made after start-up (a cycle, unreachable at once)
        assert gc.collect() >= 1  # still found and freed
        assert gc.get_freeze_count() == frozen  # and the frozen objects were left alone
    finally:
        gc.unfreeze()

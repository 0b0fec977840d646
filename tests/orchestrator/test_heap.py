"""The heap policy: what is alive is frozen out of the collector's passes, and a cycle
frozen while alive is still collected by the periodic full pass."""

from __future__ import annotations

import asyncio
import gc
import weakref

import pytest

from orchestrator.heap import HeapPolicy

pytestmark = pytest.mark.anyio


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


async def test_settle_freezes_and_the_full_pass_collects_a_frozen_cycle() -> None:
    policy = HeapPolicy(enabled=True, full_every_s=0.05)
    policy.start()
    try:
        a, b = Node(), Node()
        a.other, b.other = b, a  # a cycle: reference counting alone never frees it
        gone = weakref.ref(a)
        policy.settle()
        assert gc.get_freeze_count() > 0
        del a, b
        gc.collect()
        assert gone() is not None  # frozen: out of the collector's reach
        for _ in range(100):
            await asyncio.sleep(0.02)
            if gone() is None:
                break
        assert gone() is None  # the periodic full pass unfroze and collected it
        assert gc.get_freeze_count() > 0  # and froze what is alive again
    finally:
        await policy.stop()
    assert gc.get_freeze_count() == 0


async def test_disabled_it_leaves_the_collector_alone() -> None:
    policy = HeapPolicy(enabled=False)
    policy.start()
    policy.settle()
    assert gc.get_freeze_count() == 0
    await policy.stop()

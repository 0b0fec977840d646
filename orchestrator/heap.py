"""Keeping the cyclic garbage collector off the control plane's latency path.

A control plane of 1,000 agents holds a few hundred thousand long-lived containers (every
device's desired state, the plan in force and its scenario, the loop's watches). The
collector's full passes walk all of them: about 250 ms with the event loop stopped, some
thirty times in a minute and a half of re-placements (bench/reaction.py), and each one
that landed inside a re-placement added its whole length to the reaction time. They freed
nothing: those objects form no cycles, and reference counting frees them when they are
replaced.

So the objects alive after start and after each solve are moved out of the collector's
reach (`gc.freeze`, as pre-forking servers do); the collector keeps collecting what is
allocated since, which is short-lived. What is frozen is still freed by reference
counting; only a cycle frozen while alive would outlive its use, so every
`full_every_s` the heap is unfrozen and collected once, a single pause of that length.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time

from orchestrator.background import Background

log = logging.getLogger(__name__)


class HeapPolicy:
    def __init__(self, enabled: bool, full_every_s: float = 600.0) -> None:
        self.enabled = enabled
        self.full_every_s = full_every_s
        self._task = Background("continuum-gc")

    def settle(self) -> None:
        """After a burst of long-lived allocations (start, a solve and its commit)."""
        if self.enabled:
            gc.freeze()

    def start(self) -> None:
        if self.enabled:
            gc.freeze()
            self._task.start(self._collect_now_and_then)

    async def stop(self) -> None:
        await self._task.stop()
        if self.enabled:
            gc.unfreeze()

    async def _collect_now_and_then(self) -> None:
        while True:
            await asyncio.sleep(self.full_every_s)
            started = time.perf_counter()
            gc.unfreeze()
            found = gc.collect()
            gc.freeze()
            log.info("heap: full collection freed %d objects in %.0f ms", found,
                     (time.perf_counter() - started) * 1000.0)  # fmt: skip

"""Pause Python's cyclic garbage collector around large solver work.

The route searches and cost caches of a fleet of thousands of devices keep millions of
small tuples and dicts alive. A collection triggered in the middle of a solve would rescan
them all, at a cost that can exceed the solve itself, and nothing the solvers build forms
reference cycles (tests/orchestrator/test_replacement.py holds a re-plan to it), so
pausing the collector loses nothing.

On the way out the objects made meanwhile are moved to the oldest generation
(`gc.freeze` then `gc.unfreeze`) rather than left for the first young collection to
scan: they are the problem's caches and the plan, which live on, and that collection was
a tenth of a lost device's re-solve at 10,000 devices (about 25 ms). A cycle among them
waits for the next full collection, which may not come for a long time: a Fleet that held
its problem strongly once kept every problem a worker derived.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused_gc() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.freeze()
            gc.unfreeze()
            gc.enable()


__all__ = ["paused_gc"]

"""Pause Python's cyclic garbage collector around large solver work.

The route searches and cost caches of a fleet of thousands of devices keep millions of
small tuples and dicts alive. A collection triggered in the middle of a solve would rescan
them all, at a cost that can exceed the solve itself, and nothing the solvers build forms
reference cycles, so pausing the collector loses nothing.
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
            gc.enable()


__all__ = ["paused_gc"]

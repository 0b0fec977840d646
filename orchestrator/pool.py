"""The control plane's process pool for solves: spawned workers that end with it.

A `ProcessPoolExecutor` worker waits on its call queue, a pipe whose writing end it holds
as well (the queue is handed to it whole), so when the control plane is killed (SIGKILL,
the OOM killer) the read never ends and the worker lives on, holding its memory. Each
worker therefore watches its parent: once it is reparented, it exits.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor

# How often a worker looks at its parent: the longest an orphan outlives the control plane.
PARENT_CHECK_S = 1.0


def solver_pool(workers: int) -> ProcessPoolExecutor:
    # spawn, not fork: the server process has threads (and maybe an event loop in one),
    # which a forked child would inherit in an undefined state.
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_watch_parent,
        initargs=(os.getpid(),),
    )


def _watch_parent(parent: int) -> None:
    if os.getppid() != parent:
        os._exit(0)  # the parent died while this worker started

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_S)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


__all__ = ["PARENT_CHECK_S", "solver_pool"]

"""One number computed aside, in a forked child process, while the caller goes on.

The heuristic's bound on a large fleet (`solver.fleetbound`) reads only the problem and
the apps' candidate routes, which are known before the greedy steps start; it is a third
of a 10,000-device solve's CPU. With a second core (`SolveOptions.threads` > 1) a child
forked at that point computes it while the parent builds the plan, and hands back the
float's eight bytes: the same float as computed in the parent. The child shares the
parent's memory copy-on-write, so nothing is pickled. Where fork is unavailable, or the
child fails, the parent computes the number itself; an exception is then raised there,
where it can be seen.
"""

from __future__ import annotations

import contextlib
import os
import signal
import struct
from collections.abc import Callable

_DOUBLE = struct.Struct("<d")


class Aside:
    """`Aside(work, fork)`: `work()` started in a child when `fork`; `result()` its value,
    `cancel()` when it is not wanted (the child is ended and reaped either way)."""

    def __init__(self, work: Callable[[], float], fork: bool) -> None:
        self._work = work
        self._pid: int | None = None
        self._fd = -1
        if not fork or not hasattr(os, "fork"):
            return
        read, write = os.pipe()
        try:
            pid = os.fork()
        except OSError:
            os.close(read)
            os.close(write)
            return
        if pid == 0:  # the child: compute, write eight bytes, exit without cleaning up
            code = 1
            try:
                os.close(read)
                os.write(write, _DOUBLE.pack(work()))
                code = 0
            finally:
                os._exit(code)
        os.close(write)
        self._pid, self._fd = pid, read

    @property
    def pid(self) -> int | None:
        """The child's process id until it is reaped; None without a child."""
        return self._pid

    def result(self) -> float:
        """The child's value, or `work()` here when there was no child or it failed."""
        if self._pid is not None:
            data = b""
            try:
                while len(data) < _DOUBLE.size:
                    chunk = os.read(self._fd, _DOUBLE.size - len(data))
                    if not chunk:
                        break
                    data += chunk
            finally:
                self._reap()
            if len(data) == _DOUBLE.size:
                return float(_DOUBLE.unpack(data)[0])
        return self._work()

    def cancel(self) -> None:
        """End the child without waiting for its value."""
        if self._pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._pid, signal.SIGKILL)
            self._reap()

    def _reap(self) -> None:
        assert self._pid is not None
        os.close(self._fd)
        os.waitpid(self._pid, 0)
        self._pid, self._fd = None, -1


__all__ = ["Aside"]

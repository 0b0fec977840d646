"""Group commit: writes that arrive while one round trip is in flight go out together in
the next one.

A heartbeat's write to Redis costs the control plane far more CPU in the client (a
command built, sent and parsed) than in Redis; with many agents beating at once, one
write (a script call) per event-loop turn instead of one per heartbeat divides that cost
by the number of heartbeats in flight. Each caller still returns only once its own write
is stored (or gets the error), so nothing is answered before it is written.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

V = TypeVar("V")


class GroupWrite(Generic[V]):
    """`put(key, value)` returns once `flush` has stored a batch holding it. Batches go out
    one at a time, in arrival order; within one, a later value for a key replaces an
    earlier one (as it would have overwritten it one round trip later)."""

    def __init__(self, flush: Callable[[dict[str, V]], Awaitable[None]]) -> None:
        self._flush = flush
        self._pending: dict[str, V] = {}
        self._waiters: list[asyncio.Future[None]] = []
        self._task: asyncio.Task[None] | None = None

    async def put(self, key: str, value: V) -> None:
        self._pending[key] = value
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        if self._task is None:
            self._task = asyncio.create_task(self._run())
        await waiter

    async def _run(self) -> None:
        try:
            while self._waiters:
                batch, waiters = self._pending, self._waiters
                self._pending, self._waiters = {}, []
                try:
                    await self._flush(batch)
                except asyncio.CancelledError:
                    for waiter in waiters:
                        waiter.cancel()
                    raise
                except Exception as exc:  # each writer sees its write fail
                    for waiter in waiters:
                        if not waiter.done():
                            waiter.set_exception(exc)
                else:
                    for waiter in waiters:
                        if not waiter.done():
                            waiter.set_result(None)
        finally:
            self._task = None
            self._pending = {}
            for waiter in self._waiters:  # cancelled mid-batch: nobody is left hanging
                if not waiter.done():
                    waiter.cancel()

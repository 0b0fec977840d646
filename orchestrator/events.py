"""Server-sent events: placements, rollouts and device changes, on every replica.

Events go out through `LiveState.publish` on one channel, so a replica streams what
another replica decided. Each replica runs one pump that waits on that channel and fans
every event out to its local subscribers' queues; the pump never awaits between a
message and the next wait except to hand it over, so the window in which a message
could be missed is as short as the backend allows.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from orchestrator.live.base import LiveState

CHANNEL = "continuum:events"
# A slow SSE client must not grow memory without bound: its oldest events are dropped.
_QUEUE_MAX = 256
_WAIT_SLICE_S = 5.0

log = logging.getLogger(__name__)


class EventBus:
    def __init__(self, live: LiveState) -> None:
        self._live = live
        self._subscribers: set[asyncio.Queue[dict[str, Any]]] = set()
        self._pump: asyncio.Task[None] | None = None
        self._ids = itertools.count(1)
        self._stopping = False
        self._listeners: list[Callable[[dict[str, Any]], Awaitable[None]]] = []

    def listen(self, callback: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        """Call back on every event from any replica (cache invalidation)."""
        self._listeners.append(callback)

    async def start(self) -> None:
        self._stopping = False
        self._pump = asyncio.create_task(self._run(), name="continuum-event-pump")
        await self._until_subscribed()

    async def _until_subscribed(self, timeout_s: float = 5.0) -> None:
        """Return once the live state delivers messages to this replica: events published
        right after start are then not lost, and a stop right after start never cancels
        the backend half-way through subscribing."""
        probe = f"continuum:probe:{uuid.uuid4().hex}"
        waiter = asyncio.create_task(self._live.wait(probe, timeout_s))
        deadline = time.monotonic() + timeout_s
        while not waiter.done() and time.monotonic() < deadline:
            await self._live.publish(probe, {})
            await asyncio.wait({waiter}, timeout=0.05)
        await waiter

    async def stop(self) -> None:
        self._stopping = True
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
            self._pump = None
        for queue in list(self._subscribers):
            _offer(queue, {"type": "shutdown"})

    async def publish(self, kind: str, data: dict[str, Any]) -> None:
        await self._live.publish(CHANNEL, {"type": kind, "at": time.time(), "data": data})

    async def _run(self) -> None:
        while not self._stopping:
            try:
                message = await self._live.wait(CHANNEL, _WAIT_SLICE_S)
            except asyncio.CancelledError:
                raise
            except Exception:  # a live-state hiccup must not end the stream for good
                log.exception("event pump: waiting on the live state failed")
                await asyncio.sleep(1.0)
                continue
            if message is None:
                continue
            message["id"] = next(self._ids)
            for callback in self._listeners:
                try:
                    await callback(message)
                except Exception:
                    log.exception("event listener failed")
            for queue in list(self._subscribers):
                _offer(queue, message)

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[dict[str, Any]]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=_QUEUE_MAX)
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)


def _offer(queue: asyncio.Queue[dict[str, Any]], message: dict[str, Any]) -> None:
    if queue.full():
        with contextlib.suppress(asyncio.QueueEmpty):
            queue.get_nowait()
    queue.put_nowait(message)

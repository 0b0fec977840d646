"""Server-sent events: placements, rollouts and device changes, on every replica.

Events go out through `LiveState.publish` on one channel, so a replica streams what
another replica decided. Each replica runs one pump that holds a buffered subscription to
that channel (`LiveState.subscribe`) and hands every event to its listeners (cache
invalidation) and then to its local subscribers' queues (SSE clients). The subscription
keeps what is published while the listeners run, so a burst (a rollout publishes several
events in a row) reaches them all, in order.

Where events can still be lost, each counted in `dropped` and logged: a consumer that
falls a whole queue behind loses its oldest events (the pump behind the live state, or a
slow SSE client behind the pump); and Redis pub/sub drops what is published while a
replica's connection to it is down (the backend logs that gap).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from orchestrator.live.base import DEFAULT_BUFFER, LiveState

CHANNEL = "continuum:events"
# A slow SSE client must not grow memory without bound: its oldest events are dropped.
_QUEUE_MAX = 256
# How long start() waits for the live state to deliver before going on without it (Redis
# still coming up): the pump keeps subscribing, and events before that are not heard.
_START_TIMEOUT_S = 5.0
_RETRY_S = 1.0

log = logging.getLogger(__name__)


class EventBus:
    def __init__(
        self,
        live: LiveState,
        *,
        queue_max: int = _QUEUE_MAX,
        backlog: int = DEFAULT_BUFFER,
        start_timeout_s: float = _START_TIMEOUT_S,
    ) -> None:
        self._live = live
        self._backlog = backlog
        self._queue_max = queue_max
        self._start_timeout_s = start_timeout_s
        self._subscribers: set[asyncio.Queue[dict[str, Any]]] = set()
        self._pump: asyncio.Task[None] | None = None
        self._ids = itertools.count(1)
        self._listeners: list[Callable[[dict[str, Any]], Awaitable[None]]] = []
        self._subscribed: asyncio.Future[None] | None = None
        # Events lost on this replica: behind the live-state subscription, or by a slow
        # subscriber (once per subscriber that lost it).
        self.dropped = 0

    def listen(self, callback: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        """Call back on every event from any replica (cache invalidation)."""
        self._listeners.append(callback)

    async def start(self) -> None:
        """Start the pump; every event published after this returns is delivered (unless
        the live state did not answer within a few seconds, which is logged)."""
        subscribed = self._subscribed = asyncio.get_running_loop().create_future()
        self._pump = asyncio.create_task(self._run(), name="continuum-event-pump")
        # Also returns if the pump dies, rather than wait out the timeout for nothing.
        await asyncio.wait(
            {subscribed, self._pump},
            timeout=self._start_timeout_s,
            return_when=asyncio.FIRST_COMPLETED,
        )
        if not subscribed.done():
            log.warning(
                "event bus: the live state did not answer within %.0fs; events are "
                "delivered once it does",
                self._start_timeout_s,
            )

    async def stop(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
            self._pump = None
        self.end_streams()

    def end_streams(self) -> None:
        """Tell every subscriber the stream ends (a server shutting down: an open event
        stream must not hold the process)."""
        for queue in list(self._subscribers):
            _offer(queue, {"type": "shutdown"})

    async def publish(self, kind: str, data: dict[str, Any]) -> None:
        await self._live.publish(CHANNEL, {"type": kind, "at": time.time(), "data": data})

    async def publish_many(self, kind: str, items: Sequence[dict[str, Any]]) -> None:
        """Events of one kind, in order, in one round trip."""
        at = time.time()
        await self._live.publish_many(
            CHANNEL, [{"type": kind, "at": at, "data": data} for data in items]
        )

    async def _run(self) -> None:
        while True:
            try:
                async with self._live.subscribe(CHANNEL, self._backlog) as subscription:
                    if self._subscribed is not None and not self._subscribed.done():
                        self._subscribed.set_result(None)
                    behind = 0
                    async for message in subscription:
                        if subscription.dropped > behind:
                            self._lost(subscription.dropped - behind, "the event pump")
                            behind = subscription.dropped
                        await self._dispatch(message)
                # Only a closed live state ends a subscription: nothing more will come.
                log.info("event bus: the live state closed; the pump stops")
                return
            except asyncio.CancelledError:
                raise
            except Exception:  # a live-state hiccup must not end the stream for good
                log.exception("event pump: subscribing to the live state failed")
                await asyncio.sleep(_RETRY_S)

    async def _dispatch(self, message: dict[str, Any]) -> None:
        message["id"] = next(self._ids)
        for callback in self._listeners:
            try:
                await callback(message)
            except Exception:
                log.exception("event listener failed")
        for queue in list(self._subscribers):
            if _offer(queue, message):
                self._lost(1, "an event subscriber")

    def _lost(self, count: int, who: str) -> None:
        first = self.dropped == 0
        self.dropped += count
        # The first loss, then every 100th: a stuck client must not flood the log.
        if first or self.dropped // 100 != (self.dropped - count) // 100:
            log.warning(
                "event bus: %s fell behind and lost %d event(s) (%d on this replica so far)",
                who,
                count,
                self.dropped,
            )

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[dict[str, Any]]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=self._queue_max)
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)


def _offer(queue: asyncio.Queue[dict[str, Any]], message: dict[str, Any]) -> bool:
    """Queue a message, dropping the oldest when full; True when one was dropped."""
    dropped = False
    if queue.full():
        with contextlib.suppress(asyncio.QueueEmpty):
            queue.get_nowait()
            dropped = True
    queue.put_nowait(message)
    return dropped

"""The event stream operators watch: placements, rollouts, device and deployment changes,
triggers and measured re-placements, from every replica."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from orchestrator.services.context import Context

# Events the control plane sends itself: long-poll acknowledgements for the rollout.
_INTERNAL = frozenset({"delivery"})


@dataclass(frozen=True)
class Event:
    id: int | str
    kind: str  # placement, rollout, device, deployment, trigger, replacement
    data: dict[str, Any]  # the event's fields, with `at` (epoch seconds) first


class EventFeed:
    """One subscriber's view of the stream."""

    def __init__(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self._queue = queue
        self.ended = False  # the control plane is shutting down

    async def next(self, timeout_s: float) -> Event | None:
        """The next public event; None when none came within `timeout_s` or the stream
        ended (see `ended`)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not self.ended:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            try:
                message = await asyncio.wait_for(self._queue.get(), timeout=remaining)
            except TimeoutError:
                return None
            kind = str(message.get("type"))
            if kind == "shutdown":
                self.ended = True
            elif kind not in _INTERNAL:
                data = {"at": message.get("at"), **(message.get("data") or {})}
                return Event(id=message.get("id", ""), kind=kind, data=data)
        return None


class EventsService:
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[EventFeed]:
        """Events published from now on, until the context closes."""
        async with self._ctx.events.subscribe() as queue:
            yield EventFeed(queue)

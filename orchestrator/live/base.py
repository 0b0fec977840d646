"""The interface both live-state backends implement (in-process and Redis).

Nothing here is durable: a lost live state is rebuilt by the next heartbeats. Every
method is async because the Redis backend talks over the network; the in-process one
answers at once.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

# What a subscription holds before its oldest messages go: a few seconds of a busy fleet's
# events, so that a consumer pausing on a slow callback catches up rather than loses them.
DEFAULT_BUFFER = 4096


T = TypeVar("T")


def unregister(registry: dict[str, set[T]], channel: str, item: T) -> None:
    """Take a waiter or subscription off a channel; a channel left empty goes too."""
    members = registry.get(channel)
    if members is not None:
        members.discard(item)
        if not members:
            del registry[channel]


class Subscription:
    """The messages of one channel from the moment of subscribing, in publish order.

    A bounded buffer sits between the backend and the consumer, so a message published
    while the consumer is busy is kept until it asks, not missed (`LiveState.wait` hears
    only what comes while it waits). A consumer `maxsize` messages behind loses the oldest
    ones, counted in `dropped`: it never blocks the publisher or the other subscribers.
    Used on the event loop that subscribed; backends hand messages over from elsewhere
    with `call_soon_threadsafe`.
    """

    def __init__(self, channel: str, maxsize: int = DEFAULT_BUFFER) -> None:
        if maxsize < 1:
            raise ValueError(f"a subscription holds at least one message (got {maxsize})")
        self.channel = channel
        self.loop = asyncio.get_running_loop()
        self.dropped = 0
        self._maxsize = maxsize
        self._buffer: deque[dict[str, Any]] = deque()
        self._nonempty = asyncio.Event()
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def put(self, message: dict[str, Any]) -> None:
        """The backend's side: keep a message for the consumer."""
        if self._closed:
            return
        if len(self._buffer) >= self._maxsize:
            self._buffer.popleft()
            self.dropped += 1
        self._buffer.append(message)
        self._nonempty.set()

    def close(self) -> None:
        """The backend's side: no more messages; the consumer still gets those held."""
        self._closed = True
        self._nonempty.set()

    async def get(self, timeout_s: float | None = None) -> dict[str, Any] | None:
        """The next message; None after timeout_s, or once closed and drained."""
        try:
            async with asyncio.timeout(timeout_s):
                while not self._buffer:
                    if self._closed:
                        return None
                    self._nonempty.clear()
                    await self._nonempty.wait()
        except TimeoutError:
            return None
        return self._buffer.popleft()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> dict[str, Any]:
        message = await self.get()
        if message is None:
            raise StopAsyncIteration
        return message


@dataclass
class HeartbeatChanges:
    """What `LiveState.heartbeat_changes` found: the devices written or forgotten since a
    cursor, each with its latest heartbeat (None: gone, forgotten or expired) and when that
    expires (epoch seconds on this process's clock)."""

    cursor: str  # hand it back for the changes after these
    beats: dict[str, tuple[dict[str, Any] | None, float]]
    complete: bool  # a full read: `beats` holds every alive device, nothing else is alive


class LiveState(Protocol):
    # -- heartbeats and liveness -------------------------------------------------------
    async def put_heartbeat(self, device_id: str, beat: dict[str, Any], ttl_s: float) -> None:
        """Store the latest heartbeat of a device (battery, utilization, free memory,
        partition readiness, latency histograms, `at` timestamp); the device counts as
        alive until ttl_s passes without another."""

    async def heartbeat(self, device_id: str) -> dict[str, Any] | None:
        """The latest heartbeat, or None when the device is not alive."""

    async def heartbeats(self) -> dict[str, dict[str, Any]]:
        """Latest heartbeat of every alive device."""

    async def heartbeat_changes(self, cursor: str | None) -> HeartbeatChanges:
        """The heartbeats written, and the devices forgotten, since `cursor` (from the
        previous answer), for a reader that keeps every device's latest
        (`orchestrator.live.mirror.HeartbeatMirror`). Without a cursor, or with one too old
        to follow, a full read (`complete`). A device may come back that did not change
        (the changes are a superset), never one that changed and is left out."""

    async def forget(self, device_id: str) -> None:
        """Drop everything live about a device (deleted)."""

    # -- link measurements -----------------------------------------------------------------
    async def put_link(
        self, reporter: str, peer: str, mbps: float, rtt_ms: float, ttl_s: float
    ) -> None:
        """What reporter measured of its link to peer: moves reporter's remembered
        estimate of that link (`links.remember`), not peer's. The report counts as fresh
        for ttl_s; the estimate is remembered for `links.MEMORY_S` after it."""

    async def links(self) -> dict[tuple[str, str], dict[str, Any]]:
        """Remembered links, keyed (a, b) with a < b: {"mbps", "rtt_ms", "last_mbps",
        "last_rtt_ms", "at", "age_s", "fresh"}, the bottleneck of the ends' estimates
        (`links.bottleneck`)."""

    # -- pub/sub ---------------------------------------------------------------------------
    async def publish(self, channel: str, message: dict[str, Any]) -> None:
        """Deliver a message to every subscriber of channel, on every replica."""

    async def publish_many(self, channel: str, messages: Sequence[dict[str, Any]]) -> None:
        """`publish` each message, in order, in one round trip (a tick's thousands of
        triggers one at a time held the leader's loop for seconds)."""

    async def wait(self, channel: str, timeout_s: float) -> dict[str, Any] | None:
        """Wait for the next message on channel (None on timeout). One-shot: a message
        published before the call, or after it returns, is not seen; a caller that must
        see every message subscribes instead."""

    def subscribe(
        self, channel: str, maxsize: int = DEFAULT_BUFFER
    ) -> AbstractAsyncContextManager[Subscription]:
        """A subscription to channel that receives every message published on any replica
        after entering returns (entering waits until the backend delivers them), until
        exit or close(). Pub/sub stays at-most-once: Redis drops what is published while
        its connection is down, and the backend logs each such gap."""

    # -- the reconcile loop's lock -------------------------------------------------------
    async def acquire(self, name: str, holder: str, ttl_s: float) -> bool:
        """Take or renew a lock; True when holder has it for the next ttl_s."""

    async def release(self, name: str, holder: str) -> None:
        """Give up a lock if holder has it."""

    async def ping(self) -> bool:
        """Whether the store answers (for /readyz)."""

    async def close(self) -> None: ...

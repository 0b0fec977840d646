"""In-process live state: the embedded default when no Redis URL is set.

Good for one control-plane process only: nothing is shared with other replicas. Values go
through a JSON round trip so that embedded mode rejects (and copies) exactly what the Redis
backend would, and a caller mutating its dict afterwards does not change what is stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from orchestrator.live.base import DEFAULT_BUFFER, HeartbeatChanges, Subscription, unregister
from orchestrator.live.links import MEMORY_S, LinkKey, bottleneck, link_key, remember


def _copy(value: dict[str, Any]) -> dict[str, Any]:
    copied: dict[str, Any] = json.loads(json.dumps(value))
    return copied


_Waiter = asyncio.Future[dict[str, Any] | None]


def _deliver(future: _Waiter, message: dict[str, Any] | None) -> None:
    if not future.done():
        future.set_result(message)


def _on_loop(
    loop: asyncio.AbstractEventLoop,
    running: asyncio.AbstractEventLoop | None,
    call: Callable[..., None],
    *args: Any,
) -> None:
    """Call now when on loop, else hand over to loop's thread (in call order)."""
    if loop is running:
        call(*args)
    elif not loop.is_closed():
        loop.call_soon_threadsafe(call, *args)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:  # pragma: no cover - publish and close are always awaited in a loop
        return None


class MemoryLiveState:
    """TTLs are measured on the monotonic clock, so wall-clock jumps never revive or kill
    a device. Expired entries are dropped lazily when read."""

    def __init__(self) -> None:
        # Heartbeats as their JSON text: a read (the reconcile loop reads every device's on
        # every tick) then costs one parse, not a serialisation and a parse per beat.
        self._beats: dict[str, tuple[str, float]] = {}
        # When each device's heartbeat last changed (written or forgotten), in write order:
        # `heartbeat_changes` hands out a position in it. A cursor names this instance, so
        # one from before a restart is never followed.
        self._instance = uuid.uuid4().hex
        self._seq = 0
        self._changed: dict[str, int] = {}
        # Per link, each reporting end's remembered estimate (links.remember), on the
        # wall clock like Redis's, so that ages read the same on both backends.
        self._links: dict[LinkKey, dict[str, dict[str, Any]]] = {}
        self._locks: dict[str, tuple[str, float]] = {}
        self._waiters: dict[str, set[_Waiter]] = {}
        self._subscriptions: dict[str, set[Subscription]] = {}
        # The API may call in from several event loops (e.g. a test client's portal thread
        # beside the server loop): guard the registries and hand messages over with
        # call_soon_threadsafe when a waiter or a subscription lives on another loop.
        self._guard = threading.Lock()

    # -- heartbeats and liveness -------------------------------------------------------
    async def put_heartbeat(self, device_id: str, beat: dict[str, Any], ttl_s: float) -> None:
        self._beats[device_id] = (json.dumps(beat), time.monotonic() + ttl_s)
        self._touch(device_id)

    def _touch(self, device_id: str) -> None:
        self._seq += 1
        self._changed[device_id] = self._seq

    async def heartbeat_changes(self, cursor: str | None) -> HeartbeatChanges:
        instance, _, position = (cursor or "").partition(":")
        complete = instance != self._instance
        after = 0 if complete else int(position)
        now, wall = time.monotonic(), time.time()
        beats: dict[str, tuple[dict[str, Any] | None, float]] = {}
        for device_id, seq in self._changed.items():
            if seq <= after:
                continue
            entry = self._beats.get(device_id)
            if entry is None or entry[1] <= now:
                if not complete:
                    beats[device_id] = (None, wall)
                continue
            beats[device_id] = (json.loads(entry[0]), wall + entry[1] - now)
        return HeartbeatChanges(f"{self._instance}:{self._seq}", beats, complete)

    async def heartbeat(self, device_id: str) -> dict[str, Any] | None:
        entry = self._beats.get(device_id)
        if entry is None:
            return None
        beat, expires = entry
        if expires <= time.monotonic():
            self._beats.pop(device_id, None)
            return None
        copied: dict[str, Any] = json.loads(beat)
        return copied

    async def heartbeats(self) -> dict[str, dict[str, Any]]:
        now = time.monotonic()
        alive: dict[str, dict[str, Any]] = {}
        for device_id, (beat, expires) in list(self._beats.items()):
            if expires <= now:
                self._beats.pop(device_id, None)
            else:
                alive[device_id] = json.loads(beat)
        return alive

    async def forget(self, device_id: str) -> None:
        self._beats.pop(device_id, None)
        self._touch(device_id)
        for key in [k for k in self._links if device_id in k]:
            self._links.pop(key, None)

    # -- link measurements -----------------------------------------------------------------
    async def put_link(
        self, reporter: str, peer: str, mbps: float, rtt_ms: float, ttl_s: float
    ) -> None:
        reports = self._links.setdefault(link_key(reporter, peer), {})
        reports[reporter] = remember(reports.get(reporter), mbps, rtt_ms, time.time(), ttl_s)

    async def links(self) -> dict[tuple[str, str], dict[str, Any]]:
        now = time.time()
        measured: dict[tuple[str, str], dict[str, Any]] = {}
        for key, reports in list(self._links.items()):
            for reporter, value in list(reports.items()):
                if now - float(value["at"]) > MEMORY_S:
                    del reports[reporter]
            if reports:
                measured[key] = bottleneck(reports.values(), now)
            else:
                self._links.pop(key, None)
        return measured

    # -- pub/sub ---------------------------------------------------------------------------
    async def publish(self, channel: str, message: dict[str, Any]) -> None:
        payload = _copy(message)
        with self._guard:
            waiters = list(self._waiters.get(channel, ()))
            subscriptions = list(self._subscriptions.get(channel, ()))
        running = _running_loop()
        # Each receiver gets its own copy: one mutating its message cannot affect another.
        for future in waiters:
            _on_loop(future.get_loop(), running, _deliver, future, _copy(payload))
        for subscription in subscriptions:
            _on_loop(subscription.loop, running, subscription.put, _copy(payload))

    async def publish_many(self, channel: str, messages: Sequence[dict[str, Any]]) -> None:
        for message in messages:
            await self.publish(channel, message)

    async def wait(self, channel: str, timeout_s: float) -> dict[str, Any] | None:
        future: _Waiter = asyncio.get_running_loop().create_future()
        with self._guard:
            self._waiters.setdefault(channel, set()).add(future)
        try:
            return await asyncio.wait_for(future, timeout=max(timeout_s, 0.0))
        except TimeoutError:
            return None
        finally:
            with self._guard:
                unregister(self._waiters, channel, future)

    @contextlib.asynccontextmanager
    async def subscribe(
        self, channel: str, maxsize: int = DEFAULT_BUFFER
    ) -> AsyncIterator[Subscription]:
        subscription = Subscription(channel, maxsize)
        with self._guard:
            self._subscriptions.setdefault(channel, set()).add(subscription)
        try:
            yield subscription
        finally:
            with self._guard:
                unregister(self._subscriptions, channel, subscription)
            subscription.close()

    # -- the reconcile loop's lock -------------------------------------------------------
    async def acquire(self, name: str, holder: str, ttl_s: float) -> bool:
        now = time.monotonic()
        current = self._locks.get(name)
        if current is not None and current[0] != holder and current[1] > now:
            return False
        self._locks[name] = (holder, now + ttl_s)
        return True

    async def release(self, name: str, holder: str) -> None:
        current = self._locks.get(name)
        if current is not None and current[0] == holder:
            del self._locks[name]

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        with self._guard:
            waiters = [f for fs in self._waiters.values() for f in fs]
            subscriptions = [s for ss in self._subscriptions.values() for s in ss]
        running = _running_loop()
        for future in waiters:
            # Wake long-polls at shutdown (as a timeout) rather than leave them hanging.
            _on_loop(future.get_loop(), running, _deliver, future, None)
        for subscription in subscriptions:
            _on_loop(subscription.loop, running, subscription.close)

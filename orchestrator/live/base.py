"""The interface both live-state backends implement (in-process and Redis).

Nothing here is durable: a lost live state is rebuilt by the next heartbeats. Every
method is async because the Redis backend talks over the network; the in-process one
answers at once.
"""

from __future__ import annotations

from typing import Any, Protocol


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

    async def forget(self, device_id: str) -> None:
        """Drop everything live about a device (deleted)."""

    # -- link measurements -----------------------------------------------------------------
    async def put_link(self, a: str, b: str, mbps: float, rtt_ms: float, ttl_s: float) -> None:
        """A measured link between devices a and b (undirected; stored once per pair)."""

    async def links(self) -> dict[tuple[str, str], dict[str, float]]:
        """Measured links, keyed (a, b) with a < b: {"mbps", "rtt_ms", "at"}."""

    # -- pub/sub ---------------------------------------------------------------------------
    async def publish(self, channel: str, message: dict[str, Any]) -> None:
        """Deliver a message to every subscriber of channel, on every replica."""

    async def wait(self, channel: str, timeout_s: float) -> dict[str, Any] | None:
        """Wait for the next message on channel (None on timeout)."""

    # -- the reconcile loop's lock -------------------------------------------------------
    async def acquire(self, name: str, holder: str, ttl_s: float) -> bool:
        """Take or renew a lock; True when holder has it for the next ttl_s."""

    async def release(self, name: str, holder: str) -> None:
        """Give up a lock if holder has it."""

    async def ping(self) -> bool:
        """Whether the store answers (for /readyz)."""

    async def close(self) -> None: ...

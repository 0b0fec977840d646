"""Live state: heartbeats, measurements, liveness, pub/sub and the loop's lock."""

from __future__ import annotations

from orchestrator.live.base import LiveState
from orchestrator.live.memory import MemoryLiveState
from orchestrator.settings import Settings

__all__ = ["LiveState", "MemoryLiveState", "open_live_state"]


def open_live_state(settings: Settings) -> LiveState:
    """Redis when `CONTINUUM_REDIS_URL` is set (shared by every replica), else in-process.

    Nothing connects here: the Redis client connects on first use, so a control plane can
    start while Redis is still coming up and report it through /readyz.
    """
    if settings.redis_url is not None:
        # Imported lazily: embedded deployments never load the Redis client.
        from orchestrator.live.redis import RedisLiveState

        return RedisLiveState(settings.redis_url.get_secret_value(), prefix=settings.redis_prefix)
    return MemoryLiveState()

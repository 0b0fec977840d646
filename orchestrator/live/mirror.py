"""The reconcile leader's copy of every alive device's latest heartbeat.

At 10,000 agents, reading and parsing every heartbeat on every tick cost the leader about
a quarter of a core (bench/RESULTS.md, "Heartbeats"). The mirror reads only what changed
since its last read (`LiveState.heartbeat_changes`) and keeps the rest. Liveness stays a
matter of time, not of change: each kept heartbeat carries its expiry, and one past it is
dropped exactly as the live state drops it. A full read every `full_every_s`, and after
any failed read, puts right whatever the changes could have missed.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

from orchestrator.live.base import HeartbeatChanges

FULL_EVERY_S = 10.0


class Changes(Protocol):
    """What the mirror needs of a live state (`LiveState.heartbeat_changes`)."""

    async def heartbeat_changes(self, cursor: str | None) -> HeartbeatChanges: ...


class HeartbeatMirror:
    def __init__(self, live: Changes, full_every_s: float = FULL_EVERY_S) -> None:
        self._live = live
        self.full_every_s = full_every_s
        self._beats: dict[str, tuple[dict[str, Any], float]] = {}  # device -> beat, expires
        self._cursor: str | None = None
        self._full_at = 0.0  # monotonic time of the last full read
        self.full_reads = 0  # how many reads were full (for tests and benches)
        self.changed = 0  # heartbeats read by the last read

    async def read(self) -> dict[str, dict[str, Any]]:
        """Latest heartbeat of every alive device, as `LiveState.heartbeats` answers it.
        The dicts are shared between reads: callers must not change them."""
        due = time.monotonic() - self._full_at >= self.full_every_s
        try:
            changes = await self._live.heartbeat_changes(None if due else self._cursor)
        except BaseException:
            self._cursor = None  # whatever happened meanwhile, the next read is full
            raise
        if changes.complete:
            self._beats = {}
            self._full_at = time.monotonic()
            self.full_reads += 1
        for device, (beat, expires) in changes.beats.items():
            if beat is None:
                self._beats.pop(device, None)
            else:
                self._beats[device] = (beat, expires)
        self._cursor = changes.cursor
        self.changed = len(changes.beats)
        now = time.time()
        alive: dict[str, dict[str, Any]] = {}
        expired: list[str] = []
        for device, (beat, expires) in self._beats.items():
            if expires > now:
                alive[device] = beat
            else:
                expired.append(device)
        for device in expired:
            del self._beats[device]
        return alive

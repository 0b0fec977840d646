"""The reconcile leader's copy of every alive device's latest heartbeat.

At 10,000 agents, reading and parsing every heartbeat on every tick cost the leader about
a quarter of a core (bench/RESULTS.md, "Heartbeats"). The mirror reads only what changed
since its last read (`LiveState.heartbeat_changes`) and keeps the rest. Liveness stays a
matter of time, not of change: each kept heartbeat carries its expiry, and one past it is
dropped exactly as the live state drops it. A full read every `full_every_s`, and after
any failed read, puts right whatever the changes could have missed.

Each read also says which devices it changed (`last_changed`: written, forgotten or
expired), so that the leader's detect step looks at those alone (`orchestrator.scope`).
"""

from __future__ import annotations

import heapq
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
        self._beats: dict[str, dict[str, Any]] = {}  # device -> latest heartbeat
        self._expires: dict[str, float] = {}  # device -> when that heartbeat expires
        # (expires, device): every device kept has an entry no later than its expiry; one
        # that comes out for a device whose heartbeat was written since goes back in at
        # the new expiry. Expiry costs a push and a pop per device per TTL, not a walk of
        # the fleet per read, and the heap holds one entry per device, not per heartbeat.
        self._expiry: list[tuple[float, str]] = []
        self._cursor: str | None = None
        self._full_at = 0.0  # monotonic time of the last full read
        self.full_reads = 0  # how many reads were full (for tests and benches)
        self.changed = 0  # heartbeats read by the last read
        # The devices the last read wrote, dropped or expired; None after a full read
        # (anything may have changed).
        self.last_changed: frozenset[str] | None = None

    async def read(self) -> dict[str, dict[str, Any]]:
        """Latest heartbeat of every alive device, as `LiveState.heartbeats` answers it.
        The dicts are shared between reads: callers must not change them."""
        due = time.monotonic() - self._full_at >= self.full_every_s
        self.last_changed = None
        try:
            changes = await self._live.heartbeat_changes(None if due else self._cursor)
        except BaseException:
            self._cursor = None  # whatever happened meanwhile, the next read is full
            raise
        if changes.complete:
            self._beats, self._expires, self._expiry = {}, {}, []
            self._full_at = time.monotonic()
            self.full_reads += 1
        for device, (beat, expires) in changes.beats.items():
            if beat is None:
                self._beats.pop(device, None)
                self._expires.pop(device, None)
            else:
                before = self._expires.get(device)
                self._beats[device] = beat
                self._expires[device] = expires
                if before is None or expires < before:
                    heapq.heappush(self._expiry, (expires, device))
        self._cursor = changes.cursor
        self.changed = len(changes.beats)
        changed = set(changes.beats)
        now = time.time()
        while self._expiry and self._expiry[0][0] <= now:
            _, device = heapq.heappop(self._expiry)
            at = self._expires.get(device)
            if at is None:
                continue  # forgotten since
            if at <= now:
                del self._beats[device], self._expires[device]
                changed.add(device)
            else:
                heapq.heappush(self._expiry, (at, device))  # written since: later
        self.last_changed = None if changes.complete else frozenset(changed)
        return dict(self._beats)

"""Which devices the reconcile leader's detect step must look at on a tick.

At 10,000 agents the detect step walked every alive device on every tick (two walks and a
third for the next hops' reports), several times a second, while at most the devices
that heartbeated since the last tick had anything new. `DetectScope` names the devices
whose walk can change something, so that `Reconciler.detect` walks those alone and
fires exactly the triggers the walk of every device fires:

- to walk (a heartbeat's figures, a join): the devices whose heartbeat was written,
  forgotten or expired since the last observation (`Observation.changed`), the devices a
  next hop's report stops cutting off (alive again without a heartbeat of their own), and
  heartbeats without a time (taken as now, so never settled);
- to check for a loss: the alive devices among those, the ones reported unreachable, and
  the ones whose last heartbeat is older than `lost_after` (a heap by time, so a device
  gone quiet is found at the same tick as by the walk, with no change naming it).

Without `Observation.changed` (a full read, a fake gateway) or after anything went wrong
(`needs_full`), it names every device. Devices come back sorted, in both cases, so that
the triggers of one tick come in the same order either way.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from typing import Any

from orchestrator.triggers import suspects


class DetectScope:
    def __init__(self) -> None:
        self.needs_full = True  # the next tick walks every device
        self._reporters: set[str] = set()  # heartbeats carrying next hops' reports
        self._timeless: set[str] = set()  # heartbeats without an "at"
        self._cut: set[str] = set()  # the last tick's devices cut off by a report
        # (a heartbeat time, device): every alive device has an entry no later than its
        # last heartbeat's time; an entry that comes out with the device alive and
        # heartbeating since goes back in at that time. A push and a pop per device per
        # `lost_after`, not per heartbeat.
        self._since: list[tuple[float, str]] = []
        self._refreshed: set[str] = set()  # walked this tick and alive
        self._changed: frozenset[str] = frozenset()  # this tick's `Observation.changed`
        self._released: set[str] = set()  # cut off last tick, not this one
        self._full = True

    def begin(
        self, beats: Mapping[str, dict[str, Any]], changed: frozenset[str] | None
    ) -> dict[str, str]:
        """Start a tick; the devices reported unreachable by a next hop (`suspects`)."""
        self._full = changed is None or self.needs_full
        self.needs_full = False
        self._refreshed = set()
        self._changed = changed if changed is not None else frozenset()
        if self._full:
            self._reporters = {d for d, b in beats.items() if b.get("unreachable")}
            self._timeless = {d for d, b in beats.items() if not b.get("at")}
        else:
            for device in self._changed:
                beat = beats.get(device)
                _mark(self._reporters, device, beat is not None and bool(beat.get("unreachable")))
                _mark(self._timeless, device, beat is not None and not beat.get("at"))
        cut = suspects(beats, self._reporters)
        self._released = self._cut - cut.keys()
        self._cut = set(cut)
        return cut

    def to_walk(self, beats: Mapping[str, dict[str, Any]]) -> list[str]:
        """The devices whose heartbeat the tick walks, sorted."""
        if self._full:
            return sorted(beats)
        names = self._changed | self._released | self._timeless
        return sorted(d for d in names if d in beats)

    def alive_at(self, device: str, at: float, before: float | None) -> None:
        """The walk found a device alive, its last heartbeat at `at` (it was `before`)."""
        self._refreshed.add(device)
        if before is None or at < before:
            heapq.heappush(self._since, (at, device))

    def to_check(self, alive: Mapping[str, float], now: float, lost_after: float) -> list[str]:
        """The alive devices that may be lost now, sorted."""
        names: set[str]
        if self._full:
            names = set(alive)
        else:
            # A changed device the walk found alive is not lost (not cut, not stale).
            maybe = (self._changed - self._refreshed) | self._cut | self._timeless
            names = {d for d in maybe if d in alive}
        while self._since and now - self._since[0][0] > lost_after:
            _, device = heapq.heappop(self._since)
            last = alive.get(device)
            if last is None:
                continue  # lost since
            if now - last > lost_after:
                names.add(device)
            else:
                heapq.heappush(self._since, (last, device))  # it beat since: later
        return sorted(names)

    def fail(self) -> None:
        """The tick did not finish: the changes it was given may be half-applied."""
        self.needs_full = True


def _mark(members: set[str], device: str, present: bool) -> None:
    if present:
        members.add(device)
    else:
        members.discard(device)

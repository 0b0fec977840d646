"""The one owner of desired state on this replica.

`DesiredStates` holds the desired-state revision in force, the newest revision every
agent switched to (`live_revision`, sent in every HeartbeatAck), the plan version in
force, every agent's desired state at the revision (`DesiredCache`), the states a commit
computed for its rollout's switch, and the agents' long polls. Nothing else writes these:
the planner publishes a rollout's start (`start_rollout`), the reconcile loop its phases
(`switch`, `publish_revision`), the event bus what other replicas decided (`on_event`),
and any change to what states refer to drops the cache (`invalidate`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy.orm import Session

from orchestrator import fleet
from orchestrator.calls import Publish, RunSync
from orchestrator.desired import compute
from orchestrator.desired.cache import DesiredCache
from orchestrator.live.base import LiveState

State = dict[str, Any]

# A long poll re-checks the revision it has in memory this often, so a wake-up lost in the
# gap between checking and subscribing costs at most this long.
_POLL_SLICE_S = 1.0
# How long the cached desired states are served without asking SQL for the revision. This
# replica learns of a new revision at once (its own rollouts, other replicas' events); the
# SQL read only covers an event that never arrived. Asking SQL on every long poll queued a
# large fleet's re-polls on the SQL worker threads (1,000 agents: seconds before the
# affected agents got a new revision, and the loop's own SQL waited behind them).
_REVISION_CHECK_S = 1.0


@dataclass(frozen=True, slots=True)
class StagedStates:
    """The desired states a commit computed: at its rollout's revision (loading), and
    under the new plan alone (what its switch will publish)."""

    revision: int
    states: dict[str, State]
    targets: list[str]
    plan_version: int
    switched: dict[str, State]


class DesiredStates:
    def __init__(
        self,
        run_sync: RunSync,
        live: LiveState,
        publish: Publish,
        *,
        public_url: str,
        long_poll_max_s: float,
        on_delivery: Callable[[str, int, float], None],
        settle_heap: Callable[[], None],
    ) -> None:
        self._run_sync = run_sync
        self._live = live
        self._publish = publish
        self._base = public_url
        self._long_poll_max_s = long_poll_max_s
        self._on_delivery = on_delivery
        self._settle_heap = settle_heap
        self.revision = 0  # the desired-state revision in force, as this replica last saw it
        self.live_revision = 0  # the newest revision every agent switched to (HeartbeatAck)
        self.plan_version = 0  # the plan version in force, as this replica last saw it
        self._cache = DesiredCache()
        # A plan's states as its commit computed them, for its switch (see start_rollout).
        self._stash: tuple[int, dict[str, State]] | None = None
        self._refresh: asyncio.Task[DesiredCache] | None = None
        # The next forced refresh, queued behind the running one: every caller that asks
        # before its SQL read begins shares it (see `_forced`).
        self._next_forced: asyncio.Task[DesiredCache] | None = None
        # Shutting down: long polls answer now, so the server exits without waiting out
        # every agent's poll (SIGTERM took 25 s). Each poll's current wait, to cut it.
        self.closing = False
        self._waits: set[asyncio.Timeout] = set()

    async def load(self) -> None:
        """Read the revision, live revision and plan version in force from SQL."""
        self.revision = await self._run_sync(compute.current_version)
        self.live_revision = await self._run_sync(compute.live_version)
        self.plan_version = await self._run_sync(_plan_version)

    def close_polls(self) -> None:
        """Answer every long poll now with what is current, and every later one at once
        (a server shutting down; the agents poll the next replica, or this one again)."""
        self.closing = True
        now = asyncio.get_running_loop().time()
        for timeout in list(self._waits):
            timeout.reschedule(now)

    async def stop(self) -> None:
        if self._refresh is not None and not self._refresh.done():
            # Its SQL runs in a worker thread: let it finish before the engine goes.
            await asyncio.wait({self._refresh}, timeout=10.0)

    # -- publishing --------------------------------------------------------------------
    def invalidate(self) -> None:
        """What states refer to changed (a device's URL, a deployment): compute them again,
        and do not serve a stashed switch."""
        self._cache.stale = True
        self._stash = None

    async def start_rollout(
        self, plan_version: int, revision: int, devices: list[str], staged: StagedStates | None
    ) -> None:
        """A commit put `plan_version` in force through a rollout loading at `revision`:
        serve the states the commit computed (not again, neither now nor at the switch),
        tell every replica and wake `devices`."""
        self.revision = max(self.revision, revision)
        if staged is not None:
            self._install(staged.revision, staged.states, staged.targets)
            self._stash = (staged.plan_version, staged.switched)
        else:
            self.invalidate()
        await self._publish(
            "rollout", {"version": plan_version, "revision": revision, "state": "loading"}
        )
        await self._wake(devices, revision)

    async def switch(self, plan_version: int, revision: int, targets: list[str]) -> None:
        """A rollout switches routes at `revision`: serve its stashed states when still
        valid (else they are computed from SQL), and publish the revision."""
        stash = self._stash
        if stash is not None and stash[0] == plan_version:
            self._install(revision, stash[1], targets)
        await self.publish_revision(plan_version, revision, "switching", targets)

    async def publish_revision(
        self,
        plan_version: int,
        revision: int,
        state: str,
        devices: list[str],
        *,
        live: int | None = None,
    ) -> None:
        """A rollout phase changed what agents run (or made a revision live): tell every
        replica and wake the affected agents' long polls."""
        self.revision = max(self.revision, revision)
        if live is not None:
            self.live_revision = max(self.live_revision, live)
        # The cached states go stale through self.revision (see on_event).
        data: dict[str, Any] = {"version": plan_version, "revision": revision, "state": state}
        if live is not None:
            data["live_version"] = live
        await self._publish("rollout", data)
        await self._wake(devices, revision)

    async def on_event(self, kind: str, data: dict[str, Any]) -> None:
        """What any replica decided: a plan version in force, a rollout's revision."""
        if kind == "placement" and data.get("in_force"):
            self.plan_version = max(self.plan_version, int(data.get("version") or 0))
        if kind == "rollout":
            self.revision = max(self.revision, int(data.get("revision") or 0))
            if data.get("state") == "rolled_back":
                self.plan_version = await self._run_sync(_plan_version)
            if data.get("live_version") is not None:
                self.live_revision = max(self.live_revision, int(data["live_version"]))
            # No invalidation: the cached states are keyed by revision, and self.revision
            # now makes an older cache stale; a phase that keeps its revision (`live`) keeps
            # every agent's desired state too, and recomputing it cost a whole fleet's worth.

    def _install(self, revision: int, states: dict[str, State], targets: list[str]) -> None:
        # Stamped copies: the same dicts may be installed again at a later revision.
        stamped = {d: {**state, "version": revision} for d, state in states.items()}
        self._cache.install(revision, stamped, frozenset(targets))

    async def _wake(self, devices: list[str], revision: int) -> None:
        for device_id in devices:
            await self._live.publish(compute.channel(device_id), {"version": revision})

    # -- serving -------------------------------------------------------------------------
    async def current(self, force: bool = False) -> DesiredCache:
        """The cache when fresh; else one refresh that every caller waiting meanwhile shares
        (`force`: one whose SQL read begins after this call). Not a lock: a lock hands over
        to one waiter per loop turn, and a fleet's long polls queued behind it for seconds."""
        if force:
            return await self._forced()
        if self._cache.fresh(self.revision, _REVISION_CHECK_S):
            return self._cache
        loop = asyncio.get_running_loop()
        refresh = self._refresh
        if refresh is None or refresh.done() or refresh.get_loop() is not loop:
            refresh = self._refresh = loop.create_task(self._read(False))
        # Shielded: a long poll whose client went away must not cancel the others' refresh.
        return await asyncio.shield(refresh)

    async def _forced(self) -> DesiredCache:
        # A refresh per caller queued a whole recomputation per long poll: 1,000 newly
        # enrolled agents, each polling once, kept the SQL worker threads busy for seconds
        # and heartbeats timed out behind them (bench/soak.py). Callers that ask while one is
        # queued share it; its read still begins after each of them asked.
        loop = asyncio.get_running_loop()
        queued = self._next_forced
        if queued is None or queued.done() or queued.get_loop() is not loop:
            queued = self._next_forced = loop.create_task(self._read_after_running())
        return await asyncio.shield(queued)

    async def _read_after_running(self) -> DesiredCache:
        running = self._refresh
        if running is not None and not running.done():
            with contextlib.suppress(Exception):
                await asyncio.shield(running)
        # From here on a new caller needs a read that begins after it: queue another.
        self._next_forced = None
        task = asyncio.current_task()
        assert task is not None
        self._refresh = cast("asyncio.Task[DesiredCache]", task)
        return await self._read(True)

    async def _read(self, force: bool) -> DesiredCache:
        cache = self._cache
        revision = await self._run_sync(compute.current_version)
        self.revision = max(self.revision, revision)
        if force or cache.stale or cache.version is None or cache.version < revision:
            revision, states, targets = await self._run_sync(compute.compute, self._base)
            cache.install(revision, states, frozenset(targets))
            self._settle_heap()
        cache.confirm()
        return cache

    async def of(self, device_id: str) -> State:
        """One agent's desired state at the revision in force."""
        cache = await self.current()
        state = cache.states.get(device_id)
        if state is None:
            # Enrolled after the cache was computed, or deleted: ask SQL which.
            await self._run_sync(fleet.get_device, device_id)
            cache = await self.current(force=True)
            state = cache.states.get(device_id) or {
                "device_id": device_id,
                "version": cache.version or 0,
                "partitions": [],
                "cascade_stages": [],
                "sources": [],
            }
        return state

    async def wait(self, device_id: str, after: int, wait_s: float) -> State:
        """A long poll: answered once this agent has news (`orchestrator.desired.cache`),
        or with the state of now when `wait_s` runs out."""
        state = await self.of(device_id)
        deadline = time.monotonic() + min(max(wait_s, 0.0), self._long_poll_max_s)
        news = self._cache.news(device_id, after)
        checked = self.revision
        while not news and not self.closing:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            woken = await self._wait_slice(device_id, min(remaining, _POLL_SLICE_S))
            if woken is not None:
                # The wake-up names the new revision (maybe another replica's, whose event
                # has not arrived): a cache older than that is stale.
                self.revision = max(self.revision, int(woken.get("version") or 0))
            if woken is not None or self.revision > checked:
                checked = self.revision
                state = await self.of(device_id)
                news = self._cache.news(device_id, after)
        if news and state["version"] > after:
            # The rollout's acknowledgement that this agent has its new desired state. This
            # replica's loop is told directly, without the round trip through the event bus
            # (which can still lose events while Redis is unreachable): a lost delivery
            # would leave the reaction time unmeasured.
            at = time.time()
            self._on_delivery(device_id, int(state["version"]), at)
            await self._publish(
                "delivery", {"device_id": device_id, "revision": state["version"], "at": at}
            )
        return state

    async def _wait_slice(self, device_id: str, timeout_s: float) -> dict[str, Any] | None:
        """A wake-up on the device's channel within `timeout_s`; None on a timeout or
        when `close_polls` cut it short."""
        try:
            async with asyncio.timeout(None) as cut:
                self._waits.add(cut)
                try:
                    return await self._live.wait(compute.channel(device_id), timeout_s)
                finally:
                    self._waits.discard(cut)
        except TimeoutError:
            return None

    def news(self, device_id: str, after: int) -> bool:
        """Whether an agent holding revision `after` has news (see `current` for the cache
        this answers from)."""
        return self._cache.news(device_id, after)


def _plan_version(session: Session) -> int:
    row = compute.in_force(session)
    return row.version if row is not None else 0

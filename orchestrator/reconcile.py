"""The reconcile loop: observe -> detect triggers -> re-plan -> advance the rollout.

One loop runs per control plane, and only the leader's does anything: leadership is the
live-state lock `reconcile` (`orchestrator.lease`), renewed every `leader_ttl_s / 3` by a
task of its own and checked before every write a tick makes; a follower retries every
half second, so when the leader dies another replica takes over within `leader_ttl_s`
plus half a second.

Each tick runs the steps in order; every step is timed into
`continuum_reconcile_step_seconds{step}` and isolated: an exception is logged and counted
in `continuum_reconcile_step_errors{step}`, and the next steps and ticks still run (as in
Ray Serve's controller). Desired state (plan versions, rollouts: SQL) is kept apart from
observed state (heartbeats, links: the live state), and every call the loop makes to
either goes through one `Gateway`, so the loop runs against a fake in tests.

- observe: the alive devices' latest heartbeats, the measured links, device metadata and
  the predicted compute time of each partition in force.
- detect: triggers (`orchestrator.triggers`) from what is new since the last tick: a
  device that joined or was lost (no heartbeat for `lost_after_intervals` intervals), a
  battery projection under the horizon or charging starting or stopping, a smoothed link
  figure moving by more than `link_change_fraction`, measured latency drifting from the
  prediction. Operator actions (cordon, drain, deployments) are triggered by the API.
- replan: each trigger is recorded (audit log and `/v1/events`) with its reason, and one
  planner request covers them all; the planner solves incrementally in its process pool
  and applies the candidate only under the hysteresis rule (`orchestrator.hysteresis`).
  The loop never waits for a solve.
- rollout: acknowledgements of the active rollout (`orchestrator.rollouts`): long polls
  answered with its revision (the reaction time is measured on them), new partitions
  reported ready (then routes switch), agents running the switched revision (then it is
  live); a rollout whose loading outlives `rollout_timeout_s` rolls back.

A heartbeat pokes the loop, so a change is seen within milliseconds on the leader's
replica and within `reconcile_interval_s` on another.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

from orchestrator.carbon.grid import GridWatch
from orchestrator.detect_scope import DetectScope
from orchestrator.lease import Lease, LeaseLost
from orchestrator.reconcile_ports import Gateway, LoopConfig, Observation, StepMetrics
from orchestrator.triggers import (
    BatteryWatch,
    LatencyWatch,
    LinkWatch,
    Trigger,
    fired_targets,
    link_name,
)

log = logging.getLogger(__name__)

LOCK = "reconcile"
_FOLLOWER_RETRY_S = 0.5
T = TypeVar("T")
__all__ = ["LOCK", "Gateway", "LoopConfig", "Observation", "Reconciler", "StepMetrics"]


class Reconciler:
    def __init__(self, gateway: Gateway, config: LoopConfig, metrics: StepMetrics) -> None:
        self.gateway = gateway
        self.config = config
        self.metrics = metrics
        self.holder = f"reconcile-{uuid.uuid4().hex[:12]}"
        self._leading = False
        # Set by `run`, which keeps the lease: a tick called on its own (tests) is not fenced.
        self._leased = False
        self._wake = asyncio.Event()
        self._lease = Lease(
            lambda holder, ttl: self.gateway.acquire(holder, ttl),
            self.holder,
            config.leader_ttl_s,
            self._wake.set,  # the loop steps down at its next look
        )
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._reset()

    def _reset(self) -> None:
        """Forget what was observed (on becoming leader: the next observation is the
        baseline, so a new leader does not fire a trigger for every device it sees)."""
        cfg = self.config
        self.links = LinkWatch(
            alpha=cfg.link_alpha,
            threshold=cfg.link_change_fraction,
            rtt_floor_ms=cfg.rtt_floor_ms,
            cost_step=cfg.link_cost_step,
        )
        self.batteries = BatteryWatch(horizon_h=cfg.horizon_h)
        self.latency = LatencyWatch(threshold=cfg.latency_drift_fraction)
        self.grid = GridWatch(threshold=cfg.grid_change_fraction)
        self._alive: dict[str, float] = {}  # device -> last heartbeat time
        self._scope = DetectScope()  # which devices a tick's detect looks at
        self._seen_beat: dict[str, float] = {}
        self._seen_link: dict[str, float] = {}
        self._grace_until: float | None = None
        self._ever_alive: set[str] = set()
        self._silent_checked = False
        self._grace_joined: set[str] = set()  # came during the grace, after the first tick
        self._blind = False  # the last observation failed (the live state or SQL down)

    # -- life cycle ------------------------------------------------------------------------
    def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self.run(), name="continuum-reconcile")

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            # Let the tick in progress finish: cancelling it would orphan a SQL call in its
            # worker thread (with a connection the engine is about to dispose).
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self._task), 10.0)
            if not self._task.done():
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            self._task = None
        if self._leading:
            if self.is_leader:
                with contextlib.suppress(Exception):
                    await self.gateway.release(self.holder)
            self._lead(False)

    def poke(self) -> None:
        """Something changed (a heartbeat arrived): run a tick now. A follower has no
        tick to run: it tries the lock on its own clock (`_FOLLOWER_RETRY_S`), not once
        per heartbeat that reaches its replica."""
        if self.is_leader:
            self._wake.set()

    @property
    def is_leader(self) -> bool:
        """Whether this loop leads now: it took the lock and, when it keeps the lease
        itself, its last renewal is recent enough that no other replica can hold it."""
        return self._leading and (not self._leased or self._lease.valid())

    def _lead(self, leader: bool, *, continued: bool = False) -> None:
        if leader != self._leading:
            log.info("reconcile loop: %s", "leading" if leader else "following")
            # A lead taken over starts from a baseline; one this loop only stalled out of
            # (no other replica led meanwhile) goes on, so a change seen in the stall fires.
            if leader and not continued:
                self._reset()
        self._leading = leader
        self.metrics.leader(leader)

    def _fence(self) -> None:
        """Before a write: raise `LeaseLost` unless the lease still holds."""
        if self._leased and not self.is_leader:
            raise LeaseLost(f"{self.holder}: the leader lease ran out during a tick")

    async def run(self) -> None:
        self._leased = True
        renewal: asyncio.Task[None] | None = None
        try:
            while not self._stopping:
                if self._leading and not self.is_leader:
                    log.warning("reconcile loop: the leader lease ran out; following")
                    self._lead(False)
                if not self._leading:
                    if renewal is not None:
                        renewal.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await renewal
                        renewal = None
                    if await self._lease.take():
                        self._lead(True, continued=self._lease.continued)
                        renewal = asyncio.create_task(
                            self._lease.keep(), name="continuum-reconcile-lease"
                        )
                    else:
                        self.metrics.leader(False)
                if not self.is_leader:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), _FOLLOWER_RETRY_S)
                    # A poke from just before it lost the lead must not make it spin.
                    await asyncio.sleep(self.config.min_tick_s)
                    self._wake.clear()
                    continue
                try:
                    await self.tick()
                except LeaseLost as lost:
                    log.warning("reconcile loop: %s; its remaining steps were not run", lost)
                    continue
                if self._stopping:
                    break
                await self._pause()
        finally:
            # A cancelled loop (a crash, in tests) must not go on renewing a lock.
            if renewal is not None:
                renewal.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await renewal

    async def _pause(self) -> None:
        # Heartbeats poke the loop hundreds of times a second on a large fleet, and a
        # tick reads every device's latest state: pokes that arrive within
        # `min_tick_s` are served by one tick.
        await asyncio.sleep(self.config.min_tick_s)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self.config.interval_s)
        self._wake.clear()

    # -- one tick --------------------------------------------------------------------------
    async def _step(self, name: str, fn: Callable[[], Awaitable[T]]) -> T | None:
        started = time.perf_counter()
        try:
            return await fn()
        except (asyncio.CancelledError, LeaseLost):
            raise
        except Exception:  # isolated: one step's failure must not stop the others
            log.exception("reconcile step %s failed", name)
            self.metrics.step_failed(name)
            return None
        finally:
            self.metrics.observe_step(name, time.perf_counter() - started)

    async def tick(self) -> list[Trigger]:
        obs = await self._step("observe", self.gateway.observe)
        fired: list[Trigger] = []
        if obs is None:
            self._blind = True
        elif self._blind:
            # The live state or the database was unreachable: heartbeats were refused
            # meanwhile and the agents are backing off. Start again from a baseline, with
            # the grace a new leader gives, rather than count them lost for our outage.
            self._blind = False
            self._reset()
        if obs is not None:
            fired = await self._step("detect", lambda: self._detect(obs)) or []
            if fired:
                await self._step("replan", lambda: self._replan(fired))
        await self._step("rollout", lambda: self._advance(obs))
        return fired

    async def _detect(self, obs: Observation) -> list[Trigger]:
        return self.detect(obs)

    def detect(self, obs: Observation) -> list[Trigger]:
        try:
            return self._detect_in(obs)
        except BaseException:
            self._scope.fail()  # this tick's changes were not all taken in
            raise

    def _detect_in(self, obs: Observation) -> list[Trigger]:
        cfg = self.config
        lost_after = cfg.heartbeat_interval_s * cfg.lost_after_intervals
        fired: list[Trigger] = []
        # A new leader (a restart, a failover) first gives every device `lost_after` to
        # report: until then what it sees is the baseline, not a change. Without this, a
        # restarted control plane with an empty live state would re-place every deployment
        # whose source had not heartbeated yet.
        first = self._grace_until is None
        if self._grace_until is None:
            grace = lost_after if cfg.startup_grace_s is None else cfg.startup_grace_s
            self._grace_until = obs.now + grace
        elif (
            obs.now < self._grace_until
            and obs.devices
            and all(d in self._alive for d in obs.devices)
        ):
            # Everyone is back: nothing is left to wait for. A restarted control plane's
            # grace must outlast the agents' reconnect backoff (a plan re-made without the
            # devices still on their way back took their deployments away: 404s at the
            # edge), but not delay anything once they have all reported.
            self._grace_until = obs.now
        baseline = first or obs.now < self._grace_until
        scope = self._scope
        cut = scope.begin(obs.beats, obs.changed)  # reported unreachable by a next hop
        # The devices whose walk can change anything (a walk of every device finds the
        # same: `orchestrator.detect_scope`).
        for device in scope.to_walk(obs.beats):
            beat = obs.beats[device]
            at = float(beat.get("at") or obs.now)
            if obs.now - at > lost_after or device in cut:
                continue  # stale or cut off: handled as lost below
            if device not in self._alive and not baseline:
                fired.append(Trigger("device-joined", device, f"device {device} joined", at))
            elif device not in self._alive and not first:
                self._grace_joined.add(device)
            scope.alive_at(device, at, self._alive.get(device))
            self._alive[device] = at
            self._ever_alive.add(device)
            if self._seen_beat.get(device) == at:
                continue
            self._seen_beat[device] = at
            meta = obs.devices.get(device) or {}
            level = beat.get("battery_pct")
            if level is not None and meta.get("battery_min_pct") is not None:
                t = self.batteries.observe(
                    device, float(level), float(meta["battery_min_pct"]), beat.get("charging"), at
                )
                if t is not None and not baseline:
                    fired.append(t)
            for key, figures in (beat.get("metrics") or {}).items():
                predicted = obs.predicted_ms.get(key)
                hist = figures.get("compute_ms") or {}
                if predicted is None or not hist:
                    continue
                t = self.latency.observe(
                    device, key, int(hist.get("count", 0)), float(hist.get("sum_ms", 0.0)),
                    predicted, at,
                )  # fmt: skip
                if t is not None and not baseline:
                    fired.append(t)
        for device in scope.to_check(self._alive, obs.now, lost_after):
            last = self._alive[device]
            seen = obs.beats.get(device)
            at = float(seen.get("at") or 0.0) if seen is not None else last
            if seen is None or obs.now - at > lost_after or device in cut:
                del self._alive[device]
                self._seen_beat.pop(device, None)
                self.links.forget(device)
                self.batteries.forget(device)
                if baseline:
                    # Quiet again during the grace (an agent backing off after our own
                    # outage): lost at its end if it has not come back by then.
                    self._ever_alive.discard(device)
                    self._grace_joined.discard(device)
                    continue
                if device in cut:
                    fired.append(Trigger("hop-unreachable", device, cut[device], obs.now))
                    continue
                reason = (
                    f"device {device} lost: no heartbeat for {obs.now - last:.1f} s "
                    f"({cfg.lost_after_intervals} intervals of {cfg.heartbeat_interval_s:g} s)"
                )
                fired.append(Trigger("device-lost", device, reason, obs.now))
        if not baseline and not self._silent_checked:
            self._silent_checked = True
            # Devices that came during the grace were no joins then, but a deployment left
            # waiting for one of them (its source was not alive at the last plan) waits for
            # a re-plan: one, for all of them, now.
            came = sorted(self._grace_joined & self._alive.keys())
            if came:
                more = f" and {len(came) - 10} more" if len(came) > 10 else ""
                named = ", ".join(came[:10]) + more
                fired.append(Trigger(
                    "device-joined", came[0] if len(came) == 1 else f"{len(came)} devices",
                    f"{named} reported while this control plane took the lead", obs.now,
                ))  # fmt: skip
            for device in sorted(set(obs.devices) - self._ever_alive):
                reason = (
                    f"device {device} lost: no heartbeat in the {lost_after:g} s since this "
                    "control plane took the lead"
                )
                fired.append(Trigger("device-lost", device, reason, obs.now))
        for t in self.links.set_floors(obs.link_floors, obs.now, costs=obs.link_costs):
            if not baseline:
                fired.append(t)
        for (a, b), figures in obs.links.items():
            at = float(figures.get("at") or obs.now)
            name = link_name(a, b)
            if self._seen_link.get(name) == at:
                continue
            self._seen_link[name] = at
            t = self.links.observe(a, b, float(figures["mbps"]), float(figures["rtt_ms"]), at)
            if t is not None and not baseline:
                fired.append(t)
        self.grid.solved_with(obs.plan_version, obs.planned_grid)
        for zone, g in obs.grid.items():
            t = self.grid.observe(zone, g, obs.now)
            if t is not None and not baseline:
                fired.append(t)
        for t in fired:
            self.metrics.trigger(t.kind)
        return fired

    async def _replan(self, fired: list[Trigger]) -> None:
        self._fence()
        await self.gateway.record_triggers(fired)
        reason = "; ".join(dict.fromkeys(t.reason for t in fired))
        self._fence()
        targets = fired_targets(fired)
        await self.gateway.replan(reason, min(t.observed_at for t in fired), targets)
        # The plan about to be made uses the figures of now: measure from them (a link's or
        # a battery's, only when its apps are the ones re-placed: the others' drift adds up).
        self.links.commit(targets)
        self.batteries.commit(targets)
        self.grid.commit()
        # Latency states reset themselves when a partition's prediction changes: resetting
        # them here would re-fire a drift no plan fixes on every re-solve.

    async def _advance(self, obs: Observation | None) -> None:
        rollout = await self.gateway.active_rollout()
        if rollout is None:
            return
        now = obs.now if obs is not None else time.time()
        beats = obs.beats if obs is not None else {}
        delivered = self.gateway.deliveries(rollout.revision)
        for device in rollout.targets:
            at = delivered.get(device)
            if at is not None and device not in rollout.delivered:
                self._fence()
                await self.gateway.record_ack(rollout, "delivered", device, at)
                rollout.delivered[device] = at
        alive_targets = [d for d in rollout.targets if d in beats]
        if (
            rollout.state == "loading"
            and rollout.observed_at is not None
            and alive_targets
            and all(d in rollout.delivered for d in alive_targets)
        ):
            last = max(rollout.delivered[d] for d in alive_targets)
            reaction_ms = max(last - rollout.observed_at, 0.0) * 1000.0
            self._fence()
            await self.gateway.record_reaction(rollout, reaction_ms)
            self.metrics.reaction(reaction_ms / 1000.0)
            rollout.observed_at = None
        if rollout.state == "loading":
            for device, keys in rollout.pending.items():
                beat = beats.get(device)
                if beat is None or device in rollout.ready:
                    continue
                ready = beat.get("partitions") or {}
                if all(ready.get(k) for k in keys):
                    self._fence()
                    await self.gateway.record_ack(rollout, "ready", device, now)
                    rollout.ready[device] = now
            if all(d in rollout.ready for d in rollout.pending):
                self._fence()
                await self.gateway.switch(rollout)
            elif now - rollout.started_at > self.config.rollout_timeout_s:
                missing = sorted(d for d in rollout.pending if d not in rollout.ready)
                lost = [d for d in missing if d not in beats]
                why = (
                    f"rollout of plan version {rollout.plan_version} not ready after "
                    f"{self.config.rollout_timeout_s:g} s: waiting on {', '.join(missing)}"
                    + (f" ({', '.join(lost)} lost)" if lost else "")
                )
                self._fence()
                await self.gateway.roll_back(rollout, why)
            return
        # switching, or a rollback: live once every alive target runs the revision.
        running = all(
            int((beats.get(d) or {}).get("desired_version") or 0) >= rollout.revision
            for d in rollout.targets
            if d in beats
        )
        if running:
            self._fence()
            await self.gateway.settle(rollout)

"""The reconcile loop's `Gateway` (`orchestrator.reconcile`) bound to the real pieces:
the live state (what is observed), SQL (plan versions, rollouts, the audit log), the
planner (re-placement requests), the desired-state owner (a rollout's revisions) and the
event bus."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Collection, Sequence
from typing import Any, NamedTuple, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from orchestrator import audit, rollouts
from orchestrator.calls import Publish, RunSync
from orchestrator.carbon.live import GridNow
from orchestrator.db.tables import Device, Link, PlanVersion
from orchestrator.desired import compute
from orchestrator.desired.states import DesiredStates
from orchestrator.floors import plan_floors
from orchestrator.live.base import LiveState
from orchestrator.live.mirror import HeartbeatMirror
from orchestrator.plan_versions import parse_apps
from orchestrator.reconcile import LOCK, Observation
from orchestrator.rollouts import RolloutView
from orchestrator.triggers import LinkCosts, Trigger


class RecordTrigger(Protocol):
    def __call__(
        self, kind: str, target: str, reason: str, observed_at: float, *, replan: bool = False
    ) -> Awaitable[None]: ...


class RecordTriggers(Protocol):
    def __call__(self, triggers: Sequence[Trigger]) -> Awaitable[None]: ...


class RequestReplan(Protocol):
    def __call__(
        self,
        reason: str,
        *,
        observed_at: float | None = None,
        targets: Collection[str] | None = None,
    ) -> Awaitable[None]: ...


# Deliveries older than this many revisions are of no use to any rollout.
_KEEP_REVISIONS = 8
_DECLARED_TTL_S = 5.0


class ReconcileGateway:
    def __init__(
        self,
        live: LiveState,
        run_sync: RunSync,
        desired: DesiredStates,
        *,
        record_trigger: RecordTrigger,
        request_replan: RequestReplan,
        publish: Publish,
        grid: GridNow | None = None,
        record_triggers: RecordTriggers | None = None,
    ) -> None:
        self._live = live
        # Only the heartbeats changed since the last tick are read (a full read now and
        # then): the loop's view is the live state's, at a cost that follows the rate of
        # heartbeats rather than the size of the fleet times the rate of ticks.
        self.mirror = HeartbeatMirror(live)
        self._grid = grid if grid is not None else GridNow(None)  # zones' intensity now
        self._run_sync = run_sync
        self._desired = desired
        self._record_trigger = record_trigger
        # A tick's triggers together (one transaction); without it, one at a time.
        self._record_triggers = record_triggers
        self._request_replan = request_replan
        self._publish = publish
        self._devices: dict[str, dict[str, Any]] | None = None
        # Bumped by every device event: a read that was in flight across one is stale (it
        # would otherwise be kept until the next device event: a zone set meanwhile went
        # unwatched).
        self._devices_generation = 0
        # declared link -> Mbit/s, re-read every _DECLARED_TTL_S (another replica may declare)
        self._declared: tuple[float, dict[tuple[str, str], float]] = (0.0, {})
        # The plan in force's figures, read when its version changes.
        self._in_force = _InForce(-1, {}, {}, {}, None)
        # revision -> device -> when its long poll was answered with that revision
        self._delivered: dict[int, dict[str, float]] = {}

    # -- fed by the event bus (every replica's long polls) -------------------------------
    def on_delivery(self, device: str, revision: int, at: float) -> None:
        self._delivered.setdefault(revision, {}).setdefault(device, at)
        for old in sorted(self._delivered)[:-_KEEP_REVISIONS]:
            del self._delivered[old]

    def devices_changed(self) -> None:
        self._devices = None
        self._devices_generation += 1

    def links_changed(self) -> None:
        self._declared = (0.0, {})

    def deliveries(self, revision: int) -> dict[str, float]:
        out: dict[str, float] = {}
        for rev, seen in self._delivered.items():
            if rev >= revision:
                for device, at in seen.items():
                    out[device] = min(out.get(device, at), at)
        return out

    # -- leadership ----------------------------------------------------------------------
    async def acquire(self, holder: str, ttl_s: float) -> bool:
        return await self._live.acquire(LOCK, holder, ttl_s)

    async def release(self, holder: str) -> None:
        await self._live.release(LOCK, holder)

    # -- observe -------------------------------------------------------------------------
    async def observe(self) -> Observation:
        beats = await self.mirror.read()
        links = await self._live.links()
        if time.monotonic() - self._declared[0] > _DECLARED_TTL_S:
            self._declared = (time.monotonic(), await self._run_sync(_declared_mbps))
        declared = self._declared[1]
        # Capped like the scenario builder caps them: a measured figure above the declared
        # capacity is the declared one (loopback probes find Gbit/s and jitter wildly).
        links = {
            key: {**figures, "mbps": min(float(figures["mbps"]), declared[key])}
            if key in declared
            else figures
            for key, figures in links.items()
        }
        devices = self._devices
        if devices is None:
            generation = self._devices_generation
            devices = await self._run_sync(_device_meta)
            if generation == self._devices_generation:
                self._devices = devices
        version = self._desired.plan_version
        if version != self._in_force.version:
            self._in_force = await self._run_sync(_in_force_figures, version)
        now = time.time()
        # Zones whose intensity the plan takes from the grid now (no declared figure).
        watched = {
            d: m["zone"] for d, m in devices.items() if m.get("zone") and m["grid_declared"] is None
        }
        grid = self._grid.at(set(watched.values()), now)
        solved_with = self._in_force.grid
        planned_grid = {z: solved_with[d] for d, z in watched.items() if d in solved_with}
        # The devices the mirror's read changed, for a detect step that looks at those
        # alone: this is the loop's one read of the mirror, so nothing changed unseen.
        return Observation(now, beats, links, devices, self._in_force.predicted_ms, grid,
                           link_floors=self._in_force.link_floors,
                           link_costs=self._in_force.link_costs,
                           changed=self.mirror.last_changed,
                           plan_version=version, planned_grid=planned_grid)  # fmt: skip

    # -- act -------------------------------------------------------------------------------
    async def record_triggers(self, triggers: Sequence[Trigger]) -> None:
        if self._record_triggers is not None:
            await self._record_triggers(triggers)
            return
        for t in triggers:
            await self._record_trigger(t.kind, t.target, t.reason, t.observed_at)

    async def replan(self, reason: str, observed_at: float, targets: Collection[str]) -> None:
        await self._request_replan(reason, observed_at=observed_at, targets=targets)

    async def active_rollout(self) -> RolloutView | None:
        return await self._run_sync(rollouts.active)

    async def record_ack(self, rollout: RolloutView, kind: str, device: str, at: float) -> None:
        await self._run_sync(rollouts.record, rollout.id, kind, device, at)

    async def record_reaction(self, rollout: RolloutView, reaction_ms: float) -> None:
        def write(session: Session) -> None:
            rollouts.record_reaction(session, rollout.id, reaction_ms)
            audit.record(
                session, "loop", "placement.reaction", f"plan_version:{rollout.plan_version}",
                reason=rollout.reason,
                detail={"reaction_ms": reaction_ms, "revision": rollout.revision,
                        "targets": rollout.targets},
            )  # fmt: skip

        await self._run_sync(write)
        await self._publish(
            "replacement",
            {
                "version": rollout.plan_version,
                "revision": rollout.revision,
                "reason": rollout.reason,
                "reaction_ms": round(reaction_ms, 1),
                "targets": rollout.targets,
            },
        )

    async def switch(self, rollout: RolloutView) -> None:
        revision = await self._run_sync(rollouts.switch, rollout.id)
        if revision is not None:
            await self._desired.switch(rollout.plan_version, revision, rollout.targets)

    async def settle(self, rollout: RolloutView) -> None:
        if await self._run_sync(rollouts.settle, rollout.id):
            state = "live" if rollout.state == "switching" else "rolled_back"
            await self._desired.publish_revision(
                rollout.plan_version, rollout.revision, state, [], live=rollout.revision
            )

    async def roll_back(self, rollout: RolloutView, why: str) -> None:
        revision = await self._run_sync(rollouts.roll_back, rollout.id, why)
        if revision is not None:
            await self._record_trigger("rollout-timeout", f"plan_version:{rollout.plan_version}",
                                         why, time.time(), replan=False)  # fmt: skip
            await self._desired.publish_revision(rollout.plan_version, revision, "rolled_back",
                                                 rollout.targets)  # fmt: skip


def _declared_mbps(session: Session) -> dict[tuple[str, str], float]:
    return {(k.a, k.b): float(k.mbps) for k in session.scalars(select(Link))}


def _device_meta(session: Session) -> dict[str, dict[str, Any]]:
    return {
        d.id: {"battery_min_pct": d.battery_min_pct if d.battery_capacity_wh else None,
               "state": d.state, "gflops": d.gflops, "zone": d.zone,
               "grid_declared": d.grid_declared_gco2_per_kwh}
        for d in session.scalars(select(Device))
    }  # fmt: skip


class _InForce(NamedTuple):
    """What the loop reads of the plan in force (`version`, the desired plan's)."""

    version: int
    # partition key -> predicted compute ms per request (the cost model's: block GFLOP /
    # device GFLOP/s)
    predicted_ms: dict[str, float]
    link_floors: dict[str, float]  # `orchestrator.floors.plan_floors`
    grid: dict[str, float]  # device -> the grid gCO2e/kWh it was solved with
    link_costs: LinkCosts | None  # what a fall costs it (`plan_floors`)


def _in_force_figures(session: Session, version: int) -> _InForce:
    row = session.scalar(select(PlanVersion).where(PlanVersion.in_force.is_(True)))
    if row is None:
        return _InForce(version, {}, {}, {}, None)
    grid = {
        d["id"]: float(d["grid_gco2_per_kwh"])
        for d in row.scenario.get("devices", [])
        if d.get("grid_gco2_per_kwh") is not None
    }
    gflops = {d["id"]: float(d["gflops"]) for d in row.scenario.get("devices", [])}
    layers = {m["id"]: m["layers"] for m in row.scenario.get("models", [])}
    out: dict[str, float] = {}
    apps = parse_apps(row.plan)
    for app in apps:
        blocks = layers.get(app.model or "")
        if not blocks or not app.segments:
            continue
        index = {b["name"]: k for k, b in enumerate(blocks)}
        for seg in app.segments:
            first, last = index[seg.first], index[seg.last]
            cost = sum(float(b["gflops"]) for b in blocks[first : last + 1])
            rate = gflops.get(seg.device) or 0.0
            if rate > 0:
                key = compute.partition_key(app.id, app.model or "", first, last)
                out[key] = cost / rate * 1000.0
    # The apps parsed once, for both; the plan's device and link figures not at all.
    floors, costs = plan_floors(row.scenario, apps, (row.plan or {}).get("links") or [])
    return _InForce(version, out, floors, grid, costs)

"""What the reconcile loop (`orchestrator.reconcile`) works through: its observation of
the fleet, the one gateway every read and write goes through (the real one is
`orchestrator.reconcile_gateway.ReconcileGateway`; tests give a fake), its configuration
and its metrics."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from orchestrator.rollouts import RolloutView
from orchestrator.triggers import LinkCosts, Trigger


@dataclass
class Observation:
    now: float  # epoch seconds
    beats: dict[str, dict[str, Any]]  # alive device -> latest heartbeat (with "at")
    links: dict[tuple[str, str], dict[str, float]]  # (a, b) -> mbps, rtt_ms, at
    devices: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> battery_min_pct
    predicted_ms: dict[str, float] = field(default_factory=dict)  # partition key -> ms
    grid: dict[str, float] = field(default_factory=dict)  # zone -> gCO2e/kWh now (issue 14)
    # Link name -> Mbit/s below which the plan in force may break there, and what a fall
    # on each costs it (`orchestrator.floors.plan_floors`).
    link_floors: dict[str, float] = field(default_factory=dict)
    link_costs: LinkCosts | None = None
    # Devices whose heartbeat was written, forgotten or expired since the last observation
    # (`HeartbeatMirror.last_changed`); None: not known, every device may have changed.
    changed: frozenset[str] | None = None
    plan_version: int = -1  # the plan in force (-1: none, or not known)
    # Zone -> gCO2e/kWh the plan in force was solved with (its scenario's figure).
    planned_grid: dict[str, float] = field(default_factory=dict)


class Gateway(Protocol):
    """Everything the loop reads or changes, in one place (the real one is
    `orchestrator.reconcile_gateway.ReconcileGateway`; tests give a fake)."""

    async def acquire(self, holder: str, ttl_s: float) -> bool: ...

    async def release(self, holder: str) -> None: ...

    async def observe(self) -> Observation: ...

    async def record_triggers(self, triggers: Sequence[Trigger]) -> None:
        """Each trigger in the audit log and on the event stream (the tick's together)."""
        ...

    async def replan(self, reason: str, observed_at: float, targets: Collection[str]) -> None:
        """Ask the planner for a re-plan that re-places the apps of `targets` (the links and
        batteries whose watch fired, `fired_targets`) and of whatever else changed but a
        link's figures or a battery's level."""
        ...

    async def active_rollout(self) -> RolloutView | None: ...

    def deliveries(self, revision: int) -> dict[str, float]:
        """device -> when its long poll was answered with `revision` or later."""
        ...

    async def record_ack(self, rollout: RolloutView, kind: str, device: str, at: float) -> None:
        """kind: `ready` or `delivered`."""
        ...

    async def record_reaction(self, rollout: RolloutView, reaction_ms: float) -> None: ...

    async def switch(self, rollout: RolloutView) -> None: ...

    async def settle(self, rollout: RolloutView) -> None: ...

    async def roll_back(self, rollout: RolloutView, why: str) -> None: ...


@dataclass
class LoopConfig:
    interval_s: float = 0.2
    min_tick_s: float = 0.1
    heartbeat_interval_s: float = 1.0
    lost_after_intervals: int = 3
    leader_ttl_s: float = 3.0
    rollout_timeout_s: float = 30.0
    link_change_fraction: float = 0.3
    link_alpha: float = 0.5
    link_cost_step: float = 0.01  # `orchestrator.triggers.LinkWatch.cost_step`
    rtt_floor_ms: float = 10.0  # an RTT change counts only when it is at least this large
    latency_drift_fraction: float = 0.5
    horizon_h: float = 8.0
    # How long a new leader watches before it acts on joins and losses; None: the time a
    # device takes to count as lost (lost_after_intervals heartbeat intervals). The grace
    # ends early once every known device has reported.
    startup_grace_s: float | None = None
    grid_change_fraction: float = 0.2  # a zone's intensity change that re-plans (issue 14)


class StepMetrics(Protocol):
    def observe_step(self, step: str, seconds: float) -> None: ...

    def step_failed(self, step: str) -> None: ...

    def trigger(self, kind: str) -> None: ...

    def leader(self, is_leader: bool) -> None: ...

    def reaction(self, seconds: float) -> None: ...

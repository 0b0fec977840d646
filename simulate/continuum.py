"""`continuum`: the control plane's own re-placement path, driven by simulated time.

Nothing of the decision is re-implemented here. The reconcile loop's triggers
(`orchestrator.triggers`: smoothed link figures, battery projections and level steps)
observe what the agents would report: their bandwidth probes (`simulate.probes`: a traced
link is measured every `probe_s`, not at every sample of its trace) and battery levels;
a trigger, a lost or a joined device asks for a re-plan, which is
`orchestrator.replacement.replan` with the plan in force as
`orchestrator.replacement.in_force` makes it (incremental re-solve, place-what-fits, and
the hysteresis rule of `orchestrator.hysteresis`), with the arguments the planner gives
it (`orchestrator.planner.Planner._replan_in_pool`): the scenario of now as the control
plane knows it (each traced link at its latest probe), the plan in force and the
scenario it was solved from, the default solver, the margin, the links and batteries
that fired. As in the loop, the watches are committed right after a re-plan is asked for
(for the links and batteries that fired). An applied plan serves after the rollout delay
(make-before-break); until then the old plan serves. When a plan goes in force, the link
watch takes its floors (`orchestrator.triggers.link_floors`), as the loop takes them from
the plan version in force (`orchestrator.floors`: the link's own limit and the SLOs of
the apps across it, and what a fall there costs the plan).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import solver
from orchestrator.floors import plan_floors
from orchestrator.hysteresis import DEFAULT_MARGIN
from orchestrator.replacement import InForce, Replacement, in_force, replan
from orchestrator.triggers import BatteryWatch, LinkWatch, Trigger, fired_targets
from simulate.decisions import Replan
from simulate.policy import DEFAULT_SOLVER, Moment, PolicyContext


@dataclass
class Decided:
    """One re-plan, kept so a test can replay it through the live path."""

    at_s: float
    reasons: list[str]
    targets: frozenset[str]  # the links and batteries that fired: their apps are re-placed
    scenario: dict[str, Any]
    previous_scenario: dict[str, Any] | None
    in_force: solver.PlanDoc | None  # the plan in force, as the simulator holds it
    result: Replacement

    @property
    def previous_plan(self) -> dict[str, Any] | None:
        """The plan in force as the control plane stores it (JSON), written when read: a
        long run keeps every re-plan (bench/continuum_day.py), and the dump was a tenth of
        the CPU of each."""
        return None if self.in_force is None else self.in_force.model_dump(mode="json")


@dataclass
class _Pending:
    plan: solver.PlanDoc
    scenario: dict[str, Any]
    at_s: float


@dataclass
class ContinuumPolicy:
    context: PolicyContext
    margin: float = DEFAULT_MARGIN
    solver_name: str = DEFAULT_SOLVER
    decided: list[Decided] = field(default_factory=list)
    keep_decisions: bool = False
    log: list[Replan] = field(default_factory=list)  # every re-plan, for decisions.csv

    def __post_init__(self) -> None:
        # The watches' own defaults are the loop's (orchestrator.reconcile.LoopConfig and
        # Settings: smoothing 0.5, a 30% move, a 10 ms RTT floor, a 1% cost step).
        self.links = LinkWatch()
        self.batteries = BatteryWatch(horizon_h=self.context.horizon_h)
        self._planned: dict[str, Any] | None = None  # what the plan in force was solved from
        self._pending: _Pending | None = None
        self._rtt: dict[tuple[str, str], float] = {}
        self._mins: dict[str, float] = {}  # each pack's min_pct
        self._kept: tuple[solver.PlanDoc, Any, Any, InForce] | None = None

    def _observe(self, now: Moment) -> list[Trigger]:
        fired: list[Trigger] = []
        if now.probes and not self._rtt:
            self._rtt = {(lk.a, lk.b): lk.rtt_ms for lk in now.problem.scenario.links}
        for (a, b), mbps in now.probes.items():
            t = self.links.observe(a, b, mbps, self._rtt.get((a, b), 0.0), now.at_s)
            if t is not None:
                fired.append(t)
        if now.battery_reports:
            mins = self._mins
            if any(device not in mins for device in now.battery_reports):
                # A pack's min_pct is the scenario's, for the whole run: read once, not
                # by compiling the problem of every step with a report.
                devices = now.problem.scenario.devices
                mins.update((d.id, d.battery.min_pct if d.battery else 0.0) for d in devices)
            for device, (level, charging) in now.battery_reports.items():
                t = self.batteries.observe(device, level, mins.get(device, 0.0), charging, now.at_s)
                if t is not None:
                    fired.append(t)
        for device in sorted(now.lost):
            self.links.forget(device)
            self.batteries.forget(device)
            fired.append(Trigger("device-lost", device, f"device {device} lost", now.at_s))
        for device in sorted(now.joined):
            fired.append(Trigger("device-joined", device, f"device {device} joined", now.at_s))
        return fired

    def decide(self, now: Moment) -> solver.PlanDoc | None:
        out: solver.PlanDoc | None = None
        fired: list[Trigger] = []
        pending = self._pending
        if pending is not None and now.at_s >= pending.at_s:
            self._pending = None
            out = pending.plan
            fired = self._in_force(pending.plan, pending.scenario, now.at_s)
        # The watches judge this step's figures against the plan in force now, as the
        # loop's detect step does (the floors of the plan in force, then the samples): a
        # plan a rollout puts in force that breaks at once is re-planned at once.
        fired = fired + self._observe(now)
        in_force_plan = out or now.in_force
        if in_force_plan is not None and not fired:
            return out
        if in_force_plan is not None and self._pending is not None:
            # A rollout is under way: the loop's next re-plan starts from the plan that
            # rollout puts in force, once it does; the triggers wait for it.
            return out
        scenario = now.measured()
        current = None
        if in_force_plan is not None:
            current = self._current(scenario, in_force_plan)
        targets = fired_targets(fired)
        result = replan(
            scenario, current, self.solver_name, self.context.time_limit_s, self.margin,
            targets=targets,
        )  # fmt: skip
        self.links.commit(targets)
        self.batteries.commit(targets)
        self.log.append(Replan.of(now.at_s, [t.reason for t in fired], result))
        if self.keep_decisions:
            self.decided.append(
                Decided(
                    now.at_s,
                    [t.reason for t in fired],
                    targets,
                    scenario,
                    self._planned,
                    in_force_plan,
                    result,
                )
            )
        if not result.apply:
            return out
        if in_force_plan is None or self.context.rollout_s <= 0:
            # The first plan serves at once (so does any without a rollout). Just solved,
            # it is judged on nothing newer than its figures: no trigger can come of it.
            self._in_force(result.plan, result.scenario, now.at_s)
            return result.plan
        self._pending = _Pending(result.plan, result.scenario, now.at_s + self.context.rollout_s)
        return out

    def _current(self, scenario: dict[str, Any], plan: solver.PlanDoc) -> InForce:
        """`in_force` of the plan in force, made again only when it, the scenario it was
        solved from or the models changed (a plan stays in force for many re-plans, and
        reading its document back is a few percent of each)."""
        models = scenario.get("models")
        kept = self._kept
        if (
            kept is None
            or kept[0] is not plan
            or kept[1] is not self._planned
            or kept[2] is not models
        ):
            kept = self._kept = (
                plan,
                self._planned,
                models,
                in_force(scenario, self._planned, plan),
            )
        return kept[3]

    def _in_force(
        self, plan: solver.PlanDoc, scenario: dict[str, Any], at_s: float
    ) -> list[Trigger]:
        """Put `plan` in force: its floors go to the link watch, which judges the figures
        measured since it was solved (a plan landing after a rollout) against them."""
        self._planned = scenario
        uses = [{"a": u.a, "b": u.b, "utilization": u.utilization} for u in plan.links]
        floors, costs = plan_floors(scenario, plan.apps, uses)
        return self.links.set_floors(floors, at_s, costs=costs)


__all__ = ["ContinuumPolicy", "Decided"]

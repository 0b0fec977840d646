"""Placement policies for the simulator: the Protocol, the built-ins, the plug-in group.

A policy is asked at every step what plan should be in force, given the scenario of now
and the plan in force (`Moment`); it answers a plan document (`solver.PlanDoc`, the
contract's plan) to put in force now, or None to keep the plan in force. A policy that
re-plans app by app may answer a `PlanChange` instead: the plan in force with some apps
placed elsewhere, which the simulator puts in force at the cost of those apps, not of the
fleet (its document is written when a policy reads `Moment.in_force`). The simulator
scores whatever is in force with the solver's evaluator, the same one `continuum solve`
uses, so every policy is judged on equal terms.

Built-in names: every solver of `solver.solvers()` (re-solved from scratch whenever the
scenario of now changes, any different plan applied at once: no hysteresis), `continuum`
(the control plane's own re-placement path, `simulate.continuum`), and `static` (the
first plan of the default solver, never re-placed). `neurosurgeon` is the solver of that
name: it re-plans each app alone at every step where anything changed, as Kang et al.
re-plan per request.

Plug-ins: a distribution declares an entry point in the group `continuum.policies`,
`NAME = "package.module:factory"`, where `factory(context: PolicyContext) -> Policy`
(a class whose constructor takes the context will do). `examples/policy-plugin/` is one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Protocol, runtime_checkable

import solver

DEFAULT_SOLVER = "heuristic"  # the control plane's default (orchestrator Settings.solver)


@dataclass(frozen=True, slots=True)
class PlanChange:
    """The plan in force with the apps of `placements` placed there instead (the others
    stay where they are): what a policy answers when it re-decides apps one by one."""

    placements: Mapping[str, solver.Placement]


Decision = solver.PlanDoc | PlanChange | None


@dataclass(frozen=True, slots=True)
class PolicyContext:
    """What a policy is built with, once per run."""

    name: str
    seed: int
    time_limit_s: float
    step_s: float
    rollout_s: float
    horizon_h: float
    # The most each traced link ever carries (its trace's highest figure; the traces
    # loop): a policy may bound what any moment can offer by it (`neurosurgeon` does).
    ceilings: Mapping[tuple[str, str], float] = field(default_factory=dict)


class Moment:
    """One step as a policy sees it.

    `problem`: the scenario of now compiled by the solver (`solver.Problem`, compiled on
    first use); `priced`: the same as far as a placement's cost and its per-app checks
    read it (the bandwidths of now; its battery levels may be older, which no cost reads),
    cheaper when only packs moved; `scenario()`: the same as a scenario-v1 document (built
    on first call).
    `in_force`: the plan in force as a plan document (None before the first); when it was
    put in force as a `PlanChange`, its document is written on first read, by the
    evaluator, on the scenario of now (an app that cannot run now is not in it).
    `has_plan`: whether there is a plan in force, without writing it.
    `changed`: an input moved past what matters since the last step that said so (a
    traced bandwidth out of +-5% of its figure then, a battery level by half a point, a
    device lost or back). `link_samples`: link -> Mbit/s now, for the traced links whose
    figure changed this step (what a policy that measures at every request, as
    Neurosurgeon's runtime does, would see). The observations of this step as a control
    plane receives them: `probes` (link -> Mbit/s, the agents' bandwidth probes of this
    step, `simulate.probes`), `battery_reports` (device -> (level %, charging)), `lost`
    and `joined` devices; `measured()`: the scenario of now as a control plane knows it,
    each traced link at its latest probe. `structural`: `changed`, and not by a bandwidth
    alone. `bandwidth`: a traced bandwidth moved past what matters.
    """

    def __init__(
        self,
        at_s: float,
        compile_problem: Callable[[], solver.Problem],
        in_force: solver.PlanDoc | Callable[[], solver.PlanDoc] | None,
        changed: bool,
        build_scenario: Callable[[], dict[str, Any]],
        link_samples: Mapping[tuple[str, str], float] | None = None,
        battery_reports: Mapping[str, tuple[float, bool]] | None = None,
        lost: frozenset[str] = frozenset(),
        joined: frozenset[str] = frozenset(),
        structural: bool = False,
        bandwidth: bool = False,
        probes: Mapping[tuple[str, str], float] | None = None,
        build_measured: Callable[[], dict[str, Any]] | None = None,
        compile_priced: Callable[[], solver.Problem] | None = None,
    ) -> None:
        self.at_s = at_s
        self._in_force = in_force
        self.changed = changed
        self.link_samples = link_samples or {}
        self.battery_reports = battery_reports or {}
        self.lost, self.joined = lost, joined
        self.structural = structural  # a device lost or back, or a battery level moved
        self.bandwidth = bandwidth
        self._compile, self._build = compile_problem, build_scenario
        self.probes = probes or {}
        self._build_measured = build_measured
        self._priced = compile_priced

    @property
    def has_plan(self) -> bool:
        return self._in_force is not None

    @cached_property
    def in_force(self) -> solver.PlanDoc | None:
        doc = self._in_force
        return doc() if callable(doc) else doc

    @cached_property
    def problem(self) -> solver.Problem:
        return self._compile()

    @property
    def priced(self) -> solver.Problem:
        if self._priced is None or "problem" in self.__dict__:
            return self.problem
        return self._priced()

    @cached_property
    def _scenario(self) -> dict[str, Any]:
        return self._build()

    def scenario(self) -> dict[str, Any]:
        return self._scenario

    @cached_property
    def _measured(self) -> dict[str, Any]:
        return self._scenario if self._build_measured is None else self._build_measured()

    def measured(self) -> dict[str, Any]:
        return self._measured


@runtime_checkable
class Policy(Protocol):
    """Given the scenario and the plan in force, a plan (None: keep the plan in force)."""

    def decide(self, now: Moment) -> solver.PlanDoc | PlanChange | None: ...


PolicyFactory = Callable[[PolicyContext], Policy]


# Solvers whose plan reads no bandwidth (every app whole on its source; on the cloud
# nearest by RTT): a bandwidth change cannot change their plan, so it does not re-solve them.
BANDWIDTH_BLIND = frozenset({"all-device", "all-cloud"})
# The baselines place every app, constraints or not (scenario-v1: their plan is printed
# with its violations), so that they can be compared. Each app's choice reads its own
# terms and checks (solver.baselines), never a battery: a level moving cannot change
# their placements, so it does not re-solve them.
PLACE_ALL = frozenset({"all-device", "all-cloud", "neurosurgeon"})


class SolverPolicy:
    """A solver of `solver.solvers()`: re-solved on every change, applied at once."""

    def __init__(self, context: PolicyContext, solver_name: str | None = None) -> None:
        self.solver = solver_name or context.name
        self.options = solver.SolveOptions(time_limit_s=context.time_limit_s, seed=context.seed)

    def decide(self, now: Moment) -> solver.PlanDoc | None:
        if now.in_force is not None and not now.changed:
            return None
        if now.in_force is not None and self.solver in PLACE_ALL:
            shape = bool(now.lost or now.joined)
            if not shape and (self.solver in BANDWIDTH_BLIND or not now.bandwidth):
                return None
        if self.solver in PLACE_ALL:
            return solver.solve(now.problem, self.options, solver=self.solver).doc
        # As the control plane does: an app that fits nowhere is set aside, the others are
        # placed (an exact solver alone would place nothing at all).
        return solver.place_what_fits(now.problem, self.options, self.solver).plan.doc


class StaticPolicy(SolverPolicy):
    """The first plan (of the control plane's default solver, placing what fits), never
    re-placed."""

    def __init__(self, context: PolicyContext) -> None:
        super().__init__(context, DEFAULT_SOLVER)

    def decide(self, now: Moment) -> solver.PlanDoc | None:
        return super().decide(now) if now.in_force is None else None


__all__ = [
    "DEFAULT_SOLVER",
    "Decision",
    "Moment",
    "PlanChange",
    "Policy",
    "PolicyContext",
    "PolicyFactory",
    "SolverPolicy",
    "StaticPolicy",
]

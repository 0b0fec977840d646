"""A scenario compiled for solving, and the options every solver takes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from solver.costs import Cost, CostModel
from solver.migration import Migration
from solver.plan import Placement
from solver.scenario import App, Scenario


@dataclass(frozen=True, slots=True)
class SolveOptions:
    """Options shared by every solver.

    `fixed` keeps those apps where they are (incremental re-solves); a solver places only
    the others, counting the fixed ones' use of shared capacity.
    """

    time_limit_s: float = 30.0
    seed: int = 0
    threads: int = 1
    fixed: Mapping[str, Placement] = field(default_factory=dict)


class Problem:
    """Scenario plus the derived tables every solver reads: routes, shapes, migration."""

    def __init__(
        self,
        scenario: Scenario,
        cost: CostModel | None = None,
        previous: Mapping[str, Placement] | None = None,
    ) -> None:
        """`previous`: the previous plan as placements (an incremental re-solve's plan in
        force); when given, migration is counted against it, not `scenario.previous`."""
        self.scenario = scenario
        self.cost = cost if cost is not None else CostModel(scenario)
        self.migration = Migration(self.cost, previous)
        # Per-app cost of the placement last evaluated on this problem: evaluate() reuses
        # an entry only for the identical placement, so it is always correct.
        self.app_costs: dict[str, tuple[Placement, Cost]] = {}
        # Tables a solver derives from this scenario, kept for re-solves of the same problem.
        self.derived: dict[str, Any] = {}

    def alongside(self, scenario: Scenario) -> Problem:
        """The problem of `scenario`, another scenario of this fleet with the very same
        links (ends, order, figures), whatever its devices' power or its apps: it shares
        this problem's route searches instead of making them again (the control plane's
        relaxed search for an app served degraded, at every re-plan). Other links: a
        problem of its own."""
        if list(scenario.links) != list(self.scenario.links):
            return Problem(scenario)
        return Problem(
            scenario, CostModel(scenario, self.cost.routes.refigured(scenario, frozenset()))
        )

    @cached_property
    def device_index(self) -> dict[str, int]:
        """Device id -> its place in the scenario (made when first asked: a fleet whose
        links move every second compiles a problem a second, and few of them ask)."""
        return {d.id: k for k, d in enumerate(self.scenario.devices)}

    def model_options(self, app: App) -> list[str]:
        """The models an app may run, accuracy permitting (cascades: none)."""
        if app.model is not None:
            return [app.model]
        if app.variants is None:
            return []
        out = []
        for m in app.variants:
            acc = self.cost.models[m].accuracy
            if app.min_accuracy is None or (acc is not None and acc >= app.min_accuracy):
                out.append(m)
        return out

    def hosts(self, app: App) -> list[str]:
        """Devices of an allowed tier, in scenario order."""
        return [d.id for d in self.scenario.devices if d.tier in app.allowed_tiers]

    def reaches(self, a: str, b: str) -> bool:
        return a == b or self.cost.route(a, b) is not None

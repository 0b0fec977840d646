"""Fleet-wide totals of a plan, the figures solvers are compared on."""

from __future__ import annotations

from dataclasses import dataclass

from solver.plan import PlanDoc
from solver.scenario import Scenario

SECONDS_PER_HOUR = 3600.0


@dataclass(frozen=True, slots=True)
class PlanSummary:
    """What a plan costs the fleet per unit of time, and what it breaks.

    `energy_w` is joules per second over all apps (their rate times their joules per
    inference), `carbon_g_per_h` the grams CO2e per hour likewise. Both are None for a plan
    with no placements (an infeasible exact solve), where there is nothing to total.
    """

    solver: str
    status: str
    objective: float | None
    energy_w: float | None
    carbon_g_per_h: float | None
    broken: int
    slo_misses: int
    solve_s: float
    violations: tuple[str, ...]
    reason: str | None


def summarize(scenario: Scenario, doc: PlanDoc) -> PlanSummary:
    rates = {app.id: app.rate_rps for app in scenario.apps}
    energy: float | None = None
    carbon: float | None = None
    if doc.apps:
        energy = sum(rates[a.id] * a.energy_j for a in doc.apps)
        carbon = sum(rates[a.id] * a.carbon_g for a in doc.apps) * SECONDS_PER_HOUR
    violations = tuple(doc.violations or ())
    return PlanSummary(
        solver=doc.solver,
        status=doc.status.value,
        objective=doc.objective,
        energy_w=energy,
        carbon_g_per_h=carbon,
        broken=len(violations),
        slo_misses=sum(1 for a in doc.apps if not a.slo_met),
        solve_s=doc.solve_s,
        violations=violations,
        reason=doc.reason,
    )

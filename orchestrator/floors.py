"""The floors of a plan in force, and what a fall on each link costs it, for the link
watch (`orchestrator.triggers.LinkWatch.set_floors`).

Two limits read a link's bandwidth. Its own (`triggers.link_floors`: what the plan sends
over it, over `max_utilization`), and the SLO of each app whose transfers cross it. An
app's transfer times scale at most by the largest factor its links fell by (a route's
Mbit/s is its slowest link's, and nothing else of its latency reads bandwidth), so an app
within its SLO at the figures the plan was solved with stays within it while each of its
links keeps its solved figure times b / (SLO - a), where a is its worst-case latency at
unlimited bandwidth (its compute and half the RTTs: the solver's own costs on routes of
unlimited Mbit/s) and b the rest.

Above the floors, a fall breaks nothing, and only the objective's weight on expected
latency reads bandwidth (transfer joules are per MB): a fall on link L from m0 to m Mbit/s
raises the plan's objective by at most `latency weight * 8000 * (1/m - 1/m0)` times the MB
a second the plan sends over L (each transfer's time grows at most as its route's slowest
link's 1/m, and by no more than the sum of its links' growths). It makes no other plan
better. So the watch asks about a fall that stays above the floors only once the falls
have cost the plan in force a step of its objective (`triggers.LinkCosts`).

Apps served degraded are not in the floors: their entries are not among the plan's
placements (`orchestrator.degrade`), as they were never in its links' utilization.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import solver
from orchestrator.replacement import layers_of, placements_of
from orchestrator.triggers import LinkCosts, link_floors, link_name
from orchestrator.worker_cache import SOLVED

# What the floor is raised by against the rounding of both sides of `worst <= slo`.
_ROOM = 1e-9


def plan_floors(
    scenario: Mapping[str, Any],
    apps: Iterable[solver.AppResult],
    uses: Iterable[Mapping[str, Any]],
    problem: solver.Problem | None = None,
) -> tuple[dict[str, float], LinkCosts | None]:
    """Link name -> floor (the highest of the link's own and its apps' SLO floors), and
    what a fall on each costs the plan (see the module's docstring; None when the plan
    cannot be judged on `scenario`: the links' own floors alone, and every fall asks).
    `scenario`: the one the plan was solved from; `apps` and `uses`: the plan document's
    `apps` and `links` (as `link_floors` reads them); `problem`: the scenario's problem, if
    the caller has it (else the one this worker remembers for that very document, else
    parsed)."""
    floors = link_floors(uses, scenario)
    weights = scenario.get("objective") or {}
    per_ms = float(weights.get("latency", 0.0) or 0.0)
    try:
        if problem is None:
            # The very document a re-plan of this worker returned (the simulator's): its
            # problem, not a parse. Found by identity only: a digest of the fleet's JSON
            # costs more than the parse it would spare the live loop once a plan version.
            problem = next((s.problem for s in SOLVED if s.scenario is scenario), None)
        if problem is None:
            problem = solver.Problem(solver.parse_scenario(dict(scenario)))
        placed = placements_of(layers_of(scenario), apps)
        placed = {a: p for a, p in placed.items() if a in problem.cost.apps}
        ev = solver.evaluate(problem.cost, placed, require_all=False, cache=problem.app_costs)
    except (solver.ScenarioError, KeyError, ValueError, IndexError):
        return floors, None  # it names what its scenario does not have
    links = problem.scenario.links
    # The apps a fall may break: within an SLO, with something sent (an app over its SLO
    # already breaks nothing it keeps).
    slo = {
        a: rec.app.slo_ms
        for a, rec in ev.records.items()
        if rec.app.slo_ms is not None and rec.cost.link_mb and rec.cost.worst_ms <= rec.app.slo_ms
    }
    fixed = solver.fixed_worst_ms(problem.cost, {a: ev.records[a].placement for a in slo})
    solved: dict[str, tuple[float, float]] = {}  # link -> (its Mbit/s, the objective's rise)
    for a, rec in ev.records.items():
        scale = 0.0
        if a in slo and (wire := rec.cost.worst_ms - fixed[a]) > 0.0:
            scale = wire / (slo[a] - fixed[a]) * (1.0 + _ROOM)
        for k, mb in rec.cost.link_mb.items():
            lk = links[k]
            name = link_name(lk.a, lk.b)
            rise = solved[name][1] if name in solved else 0.0
            solved[name] = (lk.mbps, rise + per_ms * 8000.0 * rec.app.rate_rps * mb)
            if scale > 0.0:
                floors[name] = max(floors.get(name, 0.0), lk.mbps * scale)
    return floors, LinkCosts(solved, ev.objective)


__all__ = ["plan_floors"]

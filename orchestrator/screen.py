"""A re-plan whose candidate could not go in force: kept without a solve.

The hysteresis rule (`orchestrator.hysteresis`) puts a candidate in force when the plan in
force breaks a constraint, when the set of apps served changes, or when the candidate's
objective is under `1 - margin` of the plan in force's. An incremental re-solve re-places
only the apps the change touches (`solver.set_aside_first` names them) and holds every
other app where it runs, at the very cost it has in the plan in force; no term of the
objective is negative, and the migration term only adds. So when the plan in force breaks
nothing, every app set aside stays served where it runs, and the touched apps' share of
the objective is within the margin, no candidate can win, whatever the solve finds: the
re-plan keeps the plan in force and the solve is spared.

When their share is over the margin, what they could gain is their share less the least
their terms can be (`solver.least_terms`: the heuristic's own per-app bounds over the
placements it may give them). Over a day of the 200-device fleet, a thousand re-plans
touched apps worth 5 to 7% of the objective, mostly within a few percent of those bounds
already (median 2.4%), and each was solved only to keep the plan in force
(bench/continuum_day.py; bench/RESULTS.md, "What a touched app can gain").

Most re-plans are such: with every camera's uplink probed every 30 s, a trigger fires
every few seconds on a 200-device fleet, and a trigger touches one to five of its hundred
apps (bench/continuum_day.py; bench/RESULTS.md, "A re-plan no candidate can win"). The
one assumption: an incremental solve finds a plan whenever the plan in force is one (it
may hold every touched app where it runs); were it to fail, it would re-place every app,
and that re-solve could win by more.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

import solver
from orchestrator.degrade import Degraded, held_degraded, worth_a_search

# Room for float rounding between the evaluation here and the candidate's (incremental
# evaluations agree with fresh ones up to rounding in the totals).
_ROUNDING = 1e-9


@dataclass(frozen=True, slots=True)
class Kept:
    """The plan in force, judged under the scenario of now without the apps set aside."""

    problem: solver.Problem  # the scenario of now without the apps set aside
    held: dict[str, solver.Placement]  # the plan in force's placements of its apps
    objective: float
    share: float  # of the objective, the part of the apps the change touches
    gain: float  # of the objective, the most their re-placement could take off it
    degraded: Degraded  # the apps set aside, served where the plan in force runs them


def evaluated(
    problem: solver.Problem,
    held: Mapping[str, solver.Placement],
    base: solver.Evaluation | None,
) -> solver.Evaluation:
    """The plan in force's placements of the apps of `problem` (`held`), evaluated on it on
    top of `base`, with its cached costs and its migration. Raises what `solver.evaluate`
    raises when a placement names what the problem no longer has."""
    return solver.evaluate(
        problem.cost, held, cache=problem.app_costs, migration=problem.migration, base=base
    )


def kept_as_is(
    now: solver.Problem,
    before: solver.Before,
    running: Mapping[str, solver.Placement],
    served: frozenset[str],
    margin: float,
    stop: frozenset[str],
    solver_name: str,
    fresh: Collection[str] = (),
) -> Kept | None:
    """The plan in force, when no candidate of this re-plan could replace it; else None.
    `now`: the problem of now; `before`: its incremental re-solve's first step; `running`:
    the plan in force's placements of the apps of `now`; `served`: every app it serves;
    `solver_name`: the solver the re-plan would solve with; `fresh`: the apps set aside
    that it placed within their limits (`degrade.newly_aside`), held only when moving
    them could not gain the margin."""
    touched, problem = before.touched, before.problem
    if touched is None or any(a not in running for a in now.cost.apps):
        return None  # an app the plan in force does not run: a solve places it or not
    held = {a: p for a, p in running.items() if a in problem.cost.apps}
    try:
        ev = evaluated(problem, held, solver.base_evaluation(problem))
    except (KeyError, ValueError, IndexError):
        return None  # it names what is gone: a solve says what then
    if ev.found:
        return None
    # The largest terms first: a bound on them alone may be enough (`least_terms`).
    free = sorted((a for a in touched if a in ev.records), key=lambda a: (-ev.records[a].term, a))
    moved = sum(ev.records[a].term for a in free)
    least = 0.0
    floor = (1.0 - margin + _ROUNDING) * ev.objective
    if ev.objective - moved < floor:
        # The bound is the DP's float, the terms are the evaluator's: a millionth of it
        # is room for their rounding.
        need = (floor - (ev.objective - moved)) / (1.0 - 1e-6)
        bound = solver.least_terms(problem, free, solver_name, enough=need)
        least = 0.0 if bound is None else bound * (1.0 - 1e-6)
        if ev.objective - moved + least < floor:
            return None
    if worth_a_search(now, fresh, running, ev.objective, margin, solver_name):
        return None
    degraded = Degraded()
    if before.set_aside:
        # Held beside the others where the plan in force runs them, they may break their
        # battery and SLO alone (`held_degraded`): so no hard limit breaks through them
        # (what `degrade.broken_in_force` asks of a solved re-plan, on these very
        # placements whenever the served set below is the plan in force's).
        found = held_degraded(now, held, before.set_aside, stop, running, base=ev)
        if found is None:
            return None
        degraded = found
    if served != problem.cost.apps.keys() | degraded.placements.keys():
        return None
    share = moved / ev.objective if ev.objective else 0.0
    gain = max(moved - least, 0.0) / ev.objective if ev.objective else 0.0
    return Kept(problem, held, ev.objective, share, gain, degraded)


__all__ = ["Kept", "evaluated", "kept_as_is"]

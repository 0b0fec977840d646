"""Place what fits: a plan for every app that can be placed, and a reason for each that cannot.

The contract's plan is all or nothing: one app that fits nowhere makes the whole scenario
infeasible. A control plane cannot stop re-placing a fleet because one camera's battery
no longer pays for its own model. Like Nomad's scheduler, which commits the allocations
it could place and reports each failed one with its reason, `place_what_fits` sets aside
the app an infeasible plan names, one at a time, and solves the others again; the plan it
returns is a plan of the contract for the scenario without the apps set aside, so it can
be checked and replayed like any other.

Every solver names the app that rules a plan out (`Plan.reason.app`, and `app <id>: ...`
in its sentence: the heuristic's failed assignment, the exact model's diagnosis), with the
reason's code. A reason that names no app (fixed apps that no longer fit, a time limit)
ends the search: the infeasible plan is returned and nothing is set aside, since no single
app is to blame.
"""

from __future__ import annotations

import math
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from solver.candidates import fleet_of
from solver.document import Plan
from solver.fastcost import Fleet
from solver.heuristic import _MARGIN, NAME, _App, _State
from solver.incremental import Change, apply_change, held_broken, resolve, touched_apps
from solver.ownpack import drained_source, note_proven, own_pack, still_proven
from solver.plan import Placement, Status
from solver.polish import small_fleet
from solver.problem import Problem, SolveOptions
from solver.reasons import Reason
from solver.registry import solve
from solver.stuck import no_room
from solver.unmet import note_unmet, still_unmet

# Set aside at most this many apps found by failing solves: a change that rules out more
# than a handful of apps at once (a lost cloud) is better reported whole than found app by
# app, each a solve. The apps the heuristic's per-app verdict sets aside before the solve
# are not counted: each is proven its own fault, with no solve, and capping them stopped a
# fleet from being re-placed at all once more than 16 of its camera packs had drained
# (bench/continuum_day.py: no plan applied for the last ten hours of a day).
MAX_UNPLACED = 16


@dataclass(slots=True)
class Partial:
    """`plan` places every app of `problem` (the input problem without the apps set
    aside); `set_aside`: app id -> why it cannot be placed, with its code."""

    plan: Plan
    problem: Problem
    set_aside: dict[str, Reason] = field(default_factory=dict)

    @property
    def unplaced(self) -> dict[str, str]:
        """App id -> the sentence of why it cannot be placed."""
        return {app_id: r.message for app_id, r in self.set_aside.items()}


def alone(problem: Problem, apps: Collection[str]) -> dict[str, Reason]:
    """Those of `apps` no placement of their own fits, whatever the others hold, in scenario
    order, with the reason a solve would blame each with: no candidate, or their source's pack
    pays for none (`drained_source`, without candidates; else `own_pack`, over them)."""
    found: dict[str, Reason | None] = {a: r for a in apps if (r := drained_source(problem, a))}
    if len(found) < len(apps):
        # Proven at an earlier re-plan, and still: no candidates needed (`still_proven`).
        fleet = fleet_of(problem)
        cap = fleet.capacity * (1.0 - _MARGIN)  # the solve's, as `_State` makes them
        for a in apps:
            if a not in found and (r := still_proven(problem, a, pays_of(problem, fleet, cap, a))):
                found[a] = r
    # Candidates come out empty again for the SLO alone (`solver.unmet`).
    empty = {a: r for a in apps if a not in found and (r := still_unmet(problem, a))}
    rest = [a for a in apps if a not in found and a not in empty]
    stuck: dict[str, Reason] = {}
    st = _State(problem, SolveOptions(), only=rest) if rest else None
    if st is not None:
        st.generate()
        mine = [e for e in st.apps.values() if e.candidates and not st.fits(st.score(e, 0))]
        for e in mine:
            found[e.app.id] = why = own_pack(problem, st.fleet, e.app, e.routes, st.cap)
            if why is not None:
                note_proven(problem, e.app, e.routes, pays_of(problem, st.fleet, st.cap, e.app.id))
            elif (why := _stuck_alone(st, e)) is not None:
                stuck[e.app.id] = why
        for a, e in st.apps.items():
            if not e.candidates:
                empty[a] = why = st.why_empty(e)
                note_unmet(problem, e.app, e.routes, why)
    out = {a.id: found[a.id] for a in problem.scenario.apps if a.id in found}
    # Those with no candidate last, in scenario order (the order their searches run in),
    # then those the heuristic finds no room for even alone, as a failing solve adds them.
    out.update((a.id, empty[a.id]) for a in problem.scenario.apps if a.id in empty)
    out.update((a.id, stuck[a.id]) for a in problem.scenario.apps if a.id in stuck)
    return {a: why for a, why in out.items() if why is not None}


def _stuck_alone(st: _State, e: _App) -> Reason | None:
    """The reason a solve blames the app with when none of its candidates fits, nor any
    path its repair finds, on a fleet that holds nothing else (`st`, made for these apps
    alone): such an app fits in no solve, and each failing solve of a re-plan named it
    again, then solved without it (over a day of the 200-device fleet, a cascade whose
    camera's pack pays for less than any combination the heuristic finds, though more
    than `own_pack`'s bound proves, at 512 re-plans: bench/RESULTS.md). None when one
    fits."""
    if any(st.fits(st.score(e, j)) for j in range(len(e.candidates))):
        return None
    if st.reroute(e, math.inf) is not None:
        return None
    return no_room(st, e, clear=True)[0]


def pays_of(problem: Problem, fleet: Fleet, cap: np.ndarray, app_id: str) -> float:
    """What the app's source's pack pays for beside its idle draw, in the solve's
    capacities `cap` (`fastcost` numbering: inf without a battery)."""
    source = problem.cost.apps[app_id].source
    return float(cap[2 * fleet.n + fleet.index[source]])


def least_terms(
    problem: Problem, apps: Sequence[str], solver: str = NAME, enough: float = math.inf
) -> float | None:
    """The least the objective terms of `apps` add up to in any plan `solver` may give them
    on `problem`, every other app held (migration included); None when not known.

    The heuristic places an app only on the paths of its candidate routes (its per-app DP,
    its repair and its local search all run on them; the exact steps, on a small fleet,
    only when the host sets hold every allowed host), and its DP bounds the cheapest of
    them that meets the SLO (`solver.candidates.slo_paths`, Lagrangian; a cascade's
    combinations are enumerated). So a re-plan whose touched apps cannot gain the margin
    even at their bounds needs no solve (`orchestrator.screen`). The apps are bounded in
    their order, and the sum is returned once it reaches `enough`: no term is negative, so
    the others' could only add (a caller that needs that much asks for the apps of the
    largest terms first). The first is bounded alone (on the 200-device fleet it mostly is
    enough), the rest together (the DP runs over every app of a model at once). None for
    another solver, and when an app has no finite bound (no placement meets its SLO: a
    solve says what then)."""
    if solver != NAME:
        return None
    total = 0.0
    for batch in (apps[:1], apps[1:]):
        if total >= enough or not batch:
            break
        st = _State(problem, SolveOptions(), only=batch)
        st.generate()
        for a in batch:
            e = st.apps.get(a)
            if e is None or not math.isfinite(e.lower):
                return None
            total += e.lower
    return total


def named_app(reason: str | None, problem: Problem) -> str | None:
    """The app an infeasible plan's reason blames, if it names one of the problem's."""
    if not reason or not reason.startswith("app "):
        return None
    head = reason[4:]
    for app_id in problem.cost.apps:
        if head.startswith(f"{app_id}:"):
            return app_id
    return None


def _blamed(plan: Plan, problem: Problem) -> str | None:
    """The app of the problem that an infeasible plan's reason blames, if any."""
    if plan.reason is None:
        return None
    app_id = plan.reason.app
    return app_id if app_id is not None and app_id in problem.cost.apps else None


@dataclass(slots=True)
class Before:
    """What an incremental re-solve knows before it solves: the apps it re-places
    (`touched`, on the problem the change was applied to), those the heuristic's per-app
    verdict set aside at once (`set_aside`, each its own fault), and `problem` without them.
    A caller may judge the plan in force on it first (`orchestrator.screen`) and spare the
    solve; `place_what_fits(before=...)` goes on from here."""

    problem: Problem
    touched: set[str] | None = None
    set_aside: dict[str, Reason] = field(default_factory=dict)


def set_aside_first(
    problem: Problem,
    solver: str = "heuristic",
    previous: Mapping[str, Placement] | None = None,
    change: Change | None = None,
    max_unplaced: int = MAX_UNPLACED,
    touching: Change | None = None,
) -> Before:
    """The first step of `place_what_fits` (same arguments): the apps to re-place, and
    those set aside before any solve."""
    # Worked out once, on the problem the change was applied to: each app set aside is a
    # change of its own, which would hide the first one's.
    touched = None
    if previous and change:
        touched = touched_apps(problem, previous, change if touching is None else touching)
    set_aside: dict[str, Reason] = {}
    if touched and previous and solver == NAME and max_unplaced > 0 and not small_fleet(problem):
        # An app held where it breaks its own limits (one served degraded) is re-placed,
        # and mostly fits nowhere again; so does one the plan in force set aside, which the
        # change adds back: a solve would fail on it first, then solve the rest. The
        # heuristic's per-app verdict, asked first, sets it aside at once, with the reason
        # that solve gives (on a small fleet the polish settles a verdict its own way, and
        # the solve decides there).
        back = [a for a in touched if a not in previous]
        set_aside = alone(problem, held_broken(problem, previous, touched) + back)
        if set_aside:  # one change for all of them: a pack drained late in a day sets aside 20
            problem = apply_change(problem, Change(removed_apps=frozenset(set_aside)), previous)
    return Before(problem, touched, set_aside)


def place_what_fits(
    problem: Problem,
    options: SolveOptions,
    solver: str = "heuristic",
    previous: Mapping[str, Placement] | None = None,
    change: Change | None = None,
    max_unplaced: int = MAX_UNPLACED,
    touching: Change | None = None,
    before: Before | None = None,
) -> Partial:
    """Solve `problem`; when that is infeasible, set aside the app the plan names and
    solve the rest, until a plan is found or no app is to blame.

    With `previous` and `change` (an incremental re-solve), only the apps the change
    touches are re-placed, the others held where they run; when they leave no room, every
    app is re-placed (`solver.incremental.resolve`). `touching`: the part of `change`
    whose apps are re-placed (default: all of it); the rest is in `problem`'s figures,
    which every app is judged on, and an app held where they break a per-app constraint
    is re-placed all the same. `before`: `set_aside_first`'s answer for these arguments,
    when the caller asked it already. The whole search keeps to `options.time_limit_s`.
    """
    started = time.perf_counter()
    if before is None:
        before = set_aside_first(problem, solver, previous, change, max_unplaced, touching)
    original, touched = problem, before.touched
    problem, set_aside = before.problem, dict(before.set_aside)
    proven = len(set_aside)
    while True:
        left = options.time_limit_s - (time.perf_counter() - started)
        opts = replace(options, time_limit_s=max(left, 0.05))
        if previous and change:
            plan = resolve(problem, previous, change, opts, solver, touched)
        else:
            plan = solve(problem, opts, solver=solver)
        if plan.status != Status.INFEASIBLE:
            if set_aside and plan.evaluation is not None:
                # What the next change of the whole problem is evaluated on top of (its
                # own last solve, if any, failed): the plan of the apps that fit.
                original.derived["evaluation"] = plan.evaluation
            return Partial(plan, problem, set_aside)
        app_id = _blamed(plan, problem)
        out_of_time = time.perf_counter() - started >= options.time_limit_s
        if app_id is None or len(set_aside) - proven >= max_unplaced or out_of_time:
            # Nobody to blame (or no time to look further): all or nothing, as the
            # contract has it.
            return Partial(plan, original, {})
        assert plan.reason is not None
        set_aside[app_id] = plan.reason
        problem = apply_change(problem, Change(removed_apps=frozenset({app_id})), previous)


__all__ = [
    "MAX_UNPLACED",
    "Before",
    "Partial",
    "alone",
    "least_terms",
    "named_app",
    "place_what_fits",
    "set_aside_first",
]

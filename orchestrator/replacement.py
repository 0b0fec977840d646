"""Re-placement: from the scenario of now and the plan in force to a decided candidate.

Runs in the control plane's process pool (it holds the GIL for the whole solve), so what
crosses into it and back is plain, cheaply pickled data: the scenario as a dict, the plan
in force as the solver's `Placement`s (`InForce`), and a `Replacement` whose plan is the
document as stored; the planner parses that document once into the solver's `PlanDoc`.

The steps: what changed since the scenario the plan in force was solved from
(`change_between`); the problem of now, derived from the last one this worker solved when
it is the very problem a fresh parse gives (`_derived_problem`); an incremental re-solve
that places what fits and sets aside, with its reason, an app that fits nowhere
(`solver.place_what_fits`), re-placing the apps of what changed, or, when the reconcile
loop names the links and batteries that fired, of those alone (`what_fired`); and the
hysteresis rule (`orchestrator.hysteresis`), which
decides whether the candidate replaces the plan in force.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

import solver
from orchestrator import hysteresis
from orchestrator.changes import change_between, in_order_of
from orchestrator.degrade import (
    Degraded,
    broken_in_force,
    held_degraded,
    newly_aside,
    serve_degraded,
    terms_of,
    worth_a_search,
)
from orchestrator.drafts import Draft, InForceNow, Solved, Written
from orchestrator.hysteresis import Decision, Mend, decide, pack_mend
from orchestrator.screen import Kept, evaluated, kept_as_is
from orchestrator.triggers import link_name
from orchestrator.worker_cache import FRAME as _FRAME
from orchestrator.worker_cache import SOLVED as _SOLVED
from orchestrator.worker_cache import index_of as _index_of
from orchestrator.worker_cache import recall as _recall
from orchestrator.worker_cache import remember as _remember


@dataclass(frozen=True, slots=True)
class InForce:
    """The plan in force as a re-placement needs it."""

    scenario: dict[str, Any] | None  # what it was solved from (None: re-place every app)
    placements: dict[str, solver.Placement]  # its apps whose model the scenario knows
    apps: frozenset[str]  # every app it places


def in_force(
    scenario: dict[str, Any], previous_scenario: dict[str, Any] | None, plan: solver.PlanDoc
) -> InForce:
    """The plan in force, its segments turned into one device per block with the block
    names of `scenario` (the models of now)."""
    return InForce(
        previous_scenario,
        placements_of(layers_of(scenario), plan.apps),
        frozenset(a.id for a in plan.apps),
    )


def layers_of(scenario: Mapping[str, Any]) -> dict[str, list[str]]:
    """Model id -> its block names, from a scenario-v1 document (for `placements_of`)."""
    return {m["id"]: [layer["name"] for layer in m["layers"]] for m in scenario["models"]}


def placements_of(
    layers: Mapping[str, list[str]], apps: Iterable[solver.AppResult]
) -> dict[str, solver.Placement]:
    """A plan document's apps as the solver's Placements (per-block devices), for the
    models `layers` names (model id -> block names)."""
    out: dict[str, solver.Placement] = {}
    for app in apps:
        if app.stages:
            out[app.id] = solver.Placement(app.id, stages=tuple(s.device for s in app.stages))
            continue
        names = layers.get(app.model or "")
        if not names or not app.segments:
            continue
        index = {n: k for k, n in enumerate(names)}
        blocks = [""] * len(names)
        for seg in app.segments:
            for k in range(index[seg.first], index[seg.last] + 1):
                blocks[k] = seg.device
        if all(blocks):
            out[app.id] = solver.Placement(app.id, model=app.model, blocks=tuple(blocks))
    return out


@dataclass(frozen=True)
class Replacement:
    """What one re-placement decided."""

    # The candidate's plan document (`document`), written when first read: most re-plans
    # keep the plan in force, and the simulator reads no document of theirs.
    draft: Draft
    apply: bool  # whether it replaces the plan in force
    decision: str  # the hysteresis rule's reason
    incremental: bool  # only the apps the change touched were re-placed
    derived_problem: bool  # the problem was derived from the last one, not parsed
    current_objective: float | None  # the plan in force's, under the scenario of now
    broken: list[str]  # what the plan in force violates now (five at most)
    decide_s: float
    scenario: dict[str, Any]  # the scenario the candidate places (without `unplaced`)
    unplaced: dict[str, str]  # app -> why it fits nowhere (and is not served)
    # app -> why it is served degraded: set aside for its battery or SLO, it keeps serving
    # in the placement that drains batteries least (`orchestrator.degrade`); its entry is
    # in the document's apps, evaluated under the real scenario.
    degraded: dict[str, str] = field(default_factory=dict)
    # app set aside (served degraded or not) -> the constraint family of why (solver.Code)
    unplaced_codes: dict[str, str] = field(default_factory=dict)

    @cached_property
    def document(self) -> dict[str, Any]:
        """The candidate's plan document, as stored (JSON)."""
        return self.draft.document()

    @cached_property
    def plan(self) -> solver.PlanDoc:
        """The candidate, parsed once (in the control plane, not in the pool: a parsed
        document pickles several times slower than its JSON)."""
        return solver.PlanDoc.model_validate(self.document)

    def __getstate__(self) -> dict[str, Any]:
        # Out of the pool goes the document, not the problem it would be written from.
        state = {k: v for k, v in self.__dict__.items() if k != "plan"}
        state["draft"] = Written(self.document)
        return state


def what_fired(
    change: solver.Change, targets: Collection[str], before: Mapping[str, Any]
) -> solver.Change:
    """`change` with only the figures of what fired (`targets`, as
    `orchestrator.triggers.fired_targets` names them): the part of it whose apps a
    re-plan re-places. `before`: the scenario the plan in force was solved from. A link
    figure or a battery level that moved less than the reconcile loop's threshold is in the
    scenario of now, and every app is judged on it, but it moves no app: with every agent
    probing and every pack draining, nearly every figure differs from the plan's by a
    little, and re-placing the apps of all of them made an "incremental" re-solve re-place
    nearly every app (bench/replan_triggers.py; for batteries, bench/continuum_day.py: a
    fifth of the fleet's apps at every re-plan once its packs had drained a little). A
    device changed in anything but its battery's level moves its apps, as before."""
    devices = change.devices
    if devices:
        old = _index_of(before).devices
        devices = {
            d: rec for d, rec in devices.items() if d in targets or not _level_only(old.get(d), rec)
        }  # fmt: skip
    links = {k: v for k, v in change.links.items() if link_name(*k) in targets}
    return replace(change, links=links, devices=devices)


def _level_only(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> bool:
    """Whether a device record changed in its battery's level and nothing else."""
    if before is None or before.keys() != after.keys():
        return False
    b, a = before.get("battery"), after.get("battery")
    if not isinstance(b, Mapping) or not isinstance(a, Mapping) or b.keys() != a.keys():
        return False
    return all(before[k] == after[k] for k in before if k != "battery") and all(
        b[k] == a[k] for k in b if k != "level_pct"
    )


def replan(
    scenario: dict[str, Any],
    current: InForce | None,
    solver_name: str,
    time_limit_s: float,
    margin: float,
    force: bool = False,
    stop: frozenset[str] = frozenset(),
    targets: Collection[str] | None = None,
) -> Replacement:
    """Re-solve (incrementally when a plan is in force: only the apps the change touches
    move) and decide with the hysteresis rule whether the candidate replaces the plan in
    force (`force`: any feasible candidate does). `targets`: the links and batteries whose
    watch fired for this re-plan (`orchestrator.triggers.fired_targets`); of the link
    figures and battery levels that changed, only theirs move apps (`what_fired`). None:
    every changed figure does (an operator's solve, a new deployment)."""
    options = solver.SolveOptions(time_limit_s=time_limit_s)
    change = None
    problem = None
    touching = None
    if current is not None and current.scenario is not None:
        change = change_between(current.scenario, scenario)
        problem = _derived_problem(scenario, current, change)
        if targets is not None:
            touching = what_fired(change, targets, current.scenario)
    derived = problem is not None
    if problem is None:
        problem = solver.Problem(solver.parse_scenario(scenario))
    held_before = _known(problem, current)
    incremental = bool(held_before) and change is not None
    solved_with = _solved_with(current)
    before = None
    if incremental:
        before = solver.set_aside_first(
            problem, solver_name, held_before, change, touching=touching
        )  # fmt: skip
        if current is not None and not force:
            started = time.perf_counter()
            fresh = newly_aside(solved_with, before.set_aside, stop)
            kept = kept_as_is(
                problem, before, held_before, current.apps, margin, stop, solver_name, fresh
            )  # fmt: skip
            if kept is not None:
                return _kept(scenario, problem, kept, before, solver_name, margin, derived, started)
    # The incremental re-solve holds the untouched apps where they are; when they leave
    # no room it re-places every app. An app that fits nowhere is set aside with its
    # reason, and the others are placed all the same.
    partial = solver.place_what_fits(
        problem,
        options,
        solver_name,
        previous=held_before if incremental else None,
        change=change if incremental else None,
        touching=touching if incremental else None,
        before=before,
    )
    plan, solved = partial.plan, partial.problem
    started = time.perf_counter()
    placed_scenario = _placed(scenario, problem, solved, partial.set_aside)
    current_objective: float | None = None
    broken_now: list[str] = []
    packs: set[str] = set()  # the plan in force breaks these batteries and nothing else
    held: dict[str, solver.Placement] = {}
    if current is not None:
        # The plan in force is judged on what the candidate places: an app set aside
        # stays out of both (leaving it out is a change of the set of deployments).
        held = {a: p for a, p in held_before.items() if a in solved.cost.apps}
        try:
            ev = evaluated(solved, held, solved.derived.get("evaluation"))
            current_objective, broken_now = ev.objective, list(ev.violations)
            if (
                hysteresis.MEND_MIN_S > 0
                and ev.found
                and all(r.code == solver.Code.BATTERY for r in ev.found)
            ):
                packs = {d for d, rs in ev.device_violations.items() if rs}
        except (KeyError, ValueError, IndexError) as exc:
            # The plan in force names something the scenario no longer has (a lost device).
            current_objective = float("inf")
            broken_now = [f"the plan in force is stale: {exc}"]
        if partial.set_aside:
            # The plan in force with the apps it serves degraded where it runs them: one
            # that breaks a hard limit through them must go like any other.
            more = broken_in_force(problem, held_before, partial.set_aside)
            if more:
                packs = set()
            broken_now = broken_now + [m for m in more if m not in broken_now]
    feasible = plan.status != solver.Status.INFEASIBLE
    mend: Mend | None = None
    if packs and feasible and plan.evaluation is not None:
        mend = pack_mend(solved, packs, plan.evaluation)

    # An app set aside now that the plan in force placed within its limits is searched
    # for, not held, when moving it could gain the margin (`degrade.newly_aside`).
    fresh = newly_aside(solved_with, partial.set_aside, stop)
    if fresh and current_objective is not None and current_objective != float("inf"):
        fresh = worth_a_search(problem, fresh, held_before, current_objective, margin, solver_name)
    running = {a: p for a, p in held_before.items() if a not in fresh}

    def judged(degraded: Degraded) -> tuple[Decision, list[str]]:
        served = {a.id for a in solved.scenario.apps} | set(degraded.placements)
        structural = current is not None and current.apps != served
        broken = broken_now
        if current is not None and structural and not broken:
            broken = ["the set of deployments changed"]
        decision = decide(
            current_objective, broken, plan.doc.objective, feasible, margin,
            mend=None if structural else mend,
        )  # fmt: skip
        if force and feasible:
            decision = Decision(True, "an operator's solve: applied without the margin")
        elif not decision.apply and not broken and current_objective is not None:
            decision = _degraded_moves(
                problem, current_objective, plan.doc.objective, held_before, degraded,
                fresh, margin, decision,
            )  # fmt: skip
        elif (
            decision.apply
            and held_before
            and plan.placements == held
            and all(held_before.get(a) == p for a, p in degraded.placements.items())
            and not structural
        ):
            decision = Decision(False, "the candidate is the plan in force")
        return decision, broken

    # The apps served degraded stay where the plan in force runs them while they still
    # fit there beside the candidate, battery and SLO lifted, whether the candidate goes
    # in force or not: no margin judges where such an app runs (it is outside the
    # objective), so a relaxed search at each applied re-plan moved it with no margin to
    # hold it back: 2.7 times the MB migrated, 21% more SLO seconds missed, 2.4% less
    # energy over a day of the 200-device fleet (bench/RESULTS.md). When every one fits, the
    # decision needs no search (`held_degraded`); else, or when a candidate goes in force
    # while one set aside for its battery alone misses its SLO where it runs (the search
    # first tries where that SLO is met), `serve_degraded` holds those that fit and
    # searches for the others.
    degraded = None
    if held_before and partial.set_aside:
        degraded = held_degraded(problem, plan.placements, partial.set_aside, stop, running)
    if degraded is not None:
        decision, broken = judged(degraded)
        if decision.apply and degraded.slo_missed:
            degraded = None
    if degraded is None:
        degraded = serve_degraded(
            scenario, plan.placements, partial.set_aside, stop, solver_name, time_limit_s,
            problem, running,
        )  # fmt: skip
        decision, broken = judged(degraded)
    unplaced = {a: why for a, why in partial.unplaced.items() if a not in degraded.placements}
    return Replacement(
        draft=Solved(plan.doc, degraded),
        apply=decision.apply,
        decision=decision.reason,
        incremental=incremental,
        derived_problem=derived,
        current_objective=None if current_objective == float("inf") else current_objective,
        broken=broken[:5],
        decide_s=time.perf_counter() - started,
        scenario=placed_scenario,
        unplaced=unplaced,
        degraded={a: r.message for a, r in degraded.reasons.items()},
        unplaced_codes={a: r.code.value for a, r in partial.set_aside.items()},
    )


def _kept(
    scenario: dict[str, Any],
    now: solver.Problem,
    kept: Kept,
    before: solver.Before,
    solver_name: str,
    margin: float,
    derived: bool,
    started: float,
) -> Replacement:
    """The re-plan of `replan` when no candidate could go in force (`kept_as_is`)."""
    aside = before.set_aside
    placed_scenario = _placed(scenario, now, kept.problem, aside)
    served = kept.degraded.placements
    return Replacement(
        draft=InForceNow(kept, solver_name),
        apply=False,
        decision=_kept_why(kept, margin),
        incremental=True,
        derived_problem=derived,
        current_objective=kept.objective,
        broken=[],
        decide_s=time.perf_counter() - started,
        scenario=placed_scenario,
        unplaced={a: r.message for a, r in aside.items() if a not in served},
        degraded={a: r.message for a, r in kept.degraded.reasons.items()},
        unplaced_codes={a: r.code.value for a, r in aside.items()},
    )


def _kept_why(kept: Kept, margin: float) -> str:
    if kept.gain < kept.share:
        what = (
            f"the apps the change moves are {kept.share:.1%} of the objective and at best "
            f"would take {kept.gain:.1%} off it"
        )
    else:
        what = f"the apps the change moves are {kept.share:.1%} of the objective"
    return f"{what}, within the {margin:.0%} margin: keeping the plan in force without a re-solve"


def _placed(
    scenario: dict[str, Any],
    now: solver.Problem,
    placed: solver.Problem,
    aside: Collection[str],
) -> dict[str, Any]:
    """`scenario` without the apps set aside: what the candidate places (`placed`, the
    problem of it). Both are remembered for the next re-plan to derive from; a caller may
    hand either back as the scenario in force."""
    placed_scenario = scenario
    if aside:
        placed_scenario = dict(scenario)
        placed_scenario["apps"] = [a for a in scenario.get("apps", []) if a["id"] not in aside]
    _remember(scenario, now)
    if placed is not now:
        _remember(placed_scenario, placed, (scenario, now))
    return placed_scenario


def _degraded_moves(
    now: solver.Problem,
    current: float,
    candidate: float | None,
    running: Mapping[str, solver.Placement],
    degraded: Degraded,
    fresh: Collection[str],
    margin: float,
    kept: Decision,
) -> Decision:
    """`kept`, or the decision to apply the candidate when apps just set aside for their
    pack (`fresh`) run elsewhere in it (`hysteresis.set_aside_moves`)."""
    moved = {
        a: p for a, p in degraded.placements.items() if a in fresh and running.get(a) != p
    }  # fmt: skip
    if not moved or candidate is None or any(a not in running for a in moved):
        return kept
    there = terms_of(now, {a: running[a] for a in moved})
    rule = hysteresis.set_aside_moves(current, there, candidate, terms_of(now, moved), margin)
    return kept if rule is None else Decision(True, rule.reason.format(", ".join(sorted(moved))))


def _solved_with(current: InForce | None) -> frozenset[str]:
    """The apps of the scenario the plan in force was solved from (none: unknown)."""
    if current is None or current.scenario is None:
        return frozenset()
    return frozenset(a["id"] for a in current.scenario.get("apps", []))


def _known(problem: solver.Problem, current: InForce | None) -> dict[str, solver.Placement]:
    """The plan in force's placements of the apps `problem` has."""
    if current is None:
        return {}
    apps = {a.id for a in problem.scenario.apps}
    return {a: p for a, p in current.placements.items() if a in apps}


def solve_scenario(
    scenario: dict[str, Any], solver_name: str, time_limit_s: float
) -> dict[str, Any]:
    """A what-if: the scenario solved from scratch; the plan document as stored (JSON)."""
    plan = solver.solve(
        solver.parse_scenario(scenario),
        solver.SolveOptions(time_limit_s=time_limit_s),
        solver=solver_name,
    )
    return plan.doc.model_dump(mode="json")


def _derived_problem(
    scenario: dict[str, Any], current: InForce, change: solver.Change
) -> solver.Problem | None:
    """The problem of `scenario` derived from the last one this worker made for a whole
    scenario, or from the one it solved for the plan in force's scenario, or None when
    there is none or it would not be the very problem a fresh parse gives (other weights
    or models, devices or links in another order).

    A plan in force that was solved with apps set aside has a scenario without them, and
    `change` adds them back after the others: then the problem is derived from the one of
    the scenario they were set aside from, whose apps are in the order of now."""
    previous_scenario = current.scenario
    if previous_scenario is None or change.added_devices or change.added_links:
        return None
    last = next((s for s in reversed(_SOLVED) if s.whole is None), None)
    solved = _recall(previous_scenario)
    if solved is None or any(scenario.get(k) != previous_scenario.get(k) for k in _FRAME):
        return None
    if (
        last is not None
        and last is not solved
        and not change.reroutes()
        and all(scenario.get(k) == last.scenario.get(k) for k in _FRAME)
    ):
        # The last re-plan's problem is nearer: each traced link's apps are costed once a
        # probe, not at every re-plan (`touched_apps` reads `affected` only on a reroute).
        since = change_between(last.scenario, scenario)
        if not (since.reroutes() or since.added_devices or since.added_links):
            problem = _derived_from(last.problem, scenario, current, since)
            if problem is not None:
                return problem
    problem = _derived_from(solved.problem, scenario, current, change)
    if problem is not None or solved.whole is None or change.reroutes():
        return problem
    whole, base = solved.whole
    return _derived_from(base, scenario, current, change_between(whole, scenario))


def _derived_from(
    base: solver.Problem, scenario: dict[str, Any], current: InForce, change: solver.Change
) -> solver.Problem | None:
    """`base` changed into the problem of `scenario`, if it is the very problem a fresh
    parse gives (devices, links and apps in the scenario's order)."""
    try:
        problem = solver.apply_change(base, change, _known(base, current))
    except solver.ScenarioError:
        return None  # the fresh parse says what is wrong
    return problem if in_order_of(problem, scenario) else None

"""Serving what cannot be placed within its battery or SLO, degraded, instead of stopping it.

With idle counted (scenario-v1's 2026-12-03 change), a camera may not last the horizon
whatever the plan, and a link's RTT blip can put an app's SLO out of reach for a moment.
`solver.place_what_fits` sets such an app aside so that the rest of the fleet still gets a
plan; stopping it as well would turn a prediction ("this battery will not last 8 h") into
an outage now. So, unless its deployment asks to be stopped (`when_infeasible: stop`), the
app keeps serving in the placement that drains batteries least, found with the battery and
SLO limits lifted and every other limit (memory, compute, bandwidth, tiers, accuracy)
kept, and the other apps held where the plan puts them; an app set aside for its battery
alone keeps its SLO where a placement meets it. Once served, it stays where it runs
while that still fits (no margin judges where a degraded app runs, and moving it at each
re-plan was churn: bench/RESULTS.md): only the apps that no longer fit there are searched
for, and an app just set aside for its battery where keeping that pack had put it, when
moving it could take the margin off the whole plan (`newly_aside`, `worth_a_search`).
Only `battery` and `slo` are ever relaxed: a placement over a device's memory cannot run
at all.

The app's entry in the plan document is evaluated under the real scenario, so its
latency, energy and `slo_met` are what it will cost; the plan's status and objective stay
those of the apps placed within every limit.
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import solver
from orchestrator.changes import change_between, in_order_of

RELAXABLE = frozenset({solver.Code.BATTERY, solver.Code.SLO})
# In the relaxed search a battery's draw is priced this many times its real power, so
# that among the placements that fit, the one that drains batteries least wins.
_BATTERY_PRICE = 1000.0


@dataclass(slots=True)
class Degraded:
    """The apps served degraded: their placements, why each is degraded (the set-aside
    reason, with its code) and their plan entries (`results`, evaluated under the real
    scenario `on`, with the costs `costs` holds, when first read: most re-plans keep the
    plan in force, and the simulator reads no document of theirs)."""

    placements: dict[str, solver.Placement] = field(default_factory=dict)
    reasons: dict[str, solver.Reason] = field(default_factory=dict)
    on: solver.Problem | None = None
    costs: dict[str, Any] | None = None
    _results: list[solver.AppResult] | None = None
    # Of the apps set aside for their battery alone, those held (`held_degraded`) where
    # they miss their SLO: the relaxed search would have tried one that meets it first.
    slo_missed: frozenset[str] = frozenset()

    @property
    def results(self) -> list[solver.AppResult]:
        if self._results is None:
            on, served = self.on, self.placements
            self._results = _results_on(on, served, self.costs) if on is not None and served else []
        return self._results


def serve_degraded(
    scenario: dict[str, Any],
    placed: Mapping[str, solver.Placement],
    set_aside: Mapping[str, solver.Reason],
    stop: frozenset[str],
    solver_name: str,
    time_limit_s: float,
    now: solver.Problem,
    running: Mapping[str, solver.Placement] | None = None,
) -> Degraded:
    """For each app set aside for its battery or SLO (and not asked to stop), a placement
    with those limits lifted, the apps of `placed` held where they are.

    `now`: `scenario` compiled (every app of it, the re-plan's own problem): the entries
    of the apps served degraded are evaluated on it, not on `scenario` parsed and routed
    once more (an app's entry reads its own placement and the fleet alone, so the two
    are the same: tests/orchestrator/test_degrade.py). `running`: the plan in force's
    placements; an app it runs stays there where that still fits (`_where_they_run`),
    and the others are searched for, one after the other, beside them."""
    out = Degraded()
    candidates = [a for a, r in set_aside.items() if r.code in RELAXABLE and a not in stop]
    if not candidates:
        return out
    apps = {a["id"]: a for a in scenario.get("apps", [])}
    held = dict(placed)
    if running:
        kept = _where_they_run(now, placed, candidates, set_aside, running)
        held.update(kept)
        out.placements.update(kept)
        out.reasons.update((a, set_aside[a]) for a in kept)
    searches = _Searches(scenario, now)
    for app_id in candidates:
        if app_id in out.placements:
            continue
        # Set aside for its battery alone, an app keeps its SLO where a placement meets it
        # (lifted as well, the search ran such an app where batteries drain least whatever
        # its latency, and a day of the 200-device fleet missed 24% more SLO seconds once
        # its packs had drained: bench/RESULTS.md); its SLO is lifted only where none does.
        battery = set_aside[app_id].code == solver.Code.BATTERY
        found = None
        for keep_slo in (True, False) if battery else (False,):
            found = _relaxed_placement(
                searches, apps, held, out.placements.keys(), app_id, solver_name,
                time_limit_s, keep_slo=keep_slo,
            )  # fmt: skip
            if found is not None:
                break
        if found is None:
            continue
        held[app_id] = found
        out.placements[app_id] = found
        out.reasons[app_id] = set_aside[app_id]
    out.on = now
    return out


def _where_they_run(
    now: solver.Problem,
    placed: Mapping[str, solver.Placement],
    candidates: list[str],
    set_aside: Mapping[str, solver.Reason],
    running: Mapping[str, solver.Placement],
) -> dict[str, solver.Placement]:
    """Of the apps `candidates`, those that stay where `running` runs them beside
    `placed`, battery and SLO lifted: each that runs there, less those a limit breaks
    through (their own, or a link or device over its limit that they use) and those set
    aside for their battery alone that miss their SLO there (the search tries a placement
    that meets it first). `placed` keeps every limit, so what breaks is theirs; when a
    broken limit cannot be put down to them, none stays (every one is searched for)."""
    held = {a: running[a] for a in candidates if a in running}
    base = solver.base_evaluation(now)
    while held:
        plan = {**placed, **held}
        try:
            ev = solver.evaluate(now.cost, plan, cache=now.app_costs, base=base)
        except (KeyError, ValueError, IndexError):
            return {}  # a placement of the plan in force names what is gone
        links = set(ev.link_violations)
        devices = {
            d for d, found in ev.device_violations.items()
            if any(r.code != solver.Code.BATTERY for r in found)
        }  # fmt: skip
        by_resource = {id(r) for r in ev.link_violations.values()} | {
            id(r) for d in devices for r in ev.device_violations[d]
        }
        out = set()
        for r in ev.found:
            if r.code == solver.Code.BATTERY or (r.app is not None and r.app not in plan):
                continue  # a pack's limit lifted; an app left out of this plan ("not placed")
            if r.app in held:
                if r.code != solver.Code.SLO or set_aside[r.app].code == solver.Code.BATTERY:
                    out.add(r.app)
            elif id(r) not in by_resource:
                return {}
        for a in held:
            rec = ev.records.get(a)  # none: its placement is not one (its reasons say why)
            if (
                rec is None
                or links.intersection(rec.cost.link_mb)
                or devices.intersection({*rec.cost.compute_s, *rec.cost.memory_mb})
            ):
                out.add(a)
        if not out:
            if any(r.code != solver.Code.BATTERY and r.app is None for r in ev.found):
                return {}
            return held
        held = {a: p for a, p in held.items() if a not in out}
    return held


def held_degraded(
    now: solver.Problem,
    placed: Mapping[str, solver.Placement],
    set_aside: Mapping[str, solver.Reason],
    stop: frozenset[str],
    running: Mapping[str, solver.Placement],
    base: solver.Evaluation | None = None,
) -> Degraded | None:
    """The apps `serve_degraded` would serve, each where `running` (the plan in force)
    runs it, when every one of those placements still fits beside `placed` with the
    battery and SLO limits lifted (as the relaxed search judges it); None otherwise.
    Whether such an app is served decides a re-plan, not where (it is left out of both
    plans judged): a re-plan that keeps the plan in force, with the app where it runs,
    needs no relaxed search. That holds for an app set aside for its battery as for one
    set aside for its SLO. A candidate that goes in force holds them there too, unless one
    set aside for its battery alone misses its SLO where it runs (`Degraded.slo_missed`):
    the search places such an app where its SLO is met, if anywhere
    (`orchestrator.replacement.replan`). As packs drain, more apps are set aside for their
    battery, and a search each at every re-plan was most of a re-plan's cost
    (bench/continuum_day.py). `base`: an evaluation of `placed` on this fleet, if the
    caller has one."""
    candidates = [a for a, r in set_aside.items() if r.code in RELAXABLE and a not in stop]
    if not candidates or any(a not in running for a in candidates):
        return None
    held = {a: running[a] for a in candidates}
    try:
        # On top of `base`, the caller's evaluation of `placed` on this fleet (then only
        # the apps held here are new), or of the last evaluation on it (the plan in
        # force's, or its predecessor's): only what moved is redone.
        base = base if base is not None else solver.base_evaluation(now)
        ev = solver.evaluate(now.cost, {**placed, **held}, cache=now.app_costs, base=base)
    except (KeyError, ValueError, IndexError):
        return None  # a placement of the plan in force names what is gone
    missed: set[str] = set()
    for r in ev.found:
        if r.code == solver.Code.BATTERY:
            continue
        if r.code != solver.Code.SLO or r.app not in held:
            return None
        if set_aside[r.app].code == solver.Code.BATTERY:
            missed.add(r.app)
    # Their costs are the evaluation's, just made (or carried) on this very problem.
    reasons = {a: set_aside[a] for a in candidates}
    return Degraded(held, reasons, now, now.app_costs, slo_missed=frozenset(missed))


def newly_aside(
    solved_with: Collection[str],
    set_aside: Mapping[str, solver.Reason],
    stop: frozenset[str],
) -> frozenset[str]:
    """Of the apps set aside for their battery (and not asked to stop), those the plan in
    force placed within every limit: `solved_with`, the apps of the scenario it was solved
    from, leaves out the apps it served degraded. Such an app runs where keeping its pack
    put it, a limit lifted now: held there (no margin judges where a degraded app runs),
    it ran on at any cost. On the example fleet's calm day, `weld-2` kept running on
    edge-a, where it had gone to keep cam-2's pack, for 11.6 h after that pack could be
    kept no longer: 2.15 W more, 26% more energy than `static` (bench/RESULTS.md). So it
    is searched for when moving it could gain the margin (`worth_a_search`). An app set
    aside for its SLO is held as before: no placement meets its SLO, so the solver bounds
    nothing it could gain, and a search each until the next plan went in force cost a
    fifth more CPU over a day of the 200-device fleet for decisions within 1%."""
    return frozenset(
        a for a, r in set_aside.items()
        if r.code == solver.Code.BATTERY and a not in stop and a in solved_with
    )  # fmt: skip


def worth_a_search(
    now: solver.Problem,
    fresh: Collection[str],
    running: Mapping[str, solver.Placement],
    objective: float,
    margin: float,
    solver_name: str,
) -> frozenset[str]:
    """`fresh` (`newly_aside`), or none of them when moving them alone could not take the
    margin off the whole plan (the plan in force's `objective` and their terms where they
    run): what they could gain is their terms there less the least the solver could give
    them (`solver.least_terms`, with their SLO met). Most apps set aside for their pack
    ran at about their least already, and a search each at every re-plan until the next
    plan went in force cost a fifth more CPU over a day of the 200-device fleet
    (bench/continuum_day.py: 80.6 s against 66.2, bench/RESULTS.md)."""
    if not fresh or any(a not in running for a in fresh):
        return frozenset(fresh)
    apps = sorted(fresh)
    there = terms_of(now, {a: running[a] for a in apps})
    least = solver.least_terms(now, apps, solver_name)
    if least is not None and there - least <= margin * (objective + there):
        return frozenset()
    return frozenset(fresh)


def terms_of(now: solver.Problem, placements: Mapping[str, solver.Placement]) -> float:
    """The objective terms of these apps where `placements` runs them on the problem of
    now, migration from the plan in force included (their battery and SLO not judged);
    infinite when one is no placement there."""
    ev = solver.evaluate(
        now.cost, placements, require_all=False, cache=now.app_costs, migration=now.migration
    )  # fmt: skip
    if any(a not in ev.records for a in placements):
        return float("inf")
    return sum(ev.records[a].term for a in placements)


def broken_in_force(
    now: solver.Problem,
    running: Mapping[str, solver.Placement],
    set_aside: Mapping[str, solver.Reason],
) -> list[str]:
    """The limits the plan in force (`running`) breaks under the scenario of now through
    the apps it serves degraded, beyond the battery and SLO lifted for them: a link a
    degraded app crosses whose bandwidth fell under what it sends, say. A re-plan judges
    the plan in force without the apps set aside (as it judges the candidate), so that
    plan looked whole, was kept, and broke the link for as long as the figure stayed low,
    each re-plan searching again for every app served degraded (bench/continuum_day.py:
    from hour 10 of the day, one link over its bandwidth kept 15 apps searched at nearly
    every re-plan). Empty when no app set aside runs, or nothing more is broken."""
    apps = now.cost.apps
    if not any(a in running for a in set_aside):
        return []
    held = {a: p for a, p in running.items() if a in apps}
    try:
        ev = solver.evaluate(
            now.cost, held, cache=now.app_costs, base=solver.base_evaluation(now)
        )  # fmt: skip
    except (KeyError, ValueError, IndexError):
        return []  # it names what is gone: the re-plan judges it stale already
    return [
        r.message for r in ev.found
        if r.code not in RELAXABLE and (r.app is None or r.app in set_aside)
    ]  # fmt: skip


class _Searches:
    """The relaxed problems of one pass of `serve_degraded`, each derived from the last
    (`solver.apply_change`: the same devices and links, a few apps added, changed or
    removed), not parsed afresh: a pass searches for each of 20 apps served degraded late
    in a day, and each search parsed the fleet, costed every held app and evaluated the
    plan from nothing (most of a re-plan that applied a plan: bench/RESULTS.md). The first
    is derived from the last pass's last problem (`_LAST`) when it is the very problem a
    fresh parse gives: the relaxed fleet is the same from pass to pass but for the links
    that moved (its packs have no level), so the held apps' costs and the candidates of
    the apps searched again carry over."""

    def __init__(self, scenario: dict[str, Any], now: solver.Problem) -> None:
        self.now = now
        # A copy of the devices with a battery alone (the others are read, never written).
        self.frame = {k: v for k, v in scenario.items() if k != "previous"}
        self.frame["devices"] = [
            _unbounded(d) if "battery" in d else d for d in scenario["devices"]
        ]  # fmt: skip
        self.frame.setdefault("links", [])
        self.last: solver.Problem | None = None
        self.doc: dict[str, Any] = {}  # the document of `last`
        # The held apps that break their own limits (battery and SLO lifted, the fleet
        # the same): found by the pass's first search, which judges every held app; the
        # apps served degraded it adds break none (each search's plan kept them). The
        # others judged every held app again (a fifth of a search).
        self.broken: set[str] | None = None

    def problem(self, apps: list[dict[str, Any]]) -> solver.Problem:
        """The relaxed problem with these apps (raises `solver.ScenarioError`): those its
        base has in the base's order, then the others in the order given."""
        problem = None
        if self.last is not None:
            problem = self._derived(self.last, self.doc, apps, whole=False)
        elif _LAST and _same_frame(_LAST[0][0], self.frame):
            problem = self._derived(_LAST[0][1], _LAST[0][0], apps, whole=True)
        if problem is None:
            self.doc = {**self.frame, "apps": apps}
            # It has the links of `now`, so it reuses its routes (`solver.Problem.alongside`).
            problem = self.now.alongside(solver.parse_scenario(self.doc))
        self.last = problem
        _LAST[:] = [(self.doc, problem)]
        return problem

    def _derived(
        self, base: solver.Problem, doc: dict[str, Any], apps: list[dict[str, Any]], whole: bool
    ) -> solver.Problem | None:
        """`base` (the problem of `doc`) with these apps, if it is the very problem a
        fresh parse of its document gives. `whole`: `doc` is another pass's, so its
        devices and links are compared too (within a pass they are the same)."""
        at = {a.id: k for k, a in enumerate(base.scenario.apps)}
        ordered = sorted(apps, key=lambda a: at.get(a["id"], len(at)))  # stable: new ones last
        relaxed = {**self.frame, "apps": ordered}
        if whole:
            change = change_between(doc, relaxed)
            if change.added_devices or change.added_links:
                return None
        else:
            old = {a["id"]: a for a in doc["apps"]}
            change = solver.Change(
                removed_apps=frozenset(old.keys() - {a["id"] for a in apps}),
                added_apps=tuple(a for a in ordered if old.get(a["id"]) != a),
            )
        try:
            problem = solver.apply_change(base, change)
        except solver.ScenarioError:
            return None  # the fresh parse says what is wrong
        if whole:
            if not in_order_of(problem, relaxed):  # its index is change_between's
                return None
        elif [a.id for a in problem.scenario.apps] != [a["id"] for a in ordered]:
            return None  # within a pass only the apps change
        self.doc = relaxed
        return problem


# The last relaxed problem this worker process made, with its scenario document.
_LAST: list[tuple[dict[str, Any], solver.Problem]] = []
# Each device's relaxed record, with the record it was made from: handed on as the very
# object it was while it is the same, so that two passes' scenarios compare by identity.
_UNBOUNDED: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}


def _same_frame(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two relaxed scenarios are the same but for their devices, links and apps."""
    lists = ("devices", "links", "apps")
    return a.keys() - {"apps"} == b.keys() - {"apps"} and all(
        a[k] == b[k] for k in b if k not in lists
    )


def _relaxed_placement(
    searches: _Searches,
    apps: dict[str, dict[str, Any]],
    held: dict[str, solver.Placement],
    lifted: Collection[str],
    app_id: str,
    solver_name: str,
    time_limit_s: float,
    keep_slo: bool = False,
) -> solver.Placement | None:
    """`lifted`: the apps of `held` already served degraded in this pass. They are held
    with their SLO lifted as well: held with it, one out of its SLO made every relaxed
    plan infeasible, and a second app was never served. `keep_slo`: the app's own SLO is
    kept (only the batteries' limits are lifted)."""
    app = apps[app_id] if keep_slo else _without_slo(apps[app_id])
    relaxed = [_without_slo(apps[a]) if a in lifted else apps[a] for a in held if a in apps]
    try:
        problem = searches.problem([*relaxed, app])
    except solver.ScenarioError:
        return None
    change = solver.Change(added_apps=(app,))
    options = solver.SolveOptions(time_limit_s=time_limit_s)
    if searches.broken is None:
        before = solver.set_aside_first(problem, solver_name, held, change, max_unplaced=0)
        searches.broken = (before.touched or set()) - {app_id}
    else:
        # The apps a search re-places are its own and the held ones that break their own
        # limits, the same for every search of a pass (`_Searches.broken`).
        before = solver.Before(problem, {*searches.broken, app_id})
    partial = solver.place_what_fits(
        problem, options, solver_name, previous=held, change=change, max_unplaced=0,
        before=before,
    )  # fmt: skip
    plan = partial.plan
    if plan.status == solver.Status.INFEASIBLE or app_id not in plan.placements:
        return None
    # A re-placement of the held apps would be valid only without their batteries' limits.
    if any(plan.placements.get(a) != p for a, p in held.items()):
        return None
    return plan.placements[app_id]


def _without_slo(app: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in app.items() if k != "slo_ms"}


def _unbounded(device: dict[str, Any]) -> dict[str, Any]:
    """A device with a battery, without its limit and its draw priced (`_BATTERY_PRICE`):
    the record made last for the device when it is the same (`_UNBOUNDED`)."""
    kept = _UNBOUNDED.get(device["id"])
    if kept is not None and kept[0] is device:
        return kept[1]
    out = {k: copy.deepcopy(v) for k, v in device.items() if k != "battery"}
    if device["battery"] is not None:
        out["power_w"] = {k: float(v) * _BATTERY_PRICE for k, v in device["power_w"].items()}
    if kept is not None and kept[1] == out:
        out = kept[1]
    _UNBOUNDED[device["id"]] = (device, out)
    return out


def _results_on(
    now: solver.Problem,
    degraded: Mapping[str, solver.Placement],
    costs: dict[str, Any] | None = None,
) -> list[solver.AppResult]:
    """The plan entries of the apps served degraded, in the order they were found,
    evaluated on the scenario of now with no previous plan (migration is the plan's
    part, not the entries'); `costs`: theirs on `now`, where known."""
    migration = solver.Problem(now.scenario, now.cost, {}).migration
    return solver.app_results(now.cost, degraded, migration, costs)


__all__ = [
    "RELAXABLE",
    "Degraded",
    "broken_in_force",
    "held_degraded",
    "newly_aside",
    "serve_degraded",
    "terms_of",
    "worth_a_search",
]

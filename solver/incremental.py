"""Incremental re-solves: after a change in the fleet, re-place only the apps it touches.

    new = apply_change(problem, change, previous)   # reuses routes and costs still valid
    plan = resolve(new, previous, change, options)  # every untouched app stays fixed

`apply_change` builds the changed scenario without re-validating what did not change,
and carries over what stays correct: the route table when no link or device was added or
lost and no rtt changed (routes depend on rtt only; a bandwidth change alters the
figures of routes through the link, so those are rebuilt), and the cached per-app costs
of every app whose cost the change cannot alter. It also records which apps the change
affects, from the old costs: the apps hosting or sending from a changed device and the
apps whose transfers cross a changed link. A change that can reroute anything (a link
added or made faster in rtt, a device added with links) marks every app's cost stale.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from solver.evaluate import app_cost, app_violations, segments_of
from solver.plan import Placement, Plan, Status
from solver.problem import Problem, SolveOptions
from solver.scenario import (
    App,
    Device,
    Link,
    PreviousApp,
    PreviousPlan,
    PreviousStage,
    ScenarioError,
)


@dataclass(frozen=True, slots=True)
class Change:
    """What changed since the previous plan; several kinds may be combined.

    `devices`: device id -> fields replaced (e.g. `{"battery": {...}}`, `{"gflops": 9}`);
    `lost_devices`: devices gone, with their links and the apps they source or sink;
    `links`: (a, b) -> fields replaced (`mbps`, `rtt_ms`, `j_per_mb`); `removed_links`;
    `added_devices`, `added_links`, `added_apps`: raw scenario-v1 entries; `removed_apps`.
    """

    devices: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    lost_devices: frozenset[str] = frozenset()
    links: Mapping[tuple[str, str], Mapping[str, Any]] = field(default_factory=dict)
    removed_links: frozenset[tuple[str, str]] = frozenset()
    added_devices: tuple[Mapping[str, Any], ...] = ()
    added_links: tuple[Mapping[str, Any], ...] = ()
    added_apps: tuple[Mapping[str, Any], ...] = ()
    removed_apps: frozenset[str] = frozenset()

    def reroutes(self) -> bool:
        """Whether some route may change (not only the figures of routes on a link)."""
        faster = any("rtt_ms" in f for f in self.links.values())
        return bool(faster or self.removed_links or self.lost_devices or self.added_links)


def _key(a: str, b: str) -> frozenset[str]:
    return frozenset((a, b))


def _previous_plan(problem: Problem, previous: Mapping[str, Placement]) -> PreviousPlan:
    cm = problem.cost
    apps = []
    for app_id, p in previous.items():
        if app_id not in cm.apps:
            continue
        if p.stages is not None:
            app = cm.apps[app_id]
            assert app.cascade is not None
            stages = tuple(
                PreviousStage(model=st.model, device=d)
                for st, d in zip(app.cascade, p.stages, strict=True)
            )
            apps.append(PreviousApp(id=app_id, stages=stages))
        else:
            segs = tuple(s.model_dump() for s in segments_of(cm, p))
            apps.append(
                PreviousApp.model_validate({"id": app_id, "model": p.model, "segments": segs})
            )
    return PreviousPlan(apps=tuple(apps))


def apply_change(
    problem: Problem, change: Change, previous: Mapping[str, Placement] | None = None
) -> Problem:
    """The problem after `change`, reusing every table of `problem` that stays correct.

    With `previous` and a migration weight, the new scenario's `previous` is that plan, so
    that moving a touched app away from where it ran is charged.
    """
    scn = problem.scenario
    try:
        devices = []
        for d in scn.devices:
            if d.id in change.lost_devices:
                continue
            upd = change.devices.get(d.id)
            devices.append(Device.model_validate({**d.model_dump(), **upd}) if upd else d)
        devices.extend(Device.model_validate(raw) for raw in change.added_devices)
        known = {d.id for d in devices}
        link_upd = {_key(a, b): f for (a, b), f in change.links.items()}
        removed = {_key(a, b) for a, b in change.removed_links}
        links = []
        for lk in scn.links:
            k = _key(lk.a, lk.b)
            if k in removed or lk.a not in known or lk.b not in known:
                continue
            upd = link_upd.get(k)
            links.append(Link.model_validate({**lk.model_dump(), **upd}) if upd else lk)
        links.extend(Link.model_validate(raw) for raw in change.added_links)
        apps = [
            a
            for a in scn.apps
            if a.id not in change.removed_apps and a.source in known and a.sink_id in known
        ]
        apps.extend(App.model_validate(raw) for raw in change.added_apps)
    except ValueError as exc:
        raise ScenarioError(f"change: {exc}") from None
    for lk in links[len(links) - len(change.added_links) :]:
        if lk.a not in known or lk.b not in known:
            raise ScenarioError(f"change: link {lk.a}-{lk.b} names an unknown device")
    update: dict[str, Any] = {"devices": tuple(devices), "links": tuple(links), "apps": tuple(apps)}
    new_scn = scn.model_copy(update=update)
    same_links = not change.reroutes() and not change.links and not change.added_devices
    from solver.costs import CostModel

    cost = CostModel(new_scn, problem.cost.routes if same_links else None)
    if previous is not None and scn.objective.migration > 0:
        new_scn = new_scn.model_copy(update={"previous": _previous_plan(problem, previous)})
        cost = CostModel(new_scn, cost.routes)
    new = Problem(new_scn, cost)
    new.derived["affected"] = _carry_costs(problem, new, change)
    return new


def _link_index(problem: Problem) -> dict[frozenset[str], int]:
    """Link index by its pair of devices, built once per problem (a large fleet has tens
    of thousands of links, and a re-solve must not pay for them every time)."""
    index = problem.derived.get("link_index")
    if index is None:
        index = {_key(lk.a, lk.b): k for k, lk in enumerate(problem.scenario.links)}
        problem.derived["link_index"] = index
    return index


def _carry_costs(old: Problem, new: Problem, change: Change) -> set[str]:
    """Copy the cached costs the change leaves valid; return the apps it affects."""
    affected: set[str] = set()
    changed = set(change.devices) | set(change.lost_devices)
    old_links = _link_index(old)
    hit_links = {
        old_links[_key(a, b)]
        for a, b in (*change.links, *change.removed_links)
        if _key(a, b) in old_links
    }
    hit_links |= {k for k, lk in enumerate(old.scenario.links) if {lk.a, lk.b} & changed}
    reroute = change.reroutes() or bool(change.added_devices)
    for app_id, (p, c) in old.app_costs.items():
        if app_id not in new.cost.apps:
            continue
        app = new.cost.apps[app_id]
        devices = set(c.compute_s) | set(c.joules) | set(c.memory_mb) | {app.source, app.sink_id}
        if devices & changed or hit_links.intersection(c.link_mb):
            affected.add(app_id)
        elif not reroute:
            new.app_costs[app_id] = (p, c)
    return affected


def touched_apps(problem: Problem, previous: Mapping[str, Placement], change: Change) -> set[str]:
    """The apps to re-place after `change`, on the changed problem (from `apply_change`):
    those using a changed device or link, new ones, and those whose previous placement now
    breaks a per-app constraint (SLO, route, tiers)."""
    cm = problem.cost
    touched = {a for a in cm.apps if a not in previous}
    affected = problem.derived.get("affected")
    if isinstance(affected, set):
        touched |= affected & cm.apps.keys()
    elif change.reroutes():
        return set(cm.apps)  # no record of which routes the old plan used
    else:
        changed = set(change.devices)
        keys = {_key(a, b) for a, b in change.links}
        links = problem.scenario.links
        for app_id, p in previous.items():
            app = cm.apps.get(app_id)
            if app is None:
                continue
            if (p.hosts() | {app.source, app.sink_id}) & changed:
                touched.add(app_id)
            elif keys:
                c = app_cost(cm, app, p)
                if any(_key(links[k].a, links[k].b) in keys for k in c.link_mb):
                    touched.add(app_id)
    if change.reroutes():
        for app_id, p in previous.items():
            app = cm.apps.get(app_id)
            if app is None or app_id in touched:
                continue
            if app_violations(cm, app, p, app_cost(cm, app, p)):
                touched.add(app_id)
    return touched


def resolve(
    problem: Problem,
    previous: Mapping[str, Placement],
    change: Change,
    options: SolveOptions | None = None,
    solver: str = "heuristic",
) -> Plan:
    """Re-place the touched apps on the changed `problem`, every other app held fixed.

    When the fixed apps leave no room for the touched ones, every app is re-placed.
    """
    from solver import solve

    opts = options or SolveOptions()
    touched = touched_apps(problem, previous, change)
    fixed = {a: p for a, p in previous.items() if a in problem.cost.apps and a not in touched}
    plan = solve(problem, _with_fixed(opts, fixed), solver=solver)
    if plan.status == Status.INFEASIBLE and fixed:
        plan = solve(problem, _with_fixed(opts, {}), solver=solver)
    if plan.doc.stats is None:
        plan.doc.stats = {}
    plan.doc.stats["resolved_apps"] = len(problem.cost.apps) - len(fixed)
    return plan


def _with_fixed(options: SolveOptions, fixed: dict[str, Placement]) -> SolveOptions:
    return SolveOptions(
        time_limit_s=options.time_limit_s,
        seed=options.seed,
        threads=options.threads,
        fixed={**options.fixed, **fixed},
    )


__all__ = ["Change", "apply_change", "resolve", "touched_apps"]

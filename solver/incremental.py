"""Incremental re-solves: after a change in the fleet, re-place only the apps it touches.

    new = apply_change(problem, change, previous)   # reuses routes and costs still valid
    plan = resolve(new, previous, change, options)  # every untouched app stays fixed

`apply_change` builds the changed scenario without re-validating what did not change,
and carries over what stays correct: the route table when no link or device was added or
lost and no rtt changed (routes depend on rtt only; a bandwidth change alters the
figures of routes through the link, so those are rebuilt), and the cached per-app costs
of every app whose cost the change cannot alter. It also records which apps the change
affects, from the old costs: the apps hosting or sending from a changed device and the
apps whose transfers cross a changed link. A lost device or a removed link leaves every
other route as it was (its costs are carried, links renumbered); a change that can
shorten a route (a link added or made faster in rtt, a device added) marks every app's
cost stale.

When the devices and links stay the same and in the same order (a battery, a device's
figures, a link's bandwidth, apps added or removed), the heuristic's fleet tables are
patched, not rebuilt, and the new plan is evaluated on top of the previous one
(`solver.evaluate.evaluate`, `base`): the work is that of the touched apps, not of the
fleet. `bench/solver_scale.py` measures it at 10,000 devices.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from solver import appcandidates
from solver.costs import Cost, CostModel, repriced
from solver.document import Plan
from solver.evaluate import cached_cost
from solver.fastcost import Fleet
from solver.gcpause import paused_gc
from solver.held import JUDGED, base_evaluation, breaks_own_limits, held_broken
from solver.plan import Placement, Status
from solver.previous import previous_plan
from solver.problem import Problem, SolveOptions
from solver.registry import solve
from solver.scenario import App, Device, Link, ScenarioError
from solver.shrink import adjacency_without, cost_with, kept_links, restated_evaluation


@dataclass(frozen=True, slots=True)
class Change:
    """What changed since the previous plan; several kinds may be combined.

    `devices`: device id -> fields replaced (e.g. `{"battery": {...}}`, `{"gflops": 9}`);
    `lost_devices`: devices gone, with their links and the apps they source or sink;
    `links`: (a, b) -> fields replaced (`mbps`, `rtt_ms`, `j_per_mb`); `removed_links`;
    `added_devices`, `added_links`, `added_apps`: raw scenario-v1 entries (an added app
    whose id exists replaces that app where it stands: a changed deployment); `removed_apps`.
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


def apply_change(
    problem: Problem, change: Change, previous: Mapping[str, Placement] | None = None
) -> Problem:
    """The problem after `change`, reusing every table of `problem` that stays correct.

    With `previous` (the plan in force as placements), migration is counted against it:
    moving a touched app away from where it ran is reported in its `migration_mb`, and
    charged with a migration weight.
    """
    with paused_gc():
        return _apply_change(problem, change, previous)


def _apply_change(
    problem: Problem, change: Change, previous: Mapping[str, Placement] | None
) -> Problem:
    scn = problem.scenario
    try:
        # A fleet of thousands changes one device at a time: copy the lists, patch in place.
        lost = change.lost_devices
        devices = [d for d in scn.devices if d.id not in lost] if lost else list(scn.devices)
        # The index by device is made for a change of devices only (a problem a second
        # when links alone move), afresh only when devices were also lost.
        at_device: Mapping[str, int] = {}
        if change.devices:
            at_device = {d.id: k for k, d in enumerate(devices)} if lost else problem.device_index
        for dev_id, upd in change.devices.items():
            if dev_id in lost:
                continue
            if dev_id not in at_device:
                raise ValueError(f"no device {dev_id} to change")
            i = at_device[dev_id]
            devices[i] = Device.model_validate({**devices[i].model_dump(), **upd})
        devices.extend(Device.model_validate(raw) for raw in change.added_devices)
        known: Collection[str] = (
            {d.id for d in devices} if lost or change.added_devices else problem.cost.devices
        )
        # Lost devices, none added: a link or an app is kept unless it names a lost one
        # (tested against the few lost, not against a set of every device kept).
        only_lost = bool(lost) and not change.added_devices
        link_upd = {_key(a, b): f for (a, b), f in change.links.items()}
        removed = {_key(a, b) for a, b in change.removed_links}
        if removed or lost:
            links = [
                lk
                for lk in scn.links
                if (
                    (lk.a not in lost and lk.b not in lost)
                    if only_lost
                    else (lk.a in known and lk.b in known)
                )
                and not (removed and _key(lk.a, lk.b) in removed)
            ]
        else:
            links = list(scn.links)
        index = _link_index(problem)
        for pair, upd in link_upd.items():
            at = index.get(pair)
            if at is None:
                raise ValueError(f"no link {'-'.join(sorted(pair))} to change")
            lk = scn.links[at]
            if pair in removed or lk.a not in known or lk.b not in known:
                continue
            new_lk = Link.model_validate({**lk.model_dump(), **upd})
            links[links.index(lk) if len(links) != len(scn.links) else at] = new_lk
        links.extend(Link.model_validate(raw) for raw in change.added_links)
        apps = (
            [
                a
                for a in scn.apps
                if a.id not in change.removed_apps
                and (
                    (a.source not in lost and a.sink_id not in lost)
                    if only_lost
                    else (a.source in known and a.sink_id in known)
                )
            ]
            if change.removed_apps or lost
            else list(scn.apps)
        )
        at_app = {a.id: k for k, a in enumerate(apps)}
        for raw in change.added_apps:
            app = appcandidates.app_of(raw)
            if app.id in at_app:
                apps[at_app[app.id]] = app
            else:
                at_app[app.id] = len(apps)
                apps.append(app)
    except ValueError as exc:
        raise ScenarioError(f"change: {exc}") from None
    for lk in links[len(links) - len(change.added_links) :]:
        if lk.a not in known or lk.b not in known:
            raise ScenarioError(f"change: link {lk.a}-{lk.b} names an unknown device")
    update: dict[str, Any] = {"devices": tuple(devices), "links": tuple(links), "apps": tuple(apps)}
    if previous is not None:
        # The plan in force is the previous plan from now on: the new problem counts
        # migration against these placements (`Problem(previous=...)`), so the scenario
        # does not carry an older one, and no plan document is written for thousands of
        # apps on every re-solve (`previous_plan` writes one when it is wanted).
        update["previous"] = None
    new_scn = scn.model_copy(update=update)
    # The same devices and links, in the same order, with some of their fields changed:
    # every table indexed by device or link stays valid and is patched, not rebuilt.
    same_shape = not (change.reroutes() or change.added_devices)
    old_links = _link_index(problem)
    moved_at = frozenset(old_links[_key(a, b)] for a, b in change.links if _key(a, b) in old_links)
    # Only devices or links taken away: every route that avoids them still holds.
    only_gone = bool(change.lost_devices or change.removed_links) and not (
        change.links or change.added_links or change.added_devices
    )
    new_links: dict[frozenset[str], int] | None = None
    kept: dict[int, int] | None = None
    if only_gone:
        kept = kept_links(scn.links, new_scn.links)
        new_links = {pair: kept[k] for pair, k in old_links.items() if k in kept}
        routes = problem.cost.routes.shrunk(new_scn, kept)
    elif not same_shape:
        routes = None
    elif moved_at:
        routes = problem.cost.routes.refigured(new_scn, moved_at)
    else:
        routes = problem.cost.routes
    new = Problem(new_scn, CostModel(new_scn, routes, like=problem.cost), previous)
    if new_links is not None:
        new.derived["link_index"] = new_links
    affected, renumber = _carry_costs(problem, new, change, kept)
    new.derived["affected"] = affected
    if renumber is not None:
        same_objects = not (
            change.devices or change.links or change.added_devices or change.added_links
        )
        base = restated_evaluation(problem, new, change.lost_devices, renumber, same_objects)
        if base is not None:
            new.derived["base_evaluation"] = base
        fleet = problem.derived.get("fleet")
        adj = problem.derived.get("adjacency")
        if isinstance(fleet, Fleet) and isinstance(adj, list) and not change.removed_links:
            # The heuristic's adjacency by device index, less the lost devices.
            new.derived["adjacency"] = adjacency_without(adj, fleet, lost)
        if isinstance(fleet, Fleet):
            shrunk = fleet.without(new, change.lost_devices)
            new.derived["fleet"] = shrunk.updated(new, set(change.devices) - change.lost_devices)
    if same_shape:
        _carry_tables(problem, new, change, moved_at)
    return new


def _carry_tables(old: Problem, new: Problem, change: Change, moved_at: frozenset[int]) -> None:
    """Hand the per-fleet tables and the apps' candidates still valid to the changed problem."""
    reshaped = change.reroutes() or bool(change.added_devices)
    # Each device's cheapest link in joules per MB and the own-pack proofs (`solver.ownpack`)
    # read no bandwidth: they are carried unless a link's joules per MB changed.
    joules = any("j_per_mb" in f for f in change.links.values())
    appcandidates.carry(old, new, reshaped, change.devices, moved_at, joules)
    for name in ("link_index", "adjacency", "incident", *(() if joules else ("least_j_per_mb",))):
        if name in old.derived:
            new.derived[name] = old.derived[name]
    if JUDGED in old.derived and not repriced(old.cost.devices, new.cost.devices, change.devices):
        # One store of held apps' own checks for problems of the same devices but for
        # their batteries (`solver.held.breaks_own_limits`: each entry says what it read).
        new.derived[JUDGED] = old.derived[JUDGED]
    fleet = old.derived.get("fleet")
    if isinstance(fleet, Fleet):
        new.derived["fleet"] = fleet.updated(new, change.devices)
    # The last evaluation on this fleet, two changes back if the problem in between was
    # never solved (an app set aside from a derived problem): what to build on.
    base = base_evaluation(old)
    if base is not None:
        new.derived["base_evaluation"] = base


def refigured(
    problem: Problem,
    mbps: Mapping[tuple[str, str], float],
    previous: Mapping[str, Placement] | None = None,
    made: dict[tuple[frozenset[str], float], Link] | None = None,
) -> Problem:
    """`problem` with the links of `mbps` (by their ends) at those Mbit/s, as far as a
    placement's cost and its own checks read it: the scenario and the cost model (its
    routes refigured), none of the tables `apply_change` carries over (costs, evaluation,
    candidates), for a caller that costs a few placements at every step and compiles the
    whole change seldom (the simulator's scorer and SLO checks: an `apply_change` of the
    links moved at each step was a sixth of a day of `neurosurgeon`). `made`: the link
    records of earlier calls, by ends and figure, for a caller whose links change in
    nothing but their figures (traces loop: the same figures come back)."""
    scn = problem.scenario
    index = _link_index(problem)
    links = list(scn.links)
    changed = set()
    for (a, b), value in mbps.items():
        pair = _key(a, b)
        k = index[pair]
        rec = made.get((pair, value)) if made is not None else None
        if rec is None:
            rec = Link.model_validate({**links[k].model_dump(), "mbps": value})
            if made is not None:
                made[(pair, value)] = rec
        links[k] = rec
        changed.add(k)
    update: dict[str, Any] = {"links": tuple(links)}
    if previous is not None:
        update["previous"] = None  # as `apply_change` makes it: migration is against these
    new_scn = scn.model_copy(update=update)
    routes = problem.cost.routes.refigured(new_scn, frozenset(changed))
    return Problem(new_scn, CostModel(new_scn, routes, like=problem.cost), previous)


def _link_index(problem: Problem) -> dict[frozenset[str], int]:
    """Link index by its pair of devices, built once per problem (a large fleet has tens
    of thousands of links, and a re-solve must not pay for them every time)."""
    index = problem.derived.get("link_index")
    if index is None:
        index = {_key(lk.a, lk.b): k for k, lk in enumerate(problem.scenario.links)}
        problem.derived["link_index"] = index
    return index


def _incident(problem: Problem) -> dict[str, list[int]]:
    """The links at each device, by index."""
    incident = problem.derived.get("incident")
    if incident is None:
        incident = {d.id: [] for d in problem.scenario.devices}
        for k, lk in enumerate(problem.scenario.links):
            incident[lk.a].append(k)
            incident[lk.b].append(k)
        problem.derived["incident"] = incident
    return incident


def _carry_costs(
    old: Problem, new: Problem, change: Change, kept: dict[int, int] | None = None
) -> tuple[set[str], dict[int, int] | None]:
    """Copy the cached costs the change leaves valid; return the apps it affects, and the
    new index of each old link when the change only took devices or links away (`kept`,
    when the caller matched them already: the same map)."""
    affected: set[str] = set()
    changed = set(change.devices) | set(change.lost_devices)
    # A device whose battery alone changed leaves every cost as it was (`repriced`): the
    # apps using it are affected (a re-solve re-places them), but their costs carry over.
    priced = repriced(old.cost.devices, new.cost.devices, change.devices) | change.lost_devices
    old_links = _link_index(old)
    ends = (_key(a, b) for a, b in (*change.links, *change.removed_links))
    hit = {old_links[k] for k in ends if k in old_links}
    incident = _incident(old)
    hit_priced = hit.union(*(incident.get(d, ()) for d in priced))
    hit_links = hit_priced.union(*(incident.get(d, ()) for d in changed - priced))
    reroute = change.reroutes() or bool(change.added_devices)
    # Taking devices or links away never shortens a route, and the best route that avoids
    # them is still the best: a cost that uses none of them holds, once its links are
    # renumbered. Anything that may shorten a route (a new link, a lower rtt) voids all.
    shrinks = reroute and not (
        change.added_links
        or change.added_devices
        or any("rtt_ms" in f for f in change.links.values())
    )
    renumber: dict[int, int] = {}
    first_gone = -1  # below the first link whose index moved (or went), none did
    if shrinks:
        if kept is None:
            now = _link_index(new)
            kept = {k: now[pair] for pair, k in old_links.items() if pair in now}
        renumber = kept
        first_gone = next(k for k in range(len(renumber) + 1) if renumber.get(k) != k)
    apps, old_apps, carried = new.cost.apps, old.cost.apps, new.app_costs
    affected.update(str(raw["id"]) for raw in change.added_apps if raw.get("id") in apps)
    for app_id, (p, c) in old.app_costs.items():
        app = apps.get(app_id)
        if app is None:
            continue
        if app is not old_apps.get(app_id):
            affected.add(app_id)  # the app itself changed
            continue
        if _uses_device(app, c, changed) or (hit_links and not hit_links.isdisjoint(c.link_mb)):
            affected.add(app_id)
            if _uses_device(app, c, priced) or not hit_priced.isdisjoint(c.link_mb):
                continue
        if not reroute or (shrinks and max(c.link_mb, default=-1) < first_gone):
            carried[app_id] = (p, c)  # no link renumbered: the cost holds as it is
        elif shrinks:
            moved = dict(zip(map(renumber.__getitem__, c.link_mb), c.link_mb.values(), strict=True))
            carried[app_id] = (p, cost_with(c, c.compute_s, c.joules, c.memory_mb, moved))
    return affected, renumber if shrinks else None


def touched_apps(problem: Problem, previous: Mapping[str, Placement], change: Change) -> set[str]:
    """The apps to re-place after `change`, on the changed problem (from `apply_change`, or
    parsed afresh): new or changed ones; those hosted, sourced or sunk at an end of a
    changed link; those using a changed device or link; and those whose previous placement
    breaks a per-app constraint (SLO, route, tiers) or draws more from its source's
    battery than the pack pays.

    When no route can change, the same apps whichever way the problem was made (a worker
    that derived it from the last one it solved, or one that parsed it): what an app uses
    is read from its cost at its previous placement, carried over or computed."""
    cm = problem.cost
    touched = {a for a in cm.apps if a not in previous}
    # An app at an end of a changed link is touched whether or not its placement crosses
    # the link now: one that a low figure (or a high rtt) pushed off the link, onto its
    # camera say, must be drawn back over it when the link recovers, or it stays on the
    # costlier placement for good (+59% energy over an hour of the example fleet when only
    # the apps crossing the link were re-placed).
    touched |= _at_ends(cm, previous, change)
    uses: tuple[set[str], set[int]] | None = None
    if change.reroutes() or change.added_devices:
        affected = problem.derived.get("affected")
        if not isinstance(affected, set):
            return set(cm.apps)  # no record of which routes the old plan used
        touched |= affected & cm.apps.keys()
    else:
        touched |= {str(raw["id"]) for raw in change.added_apps if raw.get("id") in cm.apps}
        uses = _changed_uses(problem, change)
    for app_id, p in previous.items():
        app = cm.apps.get(app_id)
        if app is None or app_id in touched:
            continue
        # An app held where it breaks a per-app constraint is re-placed too, whether the
        # change broke it or it was broken already (an app served degraded out of its
        # SLO): held, it makes every plan that keeps it infeasible, and a re-solve of every
        # app to find that.
        if breaks_own_limits(problem, app, p):
            touched.add(app_id)
        elif uses is not None:
            c = cached_cost(cm, app, p, problem.app_costs)
            changed, hit = uses
            if _uses_device(app, c, changed) or (hit and not hit.isdisjoint(c.link_mb)):
                touched.add(app_id)
    return touched


def _changed_uses(problem: Problem, change: Change) -> tuple[set[str], set[int]]:
    """What a change moving no route changed: its devices, and by index its links and the
    links of its devices (as `apply_change` finds the apps that use them, from their costs:
    hosts, the source and the sink, who pays joules, and the links crossed)."""
    changed = set(change.devices)
    index = _link_index(problem)
    hit = {index[_key(a, b)] for a, b in change.links if _key(a, b) in index}
    incident = _incident(problem)
    for d in changed:
        hit.update(incident.get(d, ()))
    return changed, hit


def _at_ends(cm: CostModel, previous: Mapping[str, Placement], change: Change) -> set[str]:
    """The apps of `previous` hosted, sourced or sunk at an end of a changed link."""
    ends = {d for pair in change.links for d in pair}
    if not ends:
        return set()
    out: set[str] = set()
    for app_id, p in previous.items():
        app = cm.apps.get(app_id)
        if app is not None and not ends.isdisjoint(p.hosts() | {app.source, app.sink_id}):
            out.add(app_id)
    return out


def _uses_device(app: App, c: Cost, changed: set[str]) -> bool:
    """Whether the app's cost reads one of the `changed` devices: hosts hold memory and
    compute, senders (the source) pay joules, and the source and sink are its ends."""
    return bool(changed) and (
        app.source in changed
        or app.sink_id in changed
        or not changed.isdisjoint(c.compute_s)
        or not changed.isdisjoint(c.memory_mb)
        or not changed.isdisjoint(c.joules)
    )


def resolve(
    problem: Problem,
    previous: Mapping[str, Placement],
    change: Change,
    options: SolveOptions | None = None,
    solver: str = "heuristic",
    touched: Collection[str] | None = None,
) -> Plan:
    """Re-place the touched apps on the changed `problem`, every other app held fixed.

    When the fixed apps stand in a touched app's way, every app is re-placed (`_its_own_fault`).
    `touched`: the apps to re-place when the caller worked them out already (on the
    problem `change` was applied to; `problem` may since have lost apps).
    """
    with paused_gc():
        return _resolve(problem, previous, change, options or SolveOptions(), solver, touched)


def _resolve(
    problem: Problem,
    previous: Mapping[str, Placement],
    change: Change,
    opts: SolveOptions,
    solver: str,
    touched: Collection[str] | None,
) -> Plan:
    if touched is None:
        touched = touched_apps(problem, previous, change)
    fixed = {a: p for a, p in previous.items() if a in problem.cost.apps and a not in touched}
    plan = solve(problem, _with_fixed(opts, fixed), solver=solver)
    if plan.status == Status.INFEASIBLE and fixed and not _its_own_fault(plan, touched):
        fixed = {}
        plan = solve(problem, _with_fixed(opts, fixed), solver=solver)
    plan.stat("resolved_apps", len(problem.cost.apps) - len(fixed))
    return plan


def _its_own_fault(plan: Plan, touched: Collection[str]) -> bool:
    """Whether the plan is infeasible for a re-placed app that the fixed apps do not stand
    in the way of: no placement of its own meets its limits (`Reason.alone`), or each
    option it tried overflows even without them (`Reason.held_clear`). Re-placing them too
    would name it again, or an app before it that is held where it runs."""
    reason = plan.reason
    return reason is not None and (reason.alone or reason.held_clear) and reason.app in touched


def _with_fixed(options: SolveOptions, fixed: dict[str, Placement]) -> SolveOptions:
    return replace(options, fixed={**options.fixed, **fixed})


__all__ = [
    "Change",
    "apply_change",
    "held_broken",
    "previous_plan",
    "refigured",
    "resolve",
    "touched_apps",
]

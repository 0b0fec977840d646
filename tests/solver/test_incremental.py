"""Incremental re-solves: the changed problem reuses tables, the plan is evaluated on top of
the previous one, and the result is exactly what a fresh evaluation says."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from simulate.traces import read_trace
from solver import Problem, SolveOptions, Status, held, incremental, solve
from solver.document import Plan, build_plan, infeasible_plan
from solver.evaluate import app_cost, app_violations, evaluate
from solver.generate import generate
from solver.incremental import Change, apply_change, previous_plan, resolve, touched_apps
from solver.migration import app_migration
from solver.plan import Placement
from solver.reasons import Code, Reason
from solver.scenario import ScenarioError, parse_scenario
from tests.solver.test_fastcost import _random_placements

TRACES = Path(__file__).resolve().parents[3] / "shared" / "traces"


def _same_as_fresh(plan: Plan, problem: Problem, before: dict[str, Placement]) -> None:
    """`plan` (built incrementally on `problem`, the plan in force `before`) against a
    from-scratch evaluation of the scenario with `before` written as its previous plan."""
    scn = problem.scenario.model_copy(update={"previous": previous_plan(problem, before)})
    reference = Problem(parse_scenario(scn.model_dump(mode="json", exclude_none=True)))
    fresh = build_plan(reference.cost, plan.placements, plan.status, "fresh")
    got, want = plan.doc, fresh.doc
    assert got.objective is not None and want.objective is not None
    assert math.isclose(got.objective, want.objective, rel_tol=1e-12)
    assert got.violations == want.violations
    assert [a.model_dump() for a in got.apps] == [a.model_dump() for a in want.apps]
    for mine, theirs in ((got.devices, want.devices), (got.links, want.links)):
        assert len(mine) == len(theirs)
        for a, b in zip(mine, theirs, strict=True):
            da, db = a.model_dump(), b.model_dump()
            for key, value in db.items():
                if isinstance(value, float):
                    assert math.isclose(da[key], value, rel_tol=1e-9, abs_tol=1e-12), (a, b)
                else:
                    assert da[key] == value


def _battery_drop(problem: Problem, k: int) -> Change:
    devices = [d for d in problem.scenario.devices if d.battery is not None]
    d = devices[k % len(devices)]
    budget = problem.cost.battery_limit_w(d.id)
    assert d.battery is not None and budget is not None
    # What the battery has for the plan, beside its idle draw, drops to 30%.
    usable_wh = (d.power_w.idle + 0.3 * budget) * problem.scenario.horizon_h
    level = d.battery.min_pct + usable_wh / d.battery.capacity_wh * 100.0
    return Change(devices={d.id: {"battery": {**d.battery.model_dump(), "level_pct": level}}})


def _busiest_link_halved(problem: Problem) -> Change:
    traffic: dict[int, float] = {}
    for _, c in problem.app_costs.values():
        for k, mb in c.link_mb.items():
            traffic[k] = traffic.get(k, 0.0) + mb
    link = problem.scenario.links[max(traffic, key=lambda k: (traffic[k], -k))]
    return Change(links={(link.a, link.b): {"mbps": link.mbps / 2}})


def _rate_doubled(problem: Problem) -> Change:
    """A changed deployment: the same id, twice the requests."""
    raw = problem.scenario.apps[5].model_dump(exclude_none=True)
    raw["rate_rps"] *= 2
    return Change(added_apps=(raw,))


def _busiest_link_removed(problem: Problem) -> Change:
    (pair,) = _busiest_link_halved(problem).links
    return Change(removed_links=frozenset({pair}))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_an_incremental_evaluation_equals_a_fresh_one(seed: int) -> None:
    raw = generate(seed, devices=24, apps=12, blocks=6)
    raw["objective"]["migration"] = 0.05
    problem = Problem(parse_scenario(raw))
    before = _random_placements(problem, seed)  # broken in many ways: violations to compare
    base = build_plan(problem.cost, before, Status.FEASIBLE, "x", cache=problem.app_costs)
    problem.derived["evaluation"] = base.evaluation
    link = problem.scenario.links[seed]
    change = Change(
        devices=_battery_drop(problem, seed).devices,
        links={(link.a, link.b): {"mbps": link.mbps / 3}},
        removed_apps=frozenset({problem.scenario.apps[-1].id}),
    )
    new = apply_change(problem, change, before)
    moved = _random_placements(new, seed + 50)
    after = {a: p for a, p in before.items() if a in new.cost.apps}
    for app in new.scenario.apps[:3]:
        after[app.id] = moved[app.id]
    plan = build_plan(
        new.cost,
        after,
        Status.FEASIBLE,
        "x",
        cache=new.app_costs,
        migration=new.migration,
        base=new.derived["base_evaluation"],
    )
    assert plan.evaluation is not None and plan.evaluation.changed_devices is not None
    assert plan.doc.violations  # the comparison below covers broken plans too
    _same_as_fresh(plan, new, before)


def test_a_chain_of_incremental_resolves_stays_exact() -> None:
    problem = Problem(parse_scenario(generate(5, devices=120, apps=60, blocks=8)))
    plan = solve(problem, SolveOptions(), solver="heuristic")
    assert plan.status == Status.FEASIBLE
    extra = generate(5, devices=120, apps=61, blocks=8)["apps"][60]
    extra["id"] = "app-late"
    lost = problem.scenario.apps[7].source
    steps: list[Callable[[Problem], Change]] = [
        lambda p: _battery_drop(p, 0),
        _busiest_link_halved,
        lambda p: Change(added_apps=(extra,)),
        _rate_doubled,
        lambda p: _battery_drop(p, 1),
        lambda p: Change(removed_apps=frozenset({"app-3"})),
        lambda p: Change(lost_devices=frozenset({lost})),
        _busiest_link_removed,
        lambda p: _battery_drop(p, 2),
        _busiest_link_halved,
    ]
    for step, make in enumerate(steps):
        prev = plan.placements
        change = make(problem)
        problem = apply_change(problem, change, prev)
        touched = touched_apps(problem, prev, change)
        assert {str(raw["id"]) for raw in change.added_apps} <= touched
        assert len(problem.scenario.apps) == len({a.id for a in problem.scenario.apps})
        plan = resolve(problem, prev, change)
        assert plan.status == Status.FEASIBLE, (step, plan.doc.reason)
        _same_as_fresh(plan, problem, prev)
        # Evaluated on top of the previous plan, a lost device's renumbered links included.
        assert plan.evaluation is not None and plan.evaluation.changed_devices is not None
        kept = sum(plan.placements.get(a) == p for a, p in prev.items())
        assert kept >= len(prev) - 20, step  # most apps stay where they are


def test_a_change_that_names_nothing_known_is_refused() -> None:
    problem = Problem(parse_scenario(generate(1, devices=12, apps=3, blocks=3)))
    with pytest.raises(ScenarioError, match="no device ghost"):
        apply_change(problem, Change(devices={"ghost": {"gflops": 3}}))
    with pytest.raises(ScenarioError, match="no link"):
        apply_change(problem, Change(links={("ghost", "dev-0"): {"mbps": 3}}))
    with pytest.raises(ScenarioError, match="gflops"):
        apply_change(problem, Change(devices={"dev-0": {"gflops": -1}}))


def test_an_unmoved_app_is_charged_no_migration() -> None:
    raw = generate(2, devices=20, apps=6, blocks=5)
    raw["objective"]["migration"] = 0.1
    problem = Problem(parse_scenario(raw))
    before = _random_placements(problem, 2)
    new = apply_change(problem, _battery_drop(problem, 0), before)
    app = new.scenario.apps[0]
    # The reference counts block by block from the plan document written for the scenario.
    written = new.scenario.model_copy(update={"previous": previous_plan(new, before)})
    fresh = Problem(parse_scenario(written.model_dump(mode="json", exclude_none=True)))
    assert app_migration(new.migration, app, before[app.id]) == 0.0
    assert app_migration(fresh.migration, app, before[app.id]) == 0.0
    other = _random_placements(new, 99)[app.id]
    assert other != before[app.id]
    assert app_migration(new.migration, app, other) == app_migration(fresh.migration, app, other)
    assert app_migration(fresh.migration, app, other) > 0


def _lowest_figures(n: int) -> list[float]:
    """The `n` lowest figures of a real HSDPA trace (Mbit/s), lowest first."""
    trace = read_trace(TRACES / "hsdpa-norway" / "norway_bus_1")
    return sorted({float(m) for m in trace.mbps})[:n]


def test_an_app_that_fits_nowhere_alone_is_named_without_re_placing_every_app() -> None:
    """When the camera uplink of an app drops (a real trace's lowest figures, scaled to a
    hundredth) until no placement of its own meets its limits, the incremental re-solve
    names it (`Reason.alone`) without re-placing every app: the same plan and reason as
    the re-solve of every app that it used to fall back on."""
    problem = Problem(parse_scenario(generate(7, devices=100, apps=30, blocks=6)))
    plan = solve(problem, SolveOptions(), solver="heuristic")
    assert plan.status == Status.FEASIBLE
    alone = 0
    for app in problem.scenario.apps:
        link = next(lk for lk in problem.scenario.links if app.source in (lk.a, lk.b))
        for mbps in _lowest_figures(3):
            change = Change(links={(link.a, link.b): {"mbps": mbps * 0.01}})
            new = apply_change(problem, change, plan.placements)
            touched = touched_apps(new, plan.placements, change)
            got = resolve(new, plan.placements, change, touched=touched)
            if got.status != Status.INFEASIBLE:
                continue
            every = solve(new, SolveOptions(), solver="heuristic")
            assert every.status == Status.INFEASIBLE
            assert got.reason == every.reason
            # The same document but for its timing and the count of apps re-placed.
            timing = {"solve_s", "stats"}
            assert got.doc.model_dump(exclude=timing) == every.doc.model_dump(exclude=timing)
            if got.reason is not None and got.reason.alone:
                assert got.reason.app in touched and got.reason.app == app.id
                alone += 1
    assert alone >= 1  # the case is exercised


def test_a_re_solve_that_falls_back_to_every_app_counts_every_app(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """When the held apps leave the touched ones no room (no single app to blame), every
    app is re-placed, and the plan's `resolved_apps` says so (it counted the touched ones:
    a fleet whose packs drain fell back at about one re-plan in nine, and looked
    incremental)."""
    problem = Problem(parse_scenario(generate(8, devices=30, apps=10, blocks=4)))
    plan = solve(problem, SolveOptions(), solver="heuristic")
    link = problem.scenario.links[0]
    change = Change(links={(link.a, link.b): {"mbps": link.mbps * 0.5}})
    new = apply_change(problem, change, plan.placements)
    real = incremental.solve
    calls: list[int] = []

    def no_room_when_held(p: Problem, options: SolveOptions, solver: str) -> Plan:
        calls.append(len(options.fixed))
        if options.fixed:
            why = Reason(Code.COMPUTE, "the fixed apps alone exceed a shared capacity")
            return infeasible_plan(p.cost, solver, why)
        return real(p, options, solver=solver)

    monkeypatch.setattr(incremental, "solve", no_room_when_held)
    got = resolve(new, plan.placements, change)
    assert calls[0] > 0 and calls[1:] == [0]
    assert got.status != Status.INFEASIBLE
    assert got.doc.stats is not None and got.doc.stats["resolved_apps"] == 10


@pytest.mark.parametrize(("clear", "expected"), [(True, [True]), (False, [True, False])])
def test_a_re_solve_blocked_only_by_what_no_held_app_uses_re_places_no_more(
    monkeypatch: pytest.MonkeyPatch, clear: bool, expected: list[bool]
) -> None:
    """When the app an incremental re-solve blames overflowed only what no held app uses
    (`Reason.held_clear`), re-placing the held apps frees none of it: no re-solve of
    every app follows, and its reason is the plan's. Without that judgment (the held
    apps use what it overflowed), every app is re-placed, as before."""
    problem = Problem(parse_scenario(generate(8, devices=30, apps=10, blocks=4)))
    plan = solve(problem, SolveOptions(), solver="heuristic")
    link = problem.scenario.links[0]
    change = Change(links={(link.a, link.b): {"mbps": link.mbps * 0.5}})
    new = apply_change(problem, change, plan.placements)
    blamed = problem.scenario.apps[0].id
    real = incremental.solve
    calls: list[bool] = []  # whether each solve held apps

    def stuck_when_held(p: Problem, options: SolveOptions, solver: str) -> Plan:
        calls.append(bool(options.fixed))
        if options.fixed:
            what = f"app {blamed}: no placement found within shared capacity (battery)"
            why = Reason(Code.BATTERY, what, blamed, held_clear=clear)
            return infeasible_plan(p.cost, solver, why)
        return real(p, options, solver=solver)

    monkeypatch.setattr(incremental, "solve", stuck_when_held)
    got = resolve(new, plan.placements, change, touched={blamed})
    assert calls == expected
    if clear:
        assert got.status == Status.INFEASIBLE and got.reason is not None
        assert got.reason.app == blamed and got.reason.held_clear


def test_an_app_held_out_of_its_slo_is_re_placed_whatever_the_change() -> None:
    """An app whose placement in force breaks its SLO already (one served degraded) is
    re-placed at the next re-solve even when the change (a battery elsewhere) does not
    touch it: held, it would make every plan that keeps it infeasible."""
    raw = generate(3, devices=30, apps=8, blocks=4)
    problem = Problem(parse_scenario(raw))
    plan = solve(problem, SolveOptions(), solver="heuristic")
    assert plan.status == Status.FEASIBLE
    raw["apps"][2]["slo_ms"] = 1e-6
    strict = Problem(parse_scenario(raw))
    held = strict.scenario.apps[2]
    change = _battery_drop(strict, 0)
    battery_of = next(iter(change.devices))
    assert battery_of not in plan.placements[held.id].hosts() | {held.source, held.sink_id}
    new = apply_change(strict, change, plan.placements)
    assert held.id not in new.derived["affected"]
    assert held.id in touched_apps(new, plan.placements, change)
    got = resolve(new, plan.placements, change)
    assert got.status == Status.INFEASIBLE and got.reason is not None
    assert got.reason.app == held.id and got.reason.alone


def test_a_held_app_is_judged_once_per_problem_and_placement(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`touched_apps` and then `held_broken` of the apps it touched judge each held app
    once on a problem (the verdict is kept on it), with the verdicts a fresh judge gives;
    another placement of the app is judged again."""
    raw = generate(3, devices=30, apps=8, blocks=4)
    plan = solve(Problem(parse_scenario(raw)), SolveOptions(), solver="heuristic")
    raw["apps"][2]["slo_ms"] = 1e-6
    strict = Problem(parse_scenario(raw))
    change = _battery_drop(strict, 0)
    new = apply_change(strict, change, plan.placements)
    judged: list[str] = []
    real = held.judged

    def counting(problem: Problem, app: Any, p: Placement) -> bool:
        judged.append(app.id)
        return real(problem, app, p)

    monkeypatch.setattr(held, "judged", counting)
    touched = touched_apps(new, plan.placements, change)
    broken = held.held_broken(new, plan.placements, touched)
    assert broken == [strict.scenario.apps[2].id]
    assert sorted(judged) == sorted(set(judged)) and judged
    fresh = Problem(new.scenario, new.cost, plan.placements)
    assert broken == [
        a
        for a in touched
        if a in plan.placements and real(fresh, new.cost.apps[a], plan.placements[a])
    ]
    app = strict.scenario.apps[2]
    elsewhere = Placement(app.id, model=plan.placements[app.id].model, blocks=(app.source,) * 4)
    before = len(judged)
    held.breaks_own_limits(new, new.cost.apps[app.id], elsewhere)
    assert len(judged) == before + 1


def test_the_apps_touched_are_the_same_on_a_derived_and_a_parsed_problem() -> None:
    """Whether a worker derived the changed problem from the last one or parsed it afresh,
    a change that moves no route touches the same apps: a decision does not depend on
    what a worker happened to keep. Links at a real trace's figures, a battery, a changed
    deployment (its rate doubled), and all at once."""
    problem = Problem(parse_scenario(generate(5, devices=120, apps=60, blocks=8)))
    plan = solve(problem, SolveOptions(), solver="heuristic")
    assert plan.status == Status.FEASIBLE
    figures = _lowest_figures(40)[::10]
    used = sorted({k for _, c in problem.app_costs.values() for k in c.link_mb})
    links = [problem.scenario.links[k] for k in used[:: max(len(used) // 3, 1)][:3]]
    traced = Change(
        links={(lk.a, lk.b): {"mbps": f} for lk, f in zip(links, figures, strict=False)}
    )
    both = Change(
        devices=_battery_drop(problem, 1).devices,
        links=_busiest_link_halved(problem).links,
        added_apps=_rate_doubled(problem).added_apps,
    )
    for change in (traced, _battery_drop(problem, 0), _rate_doubled(problem), both):
        derived = apply_change(problem, change, plan.placements)
        raw = derived.scenario.model_dump(mode="json", exclude_none=True)
        parsed = Problem(parse_scenario(raw))
        mine = touched_apps(derived, plan.placements, change)
        assert mine == touched_apps(parsed, plan.placements, change), change
        assert 0 < len(mine) < len(problem.scenario.apps)


def test_an_app_at_an_end_of_a_changed_link_is_re_placed_even_off_the_link() -> None:
    """A link's figure moves (a real trace's): every app hosted, sourced or sunk at one
    of its ends is re-placed, those whose placement does not cross the link too; a low
    figure pushes an app off the link, and the recovered figure must be able to draw it
    back."""
    problem = Problem(parse_scenario(generate(5, devices=120, apps=60, blocks=8)))
    plan = solve(problem, SolveOptions(), solver="heuristic")
    assert plan.status == Status.FEASIBLE
    off = 0
    for link in problem.scenario.links[:40]:
        change = Change(links={(link.a, link.b): {"mbps": _lowest_figures(1)[0]}})
        new = apply_change(problem, change, plan.placements)
        touched = touched_apps(new, plan.placements, change)
        index = new.scenario.links.index(
            next(lk for lk in new.scenario.links if lk.a == link.a and lk.b == link.b)
        )
        for app_id, p in plan.placements.items():
            app = new.cost.apps[app_id]
            if {link.a, link.b} & (p.hosts() | {app.source, app.sink_id}):
                assert app_id in touched, (link, app_id)
                off += index not in app_cost(new.cost, app, p).link_mb
    assert off >= 1  # some were off the link: re-placed all the same


def _judged_afresh(problem: Problem) -> Problem:
    """The same problem with no evaluation of the plan in force: every held app is
    judged afresh by `touched_apps`, none read from an evaluation's records."""
    problem.derived.pop("base_evaluation", None)
    problem.derived.pop("evaluation", None)
    return problem


def test_held_verdicts_read_from_the_evaluation_in_force_equal_fresh_ones() -> None:
    """A held app's verdict is read from the evaluation of the plan in force when its
    cost was carried: along a chain of changes (real trace figures on used links, down
    then back up, a battery, a changed deployment, the re-solved plan in force after each)
    the apps touched are those found with every held app judged afresh."""
    problem = Problem(parse_scenario(generate(5, devices=120, apps=60, blocks=8)))
    plan = solve(problem, SolveOptions(), solver="heuristic")
    assert plan.status == Status.FEASIBLE
    used = sorted({k for _, c in problem.app_costs.values() for k in c.link_mb})
    links = [problem.scenario.links[k] for k in used[:: max(len(used) // 4, 1)][:4]]
    low = _lowest_figures(4)
    chain = [Change(links={(lk.a, lk.b): {"mbps": f}}) for lk, f in zip(links, low, strict=True)]
    chain += [_battery_drop(problem, 2), _rate_doubled(problem)]
    chain += [Change(links={(lk.a, lk.b): {"mbps": lk.mbps}}) for lk in links]
    placements, with_records = plan.placements, 0
    for change in chain:
        derived = apply_change(problem, change, placements)
        with_records += "base_evaluation" in derived.derived
        mine = touched_apps(derived, placements, change)
        again = apply_change(problem, change, placements)
        assert mine == touched_apps(_judged_afresh(again), placements, change), change
        got = resolve(derived, placements, change)
        if got.status != Status.INFEASIBLE:
            placements = got.placements
        problem = derived
    assert with_records >= 2, with_records


def test_held_verdicts_survive_a_lost_device_renumbering_its_links() -> None:
    """A lost device renumbers the links of every carried cost (new cost objects); the
    restated evaluation's records hold the same new objects, so the verdicts are still
    read from them. The apps touched are those found with every held app judged afresh,
    the one held out of its SLO (as one served degraded) included."""
    raw = generate(3, devices=120, apps=60, blocks=8)
    plan = solve(Problem(parse_scenario(raw)), SolveOptions(), solver="heuristic")
    assert plan.status == Status.FEASIBLE
    raw["apps"][2]["slo_ms"] = 1e-6
    strict = Problem(parse_scenario(raw))
    strict.derived["evaluation"] = evaluate(strict.cost, plan.placements, cache=strict.app_costs)
    held = strict.scenario.apps[2].id
    hosts = {d for a, p in plan.placements.items() if a != held for d in p.hosts()}
    gone = next(d.id for d in strict.scenario.devices if d.tier == "cloud" and d.id in hosts)
    lost = Change(lost_devices=frozenset({gone}))
    derived = apply_change(strict, lost, plan.placements)
    records = derived.derived["base_evaluation"].records
    old = strict.app_costs
    renumbered = [
        a
        for a, (_, c) in derived.app_costs.items()
        if c is not old[a][1] and a in records and records[a].cost is c
    ]
    assert renumbered  # carried onto new cost objects, and the records hold them
    mine = touched_apps(derived, plan.placements, lost)
    again = apply_change(strict, lost, plan.placements)
    assert mine == touched_apps(_judged_afresh(again), plan.placements, lost)
    assert held in mine and len(mine) < len(strict.scenario.apps)


def test_an_app_at_an_end_of_a_link_whose_rtt_changed_is_re_placed_off_the_link() -> None:
    """A link's rtt moves (a change that may re-route): the apps at its ends are
    re-placed even when their placement does not cross it, as for a bandwidth move. The
    control plane's e2e test of a degraded link that recovers caught it: the camera's app,
    moved off the link, was held off it when the recovered link's rtt came back."""
    problem = Problem(parse_scenario(generate(5, devices=120, apps=60, blocks=8)))
    plan = solve(problem, SolveOptions(), solver="heuristic")
    assert plan.status == Status.FEASIBLE
    found = 0
    for link in problem.scenario.links:
        change = Change(links={(link.a, link.b): {"rtt_ms": link.rtt_ms / 2}})
        assert change.reroutes()
        new = apply_change(problem, change, plan.placements)
        k = next(j for j, lk in enumerate(problem.scenario.links) if lk is link)
        off = [
            a
            for a, p in plan.placements.items()
            if {link.a, link.b} & (p.hosts() | {new.cost.apps[a].source, new.cost.apps[a].sink_id})
            and k not in problem.app_costs[a][1].link_mb
        ]
        if not off:
            continue
        found += 1
        assert set(off) <= touched_apps(new, plan.placements, change), link
        if found == 5:
            break
    assert found == 5


def test_a_battery_level_alone_leaves_the_costs_of_its_apps_carried_over() -> None:
    problem = Problem(parse_scenario(generate(3, devices=24, apps=12, blocks=6)))
    plan = solve(problem, SolveOptions(time_limit_s=5.0), solver="heuristic")
    drop = _battery_drop(problem, 0)
    (dev,) = drop.devices
    # The apps whose cost reads the device: they send from it, or it computes for them.
    users = {
        a for a, (_, c) in problem.app_costs.items()
        if dev in c.joules or dev in c.compute_s or problem.cost.apps[a].source == dev
    }  # fmt: skip
    assert users
    new = apply_change(problem, drop, plan.placements)
    assert {a for a in users if new.app_costs[a][1] is problem.app_costs[a][1]} == users
    assert users <= new.derived["affected"]  # a re-solve re-places them all the same
    fresh = Problem(parse_scenario(new.scenario.model_dump(mode="json", exclude_none=True)))
    for a in users:
        p, c = new.app_costs[a]
        assert app_cost(fresh.cost, fresh.cost.apps[a], p) == c
    faster = Change(devices={dev: {"gflops": problem.cost.devices[dev].gflops * 2}})
    repriced = apply_change(problem, faster, plan.placements)
    assert not any(a in repriced.app_costs for a in users)


def test_a_device_whose_tier_changed_breaks_its_apps_tiers_as_a_fresh_evaluation_finds() -> None:
    raw = generate(5, devices=24, apps=12, blocks=6)
    plan = solve(Problem(parse_scenario(raw)), SolveOptions(time_limit_s=5.0), solver="heuristic")
    tiers = {d["id"]: d["tier"] for d in raw["devices"]}
    for app in raw["apps"]:  # each app allowed the tiers it runs on now, and no other
        app["allowed_tiers"] = sorted({tiers[d] for d in plan.placements[app["id"]].hosts()})
    host, banned = next(
        (d, t) for d in tiers for t in ("device", "edge", "cloud")
        if (users := {a["id"] for a in raw["apps"] if d in plan.placements[a["id"]].hosts()})
        and all(t not in a["allowed_tiers"] for a in raw["apps"] if a["id"] in users)
    )  # fmt: skip
    problem = Problem(parse_scenario(raw))
    problem.derived["evaluation"] = evaluate(problem.cost, plan.placements, cache=problem.app_costs)
    assert not problem.derived["evaluation"].found
    new = apply_change(problem, Change(devices={host: {"tier": banned}}), plan.placements)
    ev = evaluate(
        new.cost, plan.placements, cache=new.app_costs, base=new.derived["base_evaluation"]
    )
    assert ev.changed_devices is not None  # incremental
    fresh = evaluate(
        Problem(parse_scenario(new.scenario.model_dump(mode="json"))).cost, plan.placements
    )
    assert sorted(r.message for r in ev.found) == sorted(r.message for r in fresh.found)
    users = {a for a, p in plan.placements.items() if host in p.hosts()}
    assert {r.app for r in ev.found if r.code == Code.TIER} == users


def test_a_refigured_problem_costs_and_checks_as_the_changed_one() -> None:
    """`refigured` (the links' figures alone, none of the carried tables) gives every
    placement the cost and the checks `apply_change` gives it, counts migration against
    the same plan, and reuses the link records of earlier calls by ends and figure."""
    problem = Problem(parse_scenario(generate(5, devices=60, apps=20, blocks=4)))
    plan = solve(problem, SolveOptions(), solver="heuristic")
    assert plan.status == Status.FEASIBLE
    used = sorted({k for _, c in problem.app_costs.values() for k in c.link_mb})
    figures = {}
    for k in used[::3][:4]:
        lk = problem.scenario.links[k]
        figures[(lk.a, lk.b)] = lk.mbps / 4
    changed = apply_change(
        problem, Change(links={k: {"mbps": v} for k, v in figures.items()}), plan.placements
    )
    made: dict[Any, Any] = {}
    light = incremental.refigured(problem, figures, plan.placements, made)
    assert light.scenario == changed.scenario
    for app in light.scenario.apps:
        p = plan.placements[app.id]
        mine, theirs = app_cost(light.cost, app, p), app_cost(changed.cost, app, p)
        assert mine == theirs
        assert app_violations(light.cost, app, p, mine) == app_violations(
            changed.cost, app, p, theirs
        )
        assert app_migration(light.migration, app, p) == app_migration(changed.migration, app, p)
    assert any(
        app_cost(light.cost, a, plan.placements[a.id])
        != app_cost(problem.cost, a, plan.placements[a.id])
        for a in light.scenario.apps
    )  # the figures moved some app's cost
    again = incremental.refigured(problem, figures, plan.placements, made)
    assert all(x is y for x, y in zip(again.scenario.links, light.scenario.links, strict=True))

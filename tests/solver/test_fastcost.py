"""The array cost model (solver.fastcost, solver.candidates) agrees with solver.costs."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

from solver.candidates import chain_arrays, path_figures
from solver.evaluate import app_cost
from solver.fastcost import Fleet, Scorer, candidate_routes
from solver.generate import generate
from solver.incremental import Change, apply_change, resolve
from solver.migration import app_migration
from solver.plan import Placement
from solver.problem import Problem
from solver.registry import solve
from solver.scenario import parse_scenario

REL = 1e-9


def _random_placements(problem: Problem, seed: int) -> dict[str, Placement]:
    rng = np.random.default_rng(seed)
    cm = problem.cost
    out = {}
    for app in problem.scenario.apps:
        hosts = problem.hosts(app)
        if app.cascade is not None:
            stages = tuple(str(rng.choice(hosts)) for _ in app.cascade)
            out[app.id] = Placement(app=app.id, stages=stages)
            continue
        model = str(rng.choice(problem.model_options(app) or [app.variants[0]]))  # type: ignore[index]
        n = cm.shapes[model].n
        cuts = sorted(rng.choice(np.arange(1, n), size=2, replace=False))
        devs = [str(rng.choice(hosts)) for _ in range(3)]
        blocks = tuple(
            devs[0] if i < cuts[0] else devs[1] if i < cuts[1] else devs[2] for i in range(n)
        )
        out[app.id] = Placement(app=app.id, model=model, blocks=blocks)
    return out


def _problem(seed: int, migration: bool) -> Problem:
    raw = generate(seed, devices=24, apps=12, blocks=6, overheads=seed % 2 == 1)
    raw["objective"]["migration"] = 0.05 if migration else 0.0
    if migration:
        first = Problem(parse_scenario(raw))
        prev = _random_placements(first, seed + 100)
        apps = []
        for app_id, p in prev.items():
            if p.stages is not None:
                app = first.cost.apps[app_id]
                assert app.cascade is not None
                stages = [
                    {"model": s.model, "device": d}
                    for s, d in zip(app.cascade, p.stages, strict=True)
                ]
                apps.append({"id": app_id, "stages": stages})
            else:
                assert p.model is not None and p.blocks is not None
                names = [layer.name for layer in first.cost.models[p.model].layers]
                segs = [
                    {"first": n, "last": n, "device": d}
                    for n, d in zip(names, p.blocks, strict=True)
                ]
                apps.append({"id": app_id, "model": p.model, "segments": segs})
        raw["previous"] = {"apps": apps}
    return Problem(parse_scenario(raw))


def _resource_use(problem: Problem, fleet: Fleet, app_id: str, p: Placement) -> dict[int, float]:
    cm = problem.cost
    app = cm.apps[app_id]
    c = app_cost(cm, app, p)
    use: dict[int, float] = {}
    for d, s in c.compute_s.items():
        use[fleet.index[d]] = use.get(fleet.index[d], 0.0) + app.rate_rps * s
    for d, mb in c.memory_mb.items():
        use[fleet.n + fleet.index[d]] = mb
    for d, j in c.joules.items():
        if cm.battery_limit_w(d) is not None:
            use[2 * fleet.n + fleet.index[d]] = app.rate_rps * j
    for k, mb in c.link_mb.items():
        use[3 * fleet.n + k] = app.rate_rps * mb * 8.0 / problem.scenario.links[k].mbps
    return use


@pytest.mark.parametrize(("seed", "migration"), [(0, False), (1, True), (2, True)])
def test_scorer_matches_the_cost_model(seed: int, migration: bool) -> None:
    problem = _problem(seed, migration)
    fleet = Fleet(problem)
    scorer = Scorer(fleet, problem.migration)
    cm = problem.cost
    for app_id, p in _random_placements(problem, seed).items():
        app = cm.apps[app_id]
        c = app_cost(cm, app, p)
        expected = cm.weighted(app, c) + cm.weights.migration * app_migration(
            problem.migration, app, p
        )
        sc = scorer.score(app, p)
        assert sc.routable == (not c.unroutable)
        if c.unroutable:
            continue
        assert sc.objective == pytest.approx(expected, rel=REL, abs=1e-12)
        assert sc.worst_ms == pytest.approx(c.worst_ms, rel=REL)
        got = dict(zip(sc.resources.tolist(), sc.amounts.tolist(), strict=True))
        want = _resource_use(problem, fleet, app_id, p)
        assert set(got) == {k for k in want if want[k] or k in got}
        for k, v in want.items():
            assert got.get(k, 0.0) == pytest.approx(v, rel=REL, abs=1e-15)


def test_scorers_of_two_fleets_in_turn_read_their_own_models() -> None:
    """A Scorer reads each model's exit blocks and GFLOPs from the model's shape, made once
    per model and shared by a problem derived from another: fleets of other models, in
    turn, read their own."""
    a, b = _problem(0, False), _problem(5, True)
    assert a.cost.models.keys() & b.cost.models.keys()  # the same ids, other figures
    for problem in (a, b, a):
        scorer = Scorer(Fleet(problem), problem.migration)
        for m in problem.cost.models.values():
            shape = scorer.shapes[m.id]
            after = {ex.after for ex in m.exits}
            assert shape.gflops == sum(x.gflops for x in m.layers)
            assert shape.exits == {i for i, x in enumerate(m.layers) if x.name in after}
    lk = a.scenario.links[0]
    derived = apply_change(a, Change(links={(lk.a, lk.b): {"mbps": lk.mbps * 2}}))
    assert derived.cost.shapes is a.cost.shapes


@pytest.mark.parametrize("seed", [3, 4])
def test_chain_arrays_price_paths_like_the_cost_model(seed: int) -> None:
    problem = _problem(seed, migration=True)
    fleet = Fleet(problem)
    cm = problem.cost
    for app_id, p in _random_placements(problem, seed).items():
        app = cm.apps[app_id]
        if p.blocks is None or p.model is None:
            continue
        c = app_cost(cm, app, p)
        if c.unroutable:
            continue
        hosts = sorted({fleet.index[d] for d in problem.hosts(app)})
        routes = candidate_routes(fleet, app, hosts)
        ch = chain_arrays(problem, fleet, [app], p.model, [routes])
        path = np.array([[hosts.index(fleet.index[d]) for d in p.blocks]])
        cost, worst = path_figures(ch, np.array([0]), path)
        expected = cm.weighted(app, c) + cm.weights.migration * app_migration(
            problem.migration, app, p
        )
        assert float(cost[0]) == pytest.approx(expected, rel=REL)
        assert float(worst[0]) == pytest.approx(c.worst_ms, rel=REL)


def test_an_updated_fleet_equals_a_fresh_one() -> None:
    scn = parse_scenario(generate(4, devices=20, apps=4, blocks=4))
    fleet = Fleet(Problem(scn))
    devices = list(scn.devices)
    battery = next(k for k, d in enumerate(devices) if d.battery is not None)
    mains = next(k for k, d in enumerate(devices) if d.battery is None and d.tier == "edge")
    bat = devices[battery].battery
    assert bat is not None
    devices[battery] = devices[battery].model_copy(
        update={"battery": bat.model_copy(update={"level_pct": bat.min_pct + 1}), "gflops": 7.5}
    )
    devices[mains] = devices[mains].model_copy(update={"memory_mb": 123.0, "tier": "cloud"})
    new_scn = scn.model_copy(update={"devices": tuple(devices)})
    problem = Problem(new_scn)
    updated = fleet.updated(problem, [devices[battery].id, devices[mains].id])
    fresh = Fleet(problem)
    for name in ("gflops", "dpow", "grid", "emb", "cc", "wk", "send", "memory", "has_battery"):
        assert np.array_equal(getattr(updated, name), getattr(fresh, name)), name
    assert np.array_equal(updated.capacity, fresh.capacity)
    assert updated.tiers == fresh.tiers
    assert updated.hosts_of(("cloud",)) == fresh.hosts_of(("cloud",))
    assert not np.array_equal(fleet.capacity, fresh.capacity)  # the change was seen


def test_a_fleet_without_some_devices_equals_a_fresh_one() -> None:
    scn = parse_scenario(generate(4, devices=20, apps=4, blocks=4))
    fleet = Fleet(Problem(scn))
    lost = {scn.devices[3].id, scn.devices[11].id}
    devices = tuple(d for d in scn.devices if d.id not in lost)
    links = tuple(lk for lk in scn.links if lk.a not in lost and lk.b not in lost)
    problem = Problem(scn.model_copy(update={"devices": devices, "links": links, "apps": ()}))
    smaller, fresh = fleet.without(problem, lost), Fleet(problem)
    for name in ("gflops", "dpow", "grid", "emb", "cc", "wk", "send", "memory", "has_battery"):
        assert np.array_equal(getattr(smaller, name), getattr(fresh, name)), name
    assert np.array_equal(smaller.capacity, fresh.capacity)
    assert (smaller.ids, smaller.index, smaller.tiers) == (fresh.ids, fresh.index, fresh.tiers)
    assert list(smaller.names) == list(fresh.names) and smaller.n == fresh.n == 18


def test_a_solved_problem_and_its_derived_one_are_freed_without_the_cyclic_collector() -> None:
    """The fleet the heuristic keeps on a problem holds it weakly: with a strong
    reference back, every problem was a cycle, left to a collector that the solvers pause
    and whose oldest generation they fill (`solver.gcpause`), and the simulator's
    `continuum` grew by a megabyte a step until it ran out of memory."""
    scn = generate(5, devices=30, apps=10, blocks=5)
    gc.collect()
    gc.disable()
    try:
        problem = Problem(parse_scenario(scn))
        plan = solve(problem, solver="heuristic")
        link = problem.scenario.links[0]
        change = Change(links={(link.a, link.b): {"mbps": link.mbps / 2}})
        derived = apply_change(problem, change, plan.placements)
        resolve(derived, plan.placements, change)
        assert "fleet" in problem.derived and "fleet" in derived.derived
        assert derived.derived["fleet"].problem is derived
        refs = [weakref.ref(problem), weakref.ref(derived)]
        del problem, derived, plan
        assert [r() for r in refs] == [None, None]
    finally:
        gc.enable()

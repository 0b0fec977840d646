"""The heuristic: near the exact optimum, never a broken plan, fixed apps, determinism,
infeasibility with a reason, and incremental re-solves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from solver import Code, Problem, SolveOptions, Status, evaluate, solve
from solver.generate import generate
from solver.incremental import Change, apply_change, resolve, touched_apps
from solver.plan import Placement
from solver.scenario import load_scenario, parse_scenario

SCENARIOS = Path(__file__).resolve().parents[3] / "shared" / "scenarios"


def _problem(seed: int, **kw: object) -> Problem:
    return Problem(parse_scenario(generate(seed, **kw)))  # type: ignore[arg-type]


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_medium_fleets_within_five_percent_of_ilp(seed: int) -> None:
    problem = _problem(seed)  # 30 devices in three tiers, 20 apps, 8-block models
    exact = solve(problem, SolveOptions(time_limit_s=20), solver="ilp")
    plan = solve(_problem(seed), SolveOptions(), solver="heuristic")
    assert exact.status != Status.INFEASIBLE and exact.objective is not None
    assert plan.status == Status.FEASIBLE and plan.objective is not None
    assert plan.objective <= 1.05 * exact.objective
    assert evaluate(problem.cost, plan.placements).violations == []
    # The sum of per-app Lagrangian bounds never exceeds the optimum.
    assert plan.doc.bound is not None
    assert plan.doc.bound <= exact.objective * (1 + 1e-9)


def _shared_names() -> list[str]:
    return sorted(p.name.removesuffix(".yaml") for p in SCENARIOS.glob("*.yaml"))


@pytest.mark.parametrize("name", _shared_names() or ["<no shared scenarios>"])
def test_shared_scenarios_against_their_optimum(name: str) -> None:
    if not SCENARIOS.is_dir():
        pytest.fail(f"shared scenarios not found at {SCENARIOS}")
    expected = json.loads((SCENARIOS / f"{name}.expected.json").read_text())
    problem = Problem(load_scenario(SCENARIOS / f"{name}.yaml"))
    plan = solve(problem, SolveOptions(), solver="heuristic")
    if expected["objective"] is None:
        assert plan.status == Status.INFEASIBLE and plan.doc.reason
        return
    # An optimum exists: the heuristic must find a plan, and never one that breaks a rule.
    assert plan.status == Status.FEASIBLE, plan.doc.reason
    assert plan.objective is not None
    assert plan.objective <= 1.05 * expected["objective"] + 1e-9
    assert evaluate(problem.cost, plan.placements).violations == []


@pytest.mark.parametrize("seed", range(4))
def test_plans_never_break_a_constraint_when_capacity_binds(seed: int) -> None:
    problem = _problem(seed, devices=40, apps=40, blocks=6, contended=True)
    plan = solve(problem, SolveOptions(), solver="heuristic")
    if plan.status == Status.FEASIBLE:
        assert evaluate(problem.cost, plan.placements).violations == []
        return
    assert plan.placements == {} and plan.doc.reason
    # No plan, says the heuristic: the exact model finds none either in 10 s.
    exact = solve(_problem(seed, devices=40, apps=40, blocks=6, contended=True),
                  SolveOptions(time_limit_s=10), "ilp")  # fmt: skip
    assert exact.status == Status.INFEASIBLE, (plan.doc.reason, exact.doc.objective)


@pytest.mark.parametrize("seed", range(4))
def test_contended_fleets_get_a_plan_wherever_one_exists(seed: int) -> None:
    # Contended, and small enough for the exact model to decide either way.
    shape: dict[str, object] = {"devices": 24, "apps": 16, "blocks": 6, "contended": True}
    exact = solve(_problem(seed, **shape), SolveOptions(time_limit_s=30), "ilp")
    assert exact.doc.reason_code != Code.TIME_LIMIT, exact.doc.reason
    problem = _problem(seed, **shape)
    plan = solve(problem, SolveOptions(), "heuristic")
    if exact.status == Status.INFEASIBLE:
        assert plan.status == Status.INFEASIBLE and plan.doc.reason
        return
    assert plan.status == Status.FEASIBLE, plan.doc.reason
    assert evaluate(problem.cost, plan.placements).violations == []
    assert exact.objective is not None and plan.objective is not None
    assert exact.objective * (1 - 1e-9) <= plan.objective <= 1.05 * exact.objective


def test_fixed_apps_keep_their_placement() -> None:
    problem = _problem(5)
    first = solve(problem, SolveOptions(), solver="heuristic")
    assert first.status == Status.FEASIBLE
    fixed = {}
    for app in problem.scenario.apps[:3]:
        p = first.placements[app.id]
        fixed[app.id] = p
    plan = solve(_problem(5), SolveOptions(fixed=fixed), solver="heuristic")
    assert plan.status == Status.FEASIBLE
    for app_id, p in fixed.items():
        assert plan.placements[app_id] == p
    assert evaluate(problem.cost, plan.placements).violations == []


def test_fixed_apps_that_cost_more_still_count() -> None:
    problem = _problem(6, devices=20, apps=10, blocks=6)
    app = next(a for a in problem.scenario.apps if a.model is not None and a.slo_ms is None)
    n = problem.cost.shapes[app.model or ""].n
    held = problem.model_options(app)[0]
    fixed = {app.id: Placement(app=app.id, model=held, blocks=(app.source,) * n)}
    plan = solve(problem, SolveOptions(fixed=fixed), solver="heuristic")
    exact = solve(problem, SolveOptions(fixed=fixed), solver="ilp")
    assert exact.status == Status.OPTIMAL, exact.doc.reason  # a plan exists with it held
    assert plan.status == Status.FEASIBLE, plan.doc.reason
    assert plan.placements[app.id] == fixed[app.id]
    assert plan.doc.bound is None or plan.doc.bound <= (plan.objective or 0.0) + 1e-9
    assert exact.objective is not None and plan.objective is not None
    assert plan.objective >= exact.objective * (1 - 1e-9)


def test_same_input_same_plan() -> None:
    a = solve(_problem(7), SolveOptions(seed=3), solver="heuristic")
    b = solve(_problem(7), SolveOptions(seed=3), solver="heuristic")
    assert a.status == b.status == Status.FEASIBLE
    assert a.placements == b.placements
    assert a.objective == b.objective


def test_an_impossible_slo_is_infeasible_with_a_reason() -> None:
    raw = generate(8, devices=12, apps=6, blocks=4)
    raw["apps"][2]["slo_ms"] = 0.5
    problem = Problem(parse_scenario(raw))
    plan = solve(problem, SolveOptions(), solver="heuristic")
    assert plan.status == Status.INFEASIBLE
    assert plan.placements == {} and plan.doc.apps == []
    assert plan.doc.reason is not None and raw["apps"][2]["id"] in plan.doc.reason
    assert "slo" in plan.doc.reason


def test_no_room_anywhere_is_infeasible_with_a_reason() -> None:
    raw = generate(9, devices=12, apps=6, blocks=4)
    for d in raw["devices"]:
        d["gflops"] = 0.01  # nothing can run at any rate
    plan = solve(Problem(parse_scenario(raw)), SolveOptions(), solver="heuristic")
    assert plan.status == Status.INFEASIBLE and plan.doc.reason
    assert "app-" in plan.doc.reason


def test_incremental_resolve_changes_only_touched_apps() -> None:
    problem = _problem(10, devices=60, apps=40, blocks=6)
    first = solve(problem, SolveOptions(), solver="heuristic")
    assert first.status == Status.FEASIBLE
    prev = first.placements
    # Halve the usable battery of the busiest battery-powered source.
    src = next(
        a.source
        for a in problem.scenario.apps
        if problem.cost.devices[a.source].battery is not None
    )
    bat = problem.cost.devices[src].battery
    assert bat is not None
    level = bat.min_pct + (bat.level_pct - bat.min_pct) / 2
    change = Change(devices={src: {"battery": {**bat.model_dump(), "level_pct": level}}})
    new = apply_change(problem, change, prev)
    touched = touched_apps(new, prev, change)
    users = {a.id for a in new.scenario.apps if a.source == src or src in prev[a.id].hosts()}
    assert users and users <= touched
    plan = resolve(new, prev, change)
    assert plan.status == Status.FEASIBLE
    for app_id, p in prev.items():
        if app_id not in touched:
            assert plan.placements[app_id] == p
    assert evaluate(new.cost, plan.placements).violations == []


def test_incremental_link_change_and_new_app() -> None:
    problem = _problem(11, devices=60, apps=30, blocks=6)
    first = solve(problem, SolveOptions(), solver="heuristic")
    assert first.status == Status.FEASIBLE
    prev = first.placements
    app = problem.scenario.apps[0]
    link = next(lk for lk in problem.scenario.links if app.source in (lk.a, lk.b))
    extra = generate(11, devices=60, apps=31, blocks=6)["apps"][30]
    extra["id"] = "app-new"
    change = Change(links={(link.a, link.b): {"mbps": link.mbps / 2}}, added_apps=(extra,))
    new = apply_change(problem, change, prev)
    touched = touched_apps(new, prev, change)
    assert "app-new" in touched
    k_old = problem.scenario.links.index(link)
    crossing = {a for a, (_, c) in problem.app_costs.items() if k_old in c.link_mb}
    assert crossing <= touched
    plan = resolve(new, prev, change)
    assert plan.status == Status.FEASIBLE and "app-new" in plan.placements
    for app_id, p in prev.items():
        if app_id not in touched:
            assert plan.placements[app_id] == p
    assert evaluate(new.cost, plan.placements).violations == []


def test_no_host_of_an_allowed_tier_is_infeasible_with_a_reason() -> None:
    raw = generate(3, devices=12, apps=4, blocks=4)
    raw["apps"][0]["allowed_tiers"] = ["edge"]
    for d in raw["devices"]:
        if d["tier"] == "edge":
            d["tier"] = "cloud"
    plan = solve(Problem(parse_scenario(raw)), SolveOptions(), solver="heuristic")
    assert plan.status == Status.INFEASIBLE
    assert plan.doc.reason is not None and "app-0" in plan.doc.reason


def test_an_app_kept_off_the_clouds_finds_a_cheaper_edge_behind_them() -> None:
    """On a large fleet (candidates are a neighbourhood) an app allowed only devices and
    edges may run on an edge behind its region's cloud: here one that costs a tenth per
    GFLOP of any other. The plan runs the app there."""
    raw = generate(2, devices=300, apps=60, blocks=6)
    neighbours: dict[str, set[str]] = {}
    for lk in raw["links"]:
        neighbours.setdefault(lk["a"], set()).add(lk["b"])
        neighbours.setdefault(lk["b"], set()).add(lk["a"])
    source = "dev-0"
    home = next(x for x in sorted(neighbours[source]) if x.startswith("edge-"))
    cloud = next(x for x in sorted(neighbours[home]) if x.startswith("cloud-"))
    behind = next(
        x
        for x in sorted(neighbours[cloud])
        if x.startswith("edge-") and x != home and x not in neighbours[source]
    )
    for d in raw["devices"]:
        if d["id"] == behind:
            d["gflops"] = 400.0
            d["power_w"] = {"idle": d["power_w"]["idle"], "busy": d["power_w"]["idle"] + 1.0}
    raw["apps"].append(
        {
            "id": "kept-off-clouds",
            "model": "fam0",
            "source": source,
            "rate_rps": 0.5,
            "allowed_tiers": ["device", "edge"],
        }
    )
    problem = Problem(parse_scenario(raw))
    plan = solve(problem, SolveOptions(time_limit_s=60), solver="heuristic")
    assert plan.status == Status.FEASIBLE
    assert behind in plan.placements["kept-off-clouds"].blocks

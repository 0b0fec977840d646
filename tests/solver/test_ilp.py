"""The exact solver reaches every proven optimum, and says why when there is none."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from solver import Problem, SolveOptions, Status, load_scenario, solve
from solver.generate import generate
from solver.ilp_model import Deadline, OutOfTime, build, feasible
from solver.plan import Placement
from solver.scenario import parse_scenario
from tests.solver.contract_reference import evaluate as reference_evaluate
from tests.solver.contract_reference import load as reference_load


def _expected(path: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads(path.with_suffix(".expected.json").read_text())
    return data


def test_every_shared_scenario_has_its_expected_optimum(shared_dir: Path) -> None:
    folder = shared_dir / "scenarios"
    scenarios = {p.name.removesuffix(".yaml") for p in folder.glob("*.yaml")}
    optima = {p.name.removesuffix(".expected.json") for p in folder.glob("*.expected.json")}
    assert scenarios == optima
    # The families the contract's examples name, each of which must be reproduced below.
    for family in ("binds-", "binds-idle-battery-", "migration-", "overhead-"):
        assert any(name.startswith(family) for name in scenarios), family


def test_ilp_matches_every_expected_optimum(shared_scenarios: list[Path]) -> None:
    for path in shared_scenarios:
        expected = _expected(path)
        plan = solve(load_scenario(path), SolveOptions(time_limit_s=60), "ilp")
        assert plan.status.value == expected["status"], path.name
        if expected["status"] == "infeasible":
            assert plan.doc.apps == [] and plan.doc.reason, path.name
            continue
        assert isinstance(expected["objective"], float)
        assert plan.doc.objective == pytest.approx(expected["objective"], rel=1e-6), path.name
        assert plan.doc.bound is not None
        assert plan.doc.bound <= plan.doc.objective + 1e-9
        assert plan.doc.bound == pytest.approx(plan.doc.objective, rel=1e-6)


def test_ilp_plans_agree_with_the_independent_checker(shared_scenarios: list[Path]) -> None:
    for path in shared_scenarios:
        plan = solve(load_scenario(path), SolveOptions(), "ilp")
        if plan.status == Status.INFEASIBLE:
            continue
        ref = reference_evaluate(reference_load(str(path)), plan.doc.model_dump(mode="json"))
        assert ref["violations"] == [], path.name
        assert ref["objective"] == pytest.approx(plan.doc.objective, rel=1e-6), path.name


def test_infeasible_reason_names_the_app(shared_dir: Path) -> None:
    plan = solve(load_scenario(shared_dir / "scenarios" / "random-100.yaml"), None, "ilp")
    assert plan.status == Status.INFEASIBLE
    assert plan.doc.reason is not None and "app1" in plan.doc.reason


def test_capacity_infeasibility_names_the_resource(shared_dir: Path) -> None:
    scn = load_scenario(shared_dir / "scenarios" / "factory.yaml")
    raw = scn.model_dump(mode="json", exclude_none=True)
    for app in raw["apps"]:
        app["rate_rps"] = 400.0  # far beyond every device and link together
    plan = solve(parse_scenario(raw), SolveOptions(time_limit_s=30), "ilp")
    assert plan.status == Status.INFEASIBLE
    assert plan.doc.reason is not None and plan.doc.reason.startswith("app ")


def test_fixed_apps_keep_their_placement(shared_dir: Path) -> None:
    problem = Problem(load_scenario(shared_dir / "scenarios" / "factory.yaml"))
    full = solve(problem, SolveOptions(), "ilp")
    held = {"defects-1": Placement(app="defects-1", model="resnet50", blocks=("edge-1",) * 6)}
    plan = solve(problem, SolveOptions(fixed=held), "ilp")
    assert plan.placements["defects-1"] == held["defects-1"]
    assert plan.status != Status.INFEASIBLE
    assert plan.doc.objective is not None and full.doc.objective is not None
    assert plan.doc.objective >= full.doc.objective - 1e-9


def test_same_seed_same_plan(shared_dir: Path) -> None:
    scn = load_scenario(shared_dir / "scenarios" / "factory.yaml")
    a = solve(scn, SolveOptions(seed=7), "ilp")
    b = solve(scn, SolveOptions(seed=7), "ilp")
    assert a.placements == b.placements


def test_a_model_too_large_for_the_time_left_stops_inside_an_app() -> None:
    # One app of 12-block chains on 80 hosts is a hundred thousand terms: the limit must
    # stop the build inside it, not after it (the ilp overran a 1 s limit by 9 s so).
    raw = generate(3, devices=80, apps=60, blocks=12, contended=True, overheads=True)
    problem = Problem(parse_scenario(raw))
    first = problem.scenario.apps[0].id
    with pytest.raises(OutOfTime):
        build(problem, SolveOptions(), 0.0, only={first}, deadline=Deadline(0.0))
    # Whether it fits is then undecided, not "no".
    assert feasible(problem, SolveOptions(), {first}, 0.0) is None
    assert feasible(problem, SolveOptions(), {first}, 60.0) is True

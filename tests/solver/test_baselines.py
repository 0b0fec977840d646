"""The baselines place apps by their own rule, and the evaluator has the last word."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from solver import Problem, SolveOptions, Status, parse_scenario, solve, solvers
from solver.baselines import SOLVERS, nearest_cloud
from solver.evaluate import app_cost, app_violations
from solver.generate import generate
from solver.plan import Placement
from solver.scenario import App
from tests.solver.contract_reference import evaluate as reference_evaluate
from tests.solver.contract_reference import load as reference_load

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "factory-line.yaml"
BASELINES = ("all-device", "all-cloud", "neurosurgeon")


def _example_raw() -> dict[str, Any]:
    raw: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    return raw


@pytest.fixture(scope="module")
def example() -> Problem:
    return Problem(parse_scenario(_example_raw()))


def _two_cameras_one_box() -> dict[str, Any]:
    """Two cameras whose apps each fit the edge box alone, but not together."""
    # A camera is fast enough for its app but spends more energy on it than the box does.
    cam = {"tier": "device", "gflops": 80, "memory_mb": 512, "power_w": {"idle": 1, "busy": 10}}
    return {
        "version": 1,
        "devices": [
            {"id": "cam-a", **cam},
            {"id": "cam-b", **cam},
            {"id": "box", "tier": "edge", "gflops": 100, "memory_mb": 4096,
             "power_w": {"idle": 5, "busy": 10}},
        ],
        "links": [
            {"a": "cam-a", "b": "box", "mbps": 100, "rtt_ms": 2, "j_per_mb": 0.1},
            {"a": "cam-b", "b": "box", "mbps": 100, "rtt_ms": 2, "j_per_mb": 0.1},
        ],
        "models": [
            {"id": "net", "input_mb": 0.1,
             "layers": [{"name": "l1", "gflops": 1, "params_mb": 5, "out_mb": 1},
                        {"name": "l2", "gflops": 1, "params_mb": 5, "out_mb": 0.01}]},
        ],
        "apps": [
            {"id": "app-a", "model": "net", "source": "cam-a", "rate_rps": 25, "slo_ms": 100},
            {"id": "app-b", "model": "net", "source": "cam-b", "rate_rps": 25, "slo_ms": 100},
        ],
    }  # fmt: skip


def test_every_baseline_is_registered() -> None:
    assert set(BASELINES) == set(SOLVERS)
    assert set(BASELINES) <= set(solvers())


def test_all_device_runs_every_app_whole_on_its_source(example: Problem) -> None:
    plan = solve(example, SolveOptions(), "all-device")
    for app in example.scenario.apps:
        p = plan.placements[app.id]
        assert p.hosts() == {app.source}, app.id


def test_all_device_reports_what_it_breaks(example: Problem) -> None:
    # Six slow battery cameras cannot run ResNet-50 at line speed: the plan is still
    # printed, with every app in it, but marked infeasible with the broken constraints.
    plan = solve(example, SolveOptions(), "all-device")
    assert plan.status == Status.INFEASIBLE
    assert len(plan.doc.apps) == len(example.scenario.apps)
    assert plan.doc.violations
    assert any("worst-case latency" in v for v in plan.doc.violations)
    assert any(v.startswith("device cam-1: compute") for v in plan.doc.violations)


def test_all_cloud_uses_the_nearest_cloud_by_rtt_ties_by_id() -> None:
    raw = _two_cameras_one_box()
    power = {"idle": 50, "busy": 200}
    for cloud_id in ("cloud-z", "cloud-a", "cloud-far"):
        raw["devices"].append(
            {"id": cloud_id, "tier": "cloud", "gflops": 5000, "memory_mb": 9999, "power_w": power}
        )
    raw["links"] += [
        {"a": "box", "b": "cloud-z", "mbps": 500, "rtt_ms": 20},
        {"a": "box", "b": "cloud-a", "mbps": 500, "rtt_ms": 20},
        {"a": "cam-b", "b": "cloud-far", "mbps": 500, "rtt_ms": 21},
    ]
    problem = Problem(parse_scenario(raw))
    # cam-a: two clouds at 22 ms, the smaller id wins; cam-b: 21 ms direct beats 22 ms.
    assert nearest_cloud(problem, "cam-a") == "cloud-a"
    assert nearest_cloud(problem, "cam-b") == "cloud-far"
    plan = solve(problem, SolveOptions(), "all-cloud")
    assert plan.placements["app-a"].hosts() == {"cloud-a"}
    assert plan.placements["app-b"].hosts() == {"cloud-far"}


def test_all_cloud_without_a_cloud_says_so() -> None:
    plan = solve(parse_scenario(_two_cameras_one_box()), SolveOptions(), "all-cloud")
    assert plan.status == Status.INFEASIBLE
    assert plan.doc.reason == "the fleet has no cloud device"


def test_neurosurgeon_ignores_the_other_apps() -> None:
    # Each app alone is best on the box (50% of it); together they need 100% of it.
    problem = Problem(parse_scenario(_two_cameras_one_box()))
    plan = solve(problem, SolveOptions(), "neurosurgeon")
    assert plan.placements["app-a"].hosts() == {"box"}
    assert plan.placements["app-b"].hosts() == {"box"}
    assert plan.status == Status.INFEASIBLE
    assert plan.doc.violations == ["device box: compute utilization 1.0000 > 0.8"]
    exact = solve(problem, SolveOptions(), "ilp")
    assert exact.status == Status.OPTIMAL


def _single_splits(problem: Problem, app_id: str) -> list[Placement]:
    """Every candidate the paper's rule allows, enumerated here independently."""
    app = problem.cost.apps[app_id]
    others = [d.id for d in problem.scenario.devices if d.id != app.source]
    if app.cascade is not None:
        out = []
        for other in others:
            for mask in range(2 ** len(app.cascade)):
                stages = tuple(
                    other if mask >> k & 1 else app.source for k in range(len(app.cascade))
                )
                out.append(Placement(app=app_id, stages=stages))
        return out
    out = []
    for model in problem.model_options(app):
        n = len(problem.cost.models[model].layers)
        for other in others:
            for k in range(n + 1):
                blocks = (app.source,) * k + (other,) * (n - k)
                out.append(Placement(app=app_id, model=model, blocks=blocks))
    return out


def _own(problem: Problem, app: App, p: Placement) -> tuple[list[str], float]:
    """An app's own constraint violations and objective term (no previous plan here)."""
    c = app_cost(problem.cost, app, p)
    return app_violations(problem.cost, app, p, c), problem.cost.weighted(app, c)


def test_neurosurgeon_takes_each_apps_best_single_split(example: Problem) -> None:
    plan = solve(example, SolveOptions(), "neurosurgeon")
    assert example.scenario.previous is None
    for app in example.scenario.apps:
        chosen = plan.placements[app.id]
        assert len(chosen.hosts() - {app.source}) <= 1, app.id
        broken, term = _own(example, app, chosen)
        assert broken == [], app.id
        feasible = [
            t for b, t in (_own(example, app, p) for p in _single_splits(example, app.id)) if not b
        ]
        assert term == pytest.approx(min(feasible), rel=1e-12), app.id


def test_neurosurgeon_picks_an_accurate_enough_variant(example: Problem) -> None:
    plan = solve(example, SolveOptions(), "neurosurgeon")
    # pallet-3 may run resnet50 or resnet50-int8, never mobilenetv2 (below min_accuracy).
    assert plan.placements["pallet-3"].model in {"resnet50", "resnet50-int8"}


def test_neurosurgeon_puts_cascade_stages_on_the_source_or_one_other(example: Problem) -> None:
    plan = solve(example, SolveOptions(), "neurosurgeon")
    stages = plan.placements["ppe-4"].stages
    assert stages is not None and len(stages) == 2
    assert len(set(stages) - {"cam-4"}) <= 1


@pytest.mark.parametrize("name", BASELINES)
def test_baselines_keep_fixed_apps(example: Problem, name: str) -> None:
    held = Placement(app="weld-1", model="resnet50-ee", blocks=("edge-b",) * 6)
    plan = solve(example, SolveOptions(fixed={"weld-1": held}), name)
    assert plan.placements["weld-1"] == held
    assert {a.id for a in plan.doc.apps} == {a.id for a in example.scenario.apps}


@pytest.mark.parametrize("name", BASELINES)
def test_baselines_are_deterministic(example: Problem, name: str) -> None:
    first = solve(example, SolveOptions(seed=1), name)
    second = solve(Problem(parse_scenario(_example_raw())), SolveOptions(seed=2), name)
    assert first.placements == second.placements
    assert first.doc.objective == second.doc.objective


@pytest.mark.parametrize("name", BASELINES)
def test_baseline_plans_agree_with_the_independent_checker(
    shared_scenarios: list[Path], name: str
) -> None:
    for path in [*shared_scenarios, EXAMPLE]:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        plan = solve(parse_scenario(copy.deepcopy(raw)), SolveOptions(), name)
        if not plan.doc.apps:
            continue
        ref = reference_evaluate(
            reference_load(copy.deepcopy(raw)), plan.doc.model_dump(mode="json")
        )
        assert ref["objective"] == pytest.approx(plan.doc.objective, rel=1e-6), path.name
        assert bool(ref["violations"]) == bool(plan.doc.violations), path.name


def _nearest_cloud_by_every_route(problem: Problem, source: str) -> str | None:
    """The rule as first written: every cloud's route from the source, least (rtt, id)."""
    best: tuple[float, str] | None = None
    for d in problem.scenario.devices:
        if d.tier != "cloud":
            continue
        r = None if d.id == source else problem.cost.route(source, d.id)
        if d.id != source and r is None:
            continue
        key = (0.0 if r is None else r.rtt_ms, d.id)
        if best is None or key < best:
            best = key
    return best[1] if best is not None else None


def test_all_cloud_on_a_large_fleet_is_the_plan_of_every_route() -> None:
    """The nearest cloud comes from a search that stops at it (memory of a neighbourhood,
    not of the fleet), and is the one the full route table gives, for every device; the
    all-cloud plan puts each app whole there."""
    scn = parse_scenario(generate(7, devices=400, apps=120, blocks=6))
    full = Problem(scn)
    expected = {d.id: _nearest_cloud_by_every_route(full, d.id) for d in scn.devices}
    lazy = Problem(scn)
    assert {d.id: nearest_cloud(lazy, d.id) for d in scn.devices} == expected
    plan = solve(Problem(scn), SolveOptions(), solver="all-cloud")
    assert len(plan.placements) == len(scn.apps)
    for app in scn.apps:
        p = plan.placements[app.id]
        assert p.hosts() == {expected[app.source]}

"""Properties every solver keeps, on generated scenarios, checked by the independent
implementation of the contract in `contract_reference.py`."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from solver import Problem, SolveOptions, Status, parse_scenario, solve, solvers
from solver.evaluate import evaluate
from solver.plan import Placement
from tests.solver import contract_reference as ref
from tests.solver.strategies import scenarios

SETTINGS = settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)


def _with_previous(raw: dict[str, Any], plan_doc: dict[str, Any]) -> dict[str, Any]:
    out = dict(raw)
    out["previous"] = {"apps": plan_doc["apps"]}
    return out


@pytest.mark.parametrize("name", sorted(solvers()))
@SETTINGS
@given(raw=scenarios())
def test_every_plan_reevaluates_independently(name: str, raw: dict[str, Any]) -> None:
    plan = solve(parse_scenario(raw), SolveOptions(time_limit_s=20), name)
    doc = plan.doc.model_dump(mode="json")
    if plan.status == Status.INFEASIBLE and not doc["apps"]:
        assert doc["reason"] and doc["reason_code"], "an infeasible plan names its reason"
        if name in ("ilp", "heuristic"):
            # No plan, said a solver that looks for one: the exhaustive search agrees.
            assert ref.brute_force(ref.load(raw))[0] == "infeasible", doc["reason"]
        return
    checked = ref.evaluate(ref.load(raw), doc)
    assert checked["objective"] == pytest.approx(doc["objective"], rel=1e-6, abs=1e-9)
    if plan.status == Status.INFEASIBLE:
        assert checked["violations"], "infeasible status but the checker sees no violation"
        assert doc["violations"]
    else:
        assert checked["violations"] == []


@SETTINGS
@given(raw=scenarios(max_devices=3, max_apps=2))
def test_ilp_reaches_the_exhaustive_optimum(raw: dict[str, Any]) -> None:
    status, best, _ = ref.brute_force(ref.load(raw))
    plan = solve(parse_scenario(raw), SolveOptions(time_limit_s=20), "ilp")
    assert plan.status.value == status
    if status == "optimal":
        assert plan.doc.objective == pytest.approx(best, rel=1e-6, abs=1e-9)


@SETTINGS
@given(raw=scenarios(), data=st.data())
def test_evaluator_agrees_with_reference_on_any_placement(raw: dict[str, Any], data: Any) -> None:
    """Arbitrary placements, feasible or not: same objective, same verdict."""
    scn = parse_scenario(raw)
    problem = Problem(scn)
    ids = [d.id for d in scn.devices]
    placements: dict[str, Placement] = {}
    for app in scn.apps:
        if app.cascade is not None:
            stages = tuple(data.draw(st.sampled_from(ids)) for _ in app.cascade)
            placements[app.id] = Placement(app=app.id, stages=stages)
        else:
            options = [app.model] if app.model else list(app.variants or ())
            m = data.draw(st.sampled_from(options))
            n = len(problem.cost.models[m].layers)
            blocks = tuple(data.draw(st.sampled_from(ids)) for _ in range(n))
            placements[app.id] = Placement(app=app.id, model=m, blocks=blocks)
    from solver.document import build_plan

    doc = build_plan(problem.cost, placements, Status.FEASIBLE, "test").doc.model_dump(mode="json")
    mine = evaluate(problem.cost, placements)
    checked = ref.evaluate(ref.load(raw), doc)
    assert mine.objective == pytest.approx(checked["objective"], rel=1e-9, abs=1e-12)
    assert bool(mine.violations) == bool(checked["violations"]), (
        mine.violations,
        checked["violations"],
    )
    # Migration: the same placements as the previous plan move nothing.
    again = parse_scenario(_with_previous(raw, doc))
    assert sum(evaluate(Problem(again).cost, placements).migration_mb.values()) == 0.0

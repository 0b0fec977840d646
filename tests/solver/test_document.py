"""A plan's document is written when first read, with what was noted on it meanwhile:
the same document as one written at once."""

from __future__ import annotations

import pickle

import pytest

from solver import Problem, SolveOptions, Status, document, solve
from solver.generate import generate
from solver.reasons import Code, Reason
from solver.scenario import parse_scenario


def _writes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = document.build_plan

    def counted(*args: object, **kwargs: object) -> document.Plan:
        calls.append(1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(document, "build_plan", counted)
    return calls


def test_an_infeasible_plans_document_is_the_eager_one_with_its_notes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    problem = Problem(parse_scenario(generate(3, devices=40, apps=10)))
    why = Reason(Code.BATTERY, "app a: too little", "a")
    writes = _writes(monkeypatch)
    plan = document.infeasible_plan(problem.cost, "heuristic", why, bound=1.5)
    plan.note("solve_s", 0.25)
    plan.stat("resolved_apps", 7)
    assert writes == [] and plan.status == Status.INFEASIBLE and plan.reason == why
    eager = document.build_plan(problem.cost, {}, Status.INFEASIBLE, "heuristic", 1.5, 0.25)
    want = eager.doc.model_copy(
        update={
            "objective": None,
            "apps": [],
            "violations": None,
            "violation_codes": None,
            "reason": why.message,
            "reason_code": why.code,
            "stats": {"resolved_apps": 7},
        }
    )
    assert plan.doc.model_dump() == want.model_dump()
    assert len(writes) == 2  # the eager one above, and this one, once
    plan.stat("resolved_apps", 8)  # on the written document now
    assert plan.doc.stats == {"resolved_apps": 8} and len(writes) == 2
    again = pickle.loads(pickle.dumps(document.infeasible_plan(problem.cost, "x", why)))
    assert again.doc.reason == why.message and again == again


def test_a_solve_that_finds_no_plan_leaves_its_document_unwritten_until_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    raw = generate(5, devices=300, apps=60, blocks=6)  # no exact steps on this fleet
    raw["apps"][0]["slo_ms"] = 1e-3  # no placement meets it
    problem = Problem(parse_scenario(raw))
    writes = _writes(monkeypatch)
    plan = solve(problem, SolveOptions(), solver="heuristic")
    assert plan.status == Status.INFEASIBLE and plan.reason is not None
    assert writes == []
    assert plan.doc.solve_s > 0 and plan.doc.reason == plan.reason.message
    assert writes == [1]
    with pytest.raises(ValueError, match="not both"):
        document.Plan(Status.FEASIBLE, {})


def test_a_found_plans_document_is_written_when_read_and_is_the_one_written_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A relaxed search reads a plan's status and placements alone (orchestrator.degrade):
    the document of a plan found is written when first read, with the bound noted on it,
    and the base it was evaluated on is let go at once (not a chain of plans)."""
    problem = Problem(parse_scenario(generate(5, devices=300, apps=60, blocks=6)))
    made: list[int] = []
    real = document.PlanDoc

    def counted(**fields: object) -> document.PlanDoc:
        made.append(1)
        return real(**fields)  # type: ignore[arg-type]

    monkeypatch.setattr(document, "PlanDoc", counted)
    plan = solve(problem, SolveOptions(), solver="heuristic")
    assert plan.status == Status.FEASIBLE and made == []
    assert plan.evaluation is not None and plan.evaluation.base is None
    doc = plan.doc
    assert made == [1] and plan.doc is doc
    eager = document.build_plan(problem.cost, plan.placements, Status.FEASIBLE, "x").doc
    for name in ("status", "objective", "apps", "devices", "links", "violations"):
        assert getattr(doc, name) == getattr(eager, name)
    assert doc.objective is not None and doc.bound is not None
    assert doc.bound <= doc.objective and doc.solve_s > 0 and doc.solver == "heuristic"

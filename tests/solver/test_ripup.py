"""Rip-up and re-place: an app the greedy order left without room gets it from the apps
on what it overflowed, and the plan stays one the evaluator accepts."""

from __future__ import annotations

from solver import Problem, SolveOptions, Status, evaluate, parse_scenario
from solver.generate import generate
from solver.heuristic import solve_greedy


def test_a_camera_crowded_by_earlier_apps_gets_a_plan() -> None:
    # 16 devices, one edge box, 18 apps: several apps share each camera's battery and
    # uplink. Without rip-up the greedy steps stopped at app-16 (bandwidth of the link
    # dev-11 - edge-0, taken by apps placed before it), although `ilp` finds a plan.
    raw = generate(1008, devices=16, apps=18, blocks=8, contended=True)
    plan = solve_greedy(Problem(parse_scenario(raw)), SolveOptions())
    assert plan.status == Status.FEASIBLE, plan.doc.reason
    assert set(plan.placements) == {app["id"] for app in raw["apps"]}
    checked = evaluate(Problem(parse_scenario(raw)).cost, plan.placements)
    assert checked.violations == []
    assert checked.objective == plan.doc.objective

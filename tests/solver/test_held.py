"""A held app's verdict (solver/held.py): its own checks kept across problems of the same
devices but for their batteries, while its cost is the very one; judged afresh otherwise."""

from __future__ import annotations

from typing import Any

import pytest

from solver import Problem, SolveOptions, held, solve
from solver.evaluate import evaluate
from solver.generate import generate
from solver.incremental import Change, apply_change
from solver.scenario import parse_scenario


def test_own_checks_are_kept_while_the_cost_is_the_very_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    raw = generate(3, devices=30, apps=8, blocks=4)
    plan = solve(Problem(parse_scenario(raw)), SolveOptions(), solver="heuristic")
    raw["apps"][2]["slo_ms"] = 1e-6  # held where it runs, it breaks its SLO
    first = Problem(parse_scenario(raw))
    placements = plan.placements
    checked: list[str] = []
    real = held.app_violations

    def counting(cm: Any, app: Any, p: Any, c: Any) -> Any:
        checked.append(app.id)
        return real(cm, app, p, c)

    monkeypatch.setattr(held, "app_violations", counting)

    def verdicts(problem: Problem) -> dict[str, bool]:
        return {a.id: held.judged(problem, a, placements[a.id]) for a in problem.scenario.apps}

    def fresh(problem: Problem) -> dict[str, bool]:
        again = Problem(parse_scenario(problem.scenario.model_dump(mode="json")))
        return {a.id: held.judged(again, a, placements[a.id]) for a in again.scenario.apps}

    assert verdicts(first)[raw["apps"][2]["id"]]
    assert len(checked) == len(raw["apps"])
    # A battery's level moves: the costs are carried, each app's own checks with them.
    pack = next(d for d in first.scenario.devices if d.battery is not None)
    assert pack.battery is not None
    level = {"battery": {**pack.battery.model_dump(), "level_pct": pack.battery.level_pct / 2}}
    drained = apply_change(first, Change(devices={pack.id: level}), placements)
    checked.clear()
    assert verdicts(drained) == fresh(drained)
    assert checked.count(raw["apps"][2]["id"]) == 1  # the fresh judge's, not the kept one
    assert len(checked) == len(raw["apps"])  # all of them the fresh judge's
    # A link an app crosses moves: that app's cost is made again, and so are its checks.
    app = next(a for a in drained.scenario.apps if drained.app_costs[a.id][1].link_mb)
    k = next(iter(drained.app_costs[app.id][1].link_mb))
    lk = drained.scenario.links[k]
    slower = apply_change(drained, Change(links={(lk.a, lk.b): {"mbps": lk.mbps / 3}}), placements)
    # (An evaluation of the plan costs it again first, as a re-plan's screen does.)
    evaluate(slower.cost, placements, cache=slower.app_costs, require_all=False)
    checked.clear()
    got = verdicts(slower)
    assert app.id in checked and len(checked) < len(raw["apps"])
    assert got == fresh(slower)
    # A device changed in more than its battery: every app is judged afresh.
    tiers = {"edge": "cloud", "cloud": "edge", "device": "edge"}
    host = next(iter(placements[app.id].hosts()))
    dev = next(d for d in slower.scenario.devices if d.id == host)
    moved = apply_change(slower, Change(devices={host: {"tier": tiers[dev.tier]}}), placements)
    checked.clear()
    assert verdicts(moved) == fresh(moved)
    assert len(checked) == 2 * len(raw["apps"])


def test_the_base_and_pack_limits_judged_on_are_those_of_the_problem_now() -> None:
    """`judged` keeps the evaluation it builds on, and each pack's limit, on the problem:
    a new evaluation put on the problem is read at the next verdict, and a limit is the
    cost model's."""
    raw = generate(3, devices=30, apps=8, blocks=4)
    problem = Problem(parse_scenario(raw))
    plan = solve(problem, SolveOptions(), solver="heuristic")
    first = evaluate(problem.cost, plan.placements, cache=problem.app_costs)
    problem.derived["evaluation"] = first
    app = problem.scenario.apps[0]
    held.judged(problem, app, plan.placements[app.id])
    assert held._base_of(problem) is first
    second = evaluate(problem.cost, plan.placements, cache=problem.app_costs)
    problem.derived["evaluation"] = second
    assert held._base_of(problem) is second is held.base_evaluation(problem)
    del problem.derived["evaluation"]
    assert held._base_of(problem) is None is held.base_evaluation(problem)
    for a in problem.scenario.apps:
        cost = problem.app_costs[a.id][1]
        limit = problem.cost.battery_limit_w(a.source)
        over = not held.battery_within(a.rate_rps * cost.joules.get(a.source, 0.0), limit)
        assert held.over_own_pack(problem, a, cost) is over
    assert set(problem.derived[held._LIMITS]) == {a.source for a in problem.scenario.apps}

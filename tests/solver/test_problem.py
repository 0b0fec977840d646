"""A problem made alongside another: the same plan figures as one made afresh."""

from __future__ import annotations

import copy
from typing import Any

from solver import Problem, SolveOptions, evaluate, parse_scenario, solve
from solver.generate import generate


def _figures(problem: Problem, placements: dict[str, Any]) -> tuple[float, list[str], dict]:
    ev = evaluate(problem.cost, placements)
    per_app = {
        a: (r.cost.worst_ms, r.cost.energy_j, tuple(r.cost.link_mb.items()))
        for a, r in ev.records.items()
    }
    return ev.objective, ev.violations, per_app


def _solved(raw: dict[str, Any]) -> tuple[Problem, dict[str, Any]]:
    problem = Problem(parse_scenario(raw))
    plan = solve(problem, SolveOptions(time_limit_s=10), solver="heuristic")
    assert plan.placements
    return problem, plan.placements


def test_a_fleet_with_other_power_and_apps_shares_the_routes_and_figures_as_if_afresh() -> None:
    raw = generate(5, devices=40, apps=12, blocks=6)
    now, placements = _solved(raw)
    _figures(now, placements)  # the routes of `now` looked up
    other = copy.deepcopy(raw)
    for d in other["devices"]:
        d["power_w"] = {k: float(v) * 1000.0 for k, v in d["power_w"].items()}
    other["apps"] = other["apps"][:-1]
    kept = {a: p for a, p in placements.items() if a != raw["apps"][-1]["id"]}
    scn = parse_scenario(other)

    beside = now.alongside(scn)

    assert _figures(beside, kept) == _figures(Problem(parse_scenario(other)), kept)
    assert _figures(beside, kept) != _figures(now, kept)  # the power was read from `other`


def test_a_fleet_with_other_link_figures_gets_routes_of_its_own() -> None:
    raw = generate(5, devices=40, apps=12, blocks=6)
    now, placements = _solved(raw)
    before = _figures(now, placements)  # the routes of `now`, with its figures, looked up
    slower = copy.deepcopy(raw)
    for link in slower["links"]:
        link["mbps"] = float(link["mbps"]) / 10.0

    beside = now.alongside(parse_scenario(slower))

    afresh = Problem(parse_scenario(slower))
    assert _figures(beside, placements) == _figures(afresh, placements)
    assert _figures(beside, placements) != before

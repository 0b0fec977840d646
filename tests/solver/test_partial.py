"""Place what fits: the apps that can be placed are, each app that cannot is named."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from solver import (
    Problem,
    SolveOptions,
    Status,
    evaluate,
    heuristic,
    parse_scenario,
    partial,
    solve,
)
from solver.appcandidates import memo_of
from solver.candidates import Candidate
from solver.document import Plan
from solver.evaluate import app_record
from solver.generate import generate
from solver.incremental import Change, apply_change
from solver.partial import named_app, place_what_fits
from solver.reasons import Code

OPTIONS = SolveOptions(time_limit_s=20)


def _impossible(scenario: dict[str, Any], *app_ids: str) -> dict[str, Any]:
    """The scenario with those apps asking for a latency no placement has."""
    out = copy.deepcopy(scenario)
    for app in out["apps"]:
        if app["id"] in app_ids:
            app["slo_ms"] = 1e-6
    return out


def _counted_solves(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A list that grows by one at each solve `place_what_fits` runs."""
    solves: list[int] = []
    resolve = partial.resolve

    def counted(*args: Any, **kwargs: Any) -> Plan:
        solves.append(1)
        return resolve(*args, **kwargs)

    monkeypatch.setattr(partial, "resolve", counted)
    return solves


@pytest.mark.parametrize("solver", ["heuristic", "ilp"])
def test_the_apps_that_fit_are_placed_and_the_others_named(solver: str) -> None:
    base = generate(11, devices=16, apps=6, blocks=4)
    scn = _impossible(base, "app-1", "app-4")
    problem = Problem(parse_scenario(scn))
    assert solve(problem, OPTIONS, solver=solver).status == Status.INFEASIBLE

    out = place_what_fits(problem, OPTIONS, solver)

    assert out.plan.status != Status.INFEASIBLE
    assert set(out.unplaced) == {"app-1", "app-4"}
    assert all(why.startswith(f"app {a}:") and "slo" in why for a, why in out.unplaced.items())
    placed = {a.id for a in out.plan.doc.apps}
    assert placed == {a["id"] for a in scn["apps"]} - {"app-1", "app-4"}
    # The plan is one of the contract for the scenario without the apps set aside.
    rest = copy.deepcopy(scn)
    rest["apps"] = [a for a in scn["apps"] if a["id"] in placed]
    check = evaluate(Problem(parse_scenario(rest)).cost, out.plan.placements)
    assert not check.violations
    assert check.objective == pytest.approx(out.plan.doc.objective, rel=1e-9)


def test_a_feasible_scenario_sets_nothing_aside() -> None:
    scn = generate(12, devices=16, apps=5, blocks=4)
    problem = Problem(parse_scenario(scn))
    out = place_what_fits(problem, OPTIONS, "heuristic")
    assert out.unplaced == {} and out.problem is problem
    assert out.plan.placements == solve(problem, OPTIONS, solver="heuristic").placements


def test_incremental_holds_the_untouched_apps_and_sets_aside_the_broken_one() -> None:
    scn = generate(13, devices=16, apps=6, blocks=4)
    first = Problem(parse_scenario(scn))
    in_force = solve(first, OPTIONS, solver="heuristic").placements
    changed = _impossible(scn, "app-2")["apps"][2]
    change = Change(added_apps=(changed,))
    problem = apply_change(first, change, in_force)

    out = place_what_fits(problem, OPTIONS, "heuristic", previous=in_force, change=change)

    assert list(out.unplaced) == ["app-2"]
    assert "app-2" not in out.plan.placements
    for app_id, placement in out.plan.placements.items():
        assert placement == in_force[app_id]  # nobody else had to move
    assert out.plan.doc.stats is not None and out.plan.doc.stats["resolved_apps"] == 0


def test_an_app_held_where_it_breaks_its_limits_is_set_aside_before_the_solve(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On a fleet past the polish's size, the apps held where they break their own limits
    and that fit nowhere are found by the heuristic's per-app verdict before the solve:
    the very outcome of the solves that failed on them one by one, with one solve."""
    scn = generate(17, devices=90, apps=12, blocks=4)
    first = Problem(parse_scenario(scn))
    in_force = solve(first, OPTIONS, solver="heuristic").placements
    worse = _impossible(scn, "app-7", "app-2")
    link = first.scenario.links[5]
    change = Change(
        added_apps=(worse["apps"][2], worse["apps"][7]),
        links={(link.a, link.b): {"mbps": link.mbps * 0.7}},
    )
    problem = apply_change(first, change, in_force)
    solves = _counted_solves(monkeypatch)
    out = place_what_fits(problem, OPTIONS, "heuristic", previous=in_force, change=change)
    assert len(solves) == 1

    solves.clear()
    monkeypatch.setattr(partial, "alone", lambda problem, apps: {})
    failing = place_what_fits(problem, OPTIONS, "heuristic", previous=in_force, change=change)
    assert len(solves) == 3  # one failing solve for each app, then the rest

    assert list(out.set_aside) == list(failing.set_aside) == ["app-2", "app-7"]
    assert out.set_aside == failing.set_aside
    assert out.set_aside["app-2"].alone and out.set_aside["app-2"].code == Code.SLO
    assert out.plan.placements == failing.plan.placements
    assert out.plan.doc.apps == failing.plan.doc.apps
    assert out.plan.doc.objective == failing.plan.doc.objective
    assert [a.id for a in out.problem.scenario.apps] == [
        a.id for a in failing.problem.scenario.apps
    ]


def test_when_no_app_fits_the_plan_is_empty() -> None:
    scn = generate(14, devices=12, apps=2, blocks=3)
    scn = _impossible(scn, "app-0", "app-1")
    out = place_what_fits(Problem(parse_scenario(scn)), OPTIONS, "heuristic")
    assert set(out.unplaced) == {"app-0", "app-1"}
    assert out.plan.status != Status.INFEASIBLE and out.plan.doc.apps == []


def test_at_most_max_unplaced_apps_are_set_aside() -> None:
    scn = generate(15, devices=12, apps=4, blocks=3)
    scn = _impossible(scn, "app-0", "app-1", "app-2")
    problem = Problem(parse_scenario(scn))
    out = place_what_fits(problem, OPTIONS, "heuristic", max_unplaced=2)
    # Past the limit the answer is the contract's: infeasible, all or nothing.
    assert out.plan.status == Status.INFEASIBLE and out.unplaced == {}
    assert out.problem is problem


def test_apps_proven_their_own_fault_before_the_solve_do_not_count_to_the_limit() -> None:
    """The limit is on apps found by failing solves (each a solve). Apps the per-app
    verdict sets aside before the solve cost none: past the limit in number, the rest of
    the fleet is still placed (capped, a fleet with more drained camera packs than the
    limit was never re-placed again)."""
    scn = generate(17, devices=90, apps=12, blocks=4)
    first = Problem(parse_scenario(scn))
    in_force = solve(first, OPTIONS, solver="heuristic").placements
    worse = _impossible(scn, "app-7", "app-2")
    change = Change(added_apps=(worse["apps"][2], worse["apps"][7]))
    problem = apply_change(first, change, in_force)
    out = place_what_fits(
        problem, OPTIONS, "heuristic", previous=in_force, change=change, max_unplaced=1
    )
    assert out.plan.status != Status.INFEASIBLE
    assert sorted(out.set_aside) == ["app-2", "app-7"]
    assert all(why.alone for why in out.set_aside.values())
    assert set(out.plan.placements) == set(in_force) - {"app-2", "app-7"}
    # No per-app verdict with a limit of 0 (the relaxed search's all or nothing).
    nothing = place_what_fits(
        problem, OPTIONS, "heuristic", previous=in_force, change=change, max_unplaced=0
    )
    assert nothing.plan.status == Status.INFEASIBLE and nothing.set_aside == {}


def test_named_app_reads_only_the_problems_own_apps() -> None:
    problem = Problem(parse_scenario(generate(16, devices=8, apps=3, blocks=3)))
    assert named_app("app app-1: its slo_ms cannot be met", problem) == "app-1"
    assert named_app("app app-9: its slo_ms cannot be met", problem) is None
    assert named_app("the fixed apps alone exceed a shared capacity", problem) is None
    assert named_app(None, problem) is None


@pytest.mark.parametrize(("seed", "devices"), [(3, 90), (11, 90), (5, 24)])
def test_least_terms_bounds_every_placement_the_heuristic_may_give(seed: int, devices: int) -> None:
    """Past the polish's size the host sets are neighbourhoods (90 devices), below it every
    host (24): either way no candidate the heuristic makes for an app, nor its placement in
    the plan, has an evaluator's term below the app's `least_terms`, migration included;
    and the apps at their best candidate are at it (the bound is tight, not merely low)."""
    world = generate(seed, devices=devices, apps=12, blocks=6)
    world["objective"]["migration"] = 0.01
    first = solve(Problem(parse_scenario(world)), OPTIONS, solver="heuristic")
    assert first.status != Status.INFEASIBLE
    # The plan in force as `previous`, and every uplink at half its figure: the apps
    # pay to move, and their cheapest placements are others.
    now = copy.deepcopy(world)
    keys = ("id", "model", "segments", "stages")
    now["previous"] = {
        "apps": [{k: a[k] for k in keys if a.get(k)} for a in first.doc.model_dump()["apps"]]
    }
    for lk in now["links"]:
        lk["mbps"] = lk["mbps"] / 2.0
    problem = Problem(parse_scenario(now))
    cm = problem.cost
    least = {a.id: partial.least_terms(problem, [a.id]) for a in problem.scenario.apps}
    tight = 0
    for app in problem.scenario.apps:
        bound = least[app.id]
        entry = memo_of(problem).entries[app.id]
        terms = []
        for c in [*entry.candidates, Candidate(first.placements[app.id], 0.0)]:
            rec = app_record(cm, app, c.placement, problem.migration)
            if not isinstance(rec, list) and not rec.violations:
                terms.append(rec.term)  # meets its SLO there: a plan may hold it so
        if bound is None:
            assert not terms  # no placement of its meets its SLO: nothing to bound
            continue
        assert bound > 0 and all(bound <= t * (1 + 1e-9) for t in terms), (app.id, bound, terms)
        tight += min(terms, default=float("inf")) <= bound * (1 + 1e-6)
    assert tight >= len(least) // 2, tight
    # What the heuristic places, the apps no placement serves set aside.
    plan = place_what_fits(problem, OPTIONS, "heuristic").plan
    assert plan.evaluation is not None and plan.evaluation.records
    for a, rec in plan.evaluation.records.items():
        bound = least[a]
        assert bound is not None and bound <= rec.term * (1 + 1e-9)
    # Together, the sum; none for another solver, or for an app that no placement serves.
    both = [a for a, bound in least.items() if bound is not None][:2]
    assert partial.least_terms(problem, both) == pytest.approx(sum(least[a] or 0 for a in both))
    # In their order, each alone, until the sum is enough: the first one's bound here.
    assert partial.least_terms(problem, both, enough=(least[both[0]] or 0) / 2) == least[both[0]]
    assert partial.least_terms(problem, both, "ilp") is None
    out = _impossible(now, both[0])
    assert partial.least_terms(Problem(parse_scenario(out)), both) is None


def test_an_app_with_no_room_even_alone_is_set_aside_before_the_solve(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An app held where its camera's pack can no longer pay, which the own-pack bound does
    not prove (here: no proof at all), and for which the heuristic finds no room even on a
    fleet holding nothing else, is set aside by the per-app verdict with the reason the
    failing solve gives it: the same outcome, one solve fewer."""
    scn = generate(17, devices=90, apps=12, blocks=4)
    first = Problem(parse_scenario(scn))
    in_force = solve(first, OPTIONS, solver="heuristic").placements
    devices = first.cost.devices
    app = next(
        a for a in first.scenario.apps
        if (d := devices[a.source]).battery is not None and d.power_w.busy > d.power_w.idle
    )  # fmt: skip
    camera = first.cost.devices[app.source]
    assert camera.battery is not None
    # A pack with a thousandth of what the plan in force draws from it beside its idle.
    drawn = evaluate(first.cost, in_force).power_w[camera.id]
    usable_wh = (camera.power_w.idle + drawn * 1e-3) * first.scenario.horizon_h
    level = camera.battery.min_pct + usable_wh / camera.battery.capacity_wh * 100.0
    battery = {**camera.battery.model_dump(), "level_pct": level}
    change = Change(devices={camera.id: {"battery": battery}})
    problem = apply_change(first, change, in_force)
    monkeypatch.setattr(partial, "own_pack", lambda *args: None)
    monkeypatch.setattr(heuristic, "own_pack", lambda *args: None)
    monkeypatch.setattr(partial, "drained_source", lambda *args: None)
    solves = _counted_solves(monkeypatch)
    out = place_what_fits(problem, OPTIONS, "heuristic", previous=in_force, change=change)
    assert len(solves) == 1
    assert list(out.set_aside) == [app.id] and out.set_aside[app.id].code == Code.BATTERY

    solves.clear()
    monkeypatch.setattr(partial, "alone", lambda problem, apps: {})
    failing = place_what_fits(problem, OPTIONS, "heuristic", previous=in_force, change=change)
    assert len(solves) == 2  # one failing on it, then the rest
    assert out.set_aside == failing.set_aside
    assert out.plan.placements == failing.plan.placements
    assert out.plan.doc.objective == failing.plan.doc.objective

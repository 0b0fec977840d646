"""Serving degraded: the entries of the apps served degraded, evaluated on the re-plan's
own problem, are those of the scenario parsed once more; the scenario is left as it was."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

import solver
from orchestrator import degrade
from orchestrator.degrade import Degraded, serve_degraded
from simulate.traces import read_trace
from solver.generate import generate

TRACES = Path(__file__).resolve().parents[3] / "shared" / "traces"


def _under_trace(scenario: dict[str, Any], k: int, plan: solver.PlanDoc) -> dict[str, Any]:
    """Every camera uplink at the k-th figure of a real HSDPA trace, relative to its mean
    (the bench's scaling), a previous plan written in, two apps out of their limits: one
    whose SLO no placement meets, one whose camera's battery cannot last."""
    trace = read_trace(TRACES / "hsdpa-norway" / "norway_bus_1")
    ratio = float(trace.mbps[k]) / float(sum(trace.mbps) / len(trace.mbps))
    out = copy.deepcopy(scenario)
    cameras = {d["id"] for d in out["devices"] if d["tier"] == "device"}
    for link in out["links"]:
        if cameras & {link["a"], link["b"]}:
            link["mbps"] *= ratio
    out["apps"][5]["slo_ms"] = 1e-6
    camera = next(d for d in out["devices"] if d["id"] == out["apps"][1]["source"])
    camera["battery"] = {"capacity_wh": 1.0, "level_pct": 21.0, "min_pct": 20.0}
    # As the scenario builder writes the plan in force: migration is not the entries' part.
    keys = ("id", "model", "segments", "stages")
    apps = plan.model_dump(mode="json")["apps"]
    out["previous"] = {"apps": [{key: a[key] for key in keys if a.get(key)} for a in apps]}
    return out


def _fresh_entries(
    scenario: dict[str, Any], placements: dict[str, solver.Placement], degraded: Degraded
) -> list[solver.AppResult]:
    """The degraded apps' entries from the scenario parsed and routed afresh, with the
    apps served and no previous plan: the reference the re-plan's own problem must give."""
    real = {k: v for k, v in scenario.items() if k != "previous"}
    real["apps"] = [a for a in scenario["apps"] if a["id"] in placements]
    problem = solver.Problem(solver.parse_scenario(real))
    plan = solver.build_plan(problem.cost, placements, solver.Status.FEASIBLE, "degraded")
    entries = {r.id: r for r in plan.doc.apps}
    return [entries[a] for a in degraded.placements]


def test_entries_on_the_re_plans_problem_equal_a_fresh_parse() -> None:
    base = generate(9, devices=30, apps=8, blocks=4)
    base["objective"]["migration"] = 0.05
    first = solver.solve(solver.parse_scenario(base), solver.SolveOptions(time_limit_s=10))
    served = 0
    for k in (0, 40, 120):
        scn = _under_trace(base, k, first.doc)
        before = copy.deepcopy(scn)
        now = solver.Problem(solver.parse_scenario(scn))
        partial = solver.place_what_fits(now, solver.SolveOptions(time_limit_s=10))
        assert partial.set_aside
        args = (
            scn,
            partial.plan.placements,
            partial.set_aside,
            frozenset[str](),
            "heuristic",
            10.0,
        )
        mine = serve_degraded(*args, now)
        assert scn == before  # the relaxed copies wrote nothing into the scenario
        assert mine.placements and mine.reasons.keys() == mine.placements.keys()
        fresh = _fresh_entries(scn, {**partial.plan.placements, **mine.placements}, mine)
        assert [r.model_dump() for r in mine.results] == [r.model_dump() for r in fresh]
        assert all(r.migration_mb == 0 for r in mine.results)
        # Held where they run (a re-plan that keeps the plan in force), the same entries,
        # written when first read: after the problem's cached costs of them are gone.
        running = {**partial.plan.placements, **mine.placements}
        held = degrade.held_degraded(now, partial.plan.placements, partial.set_aside,
                                     frozenset(), running)  # fmt: skip
        assert held is not None and held.placements == mine.placements
        # On top of the caller's evaluation of the other apps (the screen's): the same.
        placed, ev = partial.plan.placements, partial.plan.evaluation
        assert ev is not None
        on_plan = degrade.held_degraded(now, placed, partial.set_aside, frozenset(), running, ev)
        assert on_plan is not None and on_plan.placements == held.placements
        assert on_plan.reasons == held.reasons
        for a in held.placements:
            now.app_costs.pop(a, None)
        assert [r.model_dump() for r in held.results] == [r.model_dump() for r in fresh]
        served += len(mine.placements)
    assert served >= 3


def test_a_second_app_out_of_its_limits_is_served_after_the_first() -> None:
    """Two apps set aside in one pass, one for an SLO no placement meets, one for a
    battery that cannot last: both are served degraded. The second's relaxed search holds
    the first with its SLO lifted too; held with its real SLO, the first broke every
    relaxed plan and the second was stopped after all."""
    base = generate(9, devices=30, apps=8, blocks=4)
    first = solver.solve(solver.parse_scenario(base), solver.SolveOptions(time_limit_s=10))
    scn = _under_trace(base, 0, first.doc)
    now = solver.Problem(solver.parse_scenario(scn))
    partial = solver.place_what_fits(now, solver.SolveOptions(time_limit_s=10))
    slo, battery = scn["apps"][5]["id"], scn["apps"][1]["id"]
    assert partial.set_aside[slo].code == solver.Code.SLO
    assert partial.set_aside[battery].code == solver.Code.BATTERY
    args = (scn, partial.plan.placements, partial.set_aside, frozenset[str](), "heuristic", 10.0)
    served = serve_degraded(*args, now)
    assert {slo, battery} <= served.placements.keys(), served.reasons
    by_id = {r.id: r for r in served.results}
    assert not by_id[slo].slo_met  # evaluated under the real scenario: out of its SLO


def test_a_relaxed_search_derived_from_the_last_finds_what_a_fresh_parse_finds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each relaxed search of a pass derives its problem from the last search's, the
    first from the last pass's last; what it serves, where and with which entries, is what
    parsing each search afresh serves."""
    base = generate(9, devices=30, apps=8, blocks=4)
    first = solver.solve(solver.parse_scenario(base), solver.SolveOptions(time_limit_s=10))
    real = degrade._Searches._derived
    derived: list[tuple[bool, bool]] = []  # (from the last pass, derived)

    def counted(self: Any, *args: Any, whole: bool) -> solver.Problem | None:
        problem = real(self, *args, whole=whole)
        derived.append((whole, problem is not None))
        return problem

    for k in (0, 40, 120):
        scn = _under_trace(base, k, first.doc)
        partial = solver.place_what_fits(
            solver.Problem(solver.parse_scenario(scn)), solver.SolveOptions(time_limit_s=10)
        )
        args = (scn, partial.plan.placements, partial.set_aside, frozenset[str](), "heuristic")
        monkeypatch.setattr(degrade._Searches, "_derived", counted)
        mine = serve_degraded(*args, 10.0, solver.Problem(solver.parse_scenario(scn)))
        monkeypatch.setattr(degrade._Searches, "_derived", lambda self, *a, whole: None)
        fresh = serve_degraded(*args, 10.0, solver.Problem(solver.parse_scenario(scn)))
        assert mine.placements and mine.placements == fresh.placements
        assert mine.reasons == fresh.reasons
        assert [r.model_dump() for r in mine.results] == [r.model_dump() for r in fresh.results]
    assert derived and all(ok for _, ok in derived)
    assert (True, True) in derived  # a pass's first search derived from the last pass's


def test_each_search_of_a_pass_re_places_what_its_own_judgement_would(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The apps a relaxed search re-places, found once a pass (the held apps that break
    their own limits, besides its own), are those `set_aside_first` finds for each
    search; among them a held app out of its SLO, so that the set is not empty."""
    base = generate(9, devices=30, apps=8, blocks=4)
    first = solver.solve(solver.parse_scenario(base), solver.SolveOptions(time_limit_s=10))
    scn = _under_trace(base, 40, first.doc)
    now = solver.Problem(solver.parse_scenario(scn))
    partial = solver.place_what_fits(now, solver.SolveOptions(time_limit_s=10))
    held = dict(partial.plan.placements)
    # An app held where its SLO cannot be met: every search re-places it.
    app = next(a for a in scn["apps"] if a["id"] in held)
    worst = solver.evaluate(now.cost, held).records[app["id"]].cost.worst_ms
    scn["apps"] = [{**a, "slo_ms": worst / 2} if a is app else a for a in scn["apps"]]
    real = solver.place_what_fits
    asked: list[tuple[set[str] | None, set[str] | None]] = []

    def checked(problem: solver.Problem, *args: Any, **kw: Any) -> solver.Partial:
        own = solver.set_aside_first(problem, args[1], kw["previous"], kw["change"], 0)
        asked.append((kw["before"].touched, own.touched))
        return real(problem, *args, **kw)

    monkeypatch.setattr(solver, "place_what_fits", checked)
    degrade._LAST.clear()
    served = serve_degraded(
        scn, held, partial.set_aside, frozenset[str](), "heuristic", 10.0,
        solver.Problem(solver.parse_scenario(scn)),
    )  # fmt: skip
    assert len(asked) >= 2 and all(mine == own for mine, own in asked)
    assert all(app["id"] in mine for mine, _ in asked if mine is not None)
    # A search that moves a held app serves nothing (only without their limits would it
    # be valid): the app out of its SLO moves in each.
    assert not served.placements


def test_apps_that_still_fit_where_they_run_stay_there_the_others_are_searched_for(
    searched: list[str],
) -> None:
    """Given the plan in force (`running`), an app set aside that still fits where it runs,
    battery and SLO lifted, stays there with no search; one whose placement there breaks
    a link is searched for, and served where the link holds (or not at all)."""
    base = generate(9, devices=30, apps=8, blocks=4)
    first = solver.solve(solver.parse_scenario(base), solver.SolveOptions(time_limit_s=10))
    running = first.placements
    cameras = {d["id"]: d for d in base["devices"] if d["tier"] == "device"}
    # Two apps on cameras of their own; the first sends its input off its camera.
    sends = [
        a for a in base["apps"]
        if a["source"] in cameras and running[a["id"]].hosts() != {a["source"]}
    ]  # fmt: skip
    x = sends[0]
    y = next(a for a in base["apps"] if a["source"] in cameras and a["source"] != x["source"])
    for broken in (False, True):
        scn = copy.deepcopy(base)
        for app in (x, y):
            camera = next(d for d in scn["devices"] if d["id"] == app["source"])
            camera["battery"] = {"capacity_wh": 1.0, "level_pct": 21.0, "min_pct": 20.0}
        if broken:  # the uplink x's placement sends over, down to a trickle
            uplink = next(lk for lk in scn["links"] if x["source"] in (lk["a"], lk["b"]))
            uplink["mbps"] = 1e-3
        now = solver.Problem(solver.parse_scenario(scn))
        partial = solver.place_what_fits(now, solver.SolveOptions(time_limit_s=10))
        assert {x["id"], y["id"]} <= partial.set_aside.keys()
        searched.clear()
        out = serve_degraded(
            scn, partial.plan.placements, partial.set_aside, frozenset(), "heuristic", 10.0,
            now, running,
        )  # fmt: skip
        assert out.placements.get(y["id"]) == running[y["id"]]
        if not broken:
            assert out.placements.get(x["id"]) == running[x["id"]] and searched == []
            continue
        assert x["id"] in searched and y["id"] not in searched
        assert out.placements.get(x["id"]) != running[x["id"]]
        served = {**partial.plan.placements, **out.placements}
        ev = solver.evaluate(now.cost, served)
        assert not [r for r in ev.found if r.code == solver.Code.BANDWIDTH]

"""Re-placement: a re-plan derives its problem from the last one it solved and gets
exactly what a fresh parse of the scenario gives; an app that fits nowhere is set aside."""

from __future__ import annotations

import copy
import gc
import math
from pathlib import Path
from typing import Any

import pytest
import yaml

import solver
from orchestrator import replacement, worker_cache
from orchestrator.replacement import Replacement, in_force
from simulate.traces import read_trace
from solver.generate import generate

ROOT = Path(__file__).resolve().parents[2]

TRACES = Path(__file__).resolve().parents[3] / "shared" / "traces"


def _with_previous(scenario: dict[str, Any], plan: Replacement) -> dict[str, Any]:
    """As the scenario builder writes it: the plan in force as `previous`."""
    out = copy.deepcopy(scenario)
    keys = ("id", "model", "segments", "stages")
    apps = plan.document["apps"]
    out["previous"] = {"apps": [{k: a[k] for k in keys if a.get(k)} for a in apps]}
    return out


def _replan(
    scenario: dict[str, Any],
    previous: dict[str, Any] | None,
    plan: Replacement | None,
    stop: frozenset[str] = frozenset(),
) -> Replacement:
    """As the planner calls it, with the plan in force `plan` solved from `previous`
    (`stop`: the deployments that ask to be stopped rather than served degraded)."""
    current = in_force(scenario, previous, plan.plan) if plan is not None else None
    return replacement.replan(scenario, current, "heuristic", 30, 0.05, stop=stop)


def _battery_drop(scenario: dict[str, Any], k: int) -> dict[str, Any]:
    out = copy.deepcopy(scenario)
    bat = [d for d in out["devices"] if d.get("battery")][k]["battery"]
    bat["level_pct"] = bat["min_pct"] + (bat["level_pct"] - bat["min_pct"]) * 0.3
    return out


@pytest.fixture(autouse=True)
def _empty_worker_cache() -> None:
    replacement._SOLVED.clear()


def test_a_replan_derived_from_the_last_problem_equals_a_fresh_one() -> None:
    first_scn = generate(7, devices=40, apps=15, blocks=6)
    first_scn["objective"]["migration"] = 0.02
    first = _replan(first_scn, None, None)
    running = first
    previous = first_scn
    for k in range(3):
        scn = _with_previous(_battery_drop(previous, k), running)
        derived = _replan(scn, previous, running)
        assert derived.derived_problem and derived.incremental
        cache = list(replacement._SOLVED)
        replacement._SOLVED.clear()
        fresh = _replan(scn, previous, running)
        replacement._SOLVED[:] = cache
        assert not fresh.derived_problem
        a, b = derived.plan, fresh.plan
        assert a.objective is not None and b.objective is not None
        assert math.isclose(a.objective, b.objective, rel_tol=1e-12)
        assert a.apps == b.apps and a.violations == b.violations
        assert (derived.apply, derived.decision) == (fresh.apply, fresh.decision)
        assert derived.current_objective is not None and fresh.current_objective is not None
        assert math.isclose(derived.current_objective, fresh.current_objective)
        if derived.apply:
            running = derived
        previous = scn


def test_a_scenario_in_another_order_or_with_an_id_twice_is_parsed_afresh() -> None:
    """The derived problem must be the one a fresh parse gives: devices in another order
    are not derived (the problem keeps the scenario's order), and a device twice in the
    document is not derived either (its index holds it once): the parse names it."""
    first_scn = generate(7, devices=40, apps=15, blocks=6)
    first = _replan(first_scn, None, None)
    shuffled = _with_previous(_battery_drop(first_scn, 0), first)
    shuffled["devices"] = shuffled["devices"][1:] + shuffled["devices"][:1]
    assert not _replan(shuffled, first_scn, first).derived_problem
    twice = _with_previous(_battery_drop(first_scn, 0), first)
    twice["devices"].append(copy.deepcopy(twice["devices"][-1]))
    with pytest.raises(solver.ScenarioError, match="duplicate"):
        _replan(twice, first_scn, first)


def test_a_replan_derives_from_the_last_replans_problem_and_equals_a_fresh_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Links moved one after another under one plan in force: each re-plan derives its
    problem from the last re-plan's (nearer than the plan in force's), and decides and
    scores as a fresh worker does."""
    first_scn = generate(7, devices=40, apps=15, blocks=6)
    first = _replan(first_scn, None, None)
    bases: list[solver.Problem] = []
    derive = replacement._derived_from

    def recording(base: solver.Problem, *args: Any) -> Any:
        bases.append(base)
        return derive(base, *args)

    monkeypatch.setattr(replacement, "_derived_from", recording)
    in_force_problem = replacement._SOLVED[-1].problem
    scn = first_scn
    for k in range(3):
        scn = copy.deepcopy(scn)
        scn["links"][k]["mbps"] = round(scn["links"][k]["mbps"] * 0.9, 3)
        scn = _with_previous(scn, first)
        bases.clear()
        derived = replacement.replan(
            scn, in_force(scn, first_scn, first.plan), "heuristic", 30, 0.05, targets=set()
        )
        assert derived.derived_problem and not derived.apply
        assert (bases[0] is in_force_problem) == (k == 0)  # from the second on, the last's
        cache = list(replacement._SOLVED)
        replacement._SOLVED.clear()
        fresh = replacement.replan(
            scn, in_force(scn, first_scn, first.plan), "heuristic", 30, 0.05, targets=set()
        )
        replacement._SOLVED[:] = cache
        assert not fresh.derived_problem
        assert (derived.apply, derived.decision) == (fresh.apply, fresh.decision)
        assert derived.document["apps"] == fresh.document["apps"]
        assert derived.current_objective is not None and fresh.current_objective is not None
        assert math.isclose(derived.current_objective, fresh.current_objective, rel_tol=1e-12)


def test_the_problem_in_force_is_found_by_its_document_or_by_a_copy_of_it() -> None:
    """The simulator hands back the very document a re-plan returned (found without a
    digest); a worker of the pool gets a pickled copy (found by its digest). Either way
    the problem is derived, and one of other content is not mistaken for it."""
    scn = generate(7, devices=40, apps=15, blocks=6)
    first = _replan(scn, None, None)
    drop = _with_previous(_battery_drop(scn, 0), first)
    assert first.scenario is scn
    assert [s.key for s in replacement._SOLVED] == [None]  # no digest made yet
    by_identity = _replan(drop, first.scenario, first)
    assert by_identity.derived_problem
    replacement._SOLVED[:] = [s for s in replacement._SOLVED if s.scenario is scn]
    by_content = _replan(drop, copy.deepcopy(scn), first)
    assert by_content.derived_problem
    timeless = [{k: v for k, v in r.document.items() if k != "solve_s"}
                for r in (by_content, by_identity)]  # fmt: skip
    assert timeless[0] == timeless[1]
    other = copy.deepcopy(scn)
    other["devices"][0]["gflops"] = float(other["devices"][0]["gflops"]) * 2
    replacement._SOLVED[:] = [s for s in replacement._SOLVED if s.scenario is scn]
    assert not _replan(drop, other, first).derived_problem


def test_a_device_added_is_parsed_afresh() -> None:
    scn = generate(8, devices=40, apps=10, blocks=5)
    first = _replan(scn, None, None)
    grown = copy.deepcopy(scn)
    extra = copy.deepcopy(next(d for d in scn["devices"] if d["tier"] == "edge"))
    extra["id"] = "edge-new"
    grown["devices"].append(extra)
    out = _replan(grown, scn, first)
    assert out.incremental and not out.derived_problem


def test_an_app_that_fits_nowhere_is_set_aside_and_the_rest_re_placed() -> None:
    """With `when_infeasible: stop`: the app set aside is not served."""
    scn = generate(9, devices=30, apps=8, blocks=4)
    stop = frozenset({"app-3"})
    first = _replan(scn, None, None)
    assert first.apply and first.unplaced == {}
    # app-3 now asks for a latency no placement has, and a battery drops: app-3 cannot
    # be placed, and the others still follow the battery.
    broken = _battery_drop(scn, 0)
    broken["apps"][3]["slo_ms"] = 1e-6
    broken = _with_previous(broken, first)
    out = _replan(broken, scn, first, stop)
    assert out.apply, out.decision
    assert out.degraded == {} and out.unplaced_codes == {"app-3": "slo"}
    assert list(out.unplaced) == ["app-3"] and "slo_ms" in out.unplaced["app-3"]
    assert [a["id"] for a in out.scenario["apps"]] == [
        a["id"] for a in broken["apps"] if a["id"] != "app-3"
    ]
    assert "app-3" not in {a.id for a in out.plan.apps}
    assert out.plan.status != "infeasible"

    # The same conditions again: the plan in force is the candidate; nothing flaps.
    again = _replan(broken, out.scenario, out, stop)
    assert not again.apply, again.decision
    assert list(again.unplaced) == ["app-3"]

    # The latency target made reachable again: app-3 is placed once more.
    fixed = copy.deepcopy(broken)
    fixed["apps"][3] = scn["apps"][3]
    back = _replan(fixed, out.scenario, out, stop)
    assert back.apply and back.unplaced == {}
    assert "app-3" in {a.id for a in back.plan.apps}


def test_an_app_out_of_its_slo_is_served_degraded_not_stopped() -> None:
    """The default (`when_infeasible: degrade`): the app set aside for its SLO keeps
    serving, its entry evaluated under the real scenario, and it is retried each re-plan."""
    scn = generate(9, devices=30, apps=8, blocks=4)
    first = _replan(scn, None, None)
    broken = copy.deepcopy(scn)
    broken["apps"][3]["slo_ms"] = 1e-6
    broken = _with_previous(broken, first)
    out = _replan(broken, scn, first)
    assert out.unplaced == {} and list(out.degraded) == ["app-3"]
    assert "slo_ms" in out.degraded["app-3"] and out.unplaced_codes == {"app-3": "slo"}
    entry = next(a for a in out.plan.apps if a.id == "app-3")
    assert entry.slo_met is False and entry.energy_j > 0
    # The plan's own status and objective are those of the apps placed within the limits.
    assert out.plan.status != "infeasible"
    assert "app-3" not in {a["id"] for a in out.scenario["apps"]}

    # Conditions unchanged: the plan in force (app-3 degraded where it runs) is kept.
    again = _replan(broken, out.scenario, out)
    assert not again.apply, again.decision
    assert list(again.degraded) == ["app-3"]


def test_re_plans_leave_nothing_for_the_cyclic_collector() -> None:
    """Every re-plan's problems, plans and documents are freed by reference counting: the
    solvers pause the cyclic collector and move what they made to its oldest generation
    (`solver.gcpause`), so a cycle among them stays in memory (a Fleet holding its problem
    made every problem one, and a worker grew by a megabyte a re-plan at 200 devices).
    The re-plans here derive problems, set an app aside on a fleet past the polish's size
    and serve it degraded, and put new plans in force."""
    scn = generate(21, devices=90, apps=12, blocks=4)
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        first = _replan(scn, None, None)
        broken = copy.deepcopy(scn)
        broken["apps"][3]["slo_ms"] = 1e-6
        broken = _with_previous(broken, first)
        out = _replan(broken, scn, first)
        assert list(out.degraded) == ["app-3"]
        again = _replan(_battery_drop(broken, 0), out.scenario, out)
        assert again.derived_problem
        replacement._SOLVED.clear()
        del first, out, again
        gc.collect()
        left = [type(o).__name__ for o in gc.garbage]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert left == []


def test_a_battery_that_cannot_last_even_idle_still_serves_its_camera() -> None:
    """A camera whose battery cannot last the horizon even idle takes no load, and its
    app (whose input it must send) fits nowhere within the limits: it is served degraded,
    and its placement puts no more on the camera than sending its input. (A plan that
    goes in force gets that search; a kept plan runs it where it ran: the next test.)"""
    scn = generate(9, devices=30, apps=8, blocks=4)
    first = _replan(scn, None, None)
    drained = copy.deepcopy(scn)
    app = drained["apps"][0]
    camera = next(d for d in drained["devices"] if d["id"] == app["source"])
    camera["battery"] = {"capacity_wh": 1.0, "level_pct": 21.0, "min_pct": 20.0}
    out = _replan(drained, None, None)
    assert out.apply and out.decision == "first plan"
    assert app["id"] in out.degraded and out.unplaced_codes[app["id"]] == "battery"
    assert app["id"] not in out.unplaced
    entry = next(a for a in out.plan.apps if a.id == app["id"])
    hosts = {s.device for s in entry.segments or []} | {s.device for s in entry.stages or []}
    assert camera["id"] not in hosts

    drained = _with_previous(drained, first)
    stopped = _replan(drained, scn, first, frozenset({app["id"]}))
    assert app["id"] in stopped.unplaced and app["id"] not in {a.id for a in stopped.plan.apps}


def test_an_app_set_aside_for_its_battery_alone_keeps_its_slo_where_it_can(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Served degraded for its battery, an app keeps its SLO where a placement meets it:
    the relaxed search lifts what it was set aside for. With the SLO lifted as well, the
    placement that drains batteries least misses it (268.4 ms against 267.6)."""
    from orchestrator import degrade

    scn = generate(9, devices=30, apps=8, blocks=4)
    drained = copy.deepcopy(scn)
    app = drained["apps"][6]
    camera = next(d for d in drained["devices"] if d["id"] == app["source"])
    camera["battery"] = {"capacity_wh": 1.0, "level_pct": 21.0, "min_pct": 20.0}

    def entry(out: Replacement) -> Any:
        assert out.unplaced_codes[app["id"]] == "battery" and app["id"] in out.degraded
        return next(a for a in out.plan.apps if a.id == app["id"])

    kept = entry(_replan(drained, None, None))
    assert kept.slo_met and kept.latency_ms.worst <= app["slo_ms"]
    search = degrade._relaxed_placement
    monkeypatch.setattr(degrade, "_relaxed_placement", lambda *args, keep_slo=False: search(*args))
    replacement._SOLVED.clear()
    lifted = entry(_replan(drained, None, None))
    assert not lifted.slo_met and lifted.latency_ms.worst > app["slo_ms"]


def _drained_camera(scn: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """`scn` with the first app's camera on a pack that cannot last even idle."""
    drained = copy.deepcopy(scn)
    app = drained["apps"][0]
    camera = next(d for d in drained["devices"] if d["id"] == app["source"])
    camera["battery"] = {"capacity_wh": 1.0, "level_pct": 21.0, "min_pct": 20.0}
    return drained, app["id"]


def _slo_out_of_reach(scn: dict[str, Any]) -> tuple[dict[str, Any], str]:
    broken = copy.deepcopy(scn)
    broken["apps"][3]["slo_ms"] = 1e-6
    return broken, broken["apps"][3]["id"]


@pytest.mark.parametrize("setup", [_drained_camera, _slo_out_of_reach], ids=["battery", "slo"])
def test_a_kept_plan_holds_an_app_served_degraded_where_it_runs_without_a_search(
    setup: Any, monkeypatch: pytest.MonkeyPatch, searched: list[str]
) -> None:
    """An app set aside (for its battery or its SLO) that the plan in force serves
    degraded: a re-plan that keeps that plan judges it where it runs, with no relaxed
    search, and decides as the search would have (whether it is served decides, not
    where)."""
    from orchestrator import degrade

    scn = generate(9, devices=30, apps=8, blocks=4)
    changed, app_id = setup(scn)
    first = _replan(changed, None, None)
    assert list(first.degraded) == [app_id]
    scn = first.scenario  # solved from: the apps it placed within their limits
    changed = _with_previous(changed, first)
    searched.clear()

    kept = _replan(changed, scn, first)
    assert not kept.apply, kept.decision
    assert searched == [] and list(kept.degraded) == [app_id]
    held = next(a for a in kept.document["apps"] if a["id"] == app_id)
    running = next(a for a in first.document["apps"] if a["id"] == app_id)
    assert (held.get("segments"), held.get("stages")) == (
        running.get("segments"), running.get("stages"),
    )  # fmt: skip

    # The same re-plan made with the search, as before: the same decision.
    replacement._SOLVED.clear()
    monkeypatch.setattr(replacement, "held_degraded", lambda *args: None)
    monkeypatch.setattr(degrade, "_where_they_run", lambda *args: {})
    searching = _replan(changed, scn, first)
    assert searched == [app_id]
    assert (searching.apply, searching.decision) == (kept.apply, kept.decision)
    assert list(searching.degraded) == list(kept.degraded)


def test_a_candidate_that_goes_in_force_holds_an_app_served_degraded_where_it_runs(
    searched: list[str],
) -> None:
    """A candidate applied (here an operator's solve, applied whatever the margin) holds
    an app the plan in force serves degraded where it runs it, with no relaxed search, as
    long as it still fits there; one set aside for its battery alone that misses its SLO
    where it runs is searched for, since the search first tries where the SLO is met."""

    scn = generate(9, devices=30, apps=8, blocks=4)
    for setup, missed in ((_slo_out_of_reach, False), (_drained_camera, False),
                          (_drained_camera, True)):  # fmt: skip
        replacement._SOLVED.clear()
        changed, app_id = setup(scn)
        first = _replan(changed, None, None)
        running = next(a for a in first.document["apps"] if a["id"] == app_id)
        changed = _with_previous(changed, first)  # a copy: `first` was solved from it
        if missed:  # an SLO it misses where it runs, and that another placement meets
            app = next(a for a in changed["apps"] if a["id"] == app_id)
            app["slo_ms"] = 0.9 * running["latency_ms"]["worst"]
        current = in_force(changed, first.scenario, first.plan)
        searched.clear()
        out = replacement.replan(changed, current, "heuristic", 30, 0.05, force=True)
        assert out.apply and list(out.degraded) == [app_id], out.decision
        assert out.unplaced_codes[app_id] == ("battery" if setup is _drained_camera else "slo")
        assert searched == ([app_id] if missed else []), (setup.__name__, missed)
        served = next(a for a in out.document["apps"] if a["id"] == app_id)
        where = (served.get("segments"), served.get("stages"))
        assert (where == (running.get("segments"), running.get("stages"))) is not missed
        if missed:
            assert served["slo_met"] is True


def _cam2_at(scenario: dict[str, Any], level_pct: float) -> dict[str, Any]:
    out = copy.deepcopy(scenario)
    next(d for d in out["devices"] if d["id"] == "cam-2")["battery"]["level_pct"] = level_pct
    return out


def _weld2_hosts(out: Replacement) -> set[str]:
    return {s.device for a in out.plan.apps if a.id == "weld-2" for s in a.segments or []}


@pytest.mark.parametrize("searches", [True, False], ids=["searched", "held-as-before"])
def test_an_app_set_aside_now_runs_degraded_where_the_whole_plan_costs_least(
    searches: bool, monkeypatch: pytest.MonkeyPatch, searched: list[str]
) -> None:
    """The example fleet's calm day, in three re-plans. cam-2 (50 Wh, min 20%, idle
    2.5 W, 8 h) pays 0.36 W for `weld-2`'s frames to the cloud; at 65.3% its budget is
    0.331 W, and the plan in force breaks it, so `weld-2` goes to edge-a (0.30 W from
    cam-2, 2.15 W more on edge-a). At 64% (0.25 W) no placement keeps the pack: set aside
    now, `weld-2` is searched for, and the candidate runs it degraded in the cloud again,
    which costs the whole plan far less than edge-a: applied. Held where it ran (as
    before `newly_aside`), it stayed on edge-a to the end of the day."""
    from orchestrator import degrade

    if not searches:
        monkeypatch.setattr(replacement, "newly_aside", lambda *args: frozenset())
    scenario = yaml.safe_load((ROOT / "examples" / "factory-line.yaml").read_text())
    first = _replan(scenario, None, None)
    assert _weld2_hosts(first) == {"cloud-gpu"}
    mid_scn = _with_previous(_cam2_at(scenario, 65.3), first)
    mid = _replan(mid_scn, first.scenario, first)
    assert mid.apply and mid.decision.startswith(
        "the plan in force breaks a constraint: device cam-2"
    )
    assert _weld2_hosts(mid) == {"edge-a"} and "weld-2" not in mid.degraded
    searched.clear()
    low = _replan(_with_previous(_cam2_at(scenario, 64.0), mid), mid.scenario, mid)
    assert low.unplaced_codes["weld-2"] == "battery" and "weld-2" in low.degraded
    if not searches:
        assert not low.apply and searched == []
        assert _weld2_hosts(low) == {"edge-a"}
        return
    assert low.apply and low.decision.startswith("set aside now, weld-2 runs degraded"), (
        low.decision
    )
    assert searched == ["weld-2"] and _weld2_hosts(low) == {"cloud-gpu"}
    # The whole plan, as the rule weighs it: the candidate's objective and the terms of
    # weld-2 where each runs it (migration from the plan in force included).
    now = solver.Problem(solver.parse_scenario(_with_previous(_cam2_at(scenario, 64.0), mid)))
    layers = replacement.layers_of(scenario)
    on_edge = replacement.placements_of(layers, mid.plan.apps)["weld-2"]
    in_cloud = replacement.placements_of(layers, low.plan.apps)["weld-2"]
    assert degrade.terms_of(now, {"weld-2": in_cloud}) < 0.5 * degrade.terms_of(
        now, {"weld-2": on_edge}
    )

    # Set aside where it runs at its least (the cloud, straight from the first plan):
    # no move could gain the margin, so it is held there with no search.
    replacement._SOLVED.clear()
    searched.clear()
    direct = _replan(_with_previous(_cam2_at(scenario, 64.0), first), first.scenario, first)
    assert "weld-2" in direct.degraded and not direct.apply, direct.decision
    assert searched == [] and _weld2_hosts(direct) == {"cloud-gpu"}


def test_a_plan_in_force_whose_degraded_app_breaks_a_link_goes() -> None:
    """An app set aside for its drained pack runs where the plan in force put it, and the
    uplink it sends its input over falls under what it sends. The plan in force is judged
    without the apps set aside, so it looked whole and was kept, the link broken for as
    long as the figure stayed low; it breaks the link, so it goes, and the app is served
    where the link holds (or not at all)."""
    scn = generate(9, devices=30, apps=8, blocks=4)
    first = _replan(scn, None, None)
    drained = copy.deepcopy(scn)
    # An app that sends its input off its camera.
    app = next(a for a in drained["apps"] if set(_hosts(first, a["id"])) != {a["source"]})
    app_id = app["id"]
    camera = next(d for d in drained["devices"] if d["id"] == app["source"])
    camera["battery"] = {"capacity_wh": 1.0, "level_pct": 21.0, "min_pct": 20.0}
    uplink = next(lk for lk in drained["links"] if app["source"] in (lk["a"], lk["b"]))
    uplink["mbps"] = 1e-3
    now = _with_previous(drained, first)
    out = _replan(now, scn, first)
    assert any(b.startswith(f"link {uplink['a']}-{uplink['b']}: bandwidth") for b in out.broken)
    assert out.apply, out.decision
    assert app_id in out.degraded or app_id in out.unplaced
    # What goes in force, the apps served degraded included, keeps every link.
    problem = solver.Problem(solver.parse_scenario(now))
    layers = {m["id"]: [b["name"] for b in m["layers"]] for m in now["models"]}
    served = replacement.placements_of(layers, out.plan.apps)
    assert app_id not in out.degraded or app_id in served
    ev = solver.evaluate(problem.cost, served, require_all=False)
    assert not [r for r in ev.found if r.code == solver.Code.BANDWIDTH], ev.violations


def test_the_plan_in_force_turns_into_one_device_per_block() -> None:
    scn = generate(10, devices=12, apps=4, blocks=5)
    first = _replan(scn, None, None)
    current = in_force(scn, scn, first.plan)
    layers = {m["id"]: [b["name"] for b in m["layers"]] for m in scn["models"]}
    assert current.apps == {a.id for a in first.plan.apps}
    for app in first.plan.apps:
        placed = current.placements[app.id]
        if app.segments:
            assert placed.model == app.model and placed.blocks is not None
            names = layers[app.model or ""]
            assert len(placed.blocks) == len(names)
            for seg in app.segments:
                span = placed.blocks[names.index(seg.first) : names.index(seg.last) + 1]
                assert set(span) == {seg.device}
        else:
            assert placed.stages == tuple(s.device for s in app.stages or [])


def _uplink_at(scenario: dict[str, Any], mbps: float) -> tuple[dict[str, Any], tuple[str, str]]:
    """The scenario with the uplink of the first app's camera at `mbps` (a bandwidth move
    alone: the link's rtt as it was)."""
    out = copy.deepcopy(scenario)
    source = out["apps"][0]["source"]
    link = next(lk for lk in out["links"] if source in (lk["a"], lk["b"]))
    link["mbps"] = mbps
    return out, (link["a"], link["b"])


def test_a_bandwidth_move_changes_the_bandwidth_alone() -> None:
    """The change names only the fields that moved: a link whose bandwidth alone moved
    cannot re-route (`solver.Change.reroutes`), so routes and costs carry over."""
    scn = generate(7, devices=40, apps=15, blocks=6)
    moved, pair = _uplink_at(scn, _trace_figures(3)[1])
    change = replacement.change_between(scn, moved)
    assert dict(change.links) == {pair: {"mbps": _trace_figures(3)[1]}}
    assert not change.reroutes()
    # A field dropped from a record hands on the whole record (a change removes none).
    dropped = copy.deepcopy(moved)
    lk = next(lk for lk in dropped["links"] if (lk["a"], lk["b"]) == pair)
    lk.pop("j_per_mb", None)
    lk["rtt_ms"] = lk["rtt_ms"] + 1.0
    assert replacement.change_between(scn, dropped).links[pair] == lk


def test_a_change_is_the_same_from_the_index_kept_for_a_document_and_from_a_copy() -> None:
    """`change_between` reads each document's records by id from an index kept for the
    very document (a re-plan compares the plan in force's with the scenario of now at
    every re-plan): the change is the one a copy of it, indexed afresh, gives."""
    scn = generate(7, devices=40, apps=15, blocks=6)
    moved, pair = _uplink_at(scn, _trace_figures(3)[1])
    moved["devices"][3] = {**moved["devices"][3], "gflops": moved["devices"][3]["gflops"] * 2}
    first = replacement.change_between(scn, moved)
    assert worker_cache.index_of(scn) is worker_cache.index_of(scn)
    assert worker_cache.index_of(copy.deepcopy(scn)) is not worker_cache.index_of(scn)
    again = replacement.change_between(scn, moved)
    fresh = replacement.change_between(copy.deepcopy(scn), copy.deepcopy(moved))
    assert first == again == fresh
    assert set(first.devices) == {moved["devices"][3]["id"]} and set(first.links) == {pair}
    # Indexes are kept for the last few documents alone.
    for _ in range(worker_cache.KEEP_INDEXES + 1):
        worker_cache.index_of(copy.deepcopy(scn))
    assert all(ix.doc is not scn for ix in worker_cache.INDEXES)


def _in_a_fresh_worker(
    scenario: dict[str, Any], previous: dict[str, Any] | None, plan: Replacement
) -> Replacement:
    """`_replan` with nothing in the worker's cache, which is then as it was."""
    kept = list(replacement._SOLVED)
    replacement._SOLVED.clear()
    try:
        return _replan(scenario, previous, plan)
    finally:
        replacement._SOLVED[:] = kept


def _trace_figures(n: int) -> list[float]:
    """The first `n` figures of a real HSDPA trace (Mbit/s)."""
    trace = read_trace(TRACES / "hsdpa-norway" / "norway_bus_1")
    return [float(m) for m in trace.mbps[:n]]


def test_a_bandwidth_move_re_places_the_apps_at_that_link_alone_cache_or_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After a camera's uplink moves (figures of a real trace), only the apps whose
    transfers cross it or that run, start or end at its ends are re-placed, whether the
    worker derives the problem from the one it solved last or parses the scenario afresh;
    both come to the same plan and decision.
    (A change carrying the link's whole record looked like a possible re-route, and a
    fresh parse then re-placed every app.) Every re-plan solves here: the screen would
    spare these solves, their touched apps being at their bounds already."""
    monkeypatch.setattr(replacement, "kept_as_is", lambda *a, **k: None)
    scn = generate(7, devices=40, apps=15, blocks=6)
    first = _replan(scn, None, None)
    assert first.apply
    previous, running = scn, first
    for mbps in _trace_figures(4):
        now, _ = _uplink_at(previous, mbps)
        now = _with_previous(now, running)
        derived = _replan(now, previous, running)
        fresh = _in_a_fresh_worker(now, previous, running)
        assert derived.derived_problem and not fresh.derived_problem
        for out in (derived, fresh):
            assert out.incremental
            resolved = (out.plan.stats or {})["resolved_apps"]
            assert isinstance(resolved, int) and 0 < resolved < len(scn["apps"])
        assert derived.plan.apps == fresh.plan.apps
        assert (derived.apply, derived.decision) == (fresh.apply, fresh.decision)
        if fresh.apply:
            running = fresh
        previous = now


def test_of_the_links_that_moved_only_those_that_fired_re_place_their_apps() -> None:
    """Two cameras' uplinks moved since the plan in force; the reconcile loop's watch
    fired for one. Both figures are in the scenario of now, but only the apps of the link
    that fired are re-placed: the other camera's apps stay where they run. Without
    `targets` (an operator's solve) both links' apps are."""
    scn = generate(7, devices=40, apps=15, blocks=6)
    first = _replan(scn, None, None)
    assert first.apply
    moved, pair = _uplink_at(scn, 0.5)
    ends = set(pair)
    other = next(
        a for a in scn["apps"]
        if not ends & {a["source"], a.get("sink", a["source"])}
        and not ends & set(_hosts(first, a["id"]))
    )  # fmt: skip
    link = next(lk for lk in moved["links"] if other["source"] in (lk["a"], lk["b"]))
    assert not ends & {link["a"], link["b"]}
    link["mbps"] = link["mbps"] * 0.5
    now = _with_previous(moved, first)
    current = in_force(now, scn, first.plan)
    named = {"~".join(sorted(pair))}
    fired = replacement.replan(now, current, "heuristic", 30, 0.05, targets=named)
    replacement._SOLVED.clear()
    every = replacement.replan(now, current, "heuristic", 30, 0.05)
    assert fired.incremental and every.incremental
    resolved = [(out.plan.stats or {})["resolved_apps"] for out in (fired, every)]
    assert 0 < resolved[0] < resolved[1], resolved
    # Held where it runs, as the plan in force has it (whether or not the candidate is
    # applied, it is the candidate's placement of that app).
    kept = {a.id: a for a in fired.plan.apps}[other["id"]]
    was = {a.id: a for a in first.plan.apps}[other["id"]]
    assert (kept.model, kept.segments, kept.stages) == (was.model, was.segments, was.stages)


def test_of_the_batteries_that_drained_only_those_that_fired_re_place_their_apps() -> None:
    """Every pack drained a few points since the plan in force (under the watch's step);
    one pack's watch fired. The levels of now are in the scenario, but only the apps
    using the device whose battery fired are re-placed; with no battery named, none is,
    and without `targets` (an operator's solve) every drained pack's apps are. A device
    changed in more than its level moves its apps whatever fired."""
    scn = generate(7, devices=40, apps=15, blocks=6)
    first = _replan(scn, None, None)
    assert first.apply
    drained = copy.deepcopy(scn)
    packs = [d for d in drained["devices"] if d.get("battery")]
    sources = {a["source"] for a in scn["apps"]}
    packs = [d for d in packs if d["id"] in sources]
    assert len(packs) >= 3
    for d in packs:
        d["battery"]["level_pct"] -= 2.0
    now = _with_previous(drained, first)
    current = in_force(now, scn, first.plan)

    def resolved(targets: set[str] | None, scenario: dict[str, Any] = now) -> int:
        replacement._SOLVED.clear()
        # With no margin, a re-plan that moves an app is solved (`orchestrator.screen`).
        out = replacement.replan(scenario, current, "heuristic", 30, 0.0, targets=targets)
        assert out.incremental
        n = (out.plan.stats or {}).get("resolved_apps", 0)
        assert isinstance(n, int)
        return n

    one, none, every = resolved({packs[0]["id"]}), resolved(set()), resolved(None)
    assert none < one < every, (none, one, every)
    faster = copy.deepcopy(now)
    d = next(d for d in faster["devices"] if d["id"] == packs[1]["id"])
    d["gflops"] = d["gflops"] * 2
    assert resolved(set(), faster) > none
    # The rule itself: the level alone moved, or more.
    change = replacement.change_between(scn, faster)
    kept = replacement.what_fired(change, {packs[0]["id"]}, scn).devices
    assert set(kept) == {packs[0]["id"], packs[1]["id"]}


def _hosts(plan: Replacement, app_id: str) -> list[str]:
    app = {a.id: a for a in plan.plan.apps}[app_id]
    return [s.device for s in app.segments or []] + [s.device for s in app.stages or []]


def test_a_plan_solved_with_an_app_set_aside_is_derived_from_at_the_next_replan() -> None:
    """The plan in force was solved without an app set aside (its scenario lacks it), and
    the next re-plan's change adds it back: the problem is still derived (from the one
    of the scenario it was set aside from), and the plan and decision are a fresh one's."""
    scn = generate(9, devices=30, apps=8, blocks=4)
    scn["apps"][3]["slo_ms"] = 1e-6
    first = _replan(scn, None, None)
    assert first.apply and list(first.degraded) == ["app-3"]
    previous, running = scn, first
    for mbps in _trace_figures(3):
        now, _ = _uplink_at(previous, mbps)
        now = _with_previous(now, running)
        derived = _replan(now, running.scenario, running)
        assert derived.derived_problem, "parsed afresh"
        fresh = _in_a_fresh_worker(now, running.scenario, running)
        assert not fresh.derived_problem
        assert derived.plan.apps == fresh.plan.apps
        assert (derived.apply, derived.decision) == (fresh.apply, fresh.decision)
        assert list(derived.degraded) == list(fresh.degraded) == ["app-3"]
        if fresh.apply:
            running = fresh
        previous = now

"""`solver.ownpack`: an app its own source's battery cannot pay for is its own fault, so a
re-solve does not re-place every app to find that out."""

from __future__ import annotations

from typing import Any

import pytest

from solver import Code, Problem, SolveOptions, Status, heuristic, partial, solve
from solver.evaluate import app_cost
from solver.fastcost import Fleet, candidate_routes
from solver.generate import generate
from solver.incremental import Change, apply_change, resolve, touched_apps
from solver.ownpack import _least_j_per_mb, drained_source, own_pack
from solver.partial import alone, place_what_fits
from solver.scenario import parse_scenario
from tests.solver.test_heuristic_battery import _fleet

# Below what even the first cut of squeezenet needs from g000-cam-1 (the exact model finds
# no plan of that group: tests/solver/test_heuristic_battery.py).
TOO_LOW_PCT = 41.0


def _drained(problem: Problem, level: float) -> Change:
    bat = problem.cost.devices["g000-cam-1"].battery
    assert bat is not None
    return Change(devices={"g000-cam-1": {"battery": {**bat.model_dump(), "level_pct": level}}})


def _verdict(problem: Problem, app_id: str) -> object:
    fleet = Fleet(problem)
    app = problem.cost.apps[app_id]
    routes = candidate_routes(fleet, app, [fleet.index[h] for h in problem.hosts(app)])
    return own_pack(problem, fleet, app, routes, fleet.capacity)


def _count_solves(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The outcome of each solve `place_what_fits` makes from now on."""
    calls: list[str] = []

    def counted(*args: object, **kwargs: object) -> object:
        plan = resolve(*args, **kwargs)  # type: ignore[arg-type]
        calls.append(plan.status.value)
        return plan

    monkeypatch.setattr(partial, "resolve", counted)
    return calls


def test_a_pack_too_low_for_any_placement_is_the_apps_own_fault() -> None:
    raw = _fleet(1, set())
    raw["devices"][0]["battery"]["level_pct"] = TOO_LOW_PCT
    problem = Problem(parse_scenario(raw))
    assert solve(problem, SolveOptions(), solver="ilp").status == Status.INFEASIBLE
    why = _verdict(problem, "g000-vision")
    assert why is not None and why.alone and why.app == "g000-vision"  # type: ignore[attr-defined]
    assert "battery of g000-cam-1" in why.message  # type: ignore[attr-defined]
    assert alone(problem, ["g000-vision", "g000-vision-2"]) == {"g000-vision": why}
    # Where a plan exists, nothing is proven: the drained level the other tests place.
    raw["devices"][0]["battery"]["level_pct"] = 41.7
    placeable = Problem(parse_scenario(raw))
    assert solve(placeable, SolveOptions(), solver="ilp").status == Status.OPTIMAL
    assert _verdict(placeable, "g000-vision") is None
    assert alone(placeable, ["g000-vision"]) == {}


def test_a_re_solve_does_not_re_place_every_app_for_an_apps_own_pack() -> None:
    # Ten groups (past the exact polish): the pack of group 0's first camera drains under
    # the plan in force below what its app needs anywhere.
    problem = Problem(parse_scenario(_fleet(10, set())))
    first = solve(problem, SolveOptions(), solver="heuristic")
    assert first.status == Status.FEASIBLE
    change = _drained(problem, TOO_LOW_PCT)
    new = apply_change(problem, change, first.placements)
    plan = resolve(new, first.placements, change)
    assert plan.status == Status.INFEASIBLE
    assert plan.reason is not None and plan.reason.alone and plan.reason.app == "g000-vision"
    # Held apps stayed held: the solve that failed re-placed only the apps the change touched.
    assert plan.doc.stats is not None
    assert int(plan.doc.stats["resolved_apps"]) < len(new.cost.apps)


def test_an_app_set_aside_for_its_own_pack_is_set_aside_again_before_the_solve(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The plan in force set the app aside; a re-solve for another change adds it back,
    and the per-app verdict sets it aside before the solve, which then fails on nothing
    (one solve where it took two: one failing on the app, one without it)."""
    raw = _fleet(10, set())
    raw["devices"][0]["battery"]["level_pct"] = TOO_LOW_PCT
    problem = Problem(parse_scenario(raw))
    first = place_what_fits(problem, SolveOptions(), "heuristic")
    assert set(first.set_aside) == {"g000-vision"} and first.set_aside["g000-vision"].alone
    calls = _count_solves(monkeypatch)
    change = Change(links={("g005-cam-1", "g005-edge"): {"mbps": 30.0}})
    new = apply_change(problem, change, first.plan.placements)
    again = place_what_fits(
        new, SolveOptions(), "heuristic", previous=first.plan.placements, change=change
    )
    assert again.plan.status == Status.FEASIBLE
    assert set(again.set_aside) == {"g000-vision"} and again.set_aside["g000-vision"].alone
    assert calls == ["feasible"]


def test_an_app_held_where_its_own_pack_cannot_pay_is_re_placed_and_set_aside_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The plan in force holds the app on a pack that has since drained below what the app
    draws alone: like an app that breaks its SLO, it breaks every plan that holds it, so a
    re-solve for an unrelated change re-places it (`touched_apps`), and the per-app verdict
    sets it aside before the solve."""
    healthy = Problem(parse_scenario(_fleet(10, set())))
    first = solve(healthy, SolveOptions(), solver="heuristic")
    assert first.status == Status.FEASIBLE
    raw = _fleet(10, set())
    raw["devices"][0]["battery"]["level_pct"] = TOO_LOW_PCT
    drained = Problem(parse_scenario(raw))
    change = Change(links={("g005-cam-1", "g005-edge"): {"mbps": 30.0}})
    new = apply_change(drained, change, first.placements)
    assert "g000-vision" in touched_apps(new, first.placements, change)
    calls = _count_solves(monkeypatch)
    again = place_what_fits(
        new, SolveOptions(), "heuristic", previous=first.placements, change=change
    )
    assert again.plan.status == Status.FEASIBLE
    assert set(again.set_aside) == {"g000-vision"} and again.set_aside["g000-vision"].alone
    assert calls == ["feasible"]


def test_a_cascade_whose_stages_cost_its_source_more_than_its_pack_pays() -> None:
    """A cascade's stages each read their own host, so the least its source pays is the
    sum of each stage's least: proven where `ilp` finds no plan, silent where it finds
    one. app-19 of the generated fleet is a cascade sourced at dev-105."""
    raw = generate(7, devices=200, apps=100)
    raw["apps"] = [a for a in raw["apps"] if a["id"] == "app-19"]
    healthy = Problem(parse_scenario(raw))
    app = healthy.cost.apps["app-19"]
    assert app.cascade is not None and app.source == "dev-105"
    plan = solve(healthy, SolveOptions(), solver="heuristic")
    draw = app.rate_rps * app_cost(healthy.cost, app, plan.placements["app-19"]).joules["dev-105"]
    dev = healthy.cost.devices["dev-105"]
    assert dev.battery is not None
    for share, placeable in ((0.9, True), (0.5, False)):
        # The level at which the pack pays `share` of what the plan drew from it.
        level = dev.battery.min_pct + (
            (dev.power_w.idle + share * draw) * healthy.scenario.horizon_h
            / dev.battery.capacity_wh * 100
        )  # fmt: skip
        (doc,) = [d for d in raw["devices"] if d["id"] == "dev-105"]
        doc["battery"]["level_pct"] = level
        problem = Problem(parse_scenario(raw))
        exact = solve(problem, SolveOptions(), solver="ilp")
        assert (exact.status == Status.OPTIMAL) is placeable, (share, exact.status)
        why = _verdict(problem, "app-19")
        assert (why is None) is placeable, (share, why)


def test_a_pack_at_its_floor_is_refused_by_the_first_blocks_terms_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A pack at its floor pays nothing beside its idle draw. What its source pays for the
    first block wherever it runs bounds every placement from below, so the verdict needs
    no SLO DP, and it is the DP's verdict (ilp finds no plan)."""
    from solver import ownpack

    raw = _fleet(1, set())
    bat = raw["devices"][0]["battery"]
    bat["level_pct"] = bat["min_pct"]
    problem = Problem(parse_scenario(raw))
    assert solve(problem, SolveOptions(), solver="ilp").status == Status.INFEASIBLE
    dps: list[object] = []
    dp = ownpack.slo_paths

    def counted(*args: object) -> object:
        dps.append(args)
        return dp(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(ownpack, "slo_paths", counted)
    why = _verdict(problem, "g000-vision")
    assert why is not None and why.alone and "battery of g000-cam-1" in why.message  # type: ignore[attr-defined]
    assert dps == []
    # Where the first block's terms do not prove it, the DP runs: the too-low level above.
    raw["devices"][0]["battery"]["level_pct"] = TOO_LOW_PCT
    assert _verdict(Problem(parse_scenario(raw)), "g000-vision") is not None
    assert dps


def _floor_pct(raw: dict[str, Any], device: str) -> float:
    """The level at which `device`'s pack pays exactly its idle draw over the horizon."""
    d = next(d for d in raw["devices"] if d["id"] == device)
    bat, idle = d["battery"], d["power_w"]["idle"]
    return float(bat["min_pct"] + idle * raw["horizon_h"] / bat["capacity_wh"] * 100.0)


def test_an_app_whose_source_pays_nothing_is_proven_without_its_candidates(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    raw = _fleet(1, set())
    raw["devices"][0]["battery"]["level_pct"] = _floor_pct(raw, "g000-cam-1") - 1.0
    problem = Problem(parse_scenario(raw))
    assert problem.cost.battery_limit_w("g000-cam-1") == 0.0
    why = drained_source(problem, "g000-vision")
    assert why is not None and why.alone and why.code == Code.BATTERY
    assert "battery of g000-cam-1" in why.message and "pays nothing" in why.message
    got = alone(problem, ["g000-vision-2", "g000-vision"])
    assert got == {"g000-vision": why}
    # The candidates say the same (the proof over them, with this one taken out).
    monkeypatch.setattr(partial, "drained_source", lambda *a: None)
    slow = alone(problem, ["g000-vision-2", "g000-vision"])
    assert slow.keys() == got.keys() and slow["g000-vision"].code == Code.BATTERY
    assert solve(problem, SolveOptions(), solver="ilp").status == Status.INFEASIBLE


def test_a_source_that_pays_something_or_sends_for_free_is_left_to_the_candidates() -> None:
    raw = _fleet(1, set())
    floor = _floor_pct(raw, "g000-cam-1")
    raw["devices"][0]["battery"]["level_pct"] = floor + 1.0  # some budget left
    assert drained_source(Problem(parse_scenario(raw)), "g000-vision") is None
    raw["devices"][0]["battery"]["level_pct"] = floor - 1.0
    for lk in raw["links"]:
        if "g000-cam-1" in (lk["a"], lk["b"]):
            lk["j_per_mb"] = 0.0  # sending costs the pack nothing: not proven here
    assert drained_source(Problem(parse_scenario(raw)), "g000-vision") is None


def test_alone_answers_in_scenario_order_whichever_way_each_was_proven() -> None:
    raw = _fleet(3, set())
    raw["devices"][0]["battery"]["level_pct"] = TOO_LOW_PCT  # g000-cam-1: over candidates
    fast = next(d for d in raw["devices"] if d["id"] == "g002-cam-1")
    fast["battery"]["level_pct"] = _floor_pct(raw, "g002-cam-1") - 1.0  # pays nothing
    problem = Problem(parse_scenario(raw))
    got = alone(problem, ["g002-vision", "g000-vision"])
    assert list(got) == ["g000-vision", "g002-vision"]  # the scenario's order
    assert drained_source(problem, "g000-vision") is None
    assert drained_source(problem, "g002-vision") == got["g002-vision"]


def test_the_bounds_kept_on_the_routes_give_the_verdict_of_fresh_ones_whatever_the_pack_pays() -> (
    None
):
    """`own_pack` keeps what the source pays at least on the app's candidate routes, which
    a re-plan carries to the next: what the pack pays is read afresh at every call."""
    problem = Problem(parse_scenario(generate(7, devices=200, apps=100)))
    st = heuristic._State(problem, SolveOptions())  # each app's candidate hosts
    fleet = st.fleet
    verdicts = set()
    for e in st.apps.values():
        app = e.app
        if problem.cost.battery_limit_w(app.source) is None:
            continue
        for pays in (0.0, 1e-3, 0.05, 0.5, 5.0):
            cap = fleet.capacity.copy()
            cap[2 * fleet.n + fleet.index[app.source]] = pays
            fresh = candidate_routes(fleet, app, e.routes.hosts, upward_only=not e.complete)
            mine = own_pack(problem, fleet, app, e.routes, cap)
            assert mine == own_pack(problem, fleet, app, fresh, cap)
            verdicts.add((app.cascade is not None, mine is None))
        assert e.routes.least
    # Cascades and chains, each refused at some level and not at another.
    assert verdicts == {(c, v) for c in (True, False) for v in (True, False)}


def test_each_devices_cheapest_link_is_carried_while_no_link_costs_other_joules() -> None:
    """The least joules per MB of each device's links (`drained_source`'s premise) is
    handed to a problem whose links moved in bandwidth only, and made again when a link's
    joules per MB changed: each time what a fresh parse of that scenario gives."""
    scn = generate(4, devices=30, apps=8, blocks=4)
    problem = Problem(parse_scenario(scn))
    first = _least_j_per_mb(problem)
    lk = scn["links"][0]
    faster = apply_change(problem, Change(links={(lk["a"], lk["b"]): {"mbps": lk["mbps"] * 2}}))
    assert faster.derived.get("least_j_per_mb") is first
    cheaper = apply_change(faster, Change(links={(lk["a"], lk["b"]): {"j_per_mb": 1e-6}}))
    assert "least_j_per_mb" not in cheaper.derived
    fresh = dict(scn, links=[dict(lk, j_per_mb=1e-6), *scn["links"][1:]])
    assert _least_j_per_mb(cheaper) == _least_j_per_mb(Problem(parse_scenario(fresh)))
    assert _least_j_per_mb(cheaper) != first


def _states_made(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The apps of each heuristic state `alone` makes from now on (their candidates)."""
    made: list[list[str]] = []
    state = partial._State

    def counted(problem: Problem, options: SolveOptions, only: list[str]) -> object:
        made.append(list(only))
        return state(problem, options, only=only)

    monkeypatch.setattr(partial, "_State", counted)
    return made


def _uplink(raw: dict[str, Any]) -> tuple[str, str]:
    lk = next(lk for lk in raw["links"] if "g000-cam-1" in (lk["a"], lk["b"]))
    return lk["a"], lk["b"]


def test_a_proof_by_the_first_blocks_bound_is_carried_while_what_it_read_holds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An app proven by the first block's bound is proven again without its candidates
    while the pack pays no more and no link its routes cross is slower; otherwise its
    candidates are made again. Each verdict is that of a fresh parse of the scenario."""
    raw = _fleet(1, set())
    floor = _floor_pct(raw, "g000-cam-1")
    raw["devices"][0]["battery"]["level_pct"] = floor + 0.05  # pays a little, not enough
    problem = Problem(parse_scenario(raw))
    assert 0.0 < problem.cost.battery_limit_w("g000-cam-1") < 1.0
    made = _states_made(monkeypatch)
    apps = ["g000-vision", "g000-vision-2"]
    got = alone(problem, apps)
    assert list(got) == ["g000-vision"] and got["g000-vision"].code == Code.BATTERY
    assert "at least" in got["g000-vision"].message and made == [apps]
    a, b = _uplink(raw)
    mbps = next(lk["mbps"] for lk in raw["links"] if (lk["a"], lk["b"]) == (a, b))
    level = floor + 0.04

    def judged(change: Change, base: Problem) -> tuple[dict[str, object], list[list[str]]]:
        made.clear()
        derived = apply_change(base, change)
        assert drained_source(derived, "g000-vision") is None
        mine = alone(derived, apps)
        kept = list(made)
        scn = derived.scenario.model_dump(mode="json", exclude_none=True)
        assert mine == alone(Problem(parse_scenario(scn)), apps)  # a fresh parse agrees
        return mine, kept

    drained = _drained(problem, level)
    faster = Change(devices=drained.devices, links={(a, b): {"mbps": mbps * 2}})
    mine, kept = judged(faster, problem)
    assert mine.keys() == {"g000-vision"} and kept == [["g000-vision-2"]]  # no candidates
    assert f"{problem.cost.battery_limit_w('g000-cam-1'):.3g}" not in mine["g000-vision"].message
    slower = Change(devices=drained.devices, links={(a, b): {"mbps": mbps / 2}})
    mine, kept = judged(slower, problem)
    assert kept == [apps]  # a slower link: the candidates say whether any meets the SLO
    fuller = _drained(problem, floor + 0.5)
    mine, kept = judged(fuller, problem)
    assert kept == [apps]  # a pack that pays more: proven again, or not, over them
    cheaper = Change(links={(a, b): {"j_per_mb": 1e-6}})
    assert "own_pack_proven" not in apply_change(problem, cheaper).derived


def test_a_proof_by_the_slos_dp_is_carried_only_on_the_same_bandwidths(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Proven over the SLO-meeting placements (a bound that reads every bandwidth of its
    routes), the app is proven again without its candidates only while those are the same:
    a faster link may open a placement its pack pays for, a slower one may leave none."""
    raw = _fleet(1, set())
    raw["devices"][0]["battery"]["level_pct"] = TOO_LOW_PCT
    problem = Problem(parse_scenario(raw))
    got = alone(problem, ["g000-vision"])
    assert got.keys() == {"g000-vision"}
    store = problem.derived["own_pack_proven"]
    assert store["g000-vision"].least is not None  # the first block's bound did not prove it
    made = _states_made(monkeypatch)
    a, b = _uplink(raw)
    mbps = next(lk["mbps"] for lk in raw["links"] if (lk["a"], lk["b"]) == (a, b))
    drained = _drained(problem, TOO_LOW_PCT - 0.1)  # pays less, not yet nothing
    for moved, candidates in (
        ({}, []),
        ({(a, b): {"mbps": mbps * 2}}, [["g000-vision"]]),
        ({(a, b): {"mbps": mbps / 2}}, [["g000-vision"]]),
    ):
        made.clear()
        derived = apply_change(problem, Change(devices=drained.devices, links=moved))
        assert drained_source(derived, "g000-vision") is None
        mine = alone(derived, ["g000-vision"])
        assert made == candidates, moved
        scn = derived.scenario.model_dump(mode="json", exclude_none=True)
        assert mine == alone(Problem(parse_scenario(scn)), ["g000-vision"])


def test_a_cascades_proof_is_carried_on_links_no_slower(monkeypatch: pytest.MonkeyPatch) -> None:
    """A cascade's least (each stage's joules on each candidate host) reads no bandwidth:
    proven, it is proven again without its candidates while no link its routes cross is
    slower (the candidates it had meet the SLO all the more), with the very reason a fresh
    parse gives; on a slower link its candidates are made again. app-19 of the generated
    fleet is a cascade sourced at dev-105."""
    raw = generate(7, devices=200, apps=100)
    raw["apps"] = [a for a in raw["apps"] if a["id"] == "app-19"]
    healthy = Problem(parse_scenario(raw))
    app = healthy.cost.apps["app-19"]
    plan = solve(healthy, SolveOptions(), solver="heuristic")
    draw = app.rate_rps * app_cost(healthy.cost, app, plan.placements["app-19"]).joules["dev-105"]
    (doc,) = [d for d in raw["devices"] if d["id"] == "dev-105"]
    dev = healthy.cost.devices["dev-105"]
    assert dev.battery is not None

    def level(share: float) -> float:  # the pack pays `share` of what the plan drew
        joules = (dev.power_w.idle + share * draw) * healthy.scenario.horizon_h
        return dev.battery.min_pct + joules / dev.battery.capacity_wh * 100  # type: ignore[union-attr]

    doc["battery"]["level_pct"] = level(0.5)
    problem = Problem(parse_scenario(raw))
    assert alone(problem, ["app-19"]).keys() == {"app-19"}
    assert problem.derived["own_pack_proven"]["app-19"].least is not None
    made = _states_made(monkeypatch)
    uplinks = [
        (lk["a"], lk["b"], lk["mbps"]) for lk in raw["links"] if "dev-105" in (lk["a"], lk["b"])
    ]
    assert uplinks
    lower = {"dev-105": {"battery": {**doc["battery"], "level_pct": level(0.45)}}}
    for factor, candidates in ((2.0, []), (0.5, [["app-19"]])):
        made.clear()
        moved = {(a, b): {"mbps": mbps * factor} for a, b, mbps in uplinks}
        derived = apply_change(problem, Change(devices=lower, links=moved))
        assert drained_source(derived, "app-19") is None
        mine = alone(derived, ["app-19"])
        assert made == candidates, factor
        scn = derived.scenario.model_dump(mode="json", exclude_none=True)
        assert mine == alone(Problem(parse_scenario(scn)), ["app-19"])

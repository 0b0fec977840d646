"""A source camera's battery on fleets too large for the exact polish.

Forbidding an overflowing device as a host relieves its battery, except the source's: it
pays for sending its input wherever the model runs. The heuristic then prices that battery
in the DP (`solver.candidates.battery_arrays`); these tests hold it to a feasible plan
where one exists and to the scorer's figures.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from solver import Problem, SolveOptions, Status, evaluate, solve
from solver.candidates import battery_arrays
from solver.fastcost import Fleet, Scorer, candidate_routes
from solver.generate import generate
from solver.incremental import Change, apply_change, resolve
from solver.plan import Placement
from solver.polish import POLISH_MAX_DEVICES
from solver.scenario import parse_scenario

# The registry's blocks of squeezenet 1.1 (onnx's light test model): name, GFLOP,
# params MB, out MB. Its input is 0.602112 MB.
SQUEEZENET = [
    ("r2", 0.0459009, 0.007168, 0.7744),
    ("r4", 0.006292, 0.00416, 0.1936),
    ("r9", 0.0627264, 0.041472, 1.5488),
    ("r11", 0.0124872, 0.008256, 0.1936),
    ("r17", 0.0635662, 0.041472, 0.373248),
    ("r19", 0.00601862, 0.016512, 0.093312),
    ("r24", 0.0600929, 0.164864, 0.746496),
    ("r26", 0.0119906, 0.032896, 0.093312),
    ("r32", 0.0604823, 0.164864, 0.173056),
    ("r34", 0.00416957, 0.049344, 0.032448),
    ("r39", 0.0312799, 0.370176, 0.259584),
    ("r41", 0.00624624, 0.07392, 0.032448),
    ("r46", 0.0312799, 0.370176, 0.259584),
    ("r48", 0.00832832, 0.09856, 0.043264),
    ("r53", 0.055551, 0.657408, 0.346112),
    ("r55", 0.0110972, 0.131328, 0.043264),
    ("r61", 0.055551, 0.657408, 0.346112),
    ("softmaxout_1", 0.173566, 2.052, 0.004),
]
# The demo's group as bench/reaction.py enrolls it: role -> (tier, GFLOP/s, idle W, busy W,
# battery Wh or None); six idle cameras with no link make it ten devices. The packs are
# 60 Wh: a battery pays its idle draw first, and 5 Wh would not last the horizon idle.
GROUP = {
    "cam-1": ("device", 50.0, 1.5, 4.0, 60.0),
    "cam-2": ("device", 10.0, 2.0, 6.0, 60.0),
    "edge": ("edge", 400.0, 10.0, 35.0, None),
    "cloud": ("cloud", 4000.0, 80.0, 300.0, None),
    **{f"idle-{k}": ("device", 10.0, 2.0, 6.0, 60.0) for k in range(6)},
}
LINKS = [
    ("cam-1", "edge", 50, 4, 0.4),
    ("cam-2", "edge", 50, 4, 0.4),
    ("edge", "cloud", 200, 15, 0.05),
    ("cam-1", "cloud", 20, 40, 0.8),
    ("cam-2", "cloud", 20, 40, 0.8),
]
# cam-1 sending squeezenet's input at 4 req/s takes 0.96 W; at 41.7% its battery affords
# 0.1275 W over the 8 h horizon beside its 1.5 W idle draw, and the whole model on the
# camera takes 0.141 W. Only a cut after the first blocks, which shrink the tensor
# 19-fold, fits.
DRAINED_PCT = 41.7


def _fleet(groups: int, drained: set[int]) -> dict[str, Any]:
    """The scenario the control plane builds for `groups` groups of the bench's fleet,
    with cam-1 of the groups in `drained` at DRAINED_PCT, the other batteries at 90%."""
    devices: list[dict[str, Any]] = []
    links: list[dict[str, Any]] = []
    apps: list[dict[str, Any]] = []
    for g in range(groups):
        for role, (tier, gflops, idle, busy, wh) in GROUP.items():
            d: dict[str, Any] = {
                "id": f"g{g:03d}-{role}",
                "tier": tier,
                "gflops": gflops,
                "memory_mb": 4096 if tier != "device" else 1024,
                "power_w": {"idle": idle, "busy": busy},
            }
            if wh is not None:
                level = DRAINED_PCT if role == "cam-1" and g in drained else 90.0
                d["battery"] = {"capacity_wh": wh, "level_pct": level, "min_pct": 20.0}
            devices.append(d)
        for a, b, mbps, rtt, jpm in LINKS:
            links.append(
                {"a": f"g{g:03d}-{a}", "b": f"g{g:03d}-{b}", "mbps": mbps, "rtt_ms": rtt,
                 "j_per_mb": jpm}
            )  # fmt: skip
        for dep, source, rate in (("vision", "cam-1", 4.0), ("vision-2", "cam-2", 1.5)):
            apps.append(
                {"id": f"g{g:03d}-{dep}", "model": "squeezenet", "source": f"g{g:03d}-{source}",
                 "rate_rps": rate, "slo_ms": 1000}
            )  # fmt: skip
    model = {
        "id": "squeezenet",
        "input_mb": 0.602112,
        "layers": [
            {"name": n, "gflops": g, "params_mb": p, "out_mb": o} for n, g, p, o in SQUEEZENET
        ],
    }
    return {"version": 1, "horizon_h": 8, "max_utilization": 0.8, "objective": {"energy": 1.0},
            "devices": devices, "links": links, "models": [model], "apps": apps}  # fmt: skip


def test_a_drained_source_camera_keeps_a_feasible_plan_on_a_large_fleet() -> None:
    # Groups share nothing, so the fleet's optimum is the sum of its groups' optima, which
    # the exact model finds on each group alone.
    drained = solve(Problem(parse_scenario(_fleet(1, {0}))), SolveOptions(), solver="ilp")
    normal = solve(Problem(parse_scenario(_fleet(1, set()))), SolveOptions(), solver="ilp")
    assert drained.status == normal.status == Status.OPTIMAL
    assert drained.objective is not None and normal.objective is not None
    optimum = drained.objective + 9 * normal.objective

    problem = Problem(parse_scenario(_fleet(10, {0})))
    assert len(problem.scenario.devices) > POLISH_MAX_DEVICES  # the greedy steps alone
    plan = solve(problem, SolveOptions(), solver="heuristic")
    assert plan.status == Status.FEASIBLE, plan.doc.reason
    assert evaluate(problem.cost, plan.placements).violations == []
    assert plan.objective is not None and plan.objective <= 1.01 * optimum
    # The drained camera runs the first blocks itself and sends the small tensor.
    blocks = plan.placements["g000-vision"].blocks
    assert blocks is not None and blocks[0] == "g000-cam-1" != blocks[-1]

    # The control plane's way: the battery drops under a plan in force, one re-solve.
    healthy = Problem(parse_scenario(_fleet(10, set())))
    first = solve(healthy, SolveOptions(), solver="heuristic")
    assert first.status == Status.FEASIBLE
    bat = healthy.cost.devices["g000-cam-1"].battery
    assert bat is not None
    battery = {**bat.model_dump(), "level_pct": DRAINED_PCT}
    change = Change(devices={"g000-cam-1": {"battery": battery}})
    new = apply_change(healthy, change, first.placements)
    again = resolve(new, first.placements, change)
    assert again.status == Status.FEASIBLE, again.doc.reason
    assert evaluate(new.cost, again.placements).violations == []
    assert again.objective is not None and again.objective <= 1.01 * optimum


def test_a_source_camera_too_drained_for_any_plan_is_infeasible_with_its_battery() -> None:
    raw = _fleet(10, {0})
    raw["devices"][0]["battery"]["level_pct"] = 41.0  # below what the first cut needs
    alone = _fleet(1, {0})
    alone["devices"][0]["battery"]["level_pct"] = 41.0
    exact = solve(Problem(parse_scenario(alone)), SolveOptions(), solver="ilp")
    assert exact.status == Status.INFEASIBLE
    plan = solve(Problem(parse_scenario(raw)), SolveOptions(), solver="heuristic")
    assert plan.status == Status.INFEASIBLE
    assert plan.doc.reason is not None and "battery of g000-cam-1" in plan.doc.reason


def test_a_drained_source_on_a_generated_fleet_sends_where_its_battery_lasts() -> None:
    # app-3 runs its first blocks on dev-18, which sends the cut over its faster uplink
    # (0.23 J/MB). At 5% of the power its battery had for the plan neither that nor the
    # cheapest plan off the camera fits; the input over its slower, thriftier uplink
    # (0.12 J/MB) does.
    problem = Problem(parse_scenario(generate(1, devices=120, apps=60, blocks=8)))
    first = solve(problem, SolveOptions(), solver="heuristic")
    assert first.status == Status.FEASIBLE
    dev = problem.cost.devices["dev-18"]
    bat, budget = dev.battery, problem.cost.battery_limit_w("dev-18")
    assert bat is not None and budget is not None and budget > 0
    horizon = problem.scenario.horizon_h
    level = bat.min_pct + (dev.power_w.idle + 0.05 * budget) * horizon / bat.capacity_wh * 100
    change = Change(devices={"dev-18": {"battery": {**bat.model_dump(), "level_pct": level}}})
    new = apply_change(problem, change, first.placements)
    plan = resolve(new, first.placements, change)
    assert plan.status == Status.FEASIBLE, plan.doc.reason
    assert evaluate(new.cost, plan.placements).violations == []
    again = solve(Problem(new.scenario), SolveOptions(), solver="heuristic")
    assert again.status == Status.FEASIBLE, again.doc.reason
    assert evaluate(new.cost, again.placements).violations == []


def _path_sum(ub: np.ndarray, tb: np.ndarray, path: list[int]) -> float:
    total = sum(float(ub[0, i, k]) for i, k in enumerate(path))
    for i in range(len(path) - 1):
        if path[i] != path[i + 1]:
            total += float(tb[0, i, path[i], path[i + 1]])
    return total


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_battery_arrays_agree_with_the_scorer(seed: int) -> None:
    raw = generate(seed, devices=24, apps=12, blocks=6, overheads=seed == 1)
    problem = Problem(parse_scenario(raw))
    fleet = Fleet(problem)
    scorer = Scorer(fleet, problem.migration)
    rng = np.random.default_rng(seed)
    checked = 0
    for app in problem.scenario.apps:
        if app.cascade is not None:
            continue
        hosts = [fleet.index[h] for h in problem.hosts(app)]
        routes = candidate_routes(fleet, app, hosts)
        src = fleet.index[app.source]
        batteries = [d for d in {src, *hosts} if fleet.has_battery[d]]
        for model in problem.model_options(app):
            n = problem.cost.shapes[model].n
            for _ in range(4):
                path = [int(rng.integers(len(hosts)))] * n
                cut = int(rng.integers(1, n))
                path[cut:] = [int(rng.integers(len(hosts)))] * (n - cut)
                if src in hosts and rng.random() < 0.5:
                    path[: cut // 2 + 1] = [hosts.index(src)] * (cut // 2 + 1)
                p = Placement(
                    app=app.id, model=model, blocks=tuple(fleet.ids[hosts[k]] for k in path)
                )
                sc = scorer.score(app, p)
                if not sc.routable:
                    continue
                use = dict(zip(sc.resources.tolist(), sc.amounts.tolist(), strict=True))
                for d in batteries:
                    ub, tb = battery_arrays(problem, fleet, app, model, routes, {d: 2.0})
                    want = 2.0 * use.get(2 * fleet.n + d, 0.0)
                    assert _path_sum(ub, tb, path) == pytest.approx(want, rel=1e-9, abs=1e-12)
                    checked += 1
    assert checked > 20


def _near_the_exact_optimum(raw: dict[str, Any]) -> Any:
    """The heuristic's plan of `raw`: feasible, within every constraint and 5% of `ilp`'s
    optimum, which must exist."""
    problem = Problem(parse_scenario(raw))
    exact = solve(problem, SolveOptions(), solver="ilp")
    assert exact.status == Status.OPTIMAL and exact.objective is not None
    plan = solve(Problem(parse_scenario(raw)), SolveOptions(), solver="heuristic")
    assert plan.status == Status.FEASIBLE, plan.doc.reason
    assert evaluate(problem.cost, plan.placements).violations == []
    assert plan.objective is not None and plan.objective <= 1.05 * exact.objective
    return plan


def test_a_source_no_path_avoids_has_its_battery_priced_not_its_app_refused() -> None:
    # Met in the simulator's 200-device fleet as its packs drained: app-66's cheapest plan
    # (fam1, four blocks on dev-80) overflowed dev-80's battery; forbidding dev-80 as a
    # host left no path within the SLO (its uplink is slow), and the repair gave up there,
    # so every re-plan re-placed every app and failed again. Priced instead, the battery
    # takes fam1-int8 with the same cut, which fits; `ilp` agrees a plan exists.
    raw = generate(7, devices=200, apps=100)
    raw["apps"] = [a for a in raw["apps"] if a["id"] == "app-66"]
    (dev,) = [d for d in raw["devices"] if d["id"] == "dev-80"]
    dev["battery"]["level_pct"] = 47.4917
    (uplink,) = [lk for lk in raw["links"] if {lk["a"], lk["b"]} == {"dev-80", "edge-31"}]
    uplink["mbps"] = 4.58705
    plan = _near_the_exact_optimum(raw)
    assert plan.placements["app-66"].blocks is not None
    assert plan.placements["app-66"].blocks[0] == "dev-80"


def test_a_cascade_whose_cheapest_stage_hosts_drain_its_source_takes_the_frugal_ones() -> None:
    # Met in the same simulation hours later: app-19, a cascade sourced at dev-105, whose
    # 64 cheapest stage-host combinations all cost the drained pack more than it pays.
    # The repair now also tries those that cost the source least; `ilp` agrees.
    raw = generate(7, devices=200, apps=100)
    raw["apps"] = [a for a in raw["apps"] if a["id"] == "app-19"]
    (dev,) = [d for d in raw["devices"] if d["id"] == "dev-105"]
    pays = 0.1018  # W beside its idle draw: what the pack paid at that moment
    horizon = raw.get("horizon_h", 8.0)
    bat = dev["battery"]
    bat["level_pct"] = (
        bat["min_pct"] + (dev["power_w"]["idle"] + pays) * horizon / bat["capacity_wh"] * 100
    )
    plan = _near_the_exact_optimum(raw)
    assert plan.placements["app-19"].stages is not None

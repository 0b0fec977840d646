"""The simulator against a two-link, two-step case computed by hand.

cam (battery 10 Wh at 50%, min 10%, idle 1 W, busy 11 W, 10 GFLOP/s, 360 gCO2/kWh) reaches
edge (100 GFLOP/s, idle 5 W, busy 15 W, 0 g/kWh) over a traced link (0.5 J/MB, rtt 0),
and edge reaches cloud. One app on cam: a one-block model of 1 GFLOP, 20 MB of weights,
1 MB in, 0.001 MB out; 1 inference/s; SLO 150 ms. Energy weight 1, horizon 1 h.

Step 0 (t=0 s, trace 100 Mbit/s): on cam the block costs 1 GFLOP / 10 = 0.1 s at
(11-1) W = 1 J; on edge, cam sends 1 MB (0.5 J, 80 ms), edge computes 0.01 s at 10 W
(0.1 J) and sends 0.001 MB back (0.0005 J): 0.6005 J in 90.08 ms, the optimum.
Step 1 (t=1 s, trace 10 Mbit/s): the input takes 800 ms > 150 ms: the block goes back
to cam (1 J), and its 20 MB of weights move: one re-placement, 20 MB migrated.

Energy: 0.6005 + 1 = 1.6005 J. Carbon (cam's grid only): (0.5 + 1) J / 3.6e6 * 360 =
1.5e-4 g. cam's pack: step 0 pays idle 1 W + 0.5 W (sending) for 1 s = 1.5 J, step 1
pays 1 W + 1 W = 2 J; 10 Wh = 36,000 J, so 50% - 3.5 / 360 points = 49.990277...%.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import solver
from simulate.engine import Simulation
from simulate.inputs import prepare
from simulate.registry import known, make
from simulate.run import context
from solver.evaluate import app_cost


def scenario() -> dict[str, Any]:
    return {
        "version": 1,
        "horizon_h": 1,
        "devices": [
            {
                "id": "cam", "tier": "device", "gflops": 10, "memory_mb": 1000,
                "power_w": {"idle": 1, "busy": 11}, "grid_gco2_per_kwh": 360,
                "battery": {"capacity_wh": 10, "level_pct": 50, "min_pct": 10},
            },
            {"id": "edge", "tier": "edge", "gflops": 100, "memory_mb": 1000,
             "power_w": {"idle": 5, "busy": 15}},
            {"id": "cloud", "tier": "cloud", "gflops": 1000, "memory_mb": 10000,
             "power_w": {"idle": 50, "busy": 150}},
        ],
        "links": [
            {"a": "cam", "b": "edge", "mbps": 100, "rtt_ms": 0, "j_per_mb": 0.5},
            {"a": "edge", "b": "cloud", "mbps": 1000, "rtt_ms": 50, "j_per_mb": 0.1},
        ],
        "models": [
            {"id": "m", "input_mb": 1,
             "layers": [{"name": "only", "gflops": 1, "params_mb": 20, "out_mb": 0.001}]},
        ],
        "apps": [{"id": "a", "model": "m", "source": "cam", "rate_rps": 1, "slo_ms": 150}],
    }  # fmt: skip


def test_two_links_two_steps_by_hand(tmp_path: Path) -> None:
    trace = tmp_path / "drop.txt"
    trace.write_text("0 100\n1 10\n")
    inputs = prepare(
        scenario(), "hand", ["ilp"], known(), hours=2 / 3600, traces=[f"cam~edge={trace}"]
    )
    run = Simulation(inputs, "ilp", make(context(inputs, "ilp"))).run()
    t = run.totals
    assert t.energy_j == pytest.approx(1.6005, rel=1e-9)
    assert t.carbon_g == pytest.approx(1.5e-4, rel=1e-9)
    assert t.replacements == 1
    assert t.migrated_mb == pytest.approx(20.0)
    assert t.slo_miss_s == 0 and t.violation_s == 0 and t.battery_dead_h == 0
    first, second = run.samples
    assert first.t_s == 1.0 and second.t_s == 2.0
    assert first.battery_min_pct == pytest.approx(50 - 1.5 / 360, rel=1e-12)
    assert second.battery_min_pct == pytest.approx(50 - 3.5 / 360, rel=1e-12)
    assert first.power_w == pytest.approx(0.6005) and second.power_w == pytest.approx(1.0)


def test_static_keeps_the_first_plan_and_pays_for_it(tmp_path: Path) -> None:
    """The same two steps under `static`: the edge plan stays, and at 10 Mbit/s its
    worst case is 800 + 10 + 0.8 ms > 150 ms, and the link carries 8.008 Mbit/s, over
    0.8 of 10: one app-second over its SLO, two constraints broken for one second."""
    trace = tmp_path / "drop.txt"
    trace.write_text("0 100\n1 10\n")
    inputs = prepare(
        scenario(), "hand", ["static"], known(), hours=2 / 3600, traces=[f"cam~edge={trace}"]
    )
    run = Simulation(inputs, "static", make(context(inputs, "static"))).run()
    t = run.totals
    assert t.energy_j == pytest.approx(2 * 0.6005, rel=1e-9)
    assert (t.slo_miss_s, t.violation_s, t.replacements, t.migrated_mb) == (1.0, 2.0, 0, 0.0)


def test_a_flat_pack_counts_dead_hours_and_a_failure_drops_the_app() -> None:
    """cam at 10.52% with min 10%, edge failed from the start: the app runs on cam, which
    draws idle 1 W + 1 W = 2 W, 0.52 points (187.2 J of 36,000 J) in 93.6 s: the
    level reaches 10% at 93.6 s. Levels are read at each 10 s step's start, so it is
    below min_pct from t = 100 s to the end at 360 s: 260 s."""
    scn = scenario()
    scn["devices"][0]["battery"]["level_pct"] = 10.52
    inputs = prepare(
        scn, "flat", ["all-device"], known(), hours=0.1, failures=["edge@0"], step_s=10
    )
    run = Simulation(inputs, "all-device", make(context(inputs, "all-device"))).run()
    assert run.totals.battery_dead_h == pytest.approx(260 / 3600)
    assert run.totals.energy_j == pytest.approx(360.0)  # 1 J a second on cam


def _simulation(tmp_path: Path) -> Simulation:
    trace = tmp_path / "drop.txt"
    trace.write_text("0 100\n1 10\n")
    inputs = prepare(
        scenario(), "hand", ["static"], known(), hours=2 / 3600, traces=[f"cam~edge={trace}"]
    )
    return Simulation(inputs, "static", make(context(inputs, "static")))


def test_the_priced_problem_costs_as_the_whole_one_and_the_packs_pay_as_there(
    tmp_path: Path,
) -> None:
    """`priced()` has the bandwidths of now (refigured, not compiled: both changes are
    left for `problem()`), and is kept while no link moves: a placement costs there what
    it costs on the whole problem of now, and `_limit` reads what each pack pays as the
    whole problem will have it."""
    sim = _simulation(tmp_path)
    before = sim.problem().cost.battery_limit_w("cam")
    sim.link_now[("cam", "edge")] = 10.0
    sim._links_due[("cam", "edge")] = 10.0
    sim.batteries.level[0] = 20.0
    sim._devices_due.update(sim.batteries.changes(frozenset(), 0.5))
    priced = sim.priced()
    assert sim._devices_due and sim._links_due and sim.priced() is priced
    limit = sim._limit(priced.cost)
    on_edge = solver.Placement("a", model="m", blocks=("edge",))
    cost = app_cost(priced.cost, priced.cost.apps["a"], on_edge)
    whole = sim.problem()
    assert whole is not priced and not sim._devices_due and not sim._links_due
    assert sim.priced() is whole  # nothing moved since
    assert cost == app_cost(whole.cost, whole.cost.apps["a"], on_edge)
    assert cost.worst_ms == pytest.approx(800 + 10 + 0.8)  # the 10 Mbit/s of now
    assert limit("cam") == whole.cost.battery_limit_w("cam") != before
    assert limit("edge") is None


def test_a_record_whose_figure_stands_is_handed_on_as_the_same_object(tmp_path: Path) -> None:
    sim = _simulation(tmp_path)
    first, again = sim.scenario_now(), sim.scenario_now()
    assert first["devices"][0] is again["devices"][0]  # cam, with its pack
    assert first["links"][0] is again["links"][0]  # the traced link
    sim.batteries.level[0] = 40.0
    sim.batteries.changes(frozenset(), 0.5)
    later = sim.scenario_now({("cam", "edge"): 55.0})
    assert later["devices"][0] is not first["devices"][0]
    assert later["devices"][0]["battery"]["level_pct"] == 40.0
    assert later["links"][0] is not first["links"][0] and later["links"][0]["mbps"] == 55.0
    assert first["devices"][0]["battery"]["level_pct"] == 50.0  # the older record stands
    assert later["devices"][1:] == first["devices"][1:]

"""The scenario generator: valid, deterministic, shaped as documented, usually feasible."""

from __future__ import annotations

from collections import Counter

import pytest

from solver import Problem, SolveOptions, Status, solve
from solver.generate import generate
from solver.scenario import parse_scenario


def test_same_seed_same_scenario_and_another_seed_differs() -> None:
    assert generate(4) == generate(4)
    assert generate(4) != generate(5)


@pytest.mark.parametrize("contended", [False, True])
def test_valid_with_three_tiers_in_proportion(contended: bool) -> None:
    raw = generate(1, devices=120, apps=60, blocks=8, contended=contended)
    scn = parse_scenario(raw)
    tiers = Counter(d.tier for d in scn.devices)
    assert len(scn.devices) == 120 and len(scn.apps) == 60
    assert tiers["cloud"] == 10
    if contended:
        assert tiers["edge"] == 6 and tiers["device"] == 104
    else:
        assert tiers["edge"] == 30 and tiers["device"] == 80
    for d in scn.devices:
        lo, hi = {"device": (5, 30), "edge": (100, 400), "cloud": (2000, 10000)}[d.tier]
        assert lo <= d.gflops <= hi
    for app in scn.apps:
        assert scn.device(app.source).tier == "device"


def test_models_look_like_cnns_with_exits_variants_and_cascades() -> None:
    scn = parse_scenario(generate(2, devices=60, apps=80, blocks=10))
    models = {m.id: m for m in scn.models}
    full = [m for m in scn.models if "-" not in m.id]
    assert full
    for m in full:
        outs = [layer.out_mb for layer in m.layers]
        assert outs == sorted(outs, reverse=True) and outs[-1] == 0.004
        assert m.layers[-1].params_mb > m.layers[0].params_mb
        assert len(m.exits) == 2 and all(0 < ex.prob < 1 for ex in m.exits)
        int8, small = models[f"{m.id}-int8"], models[f"{m.id}-small"]
        assert int8.params_mb < m.params_mb and small.params_mb < int8.params_mb
        assert (small.accuracy or 0) < (int8.accuracy or 0) < (m.accuracy or 0)
    kinds = Counter(a.kind for a in scn.apps)
    assert kinds["model"] and kinds["variants"] and kinds["cascade"]
    assert any(a.slo_ms is not None for a in scn.apps)


def test_flags_turn_features_off() -> None:
    scn = parse_scenario(
        generate(3, devices=30, apps=30, blocks=5, exits=False, variants=False, cascades=False)
    )
    assert all(not m.exits for m in scn.models)
    assert all(a.kind == "model" for a in scn.apps)
    assert all("-" not in m.id for m in scn.models)


def test_large_fleet_shape() -> None:
    raw = generate(0, devices=10_000, apps=5_000, blocks=20)
    assert len(raw["devices"]) == 10_000 and len(raw["apps"]) == 5_000
    assert all(len(m["layers"]) == 20 for m in raw["models"])
    ids = [d["id"] for d in raw["devices"]]
    assert len(set(ids)) == len(ids)


def test_usually_feasible() -> None:
    feasible = 0
    for seed in range(10):
        problem = Problem(parse_scenario(generate(seed, devices=30, apps=20, blocks=8)))
        if solve(problem, SolveOptions(), solver="heuristic").status == Status.FEASIBLE:
            feasible += 1
    assert feasible >= 9

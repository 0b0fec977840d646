"""Self-check of the independent reference cost model against the shared expected optima."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tests.solver.contract_reference import brute_force, evaluate, load, route

SCENARIOS = Path(__file__).resolve().parents[3] / "shared" / "scenarios"


def _scenario_names() -> list[str]:
    if not SCENARIOS.is_dir():
        return []
    return sorted(p.name.removesuffix(".yaml") for p in SCENARIOS.glob("*.yaml"))


def _require_scenarios() -> None:
    if not SCENARIOS.is_dir():
        pytest.fail(
            f"shared scenarios directory not found at {SCENARIOS}; "
            "the checkout must have ../shared beside the repository clone"
        )
    if not _scenario_names():
        pytest.fail(f"no *.yaml scenarios in {SCENARIOS}")


def test_shared_scenarios_present() -> None:
    _require_scenarios()
    for name in _scenario_names():
        assert (SCENARIOS / f"{name}.expected.json").is_file(), f"{name}.expected.json missing"


@pytest.mark.parametrize("name", _scenario_names() or ["<scenarios directory missing>"])
def test_brute_force_matches_expected(name: str) -> None:
    _require_scenarios()
    expected = json.loads((SCENARIOS / f"{name}.expected.json").read_text())
    scn = load(SCENARIOS / f"{name}.yaml")
    status, objective, plan = brute_force(scn)
    assert status == expected["status"], name
    if expected["objective"] is None:
        assert objective is None and plan is None
        return
    assert objective == pytest.approx(expected["objective"], rel=1e-6), name
    # The winning plan is feasible and re-evaluates to the same objective.
    ev = evaluate(scn, plan)
    assert ev["violations"] == []
    assert ev["objective"] == pytest.approx(objective, rel=1e-12)


# --------------------------------------------------------------------------- hand-checked


def _tiny(**over: object) -> dict:
    scn: dict = {
        "version": 1,
        "horizon_h": 1,
        "objective": {"energy": 1, "carbon": 100, "latency": 0.001},
        "devices": [
            {
                "id": "s",
                "tier": "device",
                "gflops": 10,
                "memory_mb": 100,
                "power_w": {"idle": 1, "busy": 3},
                "battery": {"capacity_wh": 10, "level_pct": 70, "min_pct": 20},
                "grid_gco2_per_kwh": 360,
            },
            {
                "id": "e",
                "tier": "edge",
                "gflops": 100,
                "memory_mb": 100,
                "power_w": {"idle": 2, "busy": 12},
                "embodied_kgco2e": 8.76,
                "lifetime_h": 8760,
            },
        ],
        "links": [{"a": "s", "b": "e", "mbps": 80, "rtt_ms": 10, "j_per_mb": 0.5}],
        "models": [
            {
                "id": "m",
                "input_mb": 1,
                "accuracy": 0.8,
                "layers": [
                    {"name": "b0", "gflops": 1, "params_mb": 2, "out_mb": 2},
                    {"name": "b1", "gflops": 10, "params_mb": 5, "out_mb": 0.5},
                ],
                "exits": [{"after": "b0", "prob": 0.25, "gflops": 0.5, "params_mb": 1}],
            },
            {
                "id": "m2",
                "input_mb": 1,
                "layers": [{"name": "c0", "gflops": 20, "params_mb": 7, "out_mb": 0.1}],
            },
        ],
        "apps": [{"id": "a", "model": "m", "source": "s", "rate_rps": 2}],
    }
    scn.update(over)
    return scn


SPLIT = {
    "apps": [
        {
            "id": "a",
            "model": "m",
            "segments": [
                {"first": "b0", "last": "b0", "device": "s"},
                {"first": "b1", "last": "b1", "device": "e"},
            ],
            "stages": None,
        }
    ]
}


def test_load_defaults() -> None:
    scn = load(
        {
            "devices": [
                {
                    "id": "d",
                    "tier": "device",
                    "gflops": 1,
                    "memory_mb": 1,
                    "power_w": {"idle": 0, "busy": 1},
                }
            ],
            "models": [
                {
                    "id": "m",
                    "input_mb": 1,
                    "layers": [{"name": "x", "gflops": 1, "params_mb": 1, "out_mb": 1}],
                }
            ],
            "apps": [{"id": "a", "model": "m", "source": "d", "rate_rps": 1}],
        }
    )
    assert scn["horizon_h"] == 8 and scn["max_utilization"] == 0.8
    assert scn["objective"] == {"energy": 1.0, "carbon": 0.0, "latency": 0.0, "migration": 0.0}
    dev = scn["devices"][0]
    assert dev["grid_gco2_per_kwh"] == 0 and dev["embodied_kgco2e"] == 0
    assert dev["lifetime_h"] == 35040 and dev["battery"] is None
    app = scn["apps"][0]
    assert app["sink"] == "d" and app["max_stages"] == 3
    assert app["allowed_tiers"] == ["device", "edge", "cloud"]


def test_partitioned_with_exit_by_hand() -> None:
    ev = evaluate(load(_tiny()), SPLIT)
    assert ev["violations"] == []
    a = ev["apps"]["a"]
    # input free (source hosts b0); b0 0.1 s + exit 0.05 s on s; exit outcome (p .25) ends at
    # 0.15 s with a free result; else 2 MB s->e 0.005+0.2 s, b1 0.1 s, 0.5 MB e->s 0.005+0.05 s.
    assert a["latency_ms"]["worst"] == pytest.approx(510.0)
    assert a["latency_ms"]["expected"] == pytest.approx(0.25 * 150 + 0.75 * 510)
    assert a["energy_j"] == pytest.approx(0.2 + 0.1 + 0.75 * (1.0 + 1.0 + 0.25))
    carbon = 1.05 / 3.6e6 * 360 + 0.75 * 0.1 * 8760.0 / (8760 * 3600)
    assert a["carbon_g"] == pytest.approx(carbon)
    d = ev["devices"]
    assert d["s"]["utilization"] == pytest.approx(0.3)
    assert d["e"]["utilization"] == pytest.approx(0.15)
    assert d["s"]["memory_mb"] == pytest.approx(3) and d["e"]["memory_mb"] == pytest.approx(5)
    assert d["s"]["power_w"] == pytest.approx(2.1) and d["e"]["power_w"] == pytest.approx(1.875)
    # 5 Wh above min_pct, paid at the idle 1 W plus the plan's 2.1 W.
    assert d["s"]["battery_h"] == pytest.approx(5 / 3.1) and d["e"]["battery_h"] is None
    assert ev["links"]["s--e"]["utilization"] == pytest.approx(2 * 1.875 * 8 / 80)
    assert ev["objective"] == pytest.approx(2 * (1.9875 + 100 * carbon + 0.001 * 420))


def test_overhead_by_hand() -> None:
    raw = _tiny()
    raw["devices"][0]["overhead_ms"] = 20
    raw["devices"][1]["overhead_ms"] = 10
    ev = evaluate(load(raw), SPLIT)
    a = ev["apps"]["a"]
    # s's 20 ms start the first segment (always); e's 10 ms the second, reached at 0.75.
    assert a["latency_ms"]["worst"] == pytest.approx(510.0 + 20 + 10)
    assert a["latency_ms"]["expected"] == pytest.approx(0.25 * 170 + 0.75 * 540)
    assert a["energy_j"] == pytest.approx(1.9875 + 2 * 0.02 + 10 * 0.01 * 0.75)
    d = ev["devices"]
    assert d["s"]["utilization"] == pytest.approx(0.3 + 2 * 0.02)
    assert d["e"]["utilization"] == pytest.approx(0.15 + 2 * 0.75 * 0.01)
    # One segment on s: one overhead, whatever its blocks; an exit head adds none.
    whole = {"apps": [{"id": "a", "model": "m", "segments": [SEG_B0_B1_S]}]}
    assert evaluate(load(raw), whole)["apps"]["a"]["latency_ms"]["worst"] == pytest.approx(
        20 + 100 + 50 + 1000
    )


SEG_B0_B1_S = {"first": "b0", "last": "b1", "device": "s"}


def test_cascade_overhead_by_hand() -> None:
    raw = _tiny(
        apps=[
            {
                "id": "c",
                "cascade": [{"model": "m", "exit_prob": 0.6}, {"model": "m2"}],
                "source": "s",
                "rate_rps": 0.5,
            }
        ]
    )
    raw["devices"][0]["overhead_ms"] = 20
    raw["devices"][1]["overhead_ms"] = 10
    plan = {
        "apps": [
            {"id": "c", "stages": [{"model": "m", "device": "s"}, {"model": "m2", "device": "e"}]}
        ]
    }
    ev = evaluate(load(raw), plan)
    c = ev["apps"]["c"]
    assert c["latency_ms"]["worst"] == pytest.approx(1100 + 20 + 105 + 10 + 200 + 15)
    assert ev["devices"]["s"]["utilization"] == pytest.approx(0.5 * 1.12)
    assert ev["devices"]["e"]["utilization"] == pytest.approx(0.5 * 0.4 * 0.21)


def test_battery_pays_idle_first() -> None:
    raw = _tiny()
    # 5 Wh over 4 h is 1.25 W: 0.25 W left after the 1 W idle draw.
    raw["horizon_h"] = 4
    v = evaluate(load(raw), SPLIT)["violations"]
    assert "device s: battery (2.1 W > 0.25 W after idle)" in v
    # 5 Wh over 8 h is 0.625 W, less than idle: nothing at all, not even sending.
    raw["horizon_h"] = 8
    raw["apps"][0]["source"] = "e"
    on_e = {"apps": [{"id": "a", "model": "m", "segments": [dict(SEG_B0_B1_S, device="e")]}]}
    ev = evaluate(load(raw), on_e)
    assert ev["violations"] == [] and ev["devices"]["s"]["battery_h"] == pytest.approx(5.0)
    raw["apps"][0]["source"] = "s"
    v = evaluate(load(raw), on_e)["violations"]
    assert any(x.startswith("device s: battery") for x in v)  # sending the input costs J


def test_battery_and_slo_violations() -> None:
    scn = load(
        _tiny(
            horizon_h=2,
            apps=[{"id": "a", "model": "m", "source": "s", "rate_rps": 2, "slo_ms": 500}],
        )
    )
    v = evaluate(scn, SPLIT)["violations"]
    assert any(x.startswith("device s: battery") for x in v)
    assert any(x.startswith("app a: slo") for x in v)


def test_zero_power_never_violates_battery() -> None:
    raw = _tiny()
    raw["devices"][0]["battery"] = {"capacity_wh": 10, "level_pct": 10, "min_pct": 20}
    raw["apps"][0]["source"] = "e"
    plan = {
        "apps": [
            {"id": "a", "model": "m", "segments": [{"first": "b0", "last": "b1", "device": "e"}]}
        ]
    }
    ev = evaluate(load(raw), plan)
    # Below min_pct already: no hours left, idle or not.
    assert ev["violations"] == [] and ev["devices"]["s"]["battery_h"] == 0.0


def test_cascade_by_hand() -> None:
    raw = _tiny(
        apps=[
            {
                "id": "c",
                "cascade": [{"model": "m", "exit_prob": 0.6}, {"model": "m2"}],
                "source": "s",
                "rate_rps": 0.5,
            }
        ]
    )
    plan = {
        "apps": [
            {"id": "c", "stages": [{"model": "m", "device": "s"}, {"model": "m2", "device": "e"}]}
        ]
    }
    ev = evaluate(load(raw), plan)
    assert ev["violations"] == []
    c = ev["apps"]["c"]
    assert c["latency_ms"]["worst"] == pytest.approx(1100 + 105 + 200 + 15)
    assert c["latency_ms"]["expected"] == pytest.approx(0.6 * 1100 + 0.4 * 1420)
    assert c["energy_j"] == pytest.approx(2.2 + 0.4 * (0.5 + 2 + 0.05))
    assert ev["devices"]["s"]["memory_mb"] == pytest.approx(7)  # the stage's exit head ignored
    assert ev["devices"]["s"]["utilization"] == pytest.approx(0.5 * 1.1)
    assert ev["devices"]["e"]["utilization"] == pytest.approx(0.5 * 0.4 * 0.2)


def test_migration_by_hand() -> None:
    prev = {
        "apps": [
            {"id": "a", "model": "m", "segments": [{"first": "b0", "last": "b1", "device": "e"}]}
        ]
    }
    raw = _tiny(previous=prev, objective={"energy": 0, "migration": 0.5})
    ev = evaluate(load(raw), SPLIT)
    # b0 (2 MB) and its exit head (1 MB) move e -> s; b1 stays on e.
    assert ev["apps"]["a"]["migration_mb"] == pytest.approx(3)
    assert ev["objective"] == pytest.approx(1.5)
    raw["previous"] = {"apps": []}
    assert evaluate(load(raw), SPLIT)["objective"] == 0


def test_structure_violations() -> None:
    scn = load(
        _tiny(apps=[{"id": "a", "model": "m", "source": "s", "rate_rps": 2, "max_stages": 1}])
    )

    def viol(segments: list[dict], model: str = "m") -> list[str]:
        return evaluate(scn, {"apps": [{"id": "a", "model": model, "segments": segments}]})[
            "violations"
        ]

    seg = {"first": "b0", "last": "b0", "device": "s"}
    assert any("max_stages" in x for x in viol([seg, {"first": "b1", "last": "b1", "device": "e"}]))
    assert any(
        "same device" in x for x in viol([seg, {"first": "b1", "last": "b1", "device": "s"}])
    )
    assert any("cover" in x for x in viol([seg]))
    assert any("cover" in x for x in viol([{"first": "b1", "last": "b1", "device": "s"}]))
    assert any(
        "wrong model" in x for x in viol([{"first": "c0", "last": "c0", "device": "s"}], "m2")
    )
    assert any("missing" in x for x in evaluate(scn, {"apps": []})["violations"])


def test_tier_route_and_accuracy_violations() -> None:
    raw = _tiny()
    raw["devices"].append(
        {
            "id": "x",
            "tier": "cloud",
            "gflops": 1,
            "memory_mb": 100,
            "power_w": {"idle": 0, "busy": 0},
        }
    )
    raw["apps"] = [
        {
            "id": "a",
            "variants": ["m", "m2"],
            "min_accuracy": 0.5,
            "source": "s",
            "rate_rps": 1,
            "allowed_tiers": ["device", "edge"],
        }
    ]
    scn = load(raw)
    plan = {
        "apps": [
            {"id": "a", "model": "m2", "segments": [{"first": "c0", "last": "c0", "device": "x"}]}
        ]
    }
    v = evaluate(scn, plan)["violations"]
    assert any(x.startswith("app a: tier") for x in v)
    assert any(x.startswith("app a: route") for x in v)
    assert any(x.startswith("app a: accuracy") for x in v)  # m2 has no accuracy


def _graph(links: list[tuple[str, str, float]]) -> dict:
    ids = sorted({x for a, b, _ in links for x in (a, b)} | {"z"})
    return {
        "devices": [
            {
                "id": i,
                "tier": "edge",
                "gflops": 1,
                "memory_mb": 1,
                "power_w": {"idle": 0, "busy": 1},
            }
            for i in ids
        ],
        "links": [{"a": a, "b": b, "mbps": 1, "rtt_ms": r, "j_per_mb": 0} for a, b, r in links],
    }


def test_route_rule() -> None:
    # Equal rtt: fewer links wins.
    g = _graph([("a", "b", 10), ("a", "c", 4), ("c", "b", 6)])
    assert route(g, "a", "b") == ["a", "b"]
    assert route(g, "b", "a") == ["b", "a"]
    # Equal rtt and length: smallest id sequence; 0.1 + 0.2 != 0.3 in floating point.
    g = _graph([("a", "d", 0.15), ("d", "b", 0.15), ("a", "c", 0.1), ("c", "b", 0.2)])
    assert route(g, "a", "b") == ["a", "c", "b"]
    # Least rtt beats fewer links.
    g = _graph([("a", "b", 10), ("a", "c", 4), ("c", "b", 5.9)])
    assert route(g, "a", "b") == ["a", "c", "b"]
    assert route(g, "a", "z") is None
    assert route(g, "a", "a") == ["a"]


def test_brute_force_small_infeasible() -> None:
    raw = _tiny()
    raw["devices"][1]["memory_mb"] = 1
    raw["devices"][0]["memory_mb"] = 1
    assert brute_force(load(raw)) == ("infeasible", None, None)
    status, obj, plan = brute_force(load(_tiny()))
    assert status == "optimal" and math.isfinite(obj)
    assert evaluate(load(_tiny()), plan)["objective"] == pytest.approx(obj)

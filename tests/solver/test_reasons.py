"""Reasons with codes: every violation and every infeasible reason carries one, and the
evaluator, the diagnosis (`ilp`) and the heuristic give the same code for the same cause."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from solver import Code, Problem, SolveOptions, Status, evaluate, parse_scenario, solve
from solver.diagnose import explain_infeasible
from solver.ilp_model import Deadline
from solver.partial import place_what_fits
from solver.plan import Placement, PlanDoc

OPTIONS = SolveOptions(time_limit_s=20)
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "factory-line.yaml"


def _tiny() -> dict[str, Any]:
    """A camera on battery, an edge box, a cloud; one two-block model; one app."""
    return {
        "version": 1,
        "horizon_h": 8,
        "devices": [
            {"id": "cam", "tier": "device", "gflops": 10, "memory_mb": 100,
             "power_w": {"idle": 1, "busy": 3},
             "battery": {"capacity_wh": 100, "level_pct": 90, "min_pct": 10}},
            {"id": "edge", "tier": "edge", "gflops": 100, "memory_mb": 1000,
             "power_w": {"idle": 5, "busy": 20}},
            {"id": "cloud", "tier": "cloud", "gflops": 1000, "memory_mb": 10000,
             "power_w": {"idle": 50, "busy": 200}},
        ],
        "links": [
            {"a": "cam", "b": "edge", "mbps": 50, "rtt_ms": 5, "j_per_mb": 0.5},
            {"a": "edge", "b": "cloud", "mbps": 500, "rtt_ms": 20, "j_per_mb": 0.1},
        ],
        "models": [
            {"id": "m", "input_mb": 0.5, "accuracy": 0.7,
             "layers": [{"name": "b0", "gflops": 1, "params_mb": 10, "out_mb": 0.2},
                        {"name": "b1", "gflops": 2, "params_mb": 20, "out_mb": 0.01}]},
        ],
        "apps": [{"id": "a", "model": "m", "source": "cam", "rate_rps": 2, "slo_ms": 500}],
    }  # fmt: skip


Edit = Callable[[dict[str, Any]], None]


def _app(**fields: Any) -> Edit:
    return lambda raw: raw["apps"][0].update(fields)


def _device(k: int, **fields: Any) -> Edit:
    return lambda raw: raw["devices"][k].update(fields)


def _no_cloud_link(raw: dict[str, Any]) -> None:
    raw["links"] = [raw["links"][1]]  # the camera reaches nothing
    raw["apps"][0]["allowed_tiers"] = ["edge", "cloud"]


def _variants(raw: dict[str, Any]) -> None:
    raw["apps"][0].pop("model")
    raw["apps"][0].update(variants=["m"], min_accuracy=0.9)


def _drained(raw: dict[str, Any]) -> None:
    # 0.4 Wh over 8 h is 0.05 W, under the 1 W idle draw: the camera cannot even send.
    raw["devices"][0]["battery"]["level_pct"] = 10.4


def _thin_uplink(raw: dict[str, Any]) -> None:
    raw["links"][0]["mbps"] = 1.0  # 2 rps of 0.5 MB is 8 Mbit/s
    raw["apps"][0].update(allowed_tiers=["edge", "cloud"], slo_ms=None)


def _no_cloud(raw: dict[str, Any]) -> None:
    raw["devices"].pop(2)
    raw["links"].pop(1)
    raw["apps"][0]["allowed_tiers"] = ["cloud"]


# cause -> (edit, code): one scenario per family, each with no plan at all.
CAUSES: dict[str, tuple[Edit, Code]] = {
    "slo": (_app(slo_ms=1), Code.SLO),
    "compute": (_app(rate_rps=4, slo_ms=None, allowed_tiers=["device"]), Code.COMPUTE),
    "memory": (lambda raw: raw["models"][0]["layers"][1].update(params_mb=20000), Code.MEMORY),
    "battery": (_drained, Code.BATTERY),
    "bandwidth": (_thin_uplink, Code.BANDWIDTH),
    "tier": (_no_cloud, Code.TIER),
    "accuracy": (_variants, Code.ACCURACY),
    "unreachable": (_no_cloud_link, Code.UNREACHABLE),
}


def _scenario(edit: Edit) -> dict[str, Any]:
    raw = copy.deepcopy(_tiny())
    edit(raw)
    return raw


def test_the_tiny_scenario_is_feasible() -> None:
    plan = solve(parse_scenario(_tiny()), OPTIONS, "ilp")
    assert plan.status == Status.OPTIMAL
    assert plan.doc.reason_code is None and plan.doc.violation_codes is None


@pytest.mark.parametrize("solver", ["ilp", "heuristic"])
@pytest.mark.parametrize("cause", list(CAUSES))
def test_each_cause_has_its_code(cause: str, solver: str) -> None:
    edit, code = CAUSES[cause]
    plan = solve(Problem(parse_scenario(_scenario(edit))), OPTIONS, solver)
    assert plan.status == Status.INFEASIBLE
    assert plan.doc.reason is not None and plan.doc.reason.startswith("app a:")
    assert plan.doc.reason_code == code, plan.doc.reason
    assert plan.reason is not None and plan.reason.app == "a"
    # On the wire: one of the contract's three statuses, the code beside the sentence.
    wire = json.loads(plan.doc.model_dump_json())
    assert wire["status"] == "infeasible" and wire["reason_code"] == code.value


def _violations(raw: dict[str, Any], placement: Placement) -> dict[Code, list[str]]:
    problem = Problem(parse_scenario(raw))
    ev = evaluate(problem.cost, {placement.app: placement})
    out: dict[Code, list[str]] = {}
    for r in ev.found:
        out.setdefault(r.code, []).append(r.message)
    assert [r.message for r in ev.found] == ev.violations
    return out


def test_the_evaluator_codes_every_violation() -> None:
    on_cam = Placement(app="a", model="m", blocks=("cam", "cam"))
    raw = _tiny()
    raw["apps"][0].update(rate_rps=50, slo_ms=10, allowed_tiers=["edge"])
    raw["devices"][0]["memory_mb"] = 5
    raw["devices"][0]["battery"]["level_pct"] = 20
    found = _violations(raw, on_cam)  # 0.3 s and 0.6 J per inference on the camera
    assert set(found) == {Code.SLO, Code.TIER, Code.COMPUTE, Code.MEMORY, Code.BATTERY}
    assert found[Code.BATTERY] == [
        "device cam: battery: 30.0000 W exceeds the 0.2500 W its battery pays for 8 h beside"
        " its idle draw"
    ]

    raw = _tiny()
    raw["apps"][0].update(rate_rps=200, slo_ms=None)
    raw["devices"][0].pop("battery")  # sending 200 frames/s would drain it too
    to_cloud = Placement(app="a", model="m", blocks=("cloud", "cloud"))
    assert set(_violations(raw, to_cloud)) == {Code.BANDWIDTH}

    raw = _tiny()
    raw["links"] = []
    assert set(_violations(raw, to_cloud)) == {Code.UNREACHABLE}

    _variants(raw := _tiny())
    assert set(_violations(raw, on_cam)) == {Code.ACCURACY}

    raw = _tiny()
    raw["apps"][0]["max_stages"] = 1
    split = Placement(app="a", model="m", blocks=("cam", "edge"))
    assert set(_violations(raw, split)) == {Code.STRUCTURE}


def test_a_baseline_plan_lists_a_code_for_each_violation() -> None:
    raw = _tiny()
    raw["apps"][0].update(rate_rps=50, slo_ms=10)
    plan = solve(parse_scenario(raw), OPTIONS, "all-device")
    doc = PlanDoc.model_validate_json(plan.doc.model_dump_json())
    assert doc.status == Status.INFEASIBLE and doc.violations and doc.violation_codes
    assert len(doc.violations) == len(doc.violation_codes)
    pairs = dict(zip(doc.violation_codes, doc.violations, strict=True))
    assert pairs[Code.SLO].startswith("app a: worst-case latency")
    assert pairs[Code.COMPUTE].startswith("device cam: compute utilization")


def test_running_out_of_time_is_its_own_code_and_blames_no_app() -> None:
    problem = Problem(parse_scenario(_scenario(_app(slo_ms=1))))
    reason = explain_infeasible(problem, OPTIONS, Deadline(0.0))
    assert reason.code == Code.TIME_LIMIT and reason.app is None
    assert "time limit" in reason.message


def test_an_app_set_aside_keeps_its_code() -> None:
    raw = _tiny()
    raw["apps"].append({**raw["apps"][0], "id": "b", "slo_ms": 1})
    out = place_what_fits(Problem(parse_scenario(raw)), OPTIONS, "ilp")
    assert out.plan.status == Status.OPTIMAL
    assert {a: r.code for a, r in out.set_aside.items()} == {"b": Code.SLO}
    assert out.unplaced == {"b": out.set_aside["b"].message}


def test_ilp_and_heuristic_give_one_code_for_the_example_with_cam_6_cut_off() -> None:
    # cam-6's only link cut: its app must run whole on the camera, where neither its SLO
    # nor its battery (beside the idle draw) holds. Both families bind; both solvers name
    # the SLO, the first in the contract's order.
    raw = yaml.safe_load(EXAMPLE.read_text())
    raw["links"] = [k for k in raw["links"] if "cam-6" not in (k["a"], k["b"])]
    codes = {}
    for name in ("ilp", "heuristic"):
        plan = solve(Problem(parse_scenario(raw)), OPTIONS, name)
        assert plan.status == Status.INFEASIBLE and plan.reason is not None
        assert plan.reason.app == "intrusion-6", plan.reason.message
        codes[name] = plan.reason.code
    assert codes == {"ilp": Code.SLO, "heuristic": Code.SLO}

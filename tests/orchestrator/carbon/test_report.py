from __future__ import annotations

from pathlib import Path

import pytest

import solver
from orchestrator.carbon.report import CarbonReport, breakdown, payback
from solver.summary import summarize

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "factory-line.yaml"


def _report(name: str) -> tuple[solver.Plan, CarbonReport]:
    scn = solver.load_scenario(EXAMPLE)
    problem = solver.Problem(scn)
    plan = solver.solve(problem, solver.SolveOptions(time_limit_s=20), solver=name)
    evaluation = solver.evaluate(problem.cost, plan.placements, require_all=False)
    return plan, breakdown(scn, evaluation)


def test_operational_plus_embodied_is_the_plans_carbon() -> None:
    scn = solver.load_scenario(EXAMPLE)
    plan, report = _report("ilp")
    summary = summarize(scn, plan.doc)
    assert summary.carbon_g_per_h is not None
    assert report.per_hour.total_g == pytest.approx(summary.carbon_g_per_h, rel=1e-9)
    for app in plan.doc.apps:
        dep = next(d for d in report.deployments if d.app == app.id)
        assert dep.per_inference.total_g == pytest.approx(app.carbon_g, rel=1e-9)
        assert dep.per_inference.operational_g > 0 and dep.per_inference.embodied_g > 0
    # A device that only sends (a camera whose frames go elsewhere) has no embodied share.
    senders = [d for d in report.devices if not d.computes]
    assert senders and all(d.per_hour.embodied_g == 0 for d in senders)


def test_payback_is_the_extra_hardware_over_the_operational_saving() -> None:
    _, ilp = _report("ilp")
    _, local = _report("all-device")
    p = payback(ilp, local)
    extra = sum(kg for d, kg in ilp.used_devices().items() if d not in local.used_devices())
    assert p.extra_embodied_kg == extra > 0
    assert p.saving_g_per_h == local.per_hour.operational_g - ilp.per_hour.operational_g > 0
    assert p.hours == pytest.approx(extra * 1000 / p.saving_g_per_h)
    assert payback(local, local).hours == 0.0

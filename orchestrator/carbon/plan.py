"""The carbon of a plan document on the scenario it was solved from, as plain data for the
API: per deployment and per device, per inference and per hour, operational and embodied."""

from __future__ import annotations

from typing import Any

import solver
from orchestrator.carbon.report import CarbonReport, Split, breakdown
from orchestrator.replacement import layers_of, placements_of


def plan_carbon(scenario: dict[str, Any], plan: dict[str, Any]) -> CarbonReport:
    scn = solver.parse_scenario(scenario)
    doc = solver.PlanDoc.model_validate(plan)
    problem = solver.Problem(scn)
    placements = placements_of(layers_of(scenario), doc.apps)
    evaluation = solver.evaluate(problem.cost, placements, require_all=False)
    return breakdown(scn, evaluation)


def _split(s: Split) -> dict[str, float]:
    return {"operational_g": s.operational_g, "embodied_g": s.embodied_g, "total_g": s.total_g}


def report_json(report: CarbonReport) -> dict[str, Any]:
    return {
        "per_hour": _split(report.per_hour),
        "deployments": [
            {
                "id": d.app,
                "rate_rps": d.rate_rps,
                "per_inference": _split(d.per_inference),
                "per_hour": _split(d.per_hour),
                "by_device": {k: _split(v) for k, v in sorted(d.by_device.items())},
            }
            for d in report.deployments
        ],
        "devices": [
            {
                "id": d.device,
                "inferences_per_h": d.inferences_per_h,
                "per_inference": _split(d.per_inference),
                "per_hour": _split(d.per_hour),
                "embodied_kgco2e": d.embodied_kgco2e,
            }
            for d in report.devices
        ],
    }

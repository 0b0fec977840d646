from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter

from orchestrator.carbon.live import CarbonMeter, GridNow, apply_grid, load_series


def test_the_grid_now_comes_from_the_series_and_a_declared_figure_wins(tmp_path: Path) -> None:
    path = tmp_path / "grid.csv"
    path.write_text("time,zone,gco2_per_kwh\n2026-12-03T00:00:00+00:00,DEU,380\n")
    grid = GridNow(load_series(path))
    when = datetime(2026, 12, 3, 6, tzinfo=UTC).timestamp()
    assert grid.at({"DEU", "FRA"}, when) == {"DEU": 380.0}
    assert GridNow(None).at({"DEU"}, when) == {}
    devices: list[dict[str, Any]] = [
        {"id": "a", "zone": "DEU", "grid_declared": None, "grid_gco2_per_kwh": 422.0},
        {"id": "b", "zone": "DEU", "grid_declared": 50.0, "grid_gco2_per_kwh": 50.0},
        {"id": "c", "zone": "FRA", "grid_declared": None, "grid_gco2_per_kwh": 98.0},
        {"id": "d", "zone": None, "grid_declared": None, "grid_gco2_per_kwh": 0.0},
    ]
    apply_grid(devices, grid.at({"DEU", "FRA"}, when))
    assert [d["grid_gco2_per_kwh"] for d in devices] == [380.0, 50.0, 98.0, 0.0]


def test_the_meter_counts_the_plans_grams_as_time_passes() -> None:
    registry = CollectorRegistry()
    counter = Counter("continuum_carbon_grams", "g", ["device", "kind"], registry=registry)
    now = [0.0]
    meter = CarbonMeter(counter, clock=lambda: now[0])
    scenario = {
        "devices": [
            {"id": "edge", "grid_gco2_per_kwh": 400.0, "embodied_kgco2e": 876.0,
             "lifetime_h": 35040.0},
        ]
    }  # fmt: skip
    plan = {"devices": [{"id": "edge", "utilization": 0.5, "power_w": 50.0}]}
    meter.set_plan(plan, scenario)
    now[0] = 1800.0  # half an hour
    meter.advance()

    def grams(kind: str) -> float | None:
        return registry.get_sample_value(
            "continuum_carbon_grams_total", {"device": "edge", "kind": kind}
        )

    # 50 W at 400 g/kWh is 20 g/h; half of 876 kg over 35,040 h is 12.5 g/h.
    assert grams("operational") == pytest.approx(10.0)
    assert grams("embodied") == pytest.approx(6.25)
    meter.set_plan(None, None)  # no plan in force: nothing more counted
    now[0] = 7200.0
    meter.advance()
    assert grams("operational") == pytest.approx(10.0)

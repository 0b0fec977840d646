from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from orchestrator.carbon.boavizta import Boavizta
from orchestrator.carbon.derive import CarbonInputError
from orchestrator.carbon.grid import AnnualMix, CsvSeries, GridWatch, Layered


def _at(hour: int) -> datetime:
    return datetime(2026, 12, 3, hour, tzinfo=UTC)


def test_a_csv_series_is_a_step_function_and_falls_back_to_the_annual_mix(
    tmp_path: Path, boavizta: Boavizta
) -> None:
    path = tmp_path / "grid.csv"
    path.write_text(
        "time,zone,gco2_per_kwh\n"
        "2026-12-03T06:00:00+00:00,DEU,500\n"
        "2026-12-03T00:00:00+00:00,DEU,300\n"
        "2026-12-03T12:00:00+01:00,DEU,150\n"
    )
    series = CsvSeries.load(path)
    assert series.intensity("DEU", _at(0)) == 300
    assert series.intensity("DEU", _at(9)) == 500
    assert series.intensity("DEU", _at(11)) == 150  # 12:00+01:00 is 11:00 UTC
    assert series.intensity("FRA", _at(9)) is None
    grid = Layered([series, AnnualMix(boavizta)])
    assert grid.intensity("DEU", _at(9)) == 500
    assert grid.intensity("FRA", _at(9)) == AnnualMix(boavizta).intensity("FRA", _at(9))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("time,zone\n", "missing column"),
        ("time,zone,gco2_per_kwh\n2026-12-03T00:00:00,DEU,3\n", "grid.csv:2: time .* no UTC"),
        ("time,zone,gco2_per_kwh\n2026-12-03T00:00:00Z,DEU,9000\n", "outside 0 to 2000"),
        ("time,zone,gco2_per_kwh\n2026-12-03T00:00:00Z,DEU,lots\n", "grid.csv:2"),
    ],
)
def test_a_bad_series_names_the_file_and_line(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "grid.csv"
    path.write_text(body)
    with pytest.raises(CarbonInputError, match=message):
        CsvSeries.load(path)


def test_the_grid_watch_fires_past_the_threshold_once_until_committed() -> None:
    watch = GridWatch(threshold=0.2, floor_g=20.0)
    assert watch.observe("DEU", 400.0, at=0.0) is None  # the baseline
    assert watch.observe("DEU", 460.0, at=1.0) is None  # 15%: within the hysteresis
    fired = watch.observe("DEU", 250.0, at=2.0)
    assert fired is not None and fired.kind == "grid" and fired.target == "DEU"
    assert fired.reason == "grid DEU: 400 -> 250 gCO2e/kWh"
    watch.commit()
    assert watch.observe("DEU", 260.0, at=3.0) is None
    # A clean grid moving by a large fraction but a few grams changes no placement.
    assert watch.observe("NOR", 10.0, at=0.0) is None
    assert watch.observe("NOR", 25.0, at=1.0) is None


def test_the_grid_watch_measures_from_the_figures_the_plan_in_force_was_solved_with() -> None:
    watch = GridWatch(threshold=0.2, floor_g=20.0)
    watch.solved_with(3, {"DEU": 400.0})
    fired = watch.observe("DEU", 150.0, at=0.0)  # the first figure seen, but not the baseline
    assert fired is not None and fired.reason == "grid DEU: 400 -> 150 gCO2e/kWh"
    watch.commit()  # re-planned with 150: the same version's figures do not undo that
    watch.solved_with(3, {"DEU": 400.0})
    assert watch.observe("DEU", 150.0, at=1.0) is None
    watch.solved_with(4, {"DEU": 150.0})  # the new plan, solved with 150
    assert watch.observe("DEU", 160.0, at=2.0) is None
    watch.solved_with(5, {"DEU": 300.0})  # an operator's solve on another figure
    fired = watch.observe("DEU", 160.0, at=3.0)
    assert fired is not None and fired.reason == "grid DEU: 300 -> 160 gCO2e/kWh"

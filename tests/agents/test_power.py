"""Measured power (agents/power.py) against fake sysfs and powercap trees built the way the
kernel documents them (Documentation/ABI/testing/sysfs-class-power and
Documentation/power/powercap/powercap.rst): units are µW, µA, µV, µWh, µAh and µJ."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agents.main import power_meter
from agents.power import (
    BatteryDrainReader,
    PowerMeter,
    PowerSupplyReader,
    RaplReader,
)
from agents.settings import AgentSettings


def _write(directory: Path, **files: object) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, value in files.items():
        (directory / name).write_text(f"{value}\n")
    return directory


def _supplies(tmp: Path) -> Path:
    root = tmp / "power_supply"
    _write(root / "AC", type="Mains", online=0)
    return root


def test_power_now_of_a_discharging_battery(tmp_path: Path) -> None:
    root = _supplies(tmp_path)
    _write(root / "BAT0", type="Battery", status="Discharging", power_now=7_250_000)
    reader = PowerSupplyReader(root)
    assert reader.read(1.0) == pytest.approx(7.25)
    assert reader.name == "power_supply:BAT0"


def test_current_times_voltage_when_there_is_no_power_now(tmp_path: Path) -> None:
    root = _supplies(tmp_path)
    # Some drivers report the discharge current as negative.
    _write(root / "BAT1", type="Battery", status="Discharging", current_now=-500_000,
           voltage_now=11_400_000)  # fmt: skip
    assert PowerSupplyReader(root).read(1.0) == pytest.approx(0.5 * 11.4)


def test_a_charging_battery_says_nothing_of_the_device_draw(tmp_path: Path) -> None:
    root = _supplies(tmp_path)
    _write(root / "BAT0", type="Battery", status="Charging", power_now=20_000_000)
    assert PowerSupplyReader(root).read(1.0) is None
    assert PowerSupplyReader(tmp_path / "absent").read(1.0) is None


def test_battery_drain_between_readings(tmp_path: Path) -> None:
    root = _supplies(tmp_path)
    bat = _write(root / "BAT0", type="Battery", status="Discharging", energy_now=40_000_000)
    reader = BatteryDrainReader(root)
    assert reader.read(100.0) is None  # a rate needs two readings
    assert reader.read(110.0) is None  # the gauge has not moved: no figure yet
    _write(bat, energy_now=39_990_000)  # 0.01 Wh in 20 s since the last change: 1.8 W
    assert reader.read(120.0) == pytest.approx(0.01 * 3600 / 20)
    assert reader.name == "battery_drain:BAT0"
    # From charge (µAh) and voltage (µV) when the battery reports no energy.
    root2 = tmp_path / "ps2"
    bat2 = _write(root2 / "BAT0", type="Battery", status="Discharging", charge_now=2_000_000,
                  voltage_now=12_000_000)  # fmt: skip
    reader2 = BatteryDrainReader(root2)
    assert reader2.read(0.0) is None
    _write(bat2, charge_now=1_999_000)  # 1 mAh at 12 V = 0.012 Wh, in 36 s: 1.2 W
    assert reader2.read(36.0) == pytest.approx(1.2)
    _write(bat2, status="Charging", charge_now=1_900_000)
    assert reader2.read(72.0) is None


def test_rapl_sums_packages_skips_subzones_and_wraps(tmp_path: Path) -> None:
    root = tmp_path / "powercap"
    pkg0 = _write(root / "intel-rapl:0", name="package-0", energy_uj=1_000_000,
                  max_energy_range_uj=262_143_328_850)  # fmt: skip
    core = _write(root / "intel-rapl:0:0", name="core", energy_uj=500_000)
    pkg1 = _write(root / "intel-rapl:1", name="package-1", energy_uj=262_143_000_000,
                  max_energy_range_uj=262_143_328_850)  # fmt: skip
    reader = RaplReader(root)
    assert reader.read(10.0) is None
    _write(pkg0, energy_uj=21_000_000)  # +20 J in 2 s: 10 W
    _write(core, energy_uj=99_000_000)  # a sub-zone: already inside package-0
    _write(pkg1, energy_uj=671_150)  # wrapped: +1,000,000 µJ in 2 s: 0.5 W
    assert reader.read(12.0) == pytest.approx(10.0 + 0.5)
    reader.reset()
    assert reader.read(14.0) is None


def _meter(readings: list[float], **kw: float) -> PowerMeter:
    """A meter over a reader that returns `readings` in turn."""

    class Scripted:
        name = "scripted"

        def __init__(self) -> None:
            self.values = iter(readings)

        def read(self, now: float) -> float | None:
            return next(self.values, None)

        def reset(self) -> None:
            pass

    return PowerMeter([Scripted()], 2.0, 6.0, 200.0, **kw)  # type: ignore[arg-type]


def test_bad_readings_are_dropped_and_counted() -> None:
    meter = _meter([float("nan"), -3.0, 10_000.0, float("inf"), 4.0, 4.0])
    for t in range(6):
        meter.sample(100.0 + t, 0.1)
    meter.sample(50.0, 0.1)  # the clock went backwards
    assert meter.rejected == {"nan": 2, "negative": 1, "absurd": 1, "clock": 1}
    assert [w for _, w in meter.samples] == [4.0, 4.0]
    report = meter.report()
    assert report is not None and report.rejected == meter.rejected
    assert report.provenance == "measured" and report.watts == 4.0


def test_only_rejections_keep_the_declared_figures() -> None:
    meter = _meter([10_000.0])
    meter.sample(1.0, 0.0)
    report = meter.report()
    assert report is not None
    assert (report.provenance, report.idle_w, report.busy_w) == ("declared", 2.0, 6.0)
    assert report.watts is None and report.rejected == {"absurd": 1}


def test_no_reading_no_report() -> None:
    meter = PowerMeter([], 2.0, 6.0, 200.0)
    meter.sample(1.0, 0.5)
    assert meter.report() is None and meter.figures() == ("declared", 2.0, 6.0)


def test_a_narrow_load_keeps_the_declared_slope_over_the_measured_level() -> None:
    # An idle camera measured at 0.9 W: its idle is 0.9 W, not the declared 2 W.
    meter = _meter([0.9] * 20)
    for t in range(20):
        meter.sample(float(t + 1), 0.0)
    assert meter.figures() == ("measured", pytest.approx(0.9), pytest.approx(4.9))


def test_idle_and_busy_fitted_against_utilization() -> None:
    rng = np.random.default_rng(0)
    us = rng.uniform(0, 0.8, 60)
    watts = 1.2 + (4.7 - 1.2) * us + rng.normal(0, 0.05, 60)
    meter = _meter([float(w) for w in watts])
    for t, u in enumerate(us):
        meter.sample(float(t + 1), float(u))
    provenance, idle, busy = meter.figures()
    assert provenance == "fitted"
    assert idle == pytest.approx(1.2, abs=0.05) and busy == pytest.approx(4.7, abs=0.1)
    report = meter.report()
    assert report is not None and report.samples == 60


def test_the_window_tracks_a_change() -> None:
    us = [0.0, 0.5] * 60
    old = [2.0 + 4.0 * u for u in us]  # 2 W idle, 6 W busy
    new = [1.0 + 2.0 * u for u in us]  # then 1 W idle, 3 W busy
    meter = _meter(old + new, window=40)
    for t, u in enumerate(us + us):
        meter.sample(float(t + 1), u)
    provenance, idle, busy = meter.figures()
    assert (provenance, round(idle, 6), round(busy, 6)) == ("fitted", 1.0, 3.0)


def test_the_agent_reads_nothing_in_emulation(tmp_path: Path) -> None:
    root = _supplies(tmp_path)
    _write(root / "BAT0", type="Battery", status="Discharging", power_now=3_000_000)
    settings = AgentSettings(power_supply_root=root, powercap_root=tmp_path / "none")
    meter = power_meter(settings, battery_emulated=False)
    meter.sample(1.0, 0.0)
    assert meter.report() is not None and meter.source == "power_supply:BAT0"
    assert meter.max_w == 200.0  # the device tier's bound
    emulated = power_meter(settings, battery_emulated=True)
    emulated.sample(1.0, 0.0)
    assert emulated.report() is None
    off = power_meter(AgentSettings(power_readers="none", power_supply_root=root), False)
    off.sample(1.0, 0.0)
    assert off.report() is None


def test_a_coarse_gauge_is_fitted_over_the_heartbeats_each_reading_covers(
    tmp_path: Path,
) -> None:
    """A battery whose gauge moves in 1 mWh steps, drawing 1.5 W idle and 5 W busy,
    read once a second while the load sweeps 0..50% and back. Its gauge moves every two
    or three quiet heartbeats: each reading is paired with those heartbeats' mean load and
    weighed by their time, so the fit finds the battery's own figures."""
    root = _supplies(tmp_path)
    bat = _write(root / "BAT0", type="Battery", status="Discharging", energy_now=40_000_000)
    meter = PowerMeter([BatteryDrainReader(root)], 2.0, 6.0, 200.0)
    joules = 40_000_000 / 1e6 * 3600
    loads = [u / 100 for u in range(0, 50)] + [u / 100 for u in range(50, 0, -1)]
    for now, u in enumerate(loads * 2, start=1):
        joules -= 1.5 + 3.5 * u
        _write(bat, energy_now=int(joules / 3600 * 1e6) // 1000 * 1000)
        meter.sample(float(now), u)
    provenance, idle, busy = meter.figures()
    assert provenance == "fitted"
    assert idle == pytest.approx(1.5, rel=0.05)
    assert busy == pytest.approx(5.0, rel=0.05)

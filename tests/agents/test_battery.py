from __future__ import annotations

from pathlib import Path

import pytest

from agents.battery import EmulatedBattery, NoBattery, OsBattery, find_os_battery, open_battery


def test_emulated_battery_drains_by_compute_energy() -> None:
    # 10 Wh = 36 000 J at 50%: 18 000 J. Busy - idle = 4 W; 90 s of compute = 360 J.
    battery = EmulatedBattery(10.0, 50.0, power_idle_w=2.0, power_busy_w=6.0)
    battery.charge_compute(90.0)
    assert battery.level_pct() == pytest.approx((18_000 - 360) / 36_000 * 100)
    assert battery.describe()["drained_j"]["compute"] == pytest.approx(360.0)


def test_emulated_battery_drains_by_transmission_energy() -> None:
    battery = EmulatedBattery(1.0, 100.0, power_idle_w=1.0, power_busy_w=1.0)
    battery.charge_compute(1000.0)  # busy == idle: compute costs nothing extra
    battery.charge_transfer(megabytes=100.0, j_per_mb=0.6)
    assert battery.level_pct() == pytest.approx((3600 - 60) / 3600 * 100)


def test_emulated_battery_stops_at_empty_and_is_labelled() -> None:
    battery = open_battery("emulated:0.001:1", 0.0, 10.0)
    assert battery.emulated is True
    battery.charge_compute(1e6)
    assert battery.level_pct() == 0.0
    assert battery.describe()["kind"] == "emulated"


def test_none_is_mains_power() -> None:
    battery = open_battery("none", 1.0, 2.0)
    assert isinstance(battery, NoBattery)
    assert battery.capacity_wh() is None and battery.level_pct() is None


def test_os_battery_read_from_sysfs(tmp_path: Path) -> None:
    supply = tmp_path / "BAT0"
    supply.mkdir()
    (supply / "type").write_text("Battery\n")
    (supply / "capacity").write_text("57\n")
    (supply / "energy_full").write_text("45000000\n")  # µWh
    (tmp_path / "AC").mkdir()
    (tmp_path / "AC" / "type").write_text("Mains\n")
    found = find_os_battery(tmp_path)
    assert isinstance(found, OsBattery)
    assert found.capacity_wh() == pytest.approx(45.0)
    assert found.level_pct() == 57.0
    assert found.emulated is False


def test_charge_based_sysfs_capacity(tmp_path: Path) -> None:
    supply = tmp_path / "BAT1"
    supply.mkdir()
    (supply / "type").write_text("Battery")
    (supply / "capacity").write_text("80")
    (supply / "charge_full").write_text("3000000")  # µAh
    (supply / "voltage_min_design").write_text("3700000")  # µV
    found = find_os_battery(tmp_path)
    assert found is not None and found.capacity_wh() == pytest.approx(11.1)


def test_no_battery_under_sysfs(tmp_path: Path) -> None:
    assert find_os_battery(tmp_path / "missing") is None


def test_an_emulated_battery_on_its_charger_does_not_drain() -> None:
    battery = EmulatedBattery(10.0, 50.0, power_idle_w=2.0, power_busy_w=6.0)
    assert battery.charging() is False
    battery.set_charging(True)
    battery.charge_compute(90.0)
    battery.charge_transfer(megabytes=10.0, j_per_mb=1.0)
    assert battery.level_pct() == pytest.approx(50.0)
    assert battery.charging() is True and battery.describe()["charging"] is True
    battery.set_charging(False)
    battery.charge_compute(90.0)
    assert battery.level_pct() == pytest.approx((18_000 - 360) / 36_000 * 100)


@pytest.mark.parametrize(
    ("status", "plugged"),
    [("Charging", True), ("Full", True), ("Not charging", True), ("Discharging", False)],
)
def test_os_battery_charging_from_sysfs_status(tmp_path: Path, status: str, plugged: bool) -> None:
    supply = tmp_path / "BAT0"
    supply.mkdir()
    (supply / "type").write_text("Battery\n")
    (supply / "capacity").write_text("57\n")
    (supply / "energy_full").write_text("45000000\n")
    (supply / "status").write_text(status + "\n")
    found = find_os_battery(tmp_path)
    assert found is not None and found.charging() is plugged
    assert found.describe()["charging"] is plugged


def test_mains_power_does_not_say_charging() -> None:
    assert NoBattery().charging() is None

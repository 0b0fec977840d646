"""Checking heartbeat power reports and choosing the figures a device is planned with
(orchestrator/power.py)."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.power import check_report, planned_power

GOOD = {"provenance": "fitted", "watts": 3.0, "idle_w": 1.0, "busy_w": 5.0}


@pytest.mark.parametrize(
    ("change", "tier", "reason"),
    [
        ({}, "device", None),
        ({"watts": None}, "device", None),
        ({"idle_w": float("nan")}, "device", "nan"),
        ({"watts": float("inf")}, "device", "nan"),
        ({"idle_w": "1"}, "device", "nan"),
        ({"idle_w": -0.1}, "device", "negative"),
        ({"watts": 10_000.0}, "device", "absurd"),  # the 10,000 W camera
        ({"watts": 10_000.0, "busy_w": 10_000.0}, "cloud", None),  # a cloud machine may
        ({"busy_w": 25_000.0}, None, "absurd"),  # unknown tier: the widest bound
        ({"busy_w": 0.5}, "device", "busy_below_idle"),
    ],
)
def test_check_report(change: dict[str, Any], tier: str | None, reason: str | None) -> None:
    assert check_report({**GOOD, **change}, tier) == reason


def test_planned_power_prefers_measured_or_fitted_figures() -> None:
    declared = {"idle": 2.0, "busy": 6.0}
    assert planned_power(declared, None) == (declared, "declared")
    assert planned_power(declared, {"battery_pct": 50}) == (declared, "declared")
    assert planned_power(declared, {"power": GOOD}) == ({"idle": 1.0, "busy": 5.0}, "fitted")
    measured = {**GOOD, "provenance": "measured"}
    assert planned_power(declared, {"power": measured})[1] == "measured"
    # An agent whose every reading was dropped reports `declared`: its figures stand.
    dropped = {**GOOD, "provenance": "declared"}
    assert planned_power(declared, {"power": dropped}) == (declared, "declared")

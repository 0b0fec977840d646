"""Measured power from heartbeats: checked before anything plans with it, and the figures
a device is planned with, with their provenance.

An agent that can read its power (agents/power.py) sends a report with each heartbeat:
the latest reading, and idle and busy watts `fitted` against its utilization or
`measured` (the measured level with the declared slope). The agent drops bad readings
itself; the server checks the report again, since it plans with it: every figure finite
(the wire refuses NaN), idle and busy within the tier's plausible maximum, busy at least
idle. A report that fails is dropped, counted by reason, and the device is planned on its
declared figures. Provenance, one of `declared | measured | fitted` (`profile` is the
hardware-profile feature's), goes with the device in the API and the metrics; the
scenario document carries only the figures (the contract refuses unknown fields).
"""

from __future__ import annotations

import math
from typing import Any

# The same bounds as the agent's (agents/power.py): beyond them a sensor is broken.
MAX_PLAUSIBLE_W = {"device": 200.0, "edge": 2_000.0, "cloud": 20_000.0}
PLANNED = ("measured", "fitted")


def check_report(report: dict[str, Any], tier: str | None) -> str | None:
    """Why a heartbeat's power report cannot be planned with (a reason code), or None."""
    limit = MAX_PLAUSIBLE_W.get(tier or "", max(MAX_PLAUSIBLE_W.values()))
    figures = [report.get("idle_w"), report.get("busy_w")]
    if report.get("watts") is not None:
        figures.append(report["watts"])
    numbers = [f for f in figures if isinstance(f, int | float)]
    if len(numbers) != len(figures) or not all(math.isfinite(f) for f in numbers):
        return "nan"
    if any(f < 0 for f in numbers):
        return "negative"
    if any(f > limit for f in numbers):
        return "absurd"
    if report["busy_w"] < report["idle_w"]:
        return "busy_below_idle"
    return None


def planned_power(
    declared: dict[str, float], beat: dict[str, Any] | None
) -> tuple[dict[str, float], str]:
    """The idle and busy watts a device is planned with, and their provenance: the
    heartbeat's measured or fitted figures when it has them (already checked on arrival),
    else the declared ones."""
    report = (beat or {}).get("power")
    if isinstance(report, dict) and report.get("provenance") in PLANNED:
        return {"idle": float(report["idle_w"]), "busy": float(report["busy_w"])}, str(
            report["provenance"]
        )
    return dict(declared), "declared"

"""Carbon tables for people: a plan's carbon split in operational and embodied, per device
and per deployment, and the solvers' plans compared with their payback."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.table import Table

from orchestrator.carbon.report import CarbonReport, Payback, payback

REFERENCE = "all-device"  # the plan that buys no hardware beyond the cameras themselves


def _g(value: float) -> str:
    return f"{value:,.3f}"


def _mg(grams: float) -> str:
    """Per-inference figures are milligrams or less: shown in mg."""
    return f"{grams * 1000:,.4f}"


def deployments_table(report: CarbonReport) -> Table:
    table = Table(title="carbon per deployment (CO2e)", title_justify="left")
    table.add_column("app", no_wrap=True)
    for name in ("op mg/inf", "emb mg/inf", "op g/h", "emb g/h", "total g/h"):
        table.add_column(name, justify="right")
    table.add_column("by device: op+emb mg/inf", overflow="fold")
    for dep in sorted(report.deployments, key=lambda d: -d.per_hour.total_g):
        parts = ", ".join(
            f"{d} {_mg(s.operational_g)}+{_mg(s.embodied_g)}"
            for d, s in sorted(dep.by_device.items(), key=lambda kv: -kv[1].total_g)
            if s.total_g > 0
        )
        table.add_row(
            dep.app,
            _mg(dep.per_inference.operational_g),
            _mg(dep.per_inference.embodied_g),
            _g(dep.per_hour.operational_g),
            _g(dep.per_hour.embodied_g),
            _g(dep.per_hour.total_g),
            parts,
        )
    return table


def devices_table(report: CarbonReport) -> Table:
    table = Table(title="carbon per device (CO2e)", title_justify="left")
    table.add_column("device", no_wrap=True)
    for name in ("inferences/h", "op mg/inf", "emb mg/inf", "op g/h", "emb g/h", "total g/h"):
        table.add_column(name, justify="right")
    for dev in sorted(report.devices, key=lambda d: -d.per_hour.total_g):
        per_inf = dev.per_inference
        table.add_row(
            dev.device,
            f"{dev.inferences_per_h:,.0f}",
            _mg(per_inf.operational_g),
            _mg(per_inf.embodied_g),
            _g(dev.per_hour.operational_g),
            _g(dev.per_hour.embodied_g),
            _g(dev.per_hour.total_g),
        )
    table.add_row(
        "total",
        "",
        "",
        "",
        _g(report.per_hour.operational_g),
        _g(report.per_hour.embodied_g),
        _g(report.per_hour.total_g),
        style="bold",
    )
    return table


@dataclass(frozen=True, slots=True)
class CarbonRow:
    solver: str
    report: CarbonReport
    payback: Payback | None  # None: this is the reference, or there is none


def with_payback(reports: Sequence[tuple[str, CarbonReport]]) -> list[CarbonRow]:
    ref = next((r for name, r in reports if name == REFERENCE), None)
    return [
        CarbonRow(name, r, payback(r, ref) if ref is not None and name != REFERENCE else None)
        for name, r in reports
    ]


def _hours(p: Payback | None) -> str:
    if p is None:
        return "(reference)"
    if p.hours is None:
        return "never"
    if p.hours == 0:
        return "0 (no extra hardware)"
    return f"{p.hours:,.0f} h ({p.hours / 24:,.1f} days)"


def comparison_carbon_table(rows: Sequence[CarbonRow]) -> Table:
    table = Table(
        title=f"carbon of each plan, and its payback against {REFERENCE}", title_justify="left"
    )
    table.add_column("solver", no_wrap=True)
    for name in ("op g/h", "emb g/h", "total g/h", "extra hardware kg", "op saved g/h"):
        table.add_column(name, justify="right")
    table.add_column("payback", justify="right")
    for row in rows:
        p = row.payback
        table.add_row(
            row.solver,
            _g(row.report.per_hour.operational_g),
            _g(row.report.per_hour.embodied_g),
            _g(row.report.per_hour.total_g),
            "-" if p is None else f"{p.extra_embodied_kg:,.1f}",
            "-" if p is None else _g(p.saving_g_per_h),
            _hours(p),
        )
    return table


def carbon_json(row: CarbonRow) -> dict[str, object]:
    per_hour = row.report.per_hour
    out: dict[str, object] = {
        "operational_g_per_h": per_hour.operational_g,
        "embodied_g_per_h": per_hour.embodied_g,
    }
    if row.payback is not None:
        out["payback"] = {
            "reference": REFERENCE,
            "extra_embodied_kgco2e": row.payback.extra_embodied_kg,
            "operational_saving_g_per_h": row.payback.saving_g_per_h,
            "hours": row.payback.hours,
        }
    return out

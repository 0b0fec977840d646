"""The console's charts: a bounded, downsampled time series in the database.

Every sampling interval the leader records one "raw" row: the fleet's planned energy
(J/s) and carbon (g/h) under the plan in force, its SLO misses, and each battery's level
(from heartbeats) and projected hours (from the plan). When a coarse bucket (five minutes
by default) is complete its raw rows are averaged into one "coarse" row. Raw rows older
than `raw_keep_s` and coarse rows older than `history_s` are deleted, so the table holds
at most raw_keep_s / interval + history_s / coarse_s rows whatever the fleet's age, and a
row holds per-device series for the BATTERY_SERIES batteries at most risk only (fleet-wide
battery figures cover them all), so its size is bounded whatever the fleet's size.

The heartbeat path never touches this: the sampler reads the live state on its own clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

import solver
from orchestrator import audit
from orchestrator.db.tables import ConsoleSample, PlanVersion
from orchestrator.plan_versions import parse_apps

RAW = "raw"
COARSE = "coarse"


@dataclass(frozen=True)
class PlanFigures:
    """What the plan in force predicts, read once per plan version."""

    version: int | None
    energy_w: float = 0.0  # J/s spent on inference: energy per inference x rate
    carbon_gph: float = 0.0  # grams CO2e per hour, embodied share included
    battery_h: dict[str, float | None] = field(default_factory=dict)
    slo_ms: dict[str, float] = field(default_factory=dict)  # app -> its SLO, if any
    slo_unmet: frozenset[str] = frozenset()  # apps the plan itself predicts over their SLO


def in_force_version(session: Session) -> int | None:
    return session.scalar(select(PlanVersion.version).where(PlanVersion.in_force.is_(True)))


def plan_figures(session: Session) -> PlanFigures:
    row = session.scalar(select(PlanVersion).where(PlanVersion.in_force.is_(True)))
    if row is None:
        return PlanFigures(version=None)
    slos = {
        a["id"]: float(a["slo_ms"])
        for a in (row.scenario or {}).get("apps", [])
        if a.get("slo_ms") is not None
    }
    apps = parse_apps(row.plan)
    sums = totals(row.scenario or {}, apps)
    battery = {
        str(d["id"]): d.get("battery_h")
        for d in (row.plan or {}).get("devices", [])
        if d.get("battery_h") is not None
    }
    return PlanFigures(
        version=row.version,
        energy_w=sums["energy_w"],
        carbon_gph=sums["carbon_gph"],
        battery_h=battery,
        slo_ms=slos,
        slo_unmet=frozenset(a.id for a in apps if not a.slo_met),
    )


def totals(scenario: dict[str, Any], apps: list[solver.AppResult]) -> dict[str, float]:
    """A plan's fleet-wide figures: inference energy (J/s) and carbon (g/h) at the apps'
    rates, and the megabytes it migrates (kept in each plan version's stats)."""
    rates = {a["id"]: float(a["rate_rps"]) for a in scenario.get("apps", [])}
    return {
        "energy_w": sum(a.energy_j * rates.get(a.id, 0.0) for a in apps),
        "carbon_gph": sum(a.carbon_g * rates.get(a.id, 0.0) for a in apps) * 3600.0,
        "migration_mb": sum(a.migration_mb for a in apps),
    }


def measured_latency_ms(beats: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Deployment -> the mean compute time of a request, summed over its partitions (and
    cascade stages) as the agents report them; transfers are not in it."""
    out: dict[str, float] = {}
    for beat in beats.values():
        for key, metrics in (beat.get("metrics") or {}).items():
            hist = metrics.get("compute_ms") or {}
            count = int(hist.get("count") or 0)
            if count > 0:
                app = key.split("/", 1)[0]
                out[app] = out.get(app, 0.0) + float(hist.get("sum_ms") or 0.0) / count
    return out


# Per-device battery series are kept for this many devices, those at most risk at each
# point (fewest projected hours, then lowest level): a row's size, and so a chart's read,
# stays bounded at any fleet size. Every battery counts in the fleet-wide figures.
BATTERY_SERIES = 16


def sample_values(
    figures: PlanFigures, beats: dict[str, dict[str, Any]], keep: int = BATTERY_SERIES
) -> dict[str, Any]:
    """One chart point from the plan's figures and the heartbeats."""
    measured = measured_latency_ms(beats)
    misses = set(figures.slo_unmet)
    misses.update(app for app, ms in measured.items() if ms > figures.slo_ms.get(app, ms))
    batteries: dict[str, dict[str, float | None]] = {}
    for device_id, beat in beats.items():
        pct = beat.get("battery_pct")
        if pct is not None or device_id in figures.battery_h:
            batteries[device_id] = {"pct": pct, "hours": figures.battery_h.get(device_id)}
    levels = [float(b["pct"]) for b in batteries.values() if b["pct"] is not None]
    hours = [float(b["hours"]) for b in batteries.values() if b["hours"] is not None]

    def risk(item: tuple[str, dict[str, float | None]]) -> tuple[float, float, str]:
        b = item[1]
        h, p = b["hours"], b["pct"]
        return (h if h is not None else float("inf"), p if p is not None else 100.0, item[0])

    return {
        "energy_w": round(figures.energy_w, 6),
        "carbon_gph": round(figures.carbon_gph, 6),
        "slo_misses": len(misses),
        "battery_count": len(batteries),
        "battery_mean_pct": round(sum(levels) / len(levels), 3) if levels else None,
        "battery_min_hours": round(min(hours), 3) if hours else None,
        "batteries": dict(sorted(batteries.items(), key=risk)[:keep]),
    }


@dataclass(frozen=True)
class Retention:
    raw_keep_s: float  # raw rows are kept this long
    coarse_s: float  # the width of a coarse bucket
    history_s: float  # coarse rows are kept this long


def record(session: Session, values: dict[str, Any], retention: Retention) -> None:
    """Add a raw row; roll the last complete bucket up into a coarse row; drop the old."""
    now = audit.now()
    session.add(ConsoleSample(at=now, resolution=RAW, values=values))
    bucket_s = retention.coarse_s
    start = datetime.fromtimestamp(
        (now.timestamp() // bucket_s - 1) * bucket_s, tz=now.tzinfo
    )  # the last complete bucket
    end = start + timedelta(seconds=bucket_s)
    done = session.scalar(
        select(ConsoleSample.id).where(
            ConsoleSample.resolution == COARSE, ConsoleSample.at == start
        )
    )
    if done is None:
        rows = session.scalars(
            select(ConsoleSample.values).where(
                ConsoleSample.resolution == RAW, ConsoleSample.at >= start, ConsoleSample.at < end
            )
        ).all()
        if rows:
            session.add(ConsoleSample(at=start, resolution=COARSE, values=_average(list(rows))))
    session.execute(
        delete(ConsoleSample).where(
            ConsoleSample.resolution == RAW,
            ConsoleSample.at < now - timedelta(seconds=retention.raw_keep_s),
        )
    )
    session.execute(
        delete(ConsoleSample).where(
            ConsoleSample.resolution == COARSE,
            ConsoleSample.at < now - timedelta(seconds=retention.history_s),
        )
    )


def _average(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Means of the fleet's figures, the most SLO misses, each battery's mean."""
    n = len(rows)
    batteries: dict[str, dict[str, list[float]]] = {}
    for row in rows:
        for device_id, b in (row.get("batteries") or {}).items():
            slot = batteries.setdefault(device_id, {"pct": [], "hours": []})
            for key in ("pct", "hours"):
                if b.get(key) is not None:
                    slot[key].append(float(b[key]))

    def mean(key: str) -> float | None:
        got = [float(r[key]) for r in rows if r.get(key) is not None]
        return round(sum(got) / len(got), 3) if got else None

    return {
        "energy_w": round(sum(float(r.get("energy_w", 0.0)) for r in rows) / n, 6),
        "carbon_gph": round(sum(float(r.get("carbon_gph", 0.0)) for r in rows) / n, 6),
        "slo_misses": max(int(r.get("slo_misses", 0)) for r in rows),
        "battery_count": max(int(r.get("battery_count") or 0) for r in rows),
        "battery_mean_pct": mean("battery_mean_pct"),
        "battery_min_hours": mean("battery_min_hours"),
        "batteries": {
            d: {k: (round(sum(v) / len(v), 4) if v else None) for k, v in slot.items()}
            for d, slot in batteries.items()
        },
    }


def window(
    session: Session, hours: float, coarse_s: float
) -> list[tuple[datetime, dict[str, Any]]]:
    """The points of the last `hours`: coarse ones (buckets of `coarse_s`) where raw ones
    are gone, then raw. A bucket that still holds raw points is left out: it averages
    them, and shown beside them a point was counted twice."""
    since = audit.now() - timedelta(hours=hours)
    raw = session.execute(
        select(ConsoleSample.at, ConsoleSample.values)
        .where(ConsoleSample.resolution == RAW, ConsoleSample.at >= since)
        .order_by(ConsoleSample.at)
    ).all()
    first_raw = raw[0][0] if raw else None
    coarse_q = select(ConsoleSample.at, ConsoleSample.values).where(
        ConsoleSample.resolution == COARSE, ConsoleSample.at >= since
    )
    if first_raw is not None:
        coarse_q = coarse_q.where(ConsoleSample.at <= first_raw - timedelta(seconds=coarse_s))
    coarse = session.execute(coarse_q.order_by(ConsoleSample.at)).all()
    return [(_aware(at), values) for at, values in [*coarse, *raw]]


def count_rows(session: Session) -> dict[str, int]:
    """Rows per resolution (the benchmark's cost figures)."""
    out = {RAW: 0, COARSE: 0}
    for resolution in session.scalars(select(ConsoleSample.resolution)):
        out[resolution] = out.get(resolution, 0) + 1
    return out


def _aware(value: datetime) -> datetime:
    # SQLite hands back naive datetimes for timezone-aware columns: they were stored in UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=audit.now().tzinfo)

"""What a simulation writes: `summary.json`, `timings.json`, `timeseries.csv`,
`broken.csv`, `decisions.csv` (and `report.html`, by `simulate.report`).

`summary.json` is `{"policies": {NAME: {energy_j, carbon_g, slo_miss_s, violation_s,
replacements, migrated_mb, battery_dead_h, solve_s}}}`; figures are rounded to 6
significant digits, keys sorted, so the same inputs and seed give the same bytes. That
cannot hold for a measured time, so `solve_s` is null there, and what was measured (the
wall seconds each policy took to decide, and the wall and CPU seconds of its whole run) is
in `timings.json`, `{"policies": {NAME: {solve_s, run_s, run_cpu_s}}}` (docs/simulate.md).
`broken.csv` names the constraints behind `violation_s` (`simulate.ledger`), a row each;
`decisions.csv` the re-plans of the policies that keep them (`simulate.decisions`).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from simulate.engine import PolicyRun, Sample, Totals

SUMMARY_KEYS = (
    "energy_j",
    "carbon_g",
    "slo_miss_s",
    "violation_s",
    "replacements",
    "migrated_mb",
    "battery_dead_h",
    "solve_s",
)
COLUMNS = (
    "policy",
    "t_s",
    *SUMMARY_KEYS[:-1],
    "power_w",
    "violations_now",
    "slo_misses_now",
    "battery_min_pct",
    "battery_mean_pct",
)


def _fig(x: float) -> float:
    return float(f"{x:.6g}")


MEASURED = frozenset({"solve_s"})  # wall times: in timings.json, null in summary.json


def totals_dict(t: Totals, measured: bool = False) -> dict[str, Any]:
    """The summary's figures; `measured`: with the measured `solve_s` (for people to
    read: the terminal's table, the report), not null (for summary.json)."""
    out: dict[str, Any] = {}
    for key in SUMMARY_KEYS:
        value = getattr(t, key)
        if key in MEASURED and not measured:
            out[key] = None
        else:
            out[key] = value if isinstance(value, int) else _fig(value)
    return out


def timings(runs: Mapping[str, PolicyRun]) -> dict[str, Any]:
    return {
        "policies": {
            name: {
                "solve_s": _fig(run.totals.solve_s),
                "run_s": _fig(run.run_s),
                "run_cpu_s": _fig(run.run_cpu_s),
            }
            for name, run in runs.items()
        }
    }


def timings_text(runs: Mapping[str, PolicyRun]) -> str:
    return json.dumps(timings(runs), indent=2, sort_keys=True) + "\n"


def summary(runs: Mapping[str, PolicyRun]) -> dict[str, Any]:
    return {"policies": {name: totals_dict(run.totals) for name, run in runs.items()}}


def summary_text(runs: Mapping[str, PolicyRun]) -> str:
    return json.dumps(summary(runs), indent=2, sort_keys=True) + "\n"


def _csv_text(columns: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    w.writerows(rows)
    return buf.getvalue()


def _maybe(x: float | None) -> float | str:
    return "" if x is None else _fig(x)


def _sample_row(name: str, s: Sample) -> list[object]:
    t = totals_dict(s.totals)
    return [
        name,
        _fig(s.t_s),
        *(t[k] for k in SUMMARY_KEYS[:-1]),
        _fig(s.power_w),
        s.violations,
        s.slo_misses,
        _maybe(s.battery_min_pct),
        _maybe(s.battery_mean_pct),
    ]


def timeseries_text(runs: Mapping[str, PolicyRun]) -> str:
    return _csv_text(
        COLUMNS, (_sample_row(name, s) for name, run in runs.items() for s in run.samples)
    )


BROKEN_COLUMNS = ("policy", "constraint", "subject", "seconds", "spells", "first_s", "last_s")


def broken_text(runs: Mapping[str, PolicyRun]) -> str:
    """Each policy's broken constraints, most seconds first: their seconds add up to its
    `violation_s`; `first_s` and `last_s`, the start of the first spell and the end of the
    last one."""
    return _csv_text(
        BROKEN_COLUMNS,
        (
            [name, code, subject, _fig(b.seconds), b.spells, _fig(b.first_s), _fig(b.last_s)]
            for name, run in runs.items()
            for (code, subject), b in run.broken.items()
        ),
    )


DECISION_COLUMNS = (
    "policy", "t_s", "applied", "decision", "objective_in_force", "objective_candidate",
    "set_aside", "degraded", "triggers",
)  # fmt: skip


def decisions_text(runs: Mapping[str, PolicyRun]) -> str:
    """Each re-plan of each policy that keeps them, in time order: whether it replaced the
    plan in force and why, both objectives, the apps set aside (space-separated) and what
    asked for it ("; "-separated)."""
    return _csv_text(
        DECISION_COLUMNS,
        (
            [
                name,
                _fig(r.at_s),
                int(r.applied),
                r.decision,
                _maybe(r.in_force_objective),
                _maybe(r.candidate_objective),
                " ".join(r.set_aside),
                " ".join(r.degraded),
                "; ".join(r.triggers),
            ]
            for name, run in runs.items()
            for r in run.replans
        ),
    )


def write_tables(out: Path, runs: Mapping[str, PolicyRun]) -> None:
    """What a run and a sweep both write beside their summary: `timings.json`,
    `broken.csv` and `decisions.csv`."""
    write_atomically(out / "timings.json", timings_text(runs))
    write_atomically(out / "broken.csv", broken_text(runs))
    write_atomically(out / "decisions.csv", decisions_text(runs))


def write_atomically(path: Path, text: str) -> None:
    """Write beside, then rename: a reader never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


__all__ = [
    "BROKEN_COLUMNS",
    "COLUMNS",
    "DECISION_COLUMNS",
    "SUMMARY_KEYS",
    "broken_text",
    "decisions_text",
    "summary",
    "summary_text",
    "timeseries_text",
    "timings",
    "timings_text",
    "totals_dict",
    "write_atomically",
    "write_tables",
]

"""`report.html`: one self-contained page (inline SVG, inline CSS, no script, no CDN).

Plots over time, one line per policy: energy, carbon, SLO misses, broken constraints,
battery (lowest pack) and re-placements; then the summary table, what broke (each
policy's constraint-seconds by family, and the constraints that broke longest, from
`PolicyRun.broken`), the re-plans of the policies that keep them (`PolicyRun.replans`:
how many, and the ones that replaced the plan in force) and the inputs.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from typing import Any

from simulate.engine import PolicyRun, Sample
from simulate.ledger import by_family
from simulate.outputs import SUMMARY_KEYS, totals_dict

W, H, PAD_L, PAD_B, PAD_T, PAD_R = 640, 240, 64, 36, 16, 12
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf")

PLOTS: tuple[tuple[str, str, str], ...] = (
    ("energy_j", "Energy of inference (J, cumulative)", "total"),
    ("carbon_g", "Carbon (g CO2e, cumulative)", "total"),
    ("slo_miss_s", "SLO misses (app-seconds, cumulative)", "total"),
    ("violation_s", "Broken constraints (constraint-seconds, cumulative)", "total"),
    ("battery_min_pct", "Lowest battery (%)", "sample"),
    ("replacements", "Re-placements (cumulative)", "total"),
)


def _value(s: Sample, key: str, kind: str) -> float | None:
    if kind == "total":
        return float(getattr(s.totals, key))
    v = getattr(s, key)
    return None if v is None else float(v)


def _ticks(lo: float, hi: float) -> list[float]:
    if hi <= lo:
        return [lo]
    return [lo + (hi - lo) * k / 4 for k in range(5)]


def svg_plot(
    title: str, series: Mapping[str, Sequence[tuple[float, float]]], x_label: str = "hours"
) -> str:
    """A line plot as an SVG element (one polyline per series, a legend)."""
    points = [p for line in series.values() for p in line]
    if not points:
        return f"<p>{html.escape(title)}: no data</p>"
    x0, x1 = min(p[0] for p in points), max(p[0] for p in points)
    y0, y1 = min(0.0, *(p[1] for p in points)), max(p[1] for p in points)
    if y1 <= y0:
        y1 = y0 + 1.0
    if x1 <= x0:
        x1 = x0 + 1.0
    iw, ih = W - PAD_L - PAD_R, H - PAD_T - PAD_B

    def sx(x: float) -> float:
        return PAD_L + (x - x0) / (x1 - x0) * iw

    def sy(y: float) -> float:
        return PAD_T + ih - (y - y0) / (y1 - y0) * ih

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H + 18 * len(series)}" '
        f'role="img" aria-label="{html.escape(title)}">',
        f'<rect x="{PAD_L}" y="{PAD_T}" width="{iw}" height="{ih}" fill="none" stroke="#999"/>',
    ]
    for y in _ticks(y0, y1):
        parts.append(
            f'<text x="{PAD_L - 4}" y="{sy(y) + 4:.1f}" font-size="10" text-anchor="end">'
            f"{y:.4g}</text>"
        )
    for x in _ticks(x0, x1):
        parts.append(
            f'<text x="{sx(x):.1f}" y="{PAD_T + ih + 14}" font-size="10" '
            f'text-anchor="middle">{x:.3g}</text>'
        )
    parts.append(
        f'<text x="{PAD_L + iw / 2}" y="{PAD_T + ih + 30}" font-size="11" '
        f'text-anchor="middle">{html.escape(x_label)}</text>'
    )
    for k, (name, line) in enumerate(series.items()):
        colour = COLOURS[k % len(COLOURS)]
        pts = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in line)
        parts.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="1.6" points="{pts}">'
            f"<title>{html.escape(name)}</title></polyline>"
        )
        ly = H + 18 * k + 4
        parts.append(
            f'<line x1="{PAD_L}" y1="{ly}" x2="{PAD_L + 24}" y2="{ly}" stroke="{colour}" '
            f'stroke-width="3"/><text x="{PAD_L + 30}" y="{ly + 4}" font-size="11">'
            f"{html.escape(name)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def plots(runs: Mapping[str, PolicyRun]) -> list[tuple[str, str]]:
    """(title, svg) for every plot of the report."""
    out = []
    for key, title, kind in PLOTS:
        series: dict[str, list[tuple[float, float]]] = {}
        for name, run in runs.items():
            line = []
            for s in run.samples:
                v = _value(s, key, kind)
                if v is not None:
                    line.append((s.t_s / 3600.0, v))
            if line:
                series[name] = line
        if series:
            out.append((title, svg_plot(title, series)))
    return out


def _table(runs: Mapping[str, PolicyRun]) -> str:
    head = "".join(f"<th>{k}</th>" for k in ("policy", *SUMMARY_KEYS))
    rows = []
    for name, run in runs.items():
        t = totals_dict(run.totals, measured=True)
        cells = "".join(f"<td>{t[k]}</td>" for k in SUMMARY_KEYS)
        rows.append(f"<tr><td>{html.escape(name)}</td>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


TOP = 10  # constraints a policy's "what broke" table shows (broken.csv has them all)


def clock(seconds: float) -> str:
    """`seconds` as h:mm:ss, for people to read."""
    m, sec = divmod(round(seconds), 60)
    return f"{m // 60}:{m % 60:02d}:{sec:02d}"


def _broken(runs: Mapping[str, PolicyRun]) -> str:
    """Constraint-seconds by family and policy, then each policy's longest broken."""
    families = sorted({code for run in runs.values() for code, _ in run.broken})
    if not families:
        return "<p>No policy broke any constraint.</p>"
    rows = []
    for name, run in runs.items():
        by = by_family(run.broken)
        cells = "".join(f"<td>{by.get(f, 0.0):,.0f}</td>" for f in families)
        rows.append(f"<tr><td>{html.escape(name)}</td>{cells}</tr>")
    head = "".join(f"<th>{html.escape(f)}</th>" for f in families)
    out = [
        "<p>Constraint-seconds by constraint family (they add up to <code>violation_s</code>)"
        "; every constraint of every policy is in <code>broken.csv</code>.</p>",
        f"<table><thead><tr><th>policy</th>{head}</tr></thead><tbody>{''.join(rows)}"
        "</tbody></table>",
    ]
    for name, run in runs.items():
        if not run.broken:
            continue
        total = sum(b.seconds for b in run.broken.values())
        lines = []
        for (code, subject), b in list(run.broken.items())[:TOP]:
            share = b.seconds / total if total else 0.0
            lines.append(
                f"<tr><td>{html.escape(code)}</td><td class='t'>{html.escape(subject)}</td>"
                f"<td>{b.seconds:,.0f}</td><td>{share:.1%}</td><td>{b.spells}</td>"
                f"<td>{clock(b.first_s)}</td><td>{clock(b.last_s)}</td></tr>"
            )
        more = len(run.broken) - TOP
        tail = f"<p>and {more} more in <code>broken.csv</code>.</p>" if more > 0 else ""
        out.append(
            f"<h3>{html.escape(name)}: the longest broken</h3><table><thead><tr>"
            "<th>constraint</th><th>on</th><th>seconds</th><th>share</th><th>spells</th>"
            f"<th>from</th><th>until</th></tr></thead><tbody>{''.join(lines)}"
            f"</tbody></table>{tail}"
        )
    return "".join(out)


def _objective(x: float | None) -> str:
    return "-" if x is None else f"{x:.4g}"


def _replans(runs: Mapping[str, PolicyRun]) -> str:
    """Per policy that keeps its re-plans: how many kept the plan in force, and the first
    `TOP * 2` that replaced it, with what asked and why."""
    out = []
    for name, run in runs.items():
        if not run.replans:
            continue
        applied = [r for r in run.replans if r.applied]
        rows = []
        for r in applied[: TOP * 2]:
            asked = r.triggers[0] if r.triggers else "the first plan"
            if len(r.triggers) > 1:
                asked += f" (and {len(r.triggers) - 1} more)"
            rows.append(
                f"<tr><td>{clock(r.at_s)}</td><td class='t'>{html.escape(asked)}</td>"
                f"<td class='t'>{html.escape(r.decision)}</td>"
                f"<td>{_objective(r.in_force_objective)}</td>"
                f"<td>{_objective(r.candidate_objective)}</td><td>{len(r.degraded)}</td>"
                f"<td>{len(r.set_aside)}</td></tr>"
            )
        more = len(applied) - TOP * 2
        tail = f"<p>and {more} more in <code>decisions.csv</code>.</p>" if more > 0 else ""
        out.append(
            f"<h3>{html.escape(name)}: {len(run.replans):,} re-plans, {len(applied):,} "
            f"replaced the plan in force, {len(run.replans) - len(applied):,} kept it</h3>"
            "<table><thead><tr><th>at</th><th>asked by</th><th>decision</th>"
            "<th>objective in force</th><th>candidate</th><th>degraded</th><th>not served</th>"
            f"</tr></thead><tbody>{''.join(rows)}</tbody></table>{tail}"
        )
    if not out:
        return ""
    return (
        "<h2>Re-plans</h2><p>Every re-plan, with what asked for it and the rule that decided, "
        "is in <code>decisions.csv</code>.</p>" + "".join(out)
    )


CSS = (
    "body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px}"
    "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;"
    "text-align:right}td:first-child{text-align:left}.plots{display:flex;flex-wrap:wrap;"
    "gap:1em}figure{margin:0}figcaption{font-weight:600}pre{background:#f6f6f6;padding:1em}"
    ".t{text-align:left}"
)


def report_html(title: str, runs: Mapping[str, PolicyRun], inputs: dict[str, Any]) -> str:
    figures = "".join(
        f"<figure><figcaption>{html.escape(t)}</figcaption>{svg}</figure>" for t, svg in plots(runs)
    )
    described = html.escape(json.dumps(inputs, indent=2, sort_keys=True))
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>"
        "<p>Every step is scored by the solver's evaluator, the one <code>continuum solve"
        "</code> reports; energy and carbon are those of inference (idle draw excluded).</p>"
        f"<h2>Summary</h2>{_table(runs)}"
        f"<h2>Over time</h2><div class='plots'>{figures}</div>"
        f"<h2>What broke</h2>{_broken(runs)}{_replans(runs)}"
        f"<h2>Inputs</h2><pre>{described}</pre></body></html>\n"
    )


__all__ = ["PLOTS", "clock", "plots", "report_html", "svg_plot"]

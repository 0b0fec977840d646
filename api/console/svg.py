"""The console's charts, drawn on the server as inline SVG: line charts of time series,
bar charts of a model's blocks, and the topology graph. No chart library: the page
needs no script to show them, and a live refresh swaps them like any other HTML."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime
from html import escape
from typing import Any

from markupsafe import Markup

PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777")
_W, _H, _PAD_L, _PAD_B, _PAD_T = 640, 180, 56, 24, 12


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}".rstrip("0").rstrip(".")
    return f"{value:.3g}"


def lines(
    series: Mapping[str, Sequence[tuple[float, float]]],
    unit: str,
    *,
    floor: float | None = 0.0,
    limit: int = 8,
) -> Markup:
    """A line chart of several series of (epoch seconds, value); `limit` series at most
    (fleet-wide ones first, then by name), with a legend. Empty series draw an empty
    frame that says so."""
    names = sorted(series, key=lambda n: (not n.startswith("fleet "), n))[:limit]
    points = [p for n in names for p in series[n]]
    w, h = _W, _H
    plot_w, plot_h = w - _PAD_L - 8, h - _PAD_B - _PAD_T
    out = [
        f'<svg class="chart" viewBox="0 0 {w} {h}" role="img" '
        f'aria-label="{escape(unit)} over time" xmlns="http://www.w3.org/2000/svg">'
    ]
    out.append(
        f'<rect x="{_PAD_L}" y="{_PAD_T}" width="{plot_w}" height="{plot_h}" class="frame"/>'
    )
    if not points:
        out.append(
            f'<text x="{w / 2}" y="{h / 2}" text-anchor="middle" class="empty">'
            "no samples yet</text></svg>"
        )
        return Markup("".join(out))
    t0, t1 = min(p[0] for p in points), max(p[0] for p in points)
    lo = min(p[1] for p in points) if floor is None else min(floor, *(p[1] for p in points))
    hi = max(p[1] for p in points)
    if hi - lo < 1e-9:
        hi = lo + (abs(lo) or 1.0)
    span_t = max(t1 - t0, 1.0)

    def x(t: float) -> float:
        return _PAD_L + (t - t0) / span_t * plot_w

    def y(v: float) -> float:
        return _PAD_T + plot_h - (v - lo) / (hi - lo) * plot_h

    for frac in (0.0, 0.5, 1.0):
        v = lo + frac * (hi - lo)
        out.append(
            f'<text x="{_PAD_L - 4}" y="{y(v) + 4:.1f}" text-anchor="end" class="tick">'
            f"{_fmt(v)}</text>"
        )
    for t, anchor in ((t0, "start"), (t1, "end")):
        label = datetime.fromtimestamp(t, UTC).strftime("%H:%M UTC")
        out.append(
            f'<text x="{x(t):.1f}" y="{h - 6}" text-anchor="{anchor}" class="tick">{label}</text>'
        )
    out.append(f'<text x="6" y="{_PAD_T + 10}" class="unit">{escape(unit)}</text>')
    for i, name in enumerate(names):
        color = PALETTE[i % len(PALETTE)]
        path = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in series[name])
        out.append(
            f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{path}">'
            f"<title>{escape(name)}</title></polyline>"
        )
        if len(names) > 1:
            out.append(
                f'<text x="{_PAD_L + 6 + (i % 4) * 140}" y="{_PAD_T + 14 + (i // 4) * 14}" '
                f'fill="{color}" class="legend">{escape(name)}</text>'
            )
    out.append("</svg>")
    return Markup("".join(out))


def bars(rows: Sequence[Mapping[str, Any]], key: str, unit: str, marks: Collection[str]) -> Markup:
    """A bar per block of `key` (gflops, params_mb, out_mb); blocks in `marks` (exit
    heads follow them) are drawn in another colour."""
    n = max(len(rows), 1)
    w, h = max(_W, n * 14 + _PAD_L), _H
    plot_w, plot_h = w - _PAD_L - 8, h - _PAD_B - _PAD_T
    top = max((float(r.get(key) or 0.0) for r in rows), default=0.0) or 1.0
    bar_w = plot_w / n
    out = [
        f'<svg class="chart" viewBox="0 0 {w} {h}" role="img" aria-label="{escape(unit)} '
        f'per block" xmlns="http://www.w3.org/2000/svg">',
        f'<text x="6" y="{_PAD_T + 10}" class="unit">{escape(unit)}</text>',
        f'<text x="{_PAD_L - 4}" y="{_PAD_T + 4}" text-anchor="end" class="tick">'
        f"{_fmt(top)}</text>",
    ]
    for i, r in enumerate(rows):
        v = float(r.get(key) or 0.0)
        bh = v / top * plot_h
        cls = "bar exit" if r.get("name") in marks else "bar"
        out.append(
            f'<rect class="{cls}" x="{_PAD_L + i * bar_w + 1:.1f}" y="{_PAD_T + plot_h - bh:.1f}" '
            f'width="{max(bar_w - 2, 1):.1f}" height="{bh:.1f}">'
            f"<title>{escape(str(r.get('name')))}: {_fmt(v)} {escape(unit)}</title></rect>"
        )
    out.append("</svg>")
    return Markup("".join(out))


def topology(
    rows: Mapping[str, Sequence[Mapping[str, Any]]], links: Sequence[Mapping[str, Any]]
) -> Markup:
    """Devices as nodes in one row per tier (cloud on top), links as lines whose width
    follows the plan's utilization; each node and line has a tooltip with its figures."""
    order = [t for t in ("cloud", "edge", "device") if rows.get(t)]
    widest = max((len(rows[t]) for t in order), default=1)
    w = max(_W, min(widest, 400) * 28 + 80)
    row_h = 120
    h = row_h * max(len(order), 1) + 20
    pos: dict[str, tuple[float, float]] = {}
    for r, tier in enumerate(order):
        nodes = rows[tier]
        step = (w - 80) / max(len(nodes), 1)
        for i, node in enumerate(nodes):
            pos[str(node["id"])] = (60 + step * (i + 0.5), 40 + r * row_h)
    out = [
        f'<svg class="topology" viewBox="0 0 {w} {h}" role="img" aria-label="fleet '
        'topology" xmlns="http://www.w3.org/2000/svg">'
    ]
    for r, tier in enumerate(order):
        out.append(f'<text x="6" y="{44 + r * row_h}" class="tier">{tier}</text>')
    for link in links:
        a, b = pos.get(str(link["a"])), pos.get(str(link["b"]))
        if a is None or b is None:
            continue
        use = float(link.get("utilization") or 0.0)
        tip = (
            f"{link['a']} – {link['b']}: declared {_opt(link.get('declared_mbps'))} Mbit/s "
            f"{_opt(link.get('declared_rtt_ms'))} ms, measured {_opt(link.get('measured_mbps'))}"
            f" Mbit/s {_opt(link.get('measured_rtt_ms'))} ms, plan uses {use * 100:.0f}%"
        )
        cls = "link hot" if use > 0.8 else ("link used" if use > 0 else "link")
        out.append(
            f'<line class="{cls}" x1="{a[0]:.1f}" y1="{a[1]:.1f}" x2="{b[0]:.1f}" '
            f'y2="{b[1]:.1f}" stroke-width="{1 + 6 * min(use, 1):.1f}">'
            f"<title>{escape(tip)}</title></line>"
        )
    for tier in order:
        for node in rows[tier]:
            x, y = pos[str(node["id"])]
            cls = "node" + ("" if node.get("alive") else " down") + f" {node.get('state')}"
            out.append(
                f'<g class="{escape(cls)}"><circle cx="{x:.1f}" cy="{y:.1f}" r="9"/>'
                f"<title>{escape(str(node['id']))} ({escape(str(node.get('state')))}"
                f"{'' if node.get('alive') else ', not alive'})</title>"
            )
            if len(rows[tier]) <= 40:
                out.append(
                    f'<text x="{x:.1f}" y="{y + 24:.1f}" text-anchor="middle" class="label">'
                    f"{escape(str(node['id']))}</text>"
                )
            out.append("</g>")
    out.append("</svg>")
    return Markup("".join(out))


def topology_groups(
    groups: Sequence[Mapping[str, Any]], bundles: Sequence[Mapping[str, Any]]
) -> Markup:
    """The topology per group (tier and zone) for a fleet too large to draw device by
    device: a box per group with its devices (alive, cordoned, draining) and links inside,
    one line per pair of linked groups, as wide as its busiest link's plan utilization."""
    order = [t for t in ("cloud", "edge", "device") if any(g["tier"] == t for g in groups)]
    per_row = [[g for g in groups if g["tier"] == t] for t in order]
    w, row_h, box_w, box_h = _W, 120, 170, 58
    h = row_h * max(len(order), 1) + 20
    pos: dict[str, tuple[float, float]] = {}
    for r, row in enumerate(per_row):
        step = (w - 80) / max(len(row), 1)
        for i, g in enumerate(row):
            pos[str(g["name"])] = (60 + step * (i + 0.5), 20 + box_h / 2 + r * row_h)
    out = [
        f'<svg class="topology groups" viewBox="0 0 {w} {h}" role="img" aria-label="fleet '
        'topology per tier and zone" xmlns="http://www.w3.org/2000/svg">'
    ]
    for b in bundles:
        (x1, y1), (x2, y2) = pos[str(b["a"])], pos[str(b["b"])]
        use = float(b.get("utilization") or 0.0)
        cls = "link hot" if use > 0.8 else ("link used" if use > 0 else "link")
        tip = f"{b['a']} – {b['b']}: {b['links']} links, the busiest at {use * 100:.0f}%"
        # A line past a row (device to cloud) bends aside, clear of the boxes between.
        bend = 260.0 if abs(y1 - y2) > row_h else 0.0
        mx, my = (x1 + x2) / 2 + bend, (y1 + y2) / 2
        out.append(
            f'<g><path class="{cls}" d="M{x1:.1f},{y1:.1f} Q{mx:.1f},{my:.1f} {x2:.1f},{y2:.1f}"'
            f' fill="none" stroke-width="{1 + 6 * min(use, 1):.1f}"><title>{escape(tip)}</title>'
            f'</path><text x="{(x1 + x2) / 2 + bend / 2 + 4:.1f}" y="{my:.1f}" class="label">'
            f"{b['links']} links</text></g>"
        )
    for row in per_row:
        for g in row:
            x, y = pos[str(g["name"])]
            down = int(g["devices"]) - int(g["alive"])
            held = ", ".join(f"{g[s]} {s}" for s in ("cordoned", "draining") if g[s])
            cls = "node group" + (" down" if down else "")
            out.append(
                f'<g class="{cls}" data-group="{escape(str(g["name"]))}">'
                f'<rect x="{x - box_w / 2:.1f}" y="{y - box_h / 2:.1f}" width="{box_w}" '
                f'height="{box_h}" rx="8"/>'
                f'<text x="{x:.1f}" y="{y - 10:.1f}" text-anchor="middle" class="tier">'
                f"{escape(str(g['name']))}</text>"
                f'<text x="{x:.1f}" y="{y + 6:.1f}" text-anchor="middle" class="label">'
                f"{g['devices']} devices, {g['alive']} alive</text>"
                f'<text x="{x:.1f}" y="{y + 20:.1f}" text-anchor="middle" class="label">'
                f"{escape(held or 'none held')} · {g['inside']} links inside</text></g>"
            )
    out.append("</svg>")
    return Markup("".join(out))


def _opt(value: Any) -> str:
    return "–" if value is None else _fmt(float(value))

"""Tables for people: a plan, and a comparison of solvers on one scenario."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.console import Console
from rich.table import Table
from rich.text import Text

from solver.costs import battery_budget_w
from solver.plan import AppResult, PlanDoc, Status
from solver.scenario import Scenario
from solver.summary import PlanSummary

_STATUS_STYLE = {Status.OPTIMAL: "bold green", Status.FEASIBLE: "green", Status.INFEASIBLE: "red"}


# Width when the output is a file or a pipe: wide enough for the plan tables to keep each
# row on one line; rich would otherwise assume 80 columns (or $COLUMNS) and wrap cells.
PIPE_WIDTH = 150


def make_console(stderr: bool = False) -> Console:
    console = Console(stderr=stderr, highlight=False)
    if not console.is_terminal:
        console = Console(stderr=stderr, highlight=False, width=PIPE_WIDTH)
    return console


def print_line(console: Console, text: Text | str) -> None:
    """One message, one line: violations and reasons are read by scripts too, never wrap."""
    console.print(text, soft_wrap=True)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def placement_text(app: AppResult) -> str:
    """`stem..stage2@cam-1 -> stage3..fc@edge-1`, or a cascade's `model@device` stages."""
    if app.stages is not None:
        return " -> ".join(f"{s.model}@{s.device}" for s in app.stages)
    parts = []
    for seg in app.segments or ():
        blocks = seg.first if seg.first == seg.last else f"{seg.first}..{seg.last}"
        parts.append(f"{blocks}@{seg.device}")
    return " -> ".join(parts)


def apps_table(scenario: Scenario, doc: PlanDoc) -> Table:
    slo = {a.id: a.slo_ms for a in scenario.apps}
    table = Table(title="apps", title_justify="left")
    table.add_column("app", no_wrap=True)
    table.add_column("model", no_wrap=True)
    table.add_column("placement", overflow="fold")
    table.add_column("worst ms", justify="right")
    table.add_column("exp. ms", justify="right")
    table.add_column("SLO ms", justify="right")
    table.add_column("energy J", justify="right")
    table.add_column("carbon mg", justify="right")
    for app in doc.apps:
        limit = slo.get(app.id)
        met = Text("-" if limit is None else f"{limit:g}", style="green" if app.slo_met else "red")
        if not app.slo_met:
            met.append(" missed")
        table.add_row(
            app.id,
            app.model or "cascade",
            placement_text(app),
            _num(app.latency_ms.worst, 1),
            _num(app.latency_ms.expected, 1),
            met,
            _num(app.energy_j, 4),
            _num(app.carbon_g * 1000.0, 4),
        )
    return table


def devices_table(scenario: Scenario, doc: PlanDoc) -> tuple[Table, int]:
    """Devices that do something in this plan, and how many idle ones were left out."""
    specs = {d.id: d for d in scenario.devices}
    table = Table(title="devices", title_justify="left")
    for name, justify in (
        ("device", "left"),
        ("tier", "left"),
        ("compute", "right"),
        ("memory MB", "right"),
        ("power W", "right"),
        ("budget W", "right"),
        ("battery h", "right"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    cap = scenario.max_utilization
    idle = 0
    for use in doc.devices:
        if use.utilization == 0 and use.memory_mb == 0 and use.power_w == 0:
            idle += 1
            continue
        spec = specs[use.id]
        # What the battery can pay for the plan beside the idle draw; red when exceeded.
        budget = battery_budget_w(spec, scenario.horizon_h)
        over = "red" if budget is not None and use.power_w > budget * (1 + 1e-9) else ""
        busy = Text(f"{use.utilization:.1%}", style="red" if use.utilization > cap else "")
        table.add_row(
            use.id,
            spec.tier,
            busy,
            f"{use.memory_mb:,.1f} / {spec.memory_mb:,.0f}",
            _num(use.power_w, 3),
            "-" if budget is None else Text(_num(budget, 3), style=over),
            "mains" if spec.battery is None else _num(use.battery_h, 1),
        )
    return table, idle


def links_table(scenario: Scenario, doc: PlanDoc) -> tuple[Table, int]:
    table = Table(title="links", title_justify="left")
    table.add_column("link")
    table.add_column("bandwidth", justify="right")
    cap = scenario.max_utilization
    idle = 0
    for use in doc.links:
        if use.utilization == 0:
            idle += 1
            continue
        style = "red" if use.utilization > cap else ""
        table.add_row(f"{use.a} - {use.b}", Text(f"{use.utilization:.1%}", style=style))
    return table, idle


def status_line(doc: PlanDoc) -> Text:
    line = Text()
    line.append(doc.status.value, style=_STATUS_STYLE[doc.status])
    line.append(f"  solver {doc.solver}  objective {_num(doc.objective, 6)}")
    if doc.bound is not None:
        line.append(f"  bound {_num(doc.bound, 6)}")
        if doc.objective is not None and doc.objective > 0:
            # How far the plan may be from the optimum, at most: what an operator reads.
            line.append(f" (gap {(doc.objective - doc.bound) / doc.objective:.2%})")
    line.append(f"  solved in {doc.solve_s:.3f} s")
    return line


def print_plan(console: Console, scenario: Scenario, doc: PlanDoc) -> None:
    if doc.apps:
        console.print(apps_table(scenario, doc))
        devices, idle_devices = devices_table(scenario, doc)
        console.print(devices)
        if idle_devices:
            console.print(f"({_plural(idle_devices, 'idle device')} not shown)", style="dim")
        links, idle_links = links_table(scenario, doc)
        if links.row_count:
            console.print(links)
        if idle_links:
            console.print(f"({_plural(idle_links, 'unused link')} not shown)", style="dim")
    print_line(console, status_line(doc))
    if doc.reason:
        print_line(console, Text(f"reason: {doc.reason}", style="red"))
    for v in doc.violations or ():
        print_line(console, Text(f"violation: {v}", style="red"))


@dataclass(frozen=True, slots=True)
class SetAside:
    """An app `--place-what-fits` could not place: its id, the reason's machine-readable
    code (`solver.Code`: bandwidth, battery, slo, ...) and its sentence."""

    id: str
    code: str
    reason: str


def unplaced_table(rows: Sequence[SetAside]) -> Table:
    """The apps set aside: id, reason code, and the reason in full."""
    table = Table(title=f"set aside ({_plural(len(rows), 'app')})", title_justify="left")
    table.add_column("app", no_wrap=True)
    table.add_column("code", no_wrap=True)
    table.add_column("reason", overflow="fold")
    for row in rows:
        table.add_row(row.id, row.code, Text(row.reason, style="red"))
    return table


def comparison_table(rows: Sequence[PlanSummary | tuple[str, str]]) -> Table:
    """One row per solver; a `(name, message)` pair is a solver that could not run."""
    table = Table(title="solvers compared on one scenario", title_justify="left")
    table.add_column("solver", no_wrap=True)
    table.add_column("status", no_wrap=True)
    for name in ("objective", "x best", "energy J/s", "carbon g/h", "broken", "SLO misses"):
        table.add_column(name, justify="right")
    table.add_column("solve s", justify="right")
    feasible = [
        r.objective
        for r in rows
        if isinstance(r, PlanSummary)
        and r.objective is not None
        and r.broken == 0
        and r.status != Status.INFEASIBLE.value
    ]
    best = min(feasible) if feasible else None
    for row in rows:
        if not isinstance(row, PlanSummary):
            table.add_row(row[0], Text(row[1], style="yellow"), *["-"] * 7)
            continue
        ratio = "-"
        if best is not None and best > 0 and row.objective is not None:
            ratio = f"{row.objective / best:.3f}"
        table.add_row(
            row.solver,
            Text(row.status, style=_STATUS_STYLE[Status(row.status)]),
            _num(row.objective, 4),
            ratio,
            _num(row.energy_w, 3),
            _num(row.carbon_g_per_h, 3),
            Text(str(row.broken), style="red" if row.broken else ""),
            Text(str(row.slo_misses), style="red" if row.slo_misses else ""),
            f"{row.solve_s:.3f}",
        )
    return table

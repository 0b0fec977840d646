"""Energy, carbon, broken constraints and SLO misses of every solver, against `ilp`.

Suites: the example fleet (examples/factory-line.yaml), small and mid-size generated fleets
(`solver.generate.generate`), and contended ones (many cameras per edge box, thin uplinks,
low batteries: `contended=True`). Every solver runs on every instance; the figures are
ratios to the exact solver's plan on the same instance, so they compare like with like.

    .venv/bin/python bench/baselines.py            # the full run recorded in RESULTS.md
    .venv/bin/python bench/baselines.py --quick    # a smoke run, nothing written

Writes the raw rows to bench/out/baselines.json and the summary to bench/RESULTS.md under
`## Baselines` (only that section is replaced).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from machine import cpu_model  # noqa: E402 (a sibling module: bench/ runs as scripts)

import solver  # noqa: E402
from solver.generate import generate  # noqa: E402
from solver.scenario import Scenario, load_scenario, parse_scenario  # noqa: E402
from solver.summary import summarize  # noqa: E402

RESULTS = ROOT / "bench" / "RESULTS.md"
RAW = ROOT / "bench" / "out" / "baselines.json"
SECTION = "## Baselines"


@dataclass(frozen=True, slots=True)
class Suite:
    name: str
    seeds: tuple[int, ...]
    devices: int = 0
    apps: int = 0
    blocks: int = 6
    contended: bool = False

    def instances(self) -> Iterator[tuple[str, Scenario]]:
        if not self.seeds:
            yield "factory-line", load_scenario(ROOT / "examples" / "factory-line.yaml")
            return
        for seed in self.seeds:
            raw = generate(
                seed,
                devices=self.devices,
                apps=self.apps,
                blocks=self.blocks,
                contended=self.contended,
            )
            yield f"seed {seed}", parse_scenario(raw)

    def describe(self) -> str:
        if not self.seeds:
            return "examples/factory-line.yaml"
        kind = "contended" if self.contended else "generated"
        return (
            f"{kind}: {self.devices} devices, {self.apps} apps, {self.blocks} blocks, "
            f"seeds {self.seeds[0]}-{self.seeds[-1]}"
        )


FULL = (
    Suite("example", ()),
    Suite("small", tuple(range(1, 9)), devices=10, apps=6),
    Suite("default", tuple(range(1, 7)), devices=30, apps=20, blocks=8),
    # Contended fleets at the default size take ilp minutes to prove infeasible; this size
    # keeps the run short and still puts many cameras on each edge box.
    Suite("contended", tuple(range(1, 7)), devices=14, apps=8, contended=True),
)
QUICK = (
    Suite("example", ()),
    Suite("small", (1, 2), devices=10, apps=6),
    Suite("contended", (1,), devices=10, apps=6, contended=True),
)


@dataclass(frozen=True, slots=True)
class Row:
    suite: str
    instance: str
    solver: str
    status: str  # optimal | feasible | infeasible | unavailable
    objective: float | None
    energy_w: float | None
    carbon_g_per_h: float | None
    broken: int
    slo_misses: int
    apps: int
    solve_s: float
    reason: str | None


def run_instance(suite: str, instance: str, scn: Scenario, time_limit: float) -> list[Row]:
    problem = solver.Problem(scn)
    rows = []
    for name in solver.solvers():
        options = solver.SolveOptions(time_limit_s=time_limit, seed=0)
        try:
            plan = solver.solve(problem, options, solver=name)
        except NotImplementedError:
            # Not written yet (or ilp ran out of time and fell back to it).
            rows.append(Row(suite, instance, name, "unavailable", None, None, None, 0, 0,
                            len(scn.apps), 0.0, None))  # fmt: skip
            continue
        s = summarize(scn, plan.doc)
        rows.append(
            Row(suite, instance, name, s.status, s.objective, s.energy_w, s.carbon_g_per_h,
                s.broken, s.slo_misses, len(scn.apps), s.solve_s, s.reason)
        )  # fmt: skip
    return rows


def _ratio(mine: float | None, exact: float | None) -> float | None:
    if mine is None or exact is None or exact <= 0:
        return None
    return mine / exact


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.fmean(present) if present else None


@dataclass(frozen=True, slots=True)
class Figures:
    suite: str
    solver: str
    instances: int
    planned: int  # instances with a plan (apps placed)
    feasible: int
    vs_ilp: int  # instances where both this solver and ilp have a feasible-or-not plan
    objective_ratio: float | None
    energy_ratio: float | None
    carbon_ratio: float | None
    broken_share: float
    slo_misses: int
    apps: int
    mean_solve_s: float


def figures(rows: list[Row]) -> list[Figures]:
    exact = {(r.suite, r.instance): r for r in rows if r.solver == "ilp"}
    out = []
    keys = dict.fromkeys((r.suite, r.solver) for r in rows)
    for suite, name in keys:
        mine = [r for r in rows if r.suite == suite and r.solver == name]
        ran = [r for r in mine if r.status != "unavailable"]
        # Ratios only where ilp found a feasible plan: there is then a reference to beat.
        pairs = [
            (r, exact[(r.suite, r.instance)])
            for r in ran
            if exact[(r.suite, r.instance)].status in ("optimal", "feasible")
            and r.objective is not None
        ]
        out.append(
            Figures(
                suite=suite,
                solver=name,
                instances=len(mine),
                planned=sum(1 for r in ran if r.objective is not None),
                feasible=sum(1 for r in ran if r.status in ("optimal", "feasible")),
                vs_ilp=len(pairs),
                objective_ratio=_mean([_ratio(r.objective, e.objective) for r, e in pairs]),
                energy_ratio=_mean([_ratio(r.energy_w, e.energy_w) for r, e in pairs]),
                carbon_ratio=_mean([_ratio(r.carbon_g_per_h, e.carbon_g_per_h) for r, e in pairs]),
                broken_share=(
                    sum(1 for r in ran if r.status == "infeasible") / len(ran) if ran else 0.0
                ),
                slo_misses=sum(r.slo_misses for r in ran),
                apps=sum(r.apps for r in ran if r.objective is not None),
                mean_solve_s=statistics.fmean(r.solve_s for r in ran) if ran else 0.0,
            )
        )
    return out


def _fmt(value: float | None, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


HEADERS = (
    "suite", "solver", "n", "feasible", "obj / ilp", "energy / ilp", "carbon / ilp",
    "breaks a constraint", "SLO misses (apps)", "mean solve s",
)  # fmt: skip


def cells(f: Figures) -> tuple[str, ...]:
    return (
        f.suite,
        f.solver,
        str(f.instances),
        f"{f.feasible}/{f.instances}",
        _fmt(f.objective_ratio),
        _fmt(f.energy_ratio),
        _fmt(f.carbon_ratio),
        f"{f.broken_share:.0%}",
        f"{f.slo_misses}/{f.apps}",
        _fmt(f.mean_solve_s, ".2f"),
    )


def table(figs: list[Figures]) -> Table:
    t = Table(title="baselines against the exact solver")
    for h in HEADERS:
        t.add_column(h, justify="left" if h in ("suite", "solver") else "right")
    for f in figs:
        t.add_row(*cells(f))
    return t


def markdown(figs: list[Figures], suites: tuple[Suite, ...], time_limit: float, wall: float) -> str:
    lines = [
        SECTION,
        "",
        f"Command: `.venv/bin/python bench/baselines.py` (ilp time limit {time_limit:g} s, "
        f"seed 0, 1 thread). Machine: `nproc` = {os.cpu_count()}, CPU {cpu_model()}, "
        f"Python {platform.python_version()}. Wall time {wall:.0f} s.",
        "",
        "Suites:",
        "",
        *[f"- `{s.name}`: {s.describe()}" for s in suites],
        "",
        "Ratios are means over the instances where `ilp` found a feasible plan, of the "
        "solver's figure over ilp's on the same instance (objective; energy in J/s and "
        "carbon in g/h summed over apps). A baseline's ratio can be below 1 only by "
        "breaking a constraint. `breaks a constraint`: share of instances whose plan is "
        "infeasible (for ilp: proven that no plan exists). `SLO misses`: apps whose "
        "worst-case latency exceeds their SLO, over the apps of every plan.",
        "",
        "| " + " | ".join(HEADERS) + " |",
        "|" + "|".join("---" for _ in HEADERS) + "|",
        *["| " + " | ".join(cells(f)) + " |" for f in figs],
        "",
    ]
    for f in figs:
        if f.solver == "ilp" and f.feasible == 0:
            # Without an exact plan there is no reference: say so rather than print ratios.
            lines += [
                f"On every `{f.suite}` instance `ilp` proved that no plan exists (the reasons "
                "are in bench/out/baselines.json), so there is no ratio to report there; "
                "the rows show whether each baseline's plan breaks constraints all the same.",
                "",
            ]
    return "\n".join(lines)


def write_section(text: str) -> None:
    """Replace `## Baselines` in RESULTS.md (up to the next `## `), keep every other section."""
    old = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else "# Benchmark results\n"
    lines = old.splitlines(keepends=True)
    start = next((i for i, ln in enumerate(lines) if ln.rstrip() == SECTION), None)
    if start is None:
        new = old.rstrip("\n") + "\n\n" + text
    else:
        end = next(
            (i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines)
        )
        rest = "".join(lines[end:])
        new = "".join(lines[:start]) + text.rstrip("\n") + "\n" + ("\n" + rest if rest else "")
    RESULTS.write_text(new, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few instances, write nothing")
    parser.add_argument("--time-limit", type=float, default=20.0, help="seconds per ilp solve")
    args = parser.parse_args()
    suites = QUICK if args.quick else FULL
    err = Console(stderr=True)
    rows: list[Row] = []
    start = time.perf_counter()
    for suite in suites:
        for instance, scn in suite.instances():
            err.print(f"{suite.name} {instance} ...", highlight=False)
            rows.extend(run_instance(suite.name, instance, scn, args.time_limit))
    wall = time.perf_counter() - start
    figs = figures(rows)
    out = Console()
    if not out.is_terminal:
        out = Console(width=160)
    out.print(table(figs))
    if args.quick:
        return
    RAW.parent.mkdir(parents=True, exist_ok=True)
    RAW.write_text(json.dumps([asdict(r) for r in rows], indent=1), encoding="utf-8")
    write_section(markdown(figs, suites, args.time_limit, wall))
    err.print(f"wrote {RESULTS.relative_to(ROOT)} and {RAW.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

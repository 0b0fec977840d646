"""`heuristic` against `ilp` on the acceptance fleets of the solver issue.

Medium fleets (30 devices in three tiers, 20 apps, 8-block models with exits, variants and
cascades) from `solver.generate.generate`, plain and contended: objective ratio and time
of each solver per instance.

    python bench/heuristic_quality.py [--seeds 6]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console
from rich.table import Table

from solver import SolveOptions, parse_scenario, solve
from solver.generate import generate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=6)
    args = parser.parse_args()
    table = Table(title="heuristic against ilp: 30 devices, 20 apps, 8 blocks")
    for col in ("fleet", "seed", "ilp", "ilp s", "heuristic", "heuristic s", "ratio"):
        table.add_column(col, justify="left" if col == "fleet" else "right")
    worst, slowest = 1.0, 0.0
    for contended in (False, True):
        for seed in range(1, args.seeds + 1):
            scn = parse_scenario(generate(seed, contended=contended))
            t = time.perf_counter()
            exact = solve(scn, SolveOptions(time_limit_s=120), "ilp")
            t_ilp = time.perf_counter() - t
            t = time.perf_counter()
            fast = solve(scn, SolveOptions(time_limit_s=10), "heuristic")
            t_h = time.perf_counter() - t
            ratio = None
            if exact.doc.objective and fast.doc.objective:
                ratio = fast.doc.objective / exact.doc.objective
                worst = max(worst, ratio)
            slowest = max(slowest, t_h)
            table.add_row(
                "contended" if contended else "plain",
                str(seed),
                f"{exact.doc.objective:.4f} {exact.status.value}" if exact.doc.objective else "-",
                f"{t_ilp:.2f}",
                f"{fast.doc.objective:.4f}" if fast.doc.objective else fast.status.value,
                f"{t_h:.2f}",
                f"{ratio:.4f}" if ratio is not None else "-",
            )
    Console(width=140).print(table)
    print(f"worst ratio {worst:.4f}; slowest heuristic {slowest:.2f} s")


if __name__ == "__main__":
    main()

"""Which re-solves of every app an incremental re-solve may spare, and what they found.

When an incremental re-solve (`solver.incremental.resolve`: the apps a change touched
re-placed, every other app held where it runs) finds no plan, it re-places every app, in
case the held apps stood in the way, unless the app it blames fits nowhere on its own
(`Reason.alone`) or each option it tried (its candidates, the paths its repair tried)
overflows something even without the held apps' load (`Reason.held_clear`,
`solver.stuck.held_clear`). The second is the heuristic's judgment over what it tried,
not a proof; this checks it on a long run.

It runs `continuum` in the simulator on `bench/simulate.py`'s 200-device fleet and, at
every incremental re-solve that failed with `held_clear` (and not `alone`), runs the
re-solve of every app it spared as well, and prints how each ended against the reason the
incremental one gave (the same app and sentence, another one, or a plan), and the CPU of
those spared re-solves. The run's own decisions are continuum's: the check's re-solves
are thrown away.

    python bench/resolve_fallback.py [--hours H] [--devices N] [--every K]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [str(ROOT), *(p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench")]
sys.path.append(str(ROOT / "bench"))

from machine import cpu_model  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.progress import Progress  # noqa: E402
from rich.table import Table  # noqa: E402
from simulate_workloads import bench_simulate  # noqa: E402

from simulate.continuum import ContinuumPolicy  # noqa: E402
from simulate.engine import Simulation  # noqa: E402
from simulate.inputs import PROBE_S  # noqa: E402
from simulate.run import context  # noqa: E402
from solver import Problem, SolveOptions, Status, incremental  # noqa: E402

_real_solve = incremental.solve


class Check:
    def __init__(self) -> None:
        self.ended: Counter[str] = Counter()
        self.cpu_s = 0.0  # of the re-solves of every app the rule spares
        self.examples: dict[str, str] = {}

    def solve(self, problem: Problem, options: SolveOptions, solver: str) -> Any:
        plan = _real_solve(problem, options, solver=solver)
        why = plan.reason
        if (
            options.fixed
            and plan.status == Status.INFEASIBLE
            and why is not None
            and why.held_clear
            and not why.alone
        ):
            started = time.process_time()
            every = _real_solve(problem, replace(options, fixed={}), solver=solver)
            self.cpu_s += time.process_time() - started
            other = every.reason
            if every.status != Status.INFEASIBLE:
                kind = "found a plan"
            elif other is not None and (other.app, other.message) == (why.app, why.message):
                kind = "failed on the same app, the same reason"
            else:
                kind = "failed on another app or reason"
            self.ended[kind] += 1
            self.examples.setdefault(kind, why.message)
        return plan


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--devices", type=int, default=200)
    ap.add_argument("--every", type=int, default=4)
    ap.add_argument("--out", type=Path, default=Path("/tmp/continuum-fallback"))
    args = ap.parse_args()
    if args.hours <= 0:
        ap.error("--hours must be more than 0")
    console = Console() if sys.stdout.isatty() else Console(width=120)
    console.print(f"machine: {cpu_model()}")
    inputs = bench_simulate().fleet(
        args.devices, args.every, args.hours, 1.0, args.out, ["continuum"], PROBE_S
    )
    check = Check()
    incremental.solve = check.solve  # type: ignore[assignment]
    try:
        sim = Simulation(inputs, "continuum", ContinuumPolicy(context(inputs, "continuum")))
        started = time.process_time()
        with Progress(console=console, transient=True) as bar:
            task = bar.add_task("continuum", total=inputs.steps)
            sim.run(lambda k: bar.update(task, completed=k))
        cpu = time.process_time() - started
    finally:
        incremental.solve = _real_solve
    table = Table(
        title=f"re-solves of every app spared by held_clear, {inputs.scenario_name}, "
        f"{args.hours:g} h"
    )
    for col in ("how the spared re-solve ended", "count", "an incremental reason"):
        table.add_column(col, justify="right" if col == "count" else "left")
    for kind, n in check.ended.most_common():
        table.add_row(kind, f"{n:,}", check.examples[kind])
    console.print(table)
    n = sum(check.ended.values())
    console.print(
        f"{n:,} spared, {check.cpu_s:.1f} s of CPU for them ({1000 * check.cpu_s / max(n, 1):.1f}"
        f" ms each); the run {cpu:.1f} s of CPU with them"
    )


if __name__ == "__main__":
    main()

"""Where a day of `continuum`'s re-plans go: the per-app verdicts, the screen's held
evaluation, and the re-plans that solve three times.

Runs `continuum` on `bench/simulate.py`'s 200-device fleet (as `bench/continuum_day.py`
does) with three probes wrapped around the live path's own functions, and prints:

- `solver.partial.alone`, the verdict every re-plan asks of each app served degraded:
  the app-verdicts asked, those proven by `drained_source` (no candidates), by a proof
  kept from an earlier re-plan (`solver.ownpack.still_proven`), and over candidates, by
  `own_pack`'s first-block bound, its bound over SLO-meeting placements, or not proven;
  the CPU inside `alone`;
- the screen's `held_degraded` (`orchestrator.screen`), timed at each call both on the
  screen's own evaluation (as it runs) and on the last evaluation of the fleet (as it ran
  before `f5ad3d0`), in turns, with the count of calls where the two verdicts agree;
- the incremental re-solves whose held solve fails and whose solve of every app fails
  too: how many, whether both blame the same app for the battery of its own source, and
  the CPU of those two solves. With `--ilp-check S`, the first such moment is solved by
  `ilp` with the held apps fixed (a time limit of S seconds) and the run stops there.

The probes add their own cost (the held evaluation is made twice): the CPU here is not
the policy's; `bench/continuum_day.py` measures that.

    python bench/replan_probes.py [--hours H] [--devices N] [--every K] [--probe S]
                                  [--out DIR] [--ilp-check S]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
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

import solver  # noqa: E402
from orchestrator import screen  # noqa: E402
from simulate.continuum import ContinuumPolicy  # noqa: E402
from simulate.engine import Simulation  # noqa: E402
from simulate.inputs import PROBE_S  # noqa: E402
from simulate.run import context  # noqa: E402
from solver import incremental, partial  # noqa: E402

_VERDICTS = (
    "asked",
    "past drained_source",
    "a kept proof",
    "no kept proof",
    "over candidates: the first block's bound",
    "over candidates: the bound over SLO-meeting placements",
    "over candidates: not proven",
)
_SOLVES = (
    "held, then every app",
    "the second infeasible",
    "the same app blamed",
    "for its own source's battery",
)


class _Stop(Exception):
    """The `--ilp-check` is made: the run ends."""


def _wrap_alone(counts: Counter[str], cpu: list[float]) -> None:
    alone, still, own = partial.alone, partial.still_proven, partial.own_pack

    def timed_alone(problem: solver.Problem, apps: Any) -> Any:
        counts["asked"] += len(apps)
        started = time.process_time()
        try:
            return alone(problem, apps)
        finally:
            cpu[0] += time.process_time() - started

    def counted_still(problem: solver.Problem, app_id: str, pays: float) -> Any:
        why = still(problem, app_id, pays)
        counts["past drained_source"] += 1
        counts["a kept proof" if why is not None else "no kept proof"] += 1
        return why

    def counted_own(problem: solver.Problem, fleet: Any, app: Any, routes: Any, cap: Any) -> Any:
        why = own(problem, fleet, app, routes, cap)
        pays = float(cap[2 * fleet.n + fleet.index[app.source]])
        first = routes.least.get("first")
        if why is None:
            counts["over candidates: not proven"] += 1
        elif first is not None and first > pays * (1.0 + 1e-9):
            counts["over candidates: the first block's bound"] += 1
        else:
            counts["over candidates: the bound over SLO-meeting placements"] += 1
        return why

    partial.alone = timed_alone
    partial.still_proven = counted_still
    partial.own_pack = counted_own


def _wrap_held(counts: Counter[str], cpu: dict[str, float]) -> None:
    held = screen.held_degraded
    turn = [False]

    def both(now: Any, placed: Any, aside: Any, stop: Any, running: Any, base: Any = None) -> Any:
        turn[0] = not turn[0]
        got: dict[str, Any] = {}
        ways = [("on the screen's evaluation", base), ("on the fleet's last evaluation", None)]
        for name, on in ways if turn[0] else ways[::-1]:
            started = time.process_time()
            got[name] = held(now, placed, aside, stop, running, base=on)
            cpu[name] = cpu.get(name, 0.0) + time.process_time() - started
        mine, last = got.values()
        same = (mine is None and last is None) or (
            mine is not None
            and last is not None
            and mine.placements == last.placements
            and mine.reasons == last.reasons
        )
        counts["calls"] += 1
        counts["same verdict" if same else "other verdict"] += 1
        return got["on the screen's evaluation"]

    screen.held_degraded = both  # type: ignore[assignment]


def _wrap_solves(counts: Counter[str], cpu: list[float], ilp_s: float | None) -> None:
    resolve, solve = incremental._resolve, incremental.solve
    made: list[tuple[solver.Plan, solver.Problem, dict[str, Any], float]] = []

    def timed_solve(problem: solver.Problem, opts: Any, solver: str = "ilp") -> Any:
        started = time.process_time()
        plan = solve(problem, opts, solver=solver)
        made.append((plan, problem, dict(opts.fixed), time.process_time() - started))
        return plan

    def watched(problem: solver.Problem, *args: Any) -> Any:
        made.clear()
        out = resolve(problem, *args)
        if len(made) == 2 and made[0][0].status == solver.Status.INFEASIBLE:
            (held, now, fixed, a), (every, _, _, b) = made
            counts["held, then every app"] += 1
            counts[f"the second {every.status.value}"] += 1
            blamed = held.reason.app if held.reason else None
            if every.reason is not None and every.reason.app == blamed:
                counts["the same app blamed"] += 1
            app = now.cost.apps.get(blamed or "")
            if (
                app is not None
                and held.reason
                and f"battery of {app.source})" in held.reason.message
            ):
                counts["for its own source's battery"] += 1
            cpu[0] += a + b
            if ilp_s is not None:
                _ilp_check(now, fixed, held, ilp_s)
        return out

    incremental._resolve = watched  # type: ignore[assignment]
    incremental.solve = timed_solve  # type: ignore[assignment]


def _ilp_check(now: solver.Problem, fixed: dict[str, Any], held: solver.Plan, limit: float) -> None:
    console = Console()
    console.print(f"the held solve: {held.reason.message if held.reason else held.status.value}")
    fresh = solver.Problem(solver.parse_scenario(now.scenario.model_dump(mode="json")))
    started = time.perf_counter()
    options = solver.SolveOptions(time_limit_s=limit, fixed=fixed)
    plan = solver.solve(fresh, options, solver="ilp")
    console.print(
        f"ilp, {len(fixed)} apps held of {len(now.cost.apps)}: {plan.status.value} "
        f"({plan.reason.message if plan.reason else 'a plan'}), "
        f"{time.perf_counter() - started:.0f} s"
    )
    raise _Stop


def _table(title: str, rows: list[tuple[str, str]]) -> Table:
    table = Table(title=title)
    table.add_column("what")
    table.add_column("value", justify="right")
    for what, value in rows:
        table.add_row(what, value)
    return table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--hours", type=float, default=1.0)
    ap.add_argument("--devices", type=int, default=200)
    ap.add_argument("--every", type=int, default=4)
    ap.add_argument("--probe", type=float, default=PROBE_S, metavar="S")
    ap.add_argument("--out", type=Path, default=Path("/tmp/continuum-probes"))
    ap.add_argument("--ilp-check", type=float, default=None, metavar="S")
    args = ap.parse_args()
    if args.hours <= 0 or (args.ilp_check is not None and args.ilp_check <= 0):
        ap.error("--hours and --ilp-check must be more than 0")
    console = Console() if sys.stdout.isatty() else Console(width=120)
    console.print(f"machine: {cpu_model()}")
    inputs = bench_simulate().fleet(
        args.devices, args.every, args.hours, 1.0, args.out, ["continuum"], args.probe
    )
    verdicts: Counter[str] = Counter()
    held: Counter[str] = Counter()
    solves: Counter[str] = Counter()
    alone_cpu, solve_cpu = [0.0], [0.0]
    held_cpu: dict[str, float] = {}
    _wrap_alone(verdicts, alone_cpu)
    _wrap_held(held, held_cpu)
    _wrap_solves(solves, solve_cpu, args.ilp_check)
    sim = Simulation(inputs, "continuum", ContinuumPolicy(context(inputs, "continuum")))
    try:
        with Progress(console=console, transient=True) as bar:
            task = bar.add_task("continuum", total=inputs.steps)
            sim.run(lambda k: bar.update(task, completed=k))
    except _Stop:
        return
    console.print(
        _table(
            "alone: the verdicts asked of the apps served degraded",
            [(k, f"{verdicts[k]:,}") for k in _VERDICTS]
            + [("CPU s inside alone", f"{alone_cpu[0]:.1f}")],
        )
    )
    console.print(
        _table(
            "the screen's held_degraded, both ways in turns",
            [(k, f"{held[k]:,}") for k in ("calls", "same verdict", "other verdict")]
            + [(f"CPU s {k}", f"{v:.1f}") for k, v in held_cpu.items()],
        )
    )
    console.print(
        _table(
            "incremental re-solves whose held solve and solve of every app both fail",
            [(k, f"{solves[k]:,}") for k in _SOLVES]
            + [("CPU s of those two solves", f"{solve_cpu[0]:.1f}")],
        )
    )


if __name__ == "__main__":
    main()

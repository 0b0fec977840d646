"""What `neurosurgeon` costs over a long run of the 200-device fleet, hour by hour.

Issue 15's speed target (24 h of the fleet, five policies, 60 s on 2 cores) is missed by
`neurosurgeon` too. The policy (simulate/neurosurgeon.py) re-decides an app only when a
traced bandwidth its choice reads moved, from a cache of its choices by those figures; a
device lost or back lays every app out again on the new fleet shape. This runs
`neurosurgeon` alone in the simulator on `bench/simulate.py`'s fleet and prints, for each
`--period` minutes of simulated time: the shape changes, the apps chosen afresh (cache
misses, each scored by the baseline's own rule) and the CPU of the policy's decisions; then
the choices carried across the shape changes, the apps' layouts taken from the shape
before (`solver.splitshrunk`) and the run's totals. With `--drop-caches` no choice is
carried (every cache dropped at each shape change, as before choices were carried), with
`--lay-out-afresh` every layout is made afresh: each run beside the default one says what
that saves, and their totals must match.

    python bench/neurosurgeon_day.py [--hours H] [--period MIN] [--devices N] [--every K]
                                     [--drop-caches] [--lay-out-afresh] [--out DIR]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [str(ROOT), *(p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench")]
sys.path.append(str(ROOT / "bench"))

from machine import cpu_model  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from simulate_workloads import bench_simulate, run_by_period  # noqa: E402

from simulate import neurosurgeon  # noqa: E402
from simulate.engine import Simulation  # noqa: E402
from simulate.inputs import PROBE_S  # noqa: E402
from simulate.neurosurgeon import NeurosurgeonPolicy, _App  # noqa: E402
from simulate.run import context  # noqa: E402


class _Counting(NeurosurgeonPolicy):
    """neurosurgeon, counting into the period under way: [shape changes, apps chosen
    afresh, CPU s of its decisions, of them at shape changes]."""

    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx)
        self.period = [0, 0, 0.0, 0.0]

    def decide(self, now: Any) -> Any:
        started, chose = time.process_time(), self.chose
        out = super().decide(now)
        spent = time.process_time() - started
        shape = not now.has_plan or bool(now.lost or now.joined)
        self.period[0] += shape
        self.period[1] += self.chose - chose
        self.period[2] += spent
        self.period[3] += spent if shape else 0.0
        return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--period", type=float, default=60.0, metavar="MIN")
    ap.add_argument("--devices", type=int, default=200)
    ap.add_argument("--every", type=int, default=4)
    ap.add_argument("--drop-caches", action="store_true")
    ap.add_argument("--lay-out-afresh", action="store_true")
    ap.add_argument("--out", type=Path, default=Path("/tmp/neurosurgeon-day"))
    args = ap.parse_args()
    if args.hours <= 0 or args.period <= 0:
        ap.error("--hours and --period must be more than 0")
    console = Console() if sys.stdout.isatty() else Console(width=120)
    console.print(f"machine: {cpu_model()}")
    if args.drop_caches:
        _App.carry = lambda *_: 0  # type: ignore[method-assign]
    if args.lay_out_afresh:
        neurosurgeon.shrunk = lambda *_: None
    inputs = bench_simulate().fleet(
        args.devices, args.every, args.hours, 1.0, args.out, ["neurosurgeon"], PROBE_S
    )
    policy = _Counting(context(inputs, "neurosurgeon"))
    sim = Simulation(inputs, "neurosurgeon", policy)
    rows: list[tuple[int, float, list[Any]]] = []

    def close(k: int, period_cpu: float) -> None:
        rows.append((k, period_cpu, policy.period))
        policy.period = [0, 0, 0.0, 0.0]

    started = time.process_time()
    run = run_by_period(sim, "neurosurgeon", args.period, console, close)
    cpu = time.process_time() - started
    what = "every cache dropped at a shape change" if args.drop_caches else "choices carried"
    what += ", every layout made afresh" if args.lay_out_afresh else ""
    table = Table(title=f"neurosurgeon on {inputs.scenario_name}, {args.hours:g} h ({what})")
    for col in ("until h", "shape changes", "chosen afresh", "decisions' CPU s",
                "at shape changes", "run's CPU s"):  # fmt: skip
        table.add_column(col, justify="right")
    for k, period_cpu, (shapes, chose, decide_s, shape_s) in rows:
        table.add_row(
            f"{k * inputs.step_s / 3600:.2f}", f"{shapes:,}", f"{chose:,}",
            f"{decide_s:.1f}", f"{shape_s:.1f}", f"{period_cpu:.1f}",
        )  # fmt: skip
    console.print(table)
    t = run.totals
    console.print(
        f"{inputs.steps:,} steps: {cpu:.1f} s CPU ({1000 * cpu / inputs.steps:.2f} ms a step), "
        f"{policy.chose:,} apps chosen afresh, {policy.carried:,} cached choices carried, "
        f"{policy.taken:,} layouts taken from the shape before, {policy.made:,} made afresh, "
        f"{sum(r[2][3] for r in rows):.1f} s CPU at shape changes; "
        f"energy {t.energy_j:,.0f} J, slo_miss_s {t.slo_miss_s:,.0f}, "
        f"violation_s {t.violation_s:,.0f}, replacements {t.replacements:,}"
    )


if __name__ == "__main__":
    main()

"""What `continuum` costs over a long run of the 200-device fleet, period by period.

Issue 15's speed target (24 h of the fleet, five policies, 60 s on 2 cores) is missed by
`continuum`, whose cost is its re-plans, and a re-plan costs more as the packs drain. This
runs `continuum` alone in the simulator on `bench/simulate.py`'s fleet and prints, for
each `--period` minutes of simulated time: the CPU it took, the re-plans and how many put
a new plan in force, the apps the candidates set aside (served degraded, or not served) per
re-plan, and the milliseconds a simulated step cost; then the re-plans by outcome (kept
without a solve, kept after one, applied) with the CPU of the steps that made them, and
the run's totals, and how the apps served degraded were placed: relaxed searches
(`orchestrator.degrade`), and apps held where the plan in force runs them instead.

    python bench/continuum_day.py [--hours H] [--period MIN] [--devices N] [--every K]
                                  [--probe S] [--battery-price X] [--mend-min-s S]
                                  [--mend-any] [--out DIR]

`--battery-price X`: in the relaxed search that places an app served degraded, a pack's
draw is priced X times its joules (`orchestrator.degrade._BATTERY_PRICE`, 1000 by
default: the placement that drains batteries least); 1 prices it as the contract prices
any device, the battery's limit lifted. A research knob for the trade between SLO
seconds and battery life, not a setting of the control plane.

`--mend-min-s S`, `--mend-any`: an exception to the hysteresis rule's "the plan in force
breaks a constraint: any candidate goes" (`orchestrator.hysteresis.MEND_MIN_S`, a
research knob, 0: off): a candidate that keeps the packs the plan in force breaks (and
nothing else) for less than S seconds is judged on its objective when it costs more than
the margin, or with `--mend-any` whatever it costs.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [str(ROOT), *(p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench")]
sys.path.append(str(ROOT / "bench"))

from machine import cpu_model  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from simulate_workloads import bench_simulate, run_by_period  # noqa: E402

from orchestrator import degrade, hysteresis  # noqa: E402
from orchestrator.drafts import InForceNow  # noqa: E402
from orchestrator.replacement import Replacement  # noqa: E402
from simulate.continuum import ContinuumPolicy  # noqa: E402
from simulate.engine import Simulation  # noqa: E402
from simulate.inputs import PROBE_S  # noqa: E402
from simulate.run import context  # noqa: E402


@dataclass
class Period:
    replans: int = 0
    applied: int = 0
    set_aside: int = 0  # apps the candidates set aside, summed over the re-plans
    degraded: int = 0  # of them, served degraded


class _Counting(ContinuumPolicy):
    """continuum, counting its re-plans into the period under way (nothing kept)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.keep_decisions = True
        self.period = Period()
        # outcome -> [re-plans, CPU s of the steps that made them]
        self.outcomes: dict[str, list[float]] = {}

    def decide(self, now: Any) -> Any:
        started = time.process_time()
        out = super().decide(now)
        spent = time.process_time() - started
        for d in self.decided:
            row = self.outcomes.setdefault(_outcome(d.result), [0, 0.0])
            row[0] += 1
            row[1] += spent / len(self.decided)
        for d in self.decided:
            p = self.period
            p.replans += 1
            p.applied += d.result.apply
            p.set_aside += len(d.result.unplaced) + len(d.result.degraded)
            p.degraded += len(d.result.degraded)
        self.decided.clear()
        return out


class _Degraded:
    """Counts, over the run: relaxed searches for an app served degraded, passes of the
    held check (`_where_they_run`, where the code has it), and the apps those held."""

    def __init__(self) -> None:
        self.searches = self.passes = self.asked = self.held = 0
        search = degrade._relaxed_placement

        def counting(*args: Any, **kwargs: Any) -> Any:
            self.searches += 1
            return search(*args, **kwargs)

        degrade._relaxed_placement = counting  # type: ignore[assignment]
        where = getattr(degrade, "_where_they_run", None)
        if where is not None:

            def holding(now: Any, placed: Any, candidates: Any, *rest: Any) -> Any:
                out = where(now, placed, candidates, *rest)
                self.passes += 1
                self.asked += len(candidates)
                self.held += len(out)
                return out

            degrade._where_they_run = holding


def _outcome(result: Replacement) -> str:
    """What a re-plan decided, and whether it solved to decide it."""
    if result.apply:
        return "applied"
    if isinstance(result.draft, InForceNow):
        return "kept without a solve (orchestrator/screen.py)"
    return "kept after a solve"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--hours", type=float, default=1.0)
    ap.add_argument("--period", type=float, default=15.0, metavar="MIN")
    ap.add_argument("--devices", type=int, default=200)
    ap.add_argument("--every", type=int, default=4)
    ap.add_argument("--probe", type=float, default=PROBE_S, metavar="S")
    ap.add_argument("--battery-price", type=float, default=degrade._BATTERY_PRICE, metavar="X")
    ap.add_argument("--mend-min-s", type=float, default=hysteresis.MEND_MIN_S, metavar="S")
    ap.add_argument("--mend-any", action="store_true")
    ap.add_argument("--out", type=Path, default=Path("/tmp/continuum-day"))
    args = ap.parse_args()
    if args.hours <= 0 or args.period <= 0 or args.battery_price <= 0 or args.mend_min_s < 0:
        ap.error("--hours, --period and --battery-price must be more than 0, --mend-min-s not less")
    degrade._BATTERY_PRICE = args.battery_price
    bench = bench_simulate()
    judged = bench.mends(args.mend_min_s, args.mend_any)
    console = Console() if sys.stdout.isatty() else Console(width=120)
    console.print(
        f"machine: {cpu_model()}; degraded apps' battery price {args.battery_price:g}; "
        f"short mends judged on their objective: {judged}"
    )
    inputs = bench.fleet(
        args.devices, args.every, args.hours, 1.0, args.out, ["continuum"], args.probe
    )
    policy = _Counting(context(inputs, "continuum"))
    sim = Simulation(inputs, "continuum", policy)
    rows: list[tuple[int, float, Period]] = []

    def close(k: int, period_cpu: float) -> None:
        rows.append((k, period_cpu, policy.period))
        # A long run says how it goes as it goes, not only at the end.
        console.print(
            f"until {k * inputs.step_s / 3600:.2f} h: {period_cpu:.1f} s CPU, "
            f"{policy.period.replans:,} re-plans"
        )
        policy.period = Period()

    served = _Degraded()
    started = time.process_time()
    run = run_by_period(sim, "continuum", args.period, console, close)
    cpu = time.process_time() - started

    table = Table(title=f"continuum on {inputs.scenario_name}, {args.hours:g} h, by period")
    for col in ("until h", "CPU s", "re-plans", "applied", "set aside a re-plan",
                "served degraded a re-plan", "ms a step"):  # fmt: skip
        table.add_column(col, justify="right")
    last = 0
    for k, period_cpu, p in rows:
        n = max(p.replans, 1)
        table.add_row(
            f"{k * inputs.step_s / 3600:.2f}", f"{period_cpu:.1f}", f"{p.replans:,}",
            f"{p.applied:,}", f"{p.set_aside / n:.1f}", f"{p.degraded / n:.1f}",
            f"{1000 * period_cpu / max(k - last, 1):.1f}",
        )  # fmt: skip
        last = k
    console.print(table)
    outcomes = Table(title="re-plans by outcome (CPU: the steps that made them)")
    for col in ("outcome", "re-plans", "CPU s", "ms each"):
        outcomes.add_column(col, justify="left" if col == "outcome" else "right")
    for name, (count, spent) in sorted(policy.outcomes.items(), key=lambda kv: -kv[1][1]):
        outcomes.add_row(name, f"{int(count):,}", f"{spent:.1f}", f"{1000 * spent / count:.1f}")
    console.print(outcomes)
    console.print(
        f"apps served degraded: {served.searches:,} relaxed searches; {served.passes:,} passes "
        f"holding {served.held:,} of the {served.asked:,} apps they judged where they run"
    )
    t = run.totals
    console.print(
        f"{inputs.steps:,} steps: {cpu:.1f} s CPU ({1000 * cpu / inputs.steps:.1f} ms a step), "
        f"{sum(r[2].replans for r in rows):,} re-plans, {t.replacements:,} re-placements; "
        f"energy {t.energy_j:,.0f} J, slo_miss_s {t.slo_miss_s:,.0f}, "
        f"violation_s {t.violation_s:,.0f}, battery_dead_h {t.battery_dead_h:,.1f}"
    )


if __name__ == "__main__":
    main()

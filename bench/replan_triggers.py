"""What asks `continuum` to re-plan, and which re-plans change the plan.

Issue 15's speed target (24 h of the 200-device fleet, five policies, 60 s) is missed by
continuum's re-plans: the live control plane's path, run at every step where a watch
fires. This runs `continuum` in the simulator on `bench/simulate.py`'s 200-device fleet
(HSDPA and 5Gophers traces on its camera uplinks) and sorts each re-plan by the triggers
that asked for it, against the plan in force at that moment:
- a floor: a link's sample fell below what the plan in force sends there
  (`orchestrator.triggers.link_floors`);
- a fall on a used link: a link the plan in force sends over lost 30% (smoothed), which
  may break an app's SLO there;
- only falls on unused links: nothing the plan in force does can get worse, and no other
  plan gets better from it (a re-plan may still find something else changed);
- only rises (with or without falls on unused links): an opportunity, nothing broke;
- no link trigger: a battery or a device.
For each, how many re-plans put a new plan in force and how many kept the plan. The rows
say what a rule that held back some kinds could save, and what it would risk.

    python bench/replan_triggers.py [--hours H] [--devices N] [--every K]
"""

from __future__ import annotations

import argparse
import re
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

from simulate.continuum import ContinuumPolicy  # noqa: E402
from simulate.engine import Simulation  # noqa: E402
from simulate.run import context  # noqa: E402

# orchestrator.triggers.LinkWatch's reasons: a move of the smoothed figures, or a floor.
MOVED = re.compile(
    r"^link (\S+): bandwidth ([\d.]+) -> ([\d.]+) Mbit/s, rtt ([\d.]+) -> ([\d.]+) ms$"
)
FLOOR = re.compile(r"^link (\S+): bandwidth [\d.]+ Mbit/s, below the ")
KINDS = (
    "floor, or fall on a used link",
    "only falls on unused links",
    "only rises (+ unused falls)",
    "battery or device",
)


def classify(reasons: list[str], used: set[str]) -> str:
    """The kind (one of KINDS) of one re-plan, from its triggers' reasons and the links
    the plan in force sends over."""
    worse = rises = unused_falls = 0
    for reason in reasons:
        if FLOOR.match(reason):
            worse += 1
            continue
        moved = MOVED.match(reason)
        if moved is None:
            continue  # a battery, a device: counted when no link fired
        link, mbps_was, mbps, rtt_was, rtt = moved.groups()
        fell = float(mbps) < float(mbps_was) or float(rtt) > float(rtt_was)
        if not fell:
            rises += 1
        elif link in used:
            worse += 1
        else:
            unused_falls += 1
    if worse:
        return KINDS[0]
    if rises:
        return KINDS[2]
    if unused_falls:
        return KINDS[1]
    return KINDS[3]


class _Sorting(ContinuumPolicy):
    """continuum, counting its re-plans by kind as they happen (nothing kept)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.keep_decisions = True
        self.counts: Counter[tuple[str, bool]] = Counter()

    def decide(self, now: Any) -> Any:
        out = super().decide(now)
        for d in self.decided:
            plan = d.previous_plan or {}
            used = {
                f"{u['a']}~{u['b']}" if u["a"] < u["b"] else f"{u['b']}~{u['a']}"
                for u in plan.get("links", [])
            }
            self.counts[(classify(d.reasons, used), d.result.apply)] += 1
        self.decided.clear()
        return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--hours", type=float, default=0.25)
    ap.add_argument("--devices", type=int, default=200)
    ap.add_argument("--every", type=int, default=4)
    ap.add_argument("--out", type=Path, default=Path("/tmp/continuum-replan-triggers"))
    args = ap.parse_args()
    console = Console()
    console.print(f"machine: {cpu_model()}")
    inputs = bench_simulate().fleet(
        args.devices, args.every, args.hours, 1.0, args.out, ["continuum"]
    )
    policy = _Sorting(context(inputs, "continuum"))
    sim = Simulation(inputs, "continuum", policy)
    started = time.process_time()
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("continuum", total=inputs.steps)
        sim.run(lambda k: bar.update(task, completed=k))
    cpu = time.process_time() - started

    title = f"continuum on {inputs.scenario_name}, {args.hours:g} h: re-plans by trigger"
    table = Table(title=title)
    for col in ("asked by", "re-plans", "new plan", "plan kept", "share"):
        table.add_column(col, justify="left" if col == "asked by" else "right")
    total = sum(policy.counts.values())
    for kind in KINDS:
        applied, kept = policy.counts[(kind, True)], policy.counts[(kind, False)]
        share = (applied + kept) / total if total else 0.0
        table.add_row(kind, f"{applied + kept:,}", f"{applied:,}", f"{kept:,}", f"{share:.0%}")
    applied_all = sum(v for (_, applied), v in policy.counts.items() if applied)
    table.add_row("all", f"{total:,}", f"{applied_all:,}", f"{total - applied_all:,}", "100%")
    console.print(table)
    console.print(
        f"{inputs.steps:,} steps, {total:,} re-plans ({total / max(inputs.steps, 1):.0%} of "
        f"steps); {cpu:.1f} s CPU, {1000 * cpu / max(inputs.steps, 1):.1f} ms a step"
    )


if __name__ == "__main__":
    main()

"""Re-placing the apps of a lost cloud machine at 10,000 devices: wall and CPU time.

    .venv/bin/python bench/lost_device.py                       # 10,000 devices, 5 runs
    .venv/bin/python bench/lost_device.py --devices 2000 --apps 1000

Solves a generated fleet (`solver.generate`, 20-block models, seed 1) with the heuristic,
collects garbage once (as a control plane's idle time would), then times `apply_change` +
`resolve` for the loss of the cloud machine that hosts the most apps, `--repeats` times
from the same solved problem, and prints the median and least wall and CPU times. On a
shared host read the CPU times: the wall ones are stretched by the other jobs.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import time

from solver_scale import busiest_cloud

from solver import Problem, SolveOptions, solve
from solver.generate import generate
from solver.incremental import Change, apply_change, resolve
from solver.scenario import parse_scenario


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--apps", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    problem = Problem(parse_scenario(generate(args.seed, args.devices, args.apps, 20)))
    previous = solve(problem, SolveOptions(time_limit_s=60), solver="heuristic").placements
    cloud, hosted = busiest_cloud(problem, previous)
    lost = Change(lost_devices=frozenset({cloud}))
    gc.collect()
    walls, cpus = [], []
    for _ in range(args.repeats):
        t, c = time.perf_counter(), time.process_time()
        plan = resolve(apply_change(problem, lost, previous), previous, lost)
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    print(
        f"{args.devices} devices, {args.apps} apps, lost {cloud} ({hosted} apps hosted): "
        f"wall median {statistics.median(walls):.3f} s (least {min(walls):.3f}), "
        f"CPU median {statistics.median(cpus):.3f} s (least {min(cpus):.3f}), "
        f"re-placed {(plan.doc.stats or {}).get('resolved_apps')} apps, {plan.status.value}; "
        f"load average {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()

"""`continuum solve` end to end: the command as a subprocess on a generated scenario file.

    .venv/bin/python bench/solve_command.py                      # 10,000 devices, 5,000 apps
    .venv/bin/python bench/solve_command.py --devices 2000 --apps 1000 --format yaml
    .venv/bin/python bench/solve_command.py --threads 1   # the bound in the same process
    .venv/bin/python bench/solve_command.py --devices 5000 --apps 2500 \
        --solver neurosurgeon --repeats 1

Writes a generated fleet (`solver.generate`, 20-block models, seed 1) to a file, runs
`continuum solve FILE --solver heuristic --json` (another solver with `--solver`) as a
child process `--repeats` times and prints, per run: wall time, the child's CPU time (user
+ sys) and peak RSS, the plan's own `solve_s`, and so what the command spends outside the
solve (reading, validating, routing and writing). The machine's load average is printed
with it: on a shared host the wall time is the CPU time stretched by the other jobs. The
CPU time includes the process the heuristic forks for its bound (`--threads`, 2 by
default on two cores).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from solver.generate import generate


def _run(cmd: list[str]) -> tuple[float, float, float, dict[str, object]]:
    """(wall s, CPU s, peak RSS MB, plan) of one run of the command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    # ru_maxrss of the children is the largest child so far, in KB on Linux.
    return wall, cpu, after.ru_maxrss / 1024.0, json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--apps", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--format", choices=("json", "yaml"), default="json")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--solver", default="heuristic", help="passed to the command")
    parser.add_argument(
        "--threads", type=int, default=None, help="passed to the command (default: its own)"
    )
    args = parser.parse_args()
    raw = generate(args.seed, args.devices, args.apps, 20)
    continuum = Path(sys.executable).with_name("continuum")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"fleet.{args.format}"
        if args.format == "json":
            path.write_text(json.dumps(raw))
        else:
            path.write_text(yaml.safe_dump(raw, sort_keys=False))
        size_mb = path.stat().st_size / 1e6
        print(
            f"{args.devices} devices, {args.apps} apps, {args.format} file {size_mb:.1f} MB; "
            f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start"
        )
        cmd = [str(continuum), "solve", str(path), "--solver", args.solver, "--json"]
        if args.threads is not None:
            cmd += ["--threads", str(args.threads)]
        for k in range(args.repeats):
            wall, cpu, peak, plan = _run(cmd)
            solve_s = float(str(plan["solve_s"]))
            objective, bound = plan.get("objective"), plan.get("bound")
            gap = "-"
            if isinstance(objective, float) and isinstance(bound, float):
                gap = f"{(objective - bound) / objective:.2%}"
            print(
                f"run {k + 1}: wall {wall:.2f} s, cpu {cpu:.2f} s, peak RSS {peak:.0f} MB, "
                f"solve_s {solve_s:.2f} (outside the solve: {wall - solve_s:.2f} s wall), "
                f"status {plan['status']}, objective {objective}, bound {bound}, gap {gap}, "
                f"load average {os.getloadavg()[0]:.1f}",
                flush=True,
            )


if __name__ == "__main__":
    main()

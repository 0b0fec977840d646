"""One `neurosurgeon` solve of a generated fleet, fast (solver/splits.py: every split
bounded with numpy, only the candidates that may win scored) against the reference that
scores every candidate: CPU seconds of each and whether the plans are the same.

    .venv/bin/python bench/neurosurgeon_solve.py [--devices 200] [--seed 7]

The fleet is bench/simulate.py's (`solver.generate`, `apps` = devices / 2). CPU time
(`time.process_time`) is the figure: the machine is shared; the load is printed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from solver import Problem, SolveOptions, parse_scenario
from solver.baselines import solve_neurosurgeon, solve_neurosurgeon_reference
from solver.generate import generate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--devices", type=int, default=200)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    raw = generate(args.seed, devices=args.devices, apps=args.devices // 2)
    print(subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip())
    plans = {}
    for name, fn in (("fast", solve_neurosurgeon), ("reference", solve_neurosurgeon_reference)):
        problem = Problem(parse_scenario(raw))  # each from a cold route table
        cpu = time.process_time()
        plans[name] = fn(problem, SolveOptions())
        print(f"{name:<10} {time.process_time() - cpu:8.2f} s CPU")
    same = plans["fast"].placements == plans["reference"].placements
    print(f"same placements: {same}; objective {plans['fast'].doc.objective}")
    print(subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip())


if __name__ == "__main__":
    main()

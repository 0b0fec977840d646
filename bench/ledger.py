"""What naming the broken constraints costs a simulated run (`simulate/ledger.py`).

Runs each policy on `bench/simulate.py`'s 200-device fleet for `--hours`, with the ledger
and with one that reads nothing, in turns (`--rounds` of each, alternating, so that a
host that changes speed shows in both), and prints the CPU seconds of each run, the
median of each side and what the ledger adds. The verdicts record what flipped either
way (`Verdicts.changed`), so this measures the ledger's reading and counting.

    python bench/ledger.py [--hours H] [--policies A,B] [--rounds N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [str(ROOT), *(p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench")]
sys.path.append(str(ROOT / "bench"))

from machine import cpu_model, reference_ms  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from simulate_workloads import bench_simulate  # noqa: E402

import simulate.engine as engine  # noqa: E402
from simulate.inputs import PROBE_S  # noqa: E402
from simulate.ledger import Ledger  # noqa: E402
from simulate.run import run_policy  # noqa: E402


class _Blind:
    """A ledger that reads nothing."""

    def __init__(self, dt: float) -> None:
        self.dt = dt

    def step(self, k: int, v: Any) -> None:
        return None

    def close(self, steps: int) -> dict[Any, Any]:
        return {}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--hours", type=float, default=6.0)
    ap.add_argument("--policies", default="static,all-cloud,neurosurgeon,continuum")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    console = Console()
    console.print(f"machine: {cpu_model()}; host reference {reference_ms():.0f} ms")
    table = Table(title=f"generated-200, {args.hours:g} h: CPU s with and without the ledger")
    for column in ("policy", "with", "without", "median with", "median without", "added"):
        table.add_column(column, justify="left" if column == "policy" else "right")
    out = Path("/tmp/continuum-bench-ledger")
    for name in args.policies.split(","):
        inputs = bench_simulate().fleet(200, 4, args.hours, 1.0, out, [name], PROBE_S)
        cpu: dict[str, list[float]] = {"with": [], "without": []}
        constraints = 0
        for _ in range(args.rounds):
            for side, kind in (("with", Ledger), ("without", _Blind)):
                engine.Ledger = kind  # type: ignore[misc, assignment]
                started = time.process_time()
                run = run_policy(inputs, name)
                cpu[side].append(time.process_time() - started)
                constraints = max(constraints, len(run.broken))
        engine.Ledger = Ledger  # type: ignore[misc]
        w, wo = statistics.median(cpu["with"]), statistics.median(cpu["without"])
        table.add_row(
            f"{name} ({constraints} constraints broken)",
            " ".join(f"{x:.2f}" for x in cpu["with"]),
            " ".join(f"{x:.2f}" for x in cpu["without"]),
            f"{w:.2f}", f"{wo:.2f}", f"{w - wo:+.2f} ({(w - wo) / wo:+.1%})",
        )  # fmt: skip
    console.print(table)
    console.print(f"host reference after: {reference_ms():.0f} ms")


if __name__ == "__main__":
    main()

"""What machine a benchmark ran on, for the figures it prints and records."""

from __future__ import annotations

import platform
import statistics
import time
from pathlib import Path


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def reference_ms(repeats: int = 5) -> float:
    """The median CPU milliseconds of a fixed pure-Python workload (dict lookups on tuple
    keys and float arithmetic, what the simulator's step is made of), `repeats` times:
    how fast the host runs now. The 2-core VMs these benchmarks run on change speed by
    up to a factor of two within an hour (bench/RESULTS.md), so a wall time is read next
    to it."""
    times = []
    for _ in range(repeats):
        started = time.process_time()
        table: dict[tuple[int, int], float] = {}
        total = 0.0
        for i in range(600_000):
            key = (i % 997, i % 13)
            value = table.get(key, 0.0) + i * 0.5
            table[key] = value
            total += value if i & 1 else -value
        times.append(time.process_time() - started)
    return 1000.0 * statistics.median(times)

"""`bench/simulate.py`'s workloads for the benchmarks that study one policy on them, and
what those benchmarks ask of a simulation in the middle of its run.

That module's name is the package's (`simulate`), so it cannot be imported by name from a
script in bench/: it is loaded by path, once.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

from rich.progress import Progress

import solver

HERE = Path(__file__).resolve().parent
Link = tuple[str, str]


@cache
def bench_simulate() -> ModuleType:
    """bench/simulate.py, loaded by path (`example(...)`, `fleet(...)`)."""
    spec = importlib.util.spec_from_file_location("bench_simulate", HERE / "simulate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_by_period(
    sim: Any, name: str, period_min: float, console: Any, close: Callable[[int, float], None]
) -> Any:
    """Run the simulation `sim` with a progress bar, calling `close(k, cpu)` at the first
    of the engine's samples past each `period_min` minutes of simulated time, and at the
    end (k: the steps run; cpu: the process's CPU seconds since the last call). Returns
    the run."""
    inputs = sim.inputs
    period_steps = max(1, round(period_min * 60 / inputs.step_s))
    last = [0, time.process_time()]
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task(name, total=inputs.steps)

        def progress(k: int) -> None:
            bar.update(task, completed=k)
            if k - last[0] >= period_steps or k == inputs.steps:
                cpu = time.process_time()
                close(k, cpu - last[1])
                last[:] = [k, cpu]

        return sim.run(progress)


def broken_on(sim: Any, figures: Mapping[Link, float] | None = None) -> list[Any]:
    """What the plan in force breaks (`solver.evaluate`'s reasons) on the scenario of now,
    or, with `figures`, on it with those traced links at those Mbit/s: with the agents'
    latest probes (`sim.probes.measured`), the scenario as the control plane knows it, and
    empty when every constraint the plan breaks now rests on a link figure no probe had
    seen yet."""
    return list(evaluated_on(sim, figures).found)


def evaluated_on(sim: Any, figures: Mapping[Link, float] | None = None) -> Any:
    """`broken_on`'s evaluation (`solver.Evaluation`: the reasons by device and link too),
    derived from the simulator's compiled problem by the links that differ."""
    problem = sim.problem()
    held = sim._held(sim.down)
    moved = {k: {"mbps": v} for k, v in (figures or {}).items() if sim.link_now.get(k) != v}
    if moved:
        problem = solver.apply_change(problem, solver.Change(links=moved), held)
    return solver.evaluate(problem.cost, held, cache=problem.app_costs)

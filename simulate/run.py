"""Run every policy of a simulation and write its outputs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from simulate.engine import PolicyRun, Simulation
from simulate.inputs import Inputs
from simulate.outputs import summary_text, timeseries_text, write_atomically, write_tables
from simulate.policy import PolicyContext
from simulate.registry import make
from simulate.report import report_html


def context(inputs: Inputs, name: str) -> PolicyContext:
    return PolicyContext(
        name=name,
        seed=inputs.seed,
        time_limit_s=inputs.time_limit_s,
        step_s=inputs.step_s,
        rollout_s=inputs.rollout_s,
        horizon_h=float(inputs.scenario.get("horizon_h", 8.0)),
        ceilings={key: max(trace.mbps) for key, trace in inputs.traces.items()},
    )


def build_policies(inputs: Inputs) -> dict[str, object]:
    """Every policy built before any runs (a plug-in that fails to load fails first)."""
    return {name: make(context(inputs, name)) for name in inputs.policies}


def run_policy(
    inputs: Inputs, name: str, progress: Callable[[int], None] | None = None
) -> PolicyRun:
    return Simulation(inputs, name, make(context(inputs, name))).run(progress)


def run_all(
    inputs: Inputs, progress: Callable[[str, int], None] | None = None
) -> dict[str, PolicyRun]:
    """Each policy in turn, on the same inputs (each with its own batteries)."""
    build_policies(inputs)
    runs: dict[str, PolicyRun] = {}
    for name in inputs.policies:
        hook = None if progress is None else (lambda k, n=name: progress(n, k))
        runs[name] = run_policy(inputs, name, hook)
    return runs


def write_outputs(out: Path, inputs: Inputs, runs: dict[str, PolicyRun]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_atomically(out / "summary.json", summary_text(runs))
    write_tables(out, runs)
    write_atomically(out / "timeseries.csv", timeseries_text(runs))
    title = f"continuum simulate: {inputs.scenario_name}, {inputs.hours:g} h"
    write_atomically(out / "report.html", report_html(title, runs, inputs.described()))


__all__ = ["build_policies", "context", "run_all", "run_policy", "write_outputs"]

"""`continuum simulate-sweep SPEC.yaml`: scenarios x seeds x trace sets x policies.

The spec (paths relative to it):

    scenarios: [../examples/factory-line.yaml]
    policies: [continuum, static]
    hours: 1
    step: 1                  # optional, seconds
    seeds: [0, 1]            # optional, default [0]
    probe: 30                # optional, seconds between the agents' bandwidth probes
    traces:                  # optional: named sets of --trace values; each case takes one
      calm: []
      hsdpa: ["edge-a~cloud-gpu=../../shared/traces/hsdpa-norway/norway_bus_1"]
    batteries: []            # optional --battery values, for every case
    fail: []                 # optional --fail values, for every case

Each (scenario, seed, trace set, policy) is one run. Every run's inputs are checked
before the first starts. Runs go to a local process pool (default) or to a Ray cluster
(`--engine ray [--address ...]`, `pip install 'continuum[ray]'`); a run is a pure
function of its inputs, so either engine gives the same `summary.json` (the measured
times are in `timings.json`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from simulate.engine import PolicyRun
from simulate.errors import InputError
from simulate.inputs import PROBE_S, Inputs, load_scenario_dict, prepare
from simulate.outputs import totals_dict, write_atomically, write_tables
from simulate.registry import known
from simulate.report import report_html
from simulate.run import build_policies, run_policy

ENGINES = ("local", "ray")
_KEYS = {
    "scenarios", "policies", "hours", "step", "seeds", "traces", "batteries", "fail", "probe"
}  # fmt: skip


@dataclass(frozen=True)
class Case:
    case: str  # scenario/seed/trace set
    policy: str
    inputs: Inputs


@dataclass(frozen=True)
class Sweep:
    cases: list[Case]


def _list(spec: dict[str, Any], key: str, default: list[Any]) -> list[Any]:
    value = spec.get(key, default)
    if not isinstance(value, list):
        raise InputError(f"sweep spec: {key} must be a list")
    return value


def _number(spec: dict[str, Any], key: str, default: float | None = None) -> float:
    x = spec.get(key, default)
    if not isinstance(x, int | float) or isinstance(x, bool):
        raise InputError("sweep spec: hours, step and probe must be numbers")
    return float(x)


def load_spec(path: Path) -> Sweep:
    """Every run of the sweep, each checked; InputError naming the first bad input."""
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"{path}: cannot read it ({exc.strerror})") from None
    except yaml.YAMLError:
        raise InputError(f"{path}: not valid YAML") from None
    if not isinstance(spec, dict):
        raise InputError(f"{path}: a sweep spec is a mapping (scenarios, policies, hours, ...)")
    unknown = sorted(set(spec) - _KEYS)
    if unknown:
        raise InputError(f"sweep spec: unknown field {unknown[0]!r}")
    base = path.parent
    scenarios = _list(spec, "scenarios", [])
    policies = [str(p) for p in _list(spec, "policies", [])]
    if not scenarios:
        raise InputError("sweep spec: scenarios: name at least one scenario file")
    hours, step, probe = (
        _number(spec, "hours"),
        _number(spec, "step", 1.0),
        _number(spec, "probe", PROBE_S),
    )
    seeds = _list(spec, "seeds", [0])
    if not all(isinstance(s, int) for s in seeds):
        raise InputError("sweep spec: seeds must be integers")
    trace_sets = spec.get("traces", {"none": []})
    if not isinstance(trace_sets, dict) or not trace_sets:
        raise InputError("sweep spec: traces must map a name to a list of A~B=FILE")
    batteries = [str(b) for b in _list(spec, "batteries", [])]
    fails = [str(f) for f in _list(spec, "fail", [])]
    names = known()
    cases: list[Case] = []
    for scenario in scenarios:
        scenario_path = base / str(scenario)
        raw = load_scenario_dict(scenario_path)
        for seed in seeds:
            for set_name, traces in trace_sets.items():
                if not isinstance(traces, list):
                    raise InputError(f"sweep spec: traces.{set_name} must be a list")
                inputs = prepare(
                    raw,
                    scenario_path.stem,
                    policies,
                    names,
                    hours,
                    traces=[str(t) for t in traces],
                    batteries=batteries,
                    failures=fails,
                    step_s=step,
                    seed=seed,
                    base=base,
                    probe_s=probe,
                )
                build_policies(inputs)
                label = f"{scenario_path.stem}/seed{seed}/{set_name}"
                cases.extend(Case(label, p, inputs) for p in policies)
    return Sweep(cases)


def run_case(case: Case) -> PolicyRun:
    """One run; a module-level function, so a process pool and Ray can ship it."""
    return run_policy(case.inputs, case.policy)


def _local(cases: list[Case], workers: int | None, done: Callable[[], None]) -> list[PolicyRun]:
    n = workers or os.cpu_count() or 1
    with ProcessPoolExecutor(max_workers=min(n, len(cases))) as pool:
        futures = [pool.submit(run_case, c) for c in cases]
        out = []
        for f in futures:
            out.append(f.result())
            done()
        return out


def _ray(cases: list[Case], address: str | None, done: Callable[[], None]) -> list[PolicyRun]:
    try:
        import ray  # the optional extra: continuum[ray]
    except ImportError:
        raise InputError(
            "--engine ray: Ray is not installed; pip install 'continuum[ray]'"
        ) from None
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    try:
        remote = ray.remote(run_case)
        refs = [remote.remote(c) for c in cases]
        out = []
        for ref in refs:
            out.append(ray.get(ref))
            done()
        return out
    finally:
        if started:
            ray.shutdown()


def run_sweep(
    sweep: Sweep,
    out: Path,
    engine: str = "local",
    address: str | None = None,
    workers: int | None = None,
    done: Callable[[], None] = lambda: None,
) -> dict[str, Any]:
    """Run every case and write `summary.json` (`{"cases": {CASE: {POLICY: figures}}}`),
    `broken.csv` and `decisions.csv` (their policy column "CASE POLICY") and one
    `report.html`; the summary is returned."""
    if engine not in ENGINES:
        raise InputError(f"--engine: unknown engine {engine!r}")
    cases = sweep.cases
    runs = _ray(cases, address, done) if engine == "ray" else _local(cases, workers, done)
    summary: dict[str, Any] = {"cases": {}}
    combined: dict[str, PolicyRun] = {}
    for case, run in zip(cases, runs, strict=True):
        summary["cases"].setdefault(case.case, {})[case.policy] = totals_dict(run.totals)
        combined[f"{case.case} {case.policy}"] = run
    out.mkdir(parents=True, exist_ok=True)
    write_atomically(out / "summary.json", json.dumps(summary, indent=2, sort_keys=True) + "\n")
    write_tables(out, combined)
    inputs = {c.case: c.inputs.described() for c in cases}
    write_atomically(
        out / "report.html",
        report_html(f"continuum simulate-sweep: {len(cases)} runs", combined, inputs),
    )
    return summary


__all__ = ["ENGINES", "Case", "Sweep", "load_spec", "run_case", "run_sweep"]

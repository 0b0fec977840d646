"""Simulation benchmark: five policies over real traces, and how long a run takes.

Workloads:
- the example fleet (examples/factory-line.yaml) with an HSDPA trace on the plant's
  uplink (edge-a~cloud-gpu) and a 5Gophers trace on cam-6's Wi-Fi;
- the example fleet as declared, calm (no trace, nothing failing), over `--calm-hours`
  (default 24, as the others; 8 is one shift, its `horizon_h`): under the traces no
  baseline keeps its SLOs, and the energy target ("at most that of every baseline that
  keeps its SLOs") compares with nothing;
- a generated fleet (`solver.generate`, seed 7) of `--devices` devices, with HSDPA and
  5Gophers traces, alternately, on the uplinks of one camera in `--every`.
Each trace is scaled so that its mean equals the link's declared bandwidth (as
bench/churn.py does): the traces are downlinks of other networks, and what is replayed is
their shape (scaled copies are written under --out).
Policies (`--policies`, default all six): continuum, static, neurosurgeon, all-cloud,
all-device, and continuum-no-hysteresis (continuum with a margin of 0, the policy
"without hysteresis" its re-placements are compared with), one process each on a pool of
`--workers`, with a progress bar per policy on a terminal. Prints the machine's load
(`uptime`) and how fast it runs a fixed workload before and after (`machine.reference_ms`:
these VMs change speed within the hour), the summary per workload, the wall and
CPU seconds per policy (CPU: the worker's own process time, what the shared machine's
load does not inflate), and the issue's targets as far as a run shows them; writes the
plots (the report's own SVG writer) next to --out.

    python bench/simulate.py [--hours H] [--devices N] [--every K] [--step S]
                             [--workers W] [--out DIR] [--skip-example] [--skip-calm]
                             [--skip-fleet] [--calm-hours H] [--policies P,P,...]
                             [--fleet-policies P,P,...] [--probe S]
                             [--mend-min-s S] [--mend-any]

`--mend-min-s S` (`--mend-any`): the research knob of the hysteresis rule
(`orchestrator.hysteresis.MEND_MIN_S`, off): a candidate that keeps the packs the plan in
force breaks, and nothing else, for less than S seconds is judged on its objective when it
costs more than the margin (whatever it costs).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor, wait
from multiprocessing import Manager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# This file's own name would shadow the `simulate` package: the script's directory goes
# to the end of the path, the checkout to the front.
sys.path[:] = [str(ROOT), *(p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench")]
sys.path.append(str(ROOT / "bench"))

from machine import cpu_model, reference_ms  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.progress import (  # noqa: E402
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table  # noqa: E402

from cli.simulate import summary_table  # noqa: E402
from orchestrator import hysteresis  # noqa: E402
from simulate.engine import PolicyRun  # noqa: E402
from simulate.inputs import PROBE_S, Inputs, load_scenario_dict, prepare  # noqa: E402
from simulate.ledger import by_family  # noqa: E402
from simulate.registry import known  # noqa: E402
from simulate.report import plots  # noqa: E402
from simulate.run import run_policy, write_outputs  # noqa: E402
from simulate.traces import read_trace  # noqa: E402
from solver.generate import generate  # noqa: E402

TRACES = ROOT.parent / "shared" / "traces"
HSDPA = sorted((TRACES / "hsdpa-norway").iterdir())
FIVE_G = sorted((TRACES / "5gophers").glob("All-Carriers_03-*.csv"))
POLICIES = [
    "continuum", "static", "neurosurgeon", "all-cloud", "all-device", "continuum-no-hysteresis"
]  # fmt: skip
BASELINES = ["static", "neurosurgeon", "all-cloud", "all-device"]


def scaled(scn: dict[str, Any], a: str, b: str, source: Path, out: Path) -> str:
    """`a~b=FILE` for a copy of the trace scaled to the link's declared mean."""
    declared = next(lk["mbps"] for lk in scn["links"] if {lk["a"], lk["b"]} == {a, b})
    trace = read_trace(source)
    factor = declared / trace.mean()
    path = out / "traces" / f"{a}~{b}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "".join(f"{t:g}\t{m * factor:.6g}\n" for t, m in zip(trace.times, trace.mbps, strict=True))
    )
    return f"{a}~{b}={path}"


def example(
    hours: float, step: float, out: Path, policies: list[str], probe: float = PROBE_S
) -> Inputs:
    scn = load_scenario_dict(ROOT / "examples" / "factory-line.yaml")
    traces = [
        scaled(scn, "edge-a", "cloud-gpu", HSDPA[0], out),
        scaled(scn, "cam-6", "edge-b", FIVE_G[-1], out),
    ]
    return prepare(
        scn, "factory-line", policies, known(), hours, step_s=step, traces=traces, probe_s=probe
    )


def calm(hours: float, step: float, policies: list[str], probe: float = PROBE_S) -> Inputs:
    scn = load_scenario_dict(ROOT / "examples" / "factory-line.yaml")
    return prepare(
        scn, "factory-line-calm", policies, known(), hours, step_s=step, probe_s=probe
    )  # fmt: skip


def fleet(
    devices: int,
    every: int,
    hours: float,
    step: float,
    out: Path,
    policies: list[str],
    probe: float = PROBE_S,
) -> Inputs:
    scn: dict[str, Any] = generate(7, devices=devices, apps=devices // 2)
    traces, seen = [], set()
    cams = [d["id"] for d in scn["devices"] if d["tier"] == "device"]
    for k, cam in enumerate(cams[::every]):
        link = next(lk for lk in scn["links"] if cam in (lk["a"], lk["b"]))
        if (link["a"], link["b"]) in seen:
            continue
        seen.add((link["a"], link["b"]))
        files = HSDPA if k % 2 == 0 else FIVE_G
        traces.append(scaled(scn, link["a"], link["b"], files[k // 2 % len(files)], out))
    return prepare(
        scn, f"generated-{devices}", policies, known(), hours, step_s=step, traces=traces,
        probe_s=probe,
    )  # fmt: skip


def _timed(inputs: Inputs, name: str, done: Any = None) -> tuple[str, PolicyRun, float, float]:
    """One policy's run; `done` (a manager's dict, shared with the parent's progress
    bars) gets its steps done about every 1% of the run."""
    started, cpu = time.perf_counter(), time.process_time()
    every, last = max(1, inputs.steps // 100), [0]

    def progress(k: int) -> None:
        if k - last[0] >= every or k == inputs.steps:
            last[0] = k
            done[name] = k

    run = run_policy(inputs, name, progress if done is not None else None)
    return name, run, time.perf_counter() - started, time.process_time() - cpu


def load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def targets(runs: dict[str, PolicyRun], console: Console) -> None:
    """The issue's targets, as far as the run's figures show them."""
    mine = runs.get("continuum")
    if mine is None:
        return
    t = mine.totals
    kept = [b for b in BASELINES if b in runs and runs[b].totals.slo_miss_s == 0]
    lower = all(t.energy_j <= runs[b].totals.energy_j for b in kept)
    console.print(
        f"  continuum: violation_s {t.violation_s:g}; baselines with no SLO miss: "
        f"{', '.join(kept) or 'none'}; energy at most theirs: {lower if kept else 'vacuous'}"
    )
    mine_by = by_family(mine.broken)
    more: dict[str, dict[str, float]] = {}
    for b in kept:
        more[b] = {
            code: seconds - mine_by.get(code, 0.0)
            for code, seconds in by_family(runs[b].broken).items()
            if seconds > mine_by.get(code, 0.0)
        }
    # The target read as a demanding user would: a baseline that keeps its SLOs by
    # breaking a hard limit longer than continuum (an uplink over max_utilization) is no
    # reference for energy. Both readings are printed.
    clean = [b for b in kept if not more[b]]
    console.print(
        f"  of them, breaking no constraint family longer than continuum: "
        f"{', '.join(clean) or 'none'}; energy at most theirs: "
        f"{all(t.energy_j <= runs[b].totals.energy_j for b in clean) if clean else 'vacuous'}"
    )
    for b in kept:
        other = runs[b]
        broke = ", ".join(f"{code} {s:,.0f} s" for code, s in more[b].items()) or "nothing"
        console.print(
            f"  energy against {b}: continuum {t.energy_j:,.0f} J, {b} "
            f"{other.totals.energy_j:,.0f} J ({t.energy_j / other.totals.energy_j - 1:+.1%}); "
            f"what {b} breaks more than continuum: {broke}"
        )
    free = runs.get("continuum-no-hysteresis")
    if free is not None:
        r = free.totals.replacements
        frac = f"{t.replacements / r:.2f}" if r else "n/a"
        console.print(
            f"  re-placements: continuum {t.replacements}, without hysteresis {r} "
            f"(fraction {frac}); neurosurgeon "
            f"{runs['neurosurgeon'].totals.replacements if 'neurosurgeon' in runs else '-'}"
        )


def families(runs: dict[str, PolicyRun]) -> Table:
    """What each policy's violation_s is made of (`simulate.ledger`), by constraint family,
    with the sum of its constraints next to violation_s."""
    by = {name: by_family(run.broken) for name, run in runs.items()}
    codes = sorted({code for b in by.values() for code in b})
    table = Table(title="constraint-seconds by family (broken.csv)")
    for column in ("policy", *codes, "sum", "violation_s"):
        table.add_column(column, justify="left" if column == "policy" else "right")
    for name, run in runs.items():
        total = sum(by[name].values())
        table.add_row(
            name, *(f"{by[name].get(c, 0.0):,.0f}" for c in codes), f"{total:,.0f}",
            f"{run.totals.violation_s:,.0f}",
        )  # fmt: skip
    return table


def bench(inputs: Inputs, workers: int, out: Path, console: Console) -> dict[str, PolicyRun]:
    console.print(f"load before: {load()}; host reference {reference_ms():.0f} ms")
    started, cpu = time.perf_counter(), os.times()
    columns = (
        TextColumn("{task.description:<24}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(),
    )  # fmt: skip
    with (
        Manager() as manager,
        ProcessPoolExecutor(
            max_workers=workers,
            initializer=mends,
            initargs=(hysteresis.MEND_MIN_S, not hysteresis.MEND_ONLY_WHEN_COSTLIER),
        ) as pool,
        Progress(*columns, console=console, transient=True) as bar,
    ):
        steps = manager.dict()
        tasks = {name: bar.add_task(name, total=inputs.steps) for name in inputs.policies}
        futures = [pool.submit(_timed, inputs, name, steps) for name in inputs.policies]
        while wait(futures, timeout=0.5).not_done:
            for name, k in steps.items():
                bar.update(tasks[name], completed=k)
        for name, k in steps.items():
            bar.update(tasks[name], completed=k)
        done = [f.result() for f in futures]
    wall = time.perf_counter() - started
    after = os.times()
    children = (after.children_user + after.children_system) - (
        cpu.children_user + cpu.children_system
    )
    runs = {name: run for name, run, _, _ in done}
    console.print(summary_table(runs, f"{inputs.scenario_name}: {inputs.hours:g} h"))
    for name, run, seconds, cpu_s in done:
        console.print(
            f"  {name:<24} {seconds:8.1f} s wall {cpu_s:8.1f} s CPU for {inputs.steps} steps "
            f"of {inputs.step_s:g} s ({run.plans} plans put in force)"
        )
    console.print(
        f"  all {len(done)} on {workers} processes: {wall:.1f} s wall, {children:.1f} s CPU "
        f"(the pool's processes); traced links: {len(inputs.traces)}"
    )
    console.print(f"load after: {load()}; host reference {reference_ms():.0f} ms")
    console.print(families(runs))
    targets(runs, console)
    write_outputs(out / inputs.scenario_name, inputs, runs)
    for title, svg in plots(runs):
        slug = title.split(" (")[0].lower().replace(" ", "-")
        (out / f"{inputs.scenario_name}-{slug}.svg").write_text(svg)
    return runs


def mends(least_s: float, any_cost: bool) -> str:
    """Set the hysteresis rule's short-mend knob (`--mend-min-s`, `--mend-any`) in this
    process (and, as the pool's initializer, in each of its); say what it is set to."""
    hysteresis.MEND_MIN_S = least_s
    hysteresis.MEND_ONLY_WHEN_COSTLIER = not any_cost
    if least_s <= 0:
        return "none"
    cost = "whatever they cost" if any_cost else "costing more than the margin"
    return f"under {least_s:g} s, {cost}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--devices", type=int, default=200)
    ap.add_argument("--every", type=int, default=4)
    ap.add_argument("--step", type=float, default=1.0)
    ap.add_argument(
        "--probe", type=float, default=PROBE_S,
        help="seconds between the agents' bandwidth probes (what continuum sees)",
    )  # fmt: skip
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "simulate-out")
    ap.add_argument("--skip-example", action="store_true")
    ap.add_argument("--skip-calm", action="store_true")
    ap.add_argument("--calm-hours", type=float, default=24.0)
    ap.add_argument("--skip-fleet", action="store_true")
    ap.add_argument("--policies", default=",".join(POLICIES), help="for the example fleet")
    ap.add_argument("--fleet-policies", default=",".join(POLICIES))
    ap.add_argument("--mend-min-s", type=float, default=hysteresis.MEND_MIN_S, metavar="S")
    ap.add_argument("--mend-any", action="store_true")
    args = ap.parse_args()
    if args.mend_min_s < 0:
        ap.error("--mend-min-s must be at least 0")
    judged = mends(args.mend_min_s, args.mend_any)
    console = Console()
    console.print(f"machine: {cpu_model()}")
    if args.mend_min_s > 0:
        console.print(f"short mends judged on their objective (orchestrator.hysteresis): {judged}")
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.skip_example:
        inputs = example(args.hours, args.step, args.out, args.policies.split(","), args.probe)
        bench(inputs, args.workers, args.out, console)
    if not args.skip_calm:
        inputs = calm(args.calm_hours, args.step, args.policies.split(","), args.probe)
        bench(inputs, args.workers, args.out, console)
    if not args.skip_fleet:
        policies = args.fleet_policies.split(",")
        inputs = fleet(
            args.devices, args.every, args.hours, args.step, args.out, policies, args.probe
        )
        bench(inputs, args.workers, args.out, console)


if __name__ == "__main__":
    main()

"""Plan churn under real bandwidth traces (solver-level, no server).

How many plan changes a real bandwidth trace causes on the example fleet's shared cloud
uplink under three policies:
- naive: solve from scratch on every sample (no migration weight) and apply any plan that
  differs;
- incremental: re-solve the apps on that link on every sample, with the migration weight,
  and apply any plan that differs;
- loop: the control plane's rule: smoothed link triggers, then apply only when the plan in
  force breaks a constraint or the new one is better by more than the margin.
It also counts the samples during which the plan in force breaks a constraint under the
bandwidth of that moment (the price of reacting less).

Traces: `../shared/traces/` (downlink throughput); each is scaled so that its mean equals
the uplink's declared bandwidth, and used as that uplink's bandwidth over time.

    python bench/churn.py [--traces N] [--samples N] [--margin F]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from orchestrator.hysteresis import DEFAULT_MARGIN, decide  # noqa: E402
from orchestrator.triggers import LinkWatch  # noqa: E402
from solver import Problem, SolveOptions, Status, load_scenario, solve  # noqa: E402
from solver.evaluate import evaluate  # noqa: E402
from solver.incremental import Change, apply_change, resolve  # noqa: E402
from solver.plan import Placement  # noqa: E402

TRACES = ROOT.parent / "shared" / "traces"
SCENARIO = ROOT / "examples" / "factory-line.yaml"
LINK = ("edge-a", "cloud-gpu")
MIGRATION = 0.005  # per MB of weights moved: small next to a few joules per second


def read_trace(path: Path) -> list[tuple[float, float]]:
    out = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2:
            t, mbps = float(parts[0]), float(parts[1])
            out.append((t, max(mbps, 0.05)))  # a zero sample would mean "no link"
    return out


@dataclass
class ChurnResult:
    trace: str
    samples: int
    triggers: int
    changes: dict[str, int]
    broken: dict[str, int]
    resolve_ms_p50: float


def _scenario_problem() -> Problem:
    scn = load_scenario(SCENARIO)
    if scn.objective.migration == 0:
        scn = scn.model_copy(
            update={"objective": scn.objective.model_copy(update={"migration": MIGRATION})}
        )
    return Problem(scn)


def _broken(problem: Problem, placements: dict[str, Placement]) -> bool:
    return bool(evaluate(problem.cost, placements).violations)


def churn(trace: Path, limit: int, margin: float) -> ChurnResult:
    samples = read_trace(trace)[:limit]
    base = _scenario_problem()
    declared = next(lk.mbps for lk in base.scenario.links if {lk.a, lk.b} == set(LINK))
    mean = statistics.fmean(m for _, m in samples)
    scaled = [(t, m * declared / mean) for t, m in samples]
    first = solve(base, SolveOptions(), "heuristic")
    options = SolveOptions(time_limit_s=5)

    # With hysteresis: the loop's rule.
    watch = LinkWatch()
    rtt = next(lk.rtt_ms for lk in base.scenario.links if {lk.a, lk.b} == set(LINK))
    planned = base
    in_force = dict(first.placements)
    triggers = changes_with = broken_with = 0
    timings: list[float] = []
    for t, mbps in scaled:
        now = apply_change(base, Change(links={LINK: {"mbps": mbps}}))
        if _broken(now, in_force):
            broken_with += 1
        fired = watch.observe(*LINK, mbps, rtt, t)
        if fired is None:
            continue
        triggers += 1
        smoothed = watch.smoothed(*LINK)
        assert smoothed is not None
        change = Change(links={LINK: {"mbps": smoothed[0]}})
        planned = apply_change(planned, change, in_force)
        start = time.perf_counter()
        cand = resolve(planned, in_force, change, options)
        timings.append((time.perf_counter() - start) * 1000)
        current = evaluate(planned.cost, in_force)
        d = decide(
            current.objective,
            current.violations,
            cand.doc.objective,
            cand.status != Status.INFEASIBLE,
            margin,
        )
        watch.commit()
        if d.apply and cand.placements != in_force:
            in_force = dict(cand.placements)
            changes_with += 1

    changes = {"loop": changes_with}
    broken = {"loop": broken_with}
    # Incremental, no hysteresis: re-solve the link's apps every sample, apply any change.
    in_force = dict(first.placements)
    changes["incremental"] = broken["incremental"] = 0
    prev = base
    for _, mbps in scaled:
        change = Change(links={LINK: {"mbps": mbps}})
        now = apply_change(prev, change, in_force)
        if _broken(now, in_force):
            broken["incremental"] += 1
        cand = resolve(now, in_force, change, options)
        if cand.status != Status.INFEASIBLE and cand.placements != in_force:
            in_force = dict(cand.placements)
            changes["incremental"] += 1
        prev = now
    # Naive: solve from scratch every sample, no migration weight, apply any change.
    in_force = dict(first.placements)
    changes["naive"] = broken["naive"] = 0
    naive_base = Problem(
        base.scenario.model_copy(
            update={"objective": base.scenario.objective.model_copy(update={"migration": 0.0})}
        )
    )
    for _, mbps in scaled:
        now = apply_change(naive_base, Change(links={LINK: {"mbps": mbps}}))
        if _broken(now, in_force):
            broken["naive"] += 1
        cand = solve(now, options, "heuristic")
        if cand.status != Status.INFEASIBLE and cand.placements != in_force:
            in_force = dict(cand.placements)
            changes["naive"] += 1
    return ChurnResult(
        trace=f"{trace.parent.name}/{trace.name}",
        samples=len(scaled),
        triggers=triggers,
        changes=changes,
        broken=broken,
        resolve_ms_p50=statistics.median(timings) if timings else 0.0,
    )


def run_churn(args: argparse.Namespace) -> None:
    if not TRACES.is_dir():
        sys.exit(f"error: {TRACES} not found: clone the project next to shared/")
    picks = sorted((TRACES / "hsdpa-norway").iterdir())[: args.traces]
    picks += sorted((TRACES / "fcc").iterdir())[: args.traces]
    table = Table(title=f"plan changes on {LINK[0]}~{LINK[1]} driven by real traces")
    policies = ("naive", "incremental", "loop")
    table.add_column("trace")
    for col in ("samples", "loop triggers"):
        table.add_column(col, justify="right")
    for p in policies:
        table.add_column(f"changes {p}", justify="right")
    for p in policies:
        table.add_column(f"broken {p}", justify="right")
    table.add_column("re-solve p50 ms", justify="right")
    totals: dict[str, int] = {}
    for path in picks:
        r = churn(path, args.samples, args.margin)
        row = [r.samples, r.triggers]
        row += [r.changes[p] for p in policies] + [r.broken[p] for p in policies]
        table.add_row(r.trace, *(str(v) for v in row), f"{r.resolve_ms_p50:.1f}")
        for k, v in zip(
            ["samples", "triggers", *[f"c{p}" for p in policies], *[f"b{p}" for p in policies]],
            row,
            strict=True,
        ):
            totals[k] = totals.get(k, 0) + v
    table.add_row("total", *(str(v) for v in totals.values()), "")
    Console(width=160).print(table)
    print(f"margin {args.margin:.0%}, migration weight {MIGRATION} per MB, link {LINK}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=int, default=3, help="traces per folder")
    parser.add_argument("--samples", type=int, default=300, help="samples per trace")
    parser.add_argument("--margin", type=float, default=DEFAULT_MARGIN)
    args = parser.parse_args()
    if args.traces < 1 or args.samples < 1:
        parser.error("--traces and --samples must be >= 1")
    run_churn(args)


if __name__ == "__main__":
    main()

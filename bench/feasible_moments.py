"""Where `continuum` breaks a constraint, did a feasible plan exist at that moment?

Issue 15's target: "`continuum` has zero `violation_s` wherever a feasible plan exists at
that moment". This runs `continuum` in the simulator on the example fleet with the
traces of `bench/simulate.py`, and at every step where the plan in force breaks a
constraint it asks `ilp` (exact) for a plan of the scenario of that moment that places
every app within every constraint (the contract's "feasible"). Each such step is then
counted in one of:
- no feasible plan: `ilp` proves none exists (or finds none within its limit: shown apart);
- rollout: a feasible plan exists and continuum has decided a new plan whose rollout is
  under way (make-before-break: the old plan serves until the new one is ready);
- re-planned, not applied: continuum re-planned at this step and kept the plan in force;
- not re-planned: no trigger fired (the link and battery watches' thresholds, or no
  agent had probed the link since it moved: `--probe`, 30 s by default, as the agents
  do), or the plan continuum put in force was itself broken at that moment.
Each step where a feasible plan existed is also judged on what the control plane could
see: the plan in force evaluated again on the scenario as the agents had measured it (each
traced link at its latest probe), broken there too or whole there.
The simulator's own `violation_s` is printed next to the count, as a check that the
hook reads the steps the simulator scores.

    python bench/feasible_moments.py [--hours H] [--out DIR] [--ilp-limit S] [--probe S]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [str(ROOT), *(p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench")]
sys.path.append(str(ROOT / "bench"))

from machine import cpu_model  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.progress import Progress  # noqa: E402
from rich.table import Table  # noqa: E402
from simulate_workloads import bench_simulate, broken_on  # noqa: E402

import solver  # noqa: E402
from simulate.continuum import ContinuumPolicy  # noqa: E402
from simulate.engine import Simulation  # noqa: E402
from simulate.run import context  # noqa: E402

FEASIBLE = {solver.Status.OPTIMAL, solver.Status.FEASIBLE}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--hours", type=float, default=1.0)
    ap.add_argument("--out", type=Path, default=Path("/tmp/continuum-feasible-moments"))
    ap.add_argument("--ilp-limit", type=float, default=10.0)
    ap.add_argument(
        "--probe", type=float, default=30.0,
        help="seconds between the agents' bandwidth probes (the agent's default: 30)",
    )  # fmt: skip
    args = ap.parse_args()
    console = Console()
    console.print(f"machine: {cpu_model()}")
    inputs = bench_simulate().example(args.hours, 1.0, args.out, ["continuum"], args.probe)
    policy = ContinuumPolicy(context(inputs, "continuum"), keep_decisions=True)
    sim = Simulation(inputs, "continuum", policy)
    options = solver.SolveOptions(time_limit_s=args.ilp_limit)
    # (t, broken, ilp's status, first reason, broken as measured: -1 where none was feasible)
    broken: list[tuple[float, int, str, str, int]] = []
    clock = {"t": 0.0, "ilp_s": 0.0}
    advance = sim.batteries.advance

    def scored(dt: float) -> None:
        # Called once per step, after the simulator scored it and before the packs move:
        # the scenario of now is still that of the step.
        t = clock["t"]
        clock["t"] = t + dt
        violations = sim.rates[2]
        if violations:
            started = time.process_time()
            problem = solver.Problem(solver.parse_scenario(sim.scenario_now()))
            status = solver.solve(problem, options, solver="ilp").status
            clock["ilp_s"] += time.process_time() - started
            why, seen = "", -1
            if status in FEASIBLE:
                seen = len(broken_on(sim, sim.probes.measured))
                apps = problem.cost.apps
                held = {a: p for a, p in sim.placements.items() if a in apps}
                found = solver.evaluate(problem.cost, held).found
                why = f"{found[0].code.value}: {found[0].message}" if found else ""
            broken.append((t, violations, status.value, why, seen))
        advance(dt)

    sim.batteries.advance = scored  # type: ignore[method-assign]
    started = time.process_time()
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("continuum, ilp at each broken step", total=inputs.steps)
        run = sim.run(lambda k: bar.update(task, completed=k))
    cpu = time.process_time() - started

    rollout = inputs.rollout_s
    applied = [d.at_s for d in policy.decided if d.result.apply]
    replanned = {d.at_s: d.result.apply for d in policy.decided}
    kinds: Counter[str] = Counter()
    seconds: Counter[str] = Counter()
    notes: list[str] = []
    for t, violations, status, why, seen in broken:
        if status not in {s.value for s in FEASIBLE}:
            kind = "no feasible plan" if status == "infeasible" else f"ilp: {status}"
        elif any(a <= t < a + rollout for a in applied):
            kind = "feasible; a rollout under way"
        elif t in replanned:
            kind = "feasible; re-planned, kept the plan"
        else:
            kind = "feasible; not re-planned"
            notes.append(f"  t={t:g} s: {why}")
        if seen >= 0:
            kind += ": broken on what was measured" if seen else ": whole on what was measured"
        kinds[kind] += 1
        seconds[kind] += violations * inputs.step_s
    table = Table(title=f"continuum on {inputs.scenario_name}, {args.hours:g} h: broken steps")
    for col in ("moment", "steps", "constraint-seconds"):
        table.add_column(col, justify="left" if col == "moment" else "right")
    for kind in sorted(kinds):
        table.add_row(kind, f"{kinds[kind]:,}", f"{seconds[kind]:,.0f}")
    table.add_row("all", f"{len(broken):,}", f"{sum(seconds.values()):,.0f}")
    console.print(table)
    if notes:
        console.print("Steps where a feasible plan existed and continuum had not re-planned:")
        for line in notes[:40]:
            console.print(line, highlight=False)
    console.print(
        f"simulator's violation_s {run.totals.violation_s:,.0f} over {inputs.steps:,} steps; "
        f"{len(policy.decided)} re-plans, {len(applied)} applied; "
        f"{cpu:.1f} s CPU, of which ilp {clock['ilp_s']:.1f} s"
    )


if __name__ == "__main__":
    main()

"""Where a policy breaks a constraint on the 200-device fleet, could any plan keep it?

Issue 15's target: "`continuum` has zero `violation_s` wherever a feasible plan exists at
that moment". On the example fleet `bench/feasible_moments.py` asks `ilp` at every broken
step; on the 200-device fleet `ilp` proves nothing in minutes (bench/RESULTS.md), so
this asks for a proof that needs no solver instead: an app whose source's pack pays
nothing beside its idle draw, while every placement of the app makes the source pay
something (`solver.ownpack.drained_source`: it sends the input over links that cost
joules, or runs the first block above idle). Then no plan serves every app within every
constraint: the moment has no feasible plan, and that pack's battery constraint breaks in
every plan that serves the app.

It runs a policy (`continuum` by default) over the bench's fleet (`bench/simulate.py`:
200 devices, 34 traced camera uplinks) and, at every step where the plan in force breaks
a constraint, sorts the step and its constraint-seconds:
- by moment: a drained source proves no feasible plan exists; or not proven (for
  `continuum`, then as `bench/feasible_moments.py` sorts them: a rollout under way,
  re-planned at that step and the plan kept, or not re-planned);
- by constraint (the simulator's own verdicts, `simulate.scoring.Verdicts`): the battery
  of a drained source that serves an app it proves (no plan serving that app keeps it);
  another pack's battery; a traced link over its bandwidth; an app over its SLO across a
  traced link; every other constraint (compute, memory, untraced links, tiers, an SLO on
  an untraced route);
- for `continuum`'s steps not proven, by what the control plane could see: the plan in
  force judged again (`solver.evaluate`) on the scenario as the agents had measured it,
  each traced link at its latest probe (what `continuum` decides on): broken there too,
  or whole there, every constraint it breaks resting on a link figure that no probe had
  seen yet;
- with `--ilp-every N`, every Nth of `continuum`'s steps left unproven and broken on what
  was measured is asked again, after the run, with `ilp` (exact) on each app the plan in
  force breaks a constraint of, that app alone in the scenario of that moment: a plan of
  every app keeps every constraint of each one, so an app that fits nowhere alone proves
  the moment has no feasible plan. A sample, not every step: on the 200-device fleet a
  step's solves take about 26 s (`ilp` lays out every device for the app).
The run's totals are printed next to the tables: the same figures as
`bench/simulate.py`'s, as a check that the hook changes nothing it scores.

    python bench/proven_moments.py [--policy NAME] [--hours H] [--devices N] [--out DIR]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

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
from simulate.registry import make  # noqa: E402
from simulate.run import context  # noqa: E402
from solver.ownpack import drained_source  # noqa: E402

PROVEN = "no feasible plan: a drained source proves it"
KINDS = (
    "battery of a drained source serving an app it proves",
    "battery, another pack",
    "traced link over its bandwidth",
    "app over its SLO across a traced link",
    "other (compute, memory, untraced link, tier, SLO off the traces)",
)


class _Noting(ContinuumPolicy):
    """continuum, noting when it re-planned and whether it applied (nothing else kept)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.keep_decisions = True
        self.replanned: dict[float, bool] = {}

    def decide(self, now: Any) -> Any:
        out = super().decide(now)
        for d in self.decided:
            self.replanned[d.at_s] = d.result.apply
        self.decided.clear()
        return out


class _Proofs:
    """Which apps a drained source proves unplaceable, at the pack levels of now."""

    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        self.sourced: dict[str, list[str]] = {}
        for a in sim.base["apps"]:
            self.sourced.setdefault(a["source"], []).append(a["id"])
        self.limits: dict[str, tuple[float, float | None]] = {}  # device -> (level, W)
        # Whether a drained source proves the app: given a pack that pays nothing,
        # `drained_source` reads only what never moves in a run (models, links' J/MB,
        # the source's power), so it is asked once per app.
        self.proves: dict[str, bool] = {}

    def zero(self, device: str) -> bool:
        packs = self.sim.batteries
        k = packs.index.get(device)
        if k is None:
            return False
        level = float(packs.in_scenario[k])
        kept = self.limits.get(device)
        if kept is None or kept[0] != level:
            kept = self.limits[device] = (level, self.sim._battery_limit(device))
        return kept[1] == 0.0

    def proven(self, device: str, served: bool) -> bool:
        """Whether the pack of `device` pays nothing and sources an app it proves (one
        the plan in force serves, with `served`)."""
        if device in self.sim.down or not self.zero(device):
            return False
        for a in self.sourced.get(device, ()):
            if served and a not in self.sim.placements:
                continue
            if a not in self.proves:
                problem = self.sim.problem()
                if a not in problem.cost.apps:
                    continue  # its sink is down: not in the scenario of now
                self.proves[a] = drained_source(problem, a) is not None
            if self.proves[a]:
                return True
        return False


def alone_infeasible(doc: dict[str, Any], apps: list[str], limit_s: float) -> str:
    """`ilp` on each of `apps` alone in the scenario `doc`: "infeasible" (an app that no
    placement serves within every constraint: the moment has no feasible plan), "feasible"
    (each fits alone: this proves nothing), or "unknown" (a solve ran out of time)."""
    answer = "feasible"
    for app in apps:
        one = {**doc, "apps": [a for a in doc["apps"] if a["id"] == app]}
        status = solver.solve(
            solver.Problem(solver.parse_scenario(one)),
            solver.SolveOptions(time_limit_s=limit_s),
            solver="ilp",
        ).status
        if status == solver.Status.INFEASIBLE:
            return "infeasible"
        if status not in (solver.Status.OPTIMAL, solver.Status.FEASIBLE):
            answer = "unknown"
    return answer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--devices", type=int, default=200)
    ap.add_argument("--every", type=int, default=4, help="a traced uplink every N cameras")
    ap.add_argument("--policy", default="continuum", help="a policy `continuum simulate` knows")
    ap.add_argument("--out", type=Path, default=Path("/tmp/continuum-proven-moments"))
    ap.add_argument(
        "--ilp-every", type=int, default=0,
        help="ask ilp, app by app, at every Nth unproven step broken on what was measured",
    )  # fmt: skip
    ap.add_argument("--ilp-limit", type=float, default=30.0, help="seconds per ilp solve")
    args = ap.parse_args()
    if args.hours <= 0 or args.devices < 10:
        ap.error("--hours must be more than 0 and --devices at least 10")
    if args.ilp_every < 0 or args.ilp_limit <= 0:
        ap.error("--ilp-every must be 0 (off) or more, and --ilp-limit more than 0")
    console = Console() if sys.stdout.isatty() else Console(width=120)
    console.print(f"machine: {cpu_model()}")
    inputs = bench_simulate().fleet(
        args.devices, args.every, args.hours, 1.0, args.out, [args.policy]
    )  # fmt: skip
    name = args.policy
    policy = _Noting(context(inputs, name)) if name == "continuum" else make(context(inputs, name))
    replanned = policy.replanned if isinstance(policy, _Noting) else None
    sim = Simulation(inputs, name, policy)
    proofs = _Proofs(sim)
    steps: Counter[str] = Counter()
    seconds: Counter[str] = Counter()
    by_kind: dict[str, Counter[str]] = {PROVEN: Counter(), "not proven": Counter()}
    broken_at: list[tuple[float, int, bool, int]] = []
    # t -> (the scenario of that moment, the apps the plan in force breaks a constraint of,
    # the constraints it breaks)
    sampled: dict[float, tuple[dict[str, Any], list[str], int]] = {}
    clock = {"t": 0.0, "hook_s": 0.0, "seen": 0}
    advance = sim.batteries.advance
    dt = inputs.step_s

    def scored(step: float) -> None:
        # Once per step, after the simulator scored it and before the packs move: the
        # verdicts and the levels are still those of the step.
        t = clock["t"]
        clock["t"] = t + step
        violations = sim.rates[2]
        verdicts = sim.verdicts
        if violations and verdicts is not None:
            started = time.process_time()
            over = [d for d, o in verdicts.battery_over.items() if o]
            drained = sum(proofs.proven(d, served=True) for d in over)
            packs = sim.batteries
            others = set(packs.ids).difference(over)
            proven = drained > 0 or any(proofs.proven(d, served=False) for d in others)
            links = sum(verdicts.link_over.values())
            slo = sum(verdicts.app_over.values())
            counts = (drained, len(over) - drained, links, slo)
            kinds = by_kind[PROVEN if proven else "not proven"]
            for kind, n in zip(KINDS, (*counts, violations - sum(counts)), strict=True):
                kinds[kind] += n * dt
            # On the measured scenario (-1: not asked, the moment is proven).
            visible = -1
            if not proven and replanned is not None:
                visible = len(broken_on(sim, sim.probes.measured))
            if visible > 0 and args.ilp_every > 0:
                clock["seen"] += 1
                if (clock["seen"] - 1) % args.ilp_every == 0:
                    apps = sorted({r.app for r in broken_on(sim) if r.app is not None})
                    sampled[t] = (sim.scenario_now(), apps, violations)
            broken_at.append((t, violations, proven, visible))
            clock["hook_s"] += time.process_time() - started
        advance(step)

    sim.batteries.advance = scored  # type: ignore[method-assign,assignment]
    started = time.process_time()
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task(f"{name}, each broken step sorted", total=inputs.steps)
        run = sim.run(lambda k: bar.update(task, completed=k))
    cpu = time.process_time() - started

    rollout = inputs.rollout_s
    applied = sorted(t for t, apply in (replanned or {}).items() if apply)
    at = 0
    sight: Counter[str] = Counter()
    sight_s: Counter[str] = Counter()
    kinds_at: dict[float, str] = {}
    for t, violations, proven, visible in broken_at:
        while at < len(applied) and applied[at] + rollout <= t:
            at += 1
        if proven:
            kind = PROVEN
        elif replanned is None:
            kind = "not proven"
        elif at < len(applied) and applied[at] <= t:
            kind = "not proven; a rollout under way"
        elif t in replanned:
            kind = "not proven; re-planned at that step, plan kept"
        else:
            kind = "not proven; not re-planned"
        steps[kind] += 1
        seconds[kind] += violations * dt
        kinds_at[t] = moment = kind.removeprefix("not proven; ")
        if visible >= 0:
            what = "broken on what was measured" if visible else "whole on what was measured"
            sight[f"{moment}: {what}"] += 1
            sight_s[f"{moment}: {what}"] += violations * dt

    if sampled:
        # Each sampled step, by the moment it is and what `ilp` said of its apps alone.
        asked: Counter[str] = Counter()
        asked_s: Counter[str] = Counter()
        started = time.process_time()
        with Progress(console=console, transient=True) as bar:
            task = bar.add_task("ilp, app by app, at the sampled steps", total=len(sampled))
            for t, (doc, apps, violations) in sampled.items():
                answer = alone_infeasible(doc, apps, args.ilp_limit) if apps else "no app named"
                asked[f"{kinds_at[t]}: {answer}"] += 1
                asked_s[f"{kinds_at[t]}: {answer}"] += violations * dt
                bar.advance(task)
        ilp_cpu = time.process_time() - started

    fleet = inputs.scenario_name
    table = Table(title=f"{name} on {fleet}, {args.hours:g} h: the steps it breaks a constraint")
    for col in ("moment", "steps", "constraint-seconds", "share"):
        table.add_column(col, justify="left" if col == "moment" else "right")
    total = sum(seconds.values()) or 1.0
    for kind in sorted(steps):
        table.add_row(
            kind, f"{steps[kind]:,}", f"{seconds[kind]:,.0f}", f"{seconds[kind] / total:.1%}"
        )
    table.add_row("all", f"{len(broken_at):,}", f"{sum(seconds.values()):,.0f}", "100%")
    console.print(table)

    table = Table(title="the same constraint-seconds, by what is broken")
    table.add_column("constraint", justify="left")
    for col in (PROVEN, "not proven", "all"):
        table.add_column(col, justify="right")
    for kind in KINDS:
        a, b = by_kind[PROVEN][kind], by_kind["not proven"][kind]
        table.add_row(kind, f"{a:,.0f}", f"{b:,.0f}", f"{a + b:,.0f}")
    console.print(table)
    if sight:
        table = Table(
            title="continuum's steps not proven, by what the agents had measured: the plan in "
            "force judged on the traced links' latest probes"
        )
        for col in (
            "moment: the plan in force on the scenario as measured",
            "steps",
            "constraint-seconds",
        ):
            table.add_column(col, justify="left" if col.startswith("moment") else "right")
        for kind in sorted(sight):
            table.add_row(kind, f"{sight[kind]:,}", f"{sight_s[kind]:,.0f}")
        console.print(table)
    if sampled:
        table = Table(
            title=f"every {args.ilp_every}th unproven step broken on what was measured: "
            "ilp on each app the plan in force breaks, alone in that moment's scenario"
        )
        for col in ("moment: ilp's answer", "steps", "constraint-seconds"):
            table.add_column(col, justify="left" if col.startswith("moment") else "right")
        for kind in sorted(asked):
            table.add_row(kind, f"{asked[kind]:,}", f"{asked_s[kind]:,.0f}")
        console.print(table)
        console.print(f"ilp: {ilp_cpu:.1f} s CPU for {len(sampled)} steps")
    totals = run.totals
    console.print(
        f"simulator: violation_s {totals.violation_s:,.0f}, energy {totals.energy_j:,.0f} J, "
        f"slo_miss_s {totals.slo_miss_s:,.0f}, {totals.replacements} re-placements over "
        f"{inputs.steps:,} steps; {len(replanned or ()):,} re-plans noted; {cpu:.1f} s CPU, "
        f"of which sorting {clock['hook_s']:.1f} s; {sum(proofs.proves.values())} of "
        f"{len(proofs.proves)} apps asked are proven by their drained source"
    )


if __name__ == "__main__":
    main()

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
  was measured is asked again, after the run, with `ilp` (exact), on the apps of each
  broken constraint alone: each app the plan in force breaks a limit of, and together the
  apps each broken pack is the source of (the pack pays for sending their inputs or
  running their first blocks wherever they go). No load in the cost model grows when an
  app goes (latency does not depend on load), so a plan of every app keeps every
  constraint of any few of them: a few that fit nowhere together prove the moment has no
  feasible plan. First in the scenario of that moment (the target's question), then, if
  that proves nothing, in the scenario as the agents had measured it (what continuum
  decided on). Where the groups fit, their placements put into the plan in force and
  judged on the whole fleet make a feasible plan when that breaks nothing: so a step is
  "no feasible plan", "a feasible plan now, none on what was measured" (it rests on a
  link figure that rose since its last probe), "a plan whole on what was measured" (one
  continuum could have found), or unsettled. A sample, not every step: on the 200-device
  fleet an infeasible group's solve takes 30 to 50 s (`ilp` lays out every device for
  it), a feasible one's under a second.
The run's totals are printed next to the tables: the same figures as
`bench/simulate.py`'s, as a check that the hook changes nothing it scores.

With `--probe S` the agents probe every S seconds instead of every 30 (`simulate.inputs.
PROBE_S`): the constraint-seconds resting on figures no probe had seen are the price of
that interval, which the row "whole on what was measured" shows against it.

    python bench/proven_moments.py [--policy NAME] [--hours H] [--devices N] [--probe S]
                                   [--ilp-every N] [--ilp-limit S] [--out DIR]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [str(ROOT), *(p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench")]
sys.path.append(str(ROOT / "bench"))

from machine import cpu_model  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.progress import Progress  # noqa: E402
from rich.table import Table  # noqa: E402
from simulate_workloads import bench_simulate, evaluated_on  # noqa: E402

import solver  # noqa: E402
from simulate.continuum import ContinuumPolicy  # noqa: E402
from simulate.engine import Simulation  # noqa: E402
from simulate.inputs import PROBE_S  # noqa: E402
from simulate.registry import make  # noqa: E402
from simulate.run import context  # noqa: E402
from solver.ownpack import drained_source  # noqa: E402
from solver.reasons import Code  # noqa: E402

PROVEN = "no feasible plan: a drained source proves it"
NO_PLAN = "no feasible plan: a group fits nowhere (ilp)"
UNSEEN = "a feasible plan now, none on what was measured"
MISSED = "a plan whole on what was measured"
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


@dataclass
class Sample:
    """A sampled step, kept for `ilp` after the run: the scenario of that moment and as
    the agents had measured it, the plan in force, and the apps of what it breaks on each."""

    doc: dict[str, Any]
    measured: dict[str, Any]
    held: dict[str, solver.Placement]
    groups: list[tuple[str, ...]]
    groups_measured: list[tuple[str, ...]]
    violations: int


def _groups(sim: Simulation, ev: solver.Evaluation) -> list[tuple[str, ...]]:
    """The apps of each constraint the evaluation `ev` of the plan in force breaks: an app
    over its own limits alone; the apps each broken pack sources and the plan serves,
    together."""
    groups: list[tuple[str, ...]] = [
        (a,) for a in sorted({r.app for r in ev.found if r.app is not None})
    ]
    packs = (
        d for d, found in sorted(ev.device_violations.items())
        if any(r.code is Code.BATTERY for r in found)
    )  # fmt: skip
    for device in packs:
        sourced = tuple(
            a["id"]
            for a in sim.base["apps"]
            if a["source"] == device and a["id"] in sim.placements
        )  # fmt: skip
        if sourced and sourced not in groups:
            groups.append(sourced)
    return groups


def _ilp(
    doc: dict[str, Any], groups: list[tuple[str, ...]], limit_s: float
) -> tuple[str, dict[str, solver.Placement]]:
    """`ilp` on each group of apps alone in the scenario `doc`: "infeasible" (a group that
    no plan serves within every constraint: the moment has no feasible plan), "feasible"
    (each fits alone, with the placements found: this alone proves nothing), or "unknown"
    (a solve ran out of time)."""
    answer, placed = "feasible", {}
    for group in groups:
        one = {**doc, "apps": [a for a in doc["apps"] if a["id"] in group]}
        plan = solver.solve(
            solver.Problem(solver.parse_scenario(one)),
            solver.SolveOptions(time_limit_s=limit_s),
            solver="ilp",
        )
        if plan.status == solver.Status.INFEASIBLE:
            return "infeasible", {}
        if plan.status in (solver.Status.OPTIMAL, solver.Status.FEASIBLE):
            placed.update(plan.placements)
        else:
            answer = "unknown"
    return answer, placed


def _whole(doc: dict[str, Any], held: dict[str, solver.Placement], placed: dict[str, Any]) -> bool:
    """Whether the plan in force with `placed` instead for those apps breaks nothing in
    `doc`: a feasible plan of every app, found."""
    problem = solver.Problem(solver.parse_scenario(doc))
    return not solver.evaluate(problem.cost, {**held, **placed}).violations


def settle(sample: Sample, limit_s: float) -> str:
    """What `ilp` says of a sampled moment: on the scenario of now (the target's
    question), then on the scenario as measured (what continuum could have known)."""
    now, placed = _ilp(sample.doc, sample.groups, limit_s)
    if now == "infeasible":
        return NO_PLAN
    found = now == "feasible" and _whole(sample.doc, sample.held, placed)
    seen, placed = _ilp(sample.measured, sample.groups_measured, limit_s)
    if seen == "infeasible":
        return UNSEEN if found else "none on what was measured; now unsettled"
    if seen == "feasible" and _whole(sample.measured, sample.held, placed):
        return MISSED
    return "a feasible plan now; on what was measured unsettled" if found else "unsettled"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--devices", type=int, default=200)
    ap.add_argument("--every", type=int, default=4, help="a traced uplink every N cameras")
    ap.add_argument("--policy", default="continuum", help="a policy `continuum simulate` knows")
    ap.add_argument("--probe", type=float, default=PROBE_S, metavar="S", help="probe interval")
    ap.add_argument("--out", type=Path, default=Path("/tmp/continuum-proven-moments"))
    ap.add_argument(
        "--ilp-every", type=int, default=0,
        help="ask ilp, app by app, at every Nth unproven step broken on what was measured",
    )  # fmt: skip
    ap.add_argument("--ilp-limit", type=float, default=30.0, help="seconds per ilp solve")
    args = ap.parse_args()
    if args.hours <= 0 or args.devices < 10 or args.probe <= 0:
        ap.error("--hours and --probe must be more than 0 and --devices at least 10")
    if args.ilp_every < 0 or args.ilp_limit <= 0:
        ap.error("--ilp-every must be 0 (off) or more, and --ilp-limit more than 0")
    console = Console() if sys.stdout.isatty() else Console(width=120)
    console.print(f"machine: {cpu_model()}")
    inputs = bench_simulate().fleet(
        args.devices, args.every, args.hours, 1.0, args.out, [args.policy], args.probe
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
    sampled: dict[float, Sample] = {}
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
            seen = None
            if not proven and replanned is not None:
                seen = evaluated_on(sim, sim.probes.measured)
                visible = len(seen.found)
            if seen is not None and visible > 0 and args.ilp_every > 0:
                clock["seen"] += 1
                if (clock["seen"] - 1) % args.ilp_every == 0:
                    measured = dict(sim.probes.measured)
                    sampled[t] = Sample(
                        sim.scenario_now(), sim.scenario_now(measured), sim._held(sim.down),
                        _groups(sim, evaluated_on(sim)), _groups(sim, seen), violations,
                    )  # fmt: skip
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
        # Each sampled step, by the moment it is and what `ilp` said of its groups alone.
        asked: Counter[str] = Counter()
        asked_s: Counter[str] = Counter()
        started = time.process_time()
        with Progress(console=console, transient=True) as bar:
            task = bar.add_task("ilp at the sampled steps", total=len(sampled))
            for t, sample in sampled.items():
                answer = settle(sample, args.ilp_limit) if sample.groups else "no app named"
                asked[f"{kinds_at[t]}: {answer}"] += 1
                asked_s[f"{kinds_at[t]}: {answer}"] += sample.violations * dt
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
            "ilp on the apps of each broken constraint (an app over its limits; a broken "
            "pack's apps) alone, now and on what was measured"
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

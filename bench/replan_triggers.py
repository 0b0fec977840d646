"""What asks `continuum` to re-plan, and which re-plans change the plan.

Issue 15's speed target (24 h of the 200-device fleet, five policies, 60 s) is missed by
continuum's re-plans: the live control plane's path, run at every step where a watch
fires. This runs `continuum` in the simulator on `bench/simulate.py`'s 200-device fleet
(HSDPA and 5Gophers traces on its camera uplinks) and sorts each re-plan by the triggers
that asked for it, against the plan in force at that moment:
- a floor: a link's sample fell below what the plan in force sends there
  (`orchestrator.triggers.link_floors`);
- a fall on a used link: a link the plan in force sends over lost 30% (smoothed), which
  may break an app's SLO there;
- only falls on unused links: nothing the plan in force does can get worse, and no other
  plan gets better from it (a re-plan may still find something else changed);
- only rises (with or without falls on unused links): an opportunity, nothing broke;
- no link trigger: a battery or a device.
For each, how many re-plans put a new plan in force and how many kept the plan. The rows
say what a rule that held back some kinds could save, and what it would risk.

With `--refusals` it also asks, of every re-plan the hysteresis margin refused while the
plan in force broke nothing (judged, as `replan` judges it, on the apps the candidate
places: a pre-check, before the re-solve, cannot know which apps it sets aside, and an app
served degraded keeps the plan in force broken; bench/RESULTS.md), whether a bound could
have refused it without the re-solve (an idea: skip the solve when no re-placement of the
apps the re-plan touches can gain the margin). Each touched app's cost can fall at most to
its own lower bound over every host of its tiers with shared capacity, batteries and the
SLO relaxed and every link at unlimited bandwidth (`solver.bounds.AppBounds` at zero
prices): a bound no bandwidth figure moves, so computed once. The re-plan could be skipped
when the touched apps' costs less those bounds sum to under the margin. A second, cheaper
bound (each block at the cheapest host per GFLOP, one overhead, nothing sent) is tried
beside it. It prints, over the refusals, how many links differ from the scenario the plan
in force was solved from and how many of them fired, how many apps the re-plan touched
(those of the links and batteries that fired: `orchestrator.replacement.what_fired`) and why
(source or sink at one of those links' ends; hosted at one only), their summed distance to
the bounds, and the margin.

With `--hold-rises S` it also runs continuum with one rule more, which continuum does NOT
have: rise-only re-plans at most once per S seconds (the way Kubernetes' descheduler runs
on a period), and prints both runs' re-plans, energy, SLO misses, broken constraints and
CPU side by side: what such a rule would buy, and what it would cost.

    python bench/replan_triggers.py [--hours H] [--devices N] [--every K] [--hold-rises S]
                                    [--refusals]
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [str(ROOT), *(p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench")]
sys.path.append(str(ROOT / "bench"))

import numpy as np  # noqa: E402
from machine import cpu_model  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.progress import Progress  # noqa: E402
from rich.table import Table  # noqa: E402
from simulate_workloads import bench_simulate  # noqa: E402

import solver  # noqa: E402
from orchestrator.replacement import change_between, in_force, what_fired  # noqa: E402
from orchestrator.triggers import Trigger, link_name  # noqa: E402
from simulate.continuum import ContinuumPolicy  # noqa: E402
from simulate.engine import Simulation, Totals  # noqa: E402
from simulate.run import context  # noqa: E402
from solver.bounds import AppBounds  # noqa: E402
from solver.costs import cost_per_busy_s, embodied_g_per_s  # noqa: E402
from solver.incremental import touched_apps  # noqa: E402

# orchestrator.triggers.LinkWatch's reasons: a move of the smoothed figures, or a floor.
MOVED = re.compile(
    r"^link (\S+): bandwidth ([\d.]+) -> ([\d.]+) Mbit/s, rtt ([\d.]+) -> ([\d.]+) ms$"
)
FLOOR = re.compile(r"^link (\S+): bandwidth [\d.]+ Mbit/s, below the ")
KINDS = (
    "floor, or fall on a used link",
    "only falls on unused links",
    "only rises (+ unused falls)",
    "battery or device",
)


def classify(reasons: list[str], used: set[str]) -> str:
    """The kind (one of KINDS) of one re-plan, from its triggers' reasons and the links
    the plan in force sends over."""
    worse = rises = unused_falls = 0
    for reason in reasons:
        if FLOOR.match(reason):
            worse += 1
            continue
        moved = MOVED.match(reason)
        if moved is None:
            continue  # a battery, a device: counted when no link fired
        link, mbps_was, mbps, rtt_was, rtt = moved.groups()
        fell = float(mbps) < float(mbps_was) or float(rtt) > float(rtt_was)
        if not fell:
            rises += 1
        elif link in used:
            worse += 1
        else:
            unused_falls += 1
    if worse:
        return KINDS[0]
    if rises:
        return KINDS[2]
    if unused_falls:
        return KINDS[1]
    return KINDS[3]


def _bandwidth_free(scenario: dict[str, Any]) -> dict[str, Any]:
    """`scenario` relaxed so that no bandwidth or battery figure enters a bound: every link
    unlimited, no batteries, no previous plan (migration is not negative)."""
    out = copy.deepcopy(scenario)
    out.pop("previous", None)
    for link in out["links"]:
        link["mbps"] = 1e9
    for device in out["devices"]:
        device.pop("battery", None)
    return out


class _Refusals:
    """Per refused re-plan: (touched apps by why, their summed distance to their
    bandwidth-free bounds, the margin), as in the module's `--refusals`."""

    def __init__(self, margin: float) -> None:
        self.margin = margin
        self.bounds: dict[str, float] = {}
        self.key: str | None = None
        self.rows: list[tuple[int, int, int, int, int, float, float, float]] = []
        self.cpu_s = 0.0  # this analysis's own CPU, left out of the run's
        self._cheap_bounds: dict[str, float] | None = None

    def _cheap(self, scenario: dict[str, Any]) -> dict[str, float]:
        """Each app's cost if every block ran at the cheapest host of its tiers per GFLOP
        and one overhead at the cheapest, nothing sent: a bound in O(hosts) an app, as a
        fleet of 10,000 devices could afford (cascades: 0)."""
        if self._cheap_bounds is not None:
            return self._cheap_bounds
        problem = solver.Problem(solver.parse_scenario(_bandwidth_free(scenario)))
        cm, w = problem.cost, problem.scenario.objective
        out: dict[str, float] = {}
        for app in problem.scenario.apps:
            devs = [cm.devices[d] for d in problem.hosts(app)]
            dyn = np.array([d.power_w.busy - d.power_w.idle for d in devs])
            grid = np.array([d.grid_gco2_per_kwh for d in devs])
            emb = embodied_g_per_s(
                np.array([d.embodied_kgco2e for d in devs]), np.array([d.lifetime_h for d in devs])
            )
            per_s = cost_per_busy_s(w, dyn, grid, emb)
            per_gflop = float((per_s / np.array([d.gflops for d in devs])).min(initial=np.inf))
            overhead = float(
                (per_s * np.array([d.overhead_ms for d in devs]) / 1000).min(initial=np.inf)
            )
            best = 0.0 if app.cascade is not None else np.inf
            for m in problem.model_options(app):
                sh = cm.shapes[m]
                work = sum(r * (layer.gflops + e) for r, layer, e in
                           zip(sh.reach, sh.model.layers, sh.exit_gflops, strict=True))  # fmt: skip
                best = min(best, app.rate_rps * (work * per_gflop + overhead))
            out[app.id] = best if np.isfinite(best) else 0.0
        self._cheap_bounds = out
        return out

    def _bound(self, scenario: dict[str, Any], app_ids: set[str]) -> dict[str, float]:
        relaxed = _bandwidth_free(scenario)
        key = repr(relaxed)
        if key != self.key:  # a device or an rtt changed: the bounds are void
            self.key, self.bounds = key, {}
        missing = app_ids - self.bounds.keys()
        if missing:
            problem = solver.Problem(solver.parse_scenario(relaxed))
            zero = np.zeros(len(problem.scenario.devices))
            for app in problem.scenario.apps:
                if app.id in missing:
                    b = AppBounds(problem, app, problem.hosts(app))
                    b.prepare(zero, zero, zero, 0.0)
                    self.bounds[app.id] = b.best
        return self.bounds

    def add(self, d: Any) -> None:
        started = time.process_time()
        try:
            self._add(d)
        finally:
            self.cpu_s += time.process_time() - started

    def _add(self, d: Any) -> None:
        plan = solver.PlanDoc.model_validate(d.previous_plan)
        current = in_force(d.scenario, d.previous_scenario, plan)
        assert current.scenario is not None
        change = change_between(current.scenario, d.scenario)
        problem = solver.Problem(solver.parse_scenario(d.scenario))
        held = {a.id: current.placements[a.id] for a in problem.scenario.apps
                if a.id in current.placements}  # fmt: skip
        touching = what_fired(change, d.targets, current.scenario)
        touched = touched_apps(problem, held, touching) & held.keys()
        ev = solver.evaluate(problem.cost, held)
        lower = self._bound(d.scenario, touched)
        ends = {x for pair in touching.links for x in pair}
        leaf_side = hosted_only = 0
        for a in touched:
            app = problem.cost.apps[a]
            if {app.source, app.sink_id} & ends:
                leaf_side += 1
            elif held[a].hosts() & ends:
                hosted_only += 1
        gain = sum(ev.records[a].term - lower[a] for a in touched)
        cheap = self._cheap(d.scenario)
        gain_cheap = sum(ev.records[a].term - cheap[a] for a in touched)
        self.rows.append((
            len(change.links), sum("~" in t for t in d.targets), len(touched), leaf_side,
            hosted_only, gain, gain_cheap, self.margin * ev.objective,
        ))  # fmt: skip


class _Sorting(ContinuumPolicy):
    """continuum, counting its re-plans by kind as they happen (nothing kept)."""

    refusals: _Refusals | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        self.keep_decisions = True
        self.counts: Counter[tuple[str, bool]] = Counter()

    def decide(self, now: Any) -> Any:
        out = super().decide(now)
        for d in self.decided:
            plan = d.previous_plan or {}
            # The links it sends over: its document lists the links it leaves idle too.
            used = {
                link_name(u["a"], u["b"]) for u in plan.get("links", []) if u["utilization"] > 0
            }
            self.counts[(classify(d.reasons, used), d.result.apply)] += 1
            refused = not d.result.apply and not d.result.broken and d.previous_plan
            if self.refusals is not None and refused and "margin" in d.result.decision:
                self.refusals.add(d)
        self.decided.clear()
        return out


class _HoldingRises(_Sorting):
    """continuum with one rule more, NOT built into continuum: a step whose triggers are
    only rises (an opportunity, nothing broken) re-plans at most once per `hold_s`; held
    triggers stay pending (the watch is not committed) and fire again after the window."""

    hold_s: float = 60.0
    _last_rise_s: float = float("-inf")

    def _observe(self, now: Any) -> list[Trigger]:
        fired = super()._observe(now)
        if not fired or any(t.kind != "link" for t in fired):
            return fired
        if classify([t.reason for t in fired], set(self.links.floors)) != KINDS[2]:
            return fired
        if now.at_s - self._last_rise_s < self.hold_s:
            return []
        self._last_rise_s = now.at_s
        return fired


def _run(policy: _Sorting, inputs: Any, console: Console, label: str) -> tuple[Totals, float]:
    sim = Simulation(inputs, "continuum", policy)
    started = time.process_time()
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task(label, total=inputs.steps)
        run = sim.run(lambda k: bar.update(task, completed=k))
    cpu = time.process_time() - started
    return run.totals, cpu - (policy.refusals.cpu_s if policy.refusals is not None else 0.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--hours", type=float, default=0.25)
    ap.add_argument("--devices", type=int, default=200)
    ap.add_argument("--every", type=int, default=4)
    ap.add_argument("--out", type=Path, default=Path("/tmp/continuum-replan-triggers"))
    ap.add_argument(
        "--hold-rises", type=float, default=0.0, metavar="S",
        help="also run continuum with rise-only re-plans held to one per S seconds, and compare",
    )  # fmt: skip
    ap.add_argument(
        "--refusals", action="store_true",
        help="also ask whether a bandwidth-free bound could have refused each margin refusal",
    )  # fmt: skip
    args = ap.parse_args()
    # Wide enough for the tables when the output is a file, not a terminal.
    console = Console() if sys.stdout.isatty() else Console(width=120)
    console.print(f"machine: {cpu_model()}")
    inputs = bench_simulate().fleet(
        args.devices, args.every, args.hours, 1.0, args.out, ["continuum"]
    )
    policy = _Sorting(context(inputs, "continuum"))
    if args.refusals:
        policy.refusals = _Refusals(policy.margin)
    totals, cpu = _run(policy, inputs, console, "continuum")

    title = f"continuum on {inputs.scenario_name}, {args.hours:g} h: re-plans by trigger"
    table = Table(title=title)
    for col in ("asked by", "re-plans", "new plan", "plan kept", "share"):
        table.add_column(col, justify="left" if col == "asked by" else "right")
    total = sum(policy.counts.values())
    for kind in KINDS:
        applied, kept = policy.counts[(kind, True)], policy.counts[(kind, False)]
        share = (applied + kept) / total if total else 0.0
        table.add_row(kind, f"{applied + kept:,}", f"{applied:,}", f"{kept:,}", f"{share:.0%}")
    applied_all = sum(v for (_, applied), v in policy.counts.items() if applied)
    table.add_row("all", f"{total:,}", f"{applied_all:,}", f"{total - applied_all:,}", "100%")
    console.print(table)
    console.print(
        f"{inputs.steps:,} steps, {total:,} re-plans ({total / max(inputs.steps, 1):.0%} of "
        f"steps); {cpu:.1f} s CPU, {1000 * cpu / max(inputs.steps, 1):.1f} ms a step"
    )

    if policy.refusals is not None:
        _refusals(console, policy.refusals)

    if args.hold_rises > 0:
        held = _HoldingRises(context(inputs, "continuum"))
        held.hold_s = args.hold_rises
        held_totals, held_cpu = _run(held, inputs, console, "continuum, rises held")
        title = f"the same, with rise-only re-plans held to one per {args.hold_rises:g} s"
        _compare(console, title, ("as built", "rises held"),
                 (policy, totals, cpu), (held, held_totals, held_cpu))  # fmt: skip


def _refusals(console: Console, refusals: _Refusals) -> None:
    rows = refusals.rows
    if not rows:
        console.print("no re-plan was refused by the margin with the plan in force unbroken")
        return
    table = Table(title="re-plans refused by the margin: could a bound have refused them?")
    for col in ("", "links changed since the plan", "links that fired", "apps touched",
                "source or sink at a fired link", "hosted at its end only", "gain bound",
                "gain bound, cheapest host", "margin"):  # fmt: skip
        table.add_column(col, justify="left" if not col else "right")
    for label, pick in (("least", min), ("median", _median), ("most", max)):
        table.add_row(label, *(f"{pick([r[k] for r in rows]):,.3g}" for k in range(8)))
    console.print(table)
    provable = sum(1 for r in rows if r[5] < r[7])
    cheap = sum(1 for r in rows if r[6] < r[7])
    console.print(
        f"{len(rows):,} refusals; {provable:,} of them provable by the bound over every host "
        f"(gain bound < margin), {cheap:,} by the cheapest-host bound; the rest need the "
        "re-solve"
    )


def _median(values: list[float]) -> float:
    return float(np.median(values))


def _compare(
    console: Console,
    title: str,
    labels: tuple[str, str],
    *runs: tuple[_Sorting, Totals, float],
) -> None:
    table = Table(title=title)
    for col in ("continuum", "re-plans", "re-placements", "energy_j", "slo_miss_s",
                "violation_s", "CPU s"):  # fmt: skip
        table.add_column(col, justify="left" if col == "continuum" else "right")
    for label, (policy, totals, cpu) in zip(labels, runs, strict=True):
        table.add_row(
            label, f"{sum(policy.counts.values()):,}", f"{totals.replacements:,}",
            f"{totals.energy_j:,.0f}", f"{totals.slo_miss_s:,.0f}",
            f"{totals.violation_s:,.0f}", f"{cpu:.1f}",
        )  # fmt: skip
    console.print(table)


if __name__ == "__main__":
    main()
